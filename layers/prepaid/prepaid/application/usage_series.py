"""Usage series: a wallet's usage and credits per meter, in hour or day buckets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from prepaid.domain.errors import InvalidRequest, WalletNotFound
from prepaid.domain.rate_card import PricedBy
from prepaid.domain.usage_hours import HourUsage, MeterUsage, hour_of, merged_hours
from prepaid.domain.wallet import Wallet


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


STEP = {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}
DEFAULT_SPAN = {Granularity.HOUR: timedelta(hours=24), Granularity.DAY: timedelta(days=30)}
MAX_BUCKETS = 1000  # 41 days of hours, or 2.7 years of days


class HourlyUsageReader(Protocol):
    def load(self, customer_id: str) -> Wallet | None: ...

    def stored_hours(self, customer_id: str, start: datetime, end: datetime) -> list[HourUsage]: ...


def hourly_usage(reader: HourlyUsageReader, wallet: Wallet, start: datetime, end: datetime) -> list[HourUsage]:
    """A wallet's usage per hour in [start, end), oldest first: the stored hours and the wallet's open hour.

    `wallet` must have been read before the stored hours are: an hour closed after that read is then found stored
    (see `merged_hours`).
    """
    stored = reader.stored_hours(wallet.customer_id, start, end)
    return [h for h in merged_hours(wallet.open_hour, stored) if start <= h.hour < end]


def bucket_of(at: datetime, granularity: Granularity) -> datetime:
    hour = hour_of(at)
    return hour if granularity is Granularity.HOUR else hour.replace(hour=0)


@dataclass(frozen=True)
class SeriesQuery:
    granularity: Granularity = Granularity.HOUR
    start: datetime | None = None
    end: datetime | None = None
    meter: str | None = None


@dataclass(frozen=True)
class PricedUsage:
    """A meter's usage over the span rated at one dimension value's listed price; `priced_by` None: at the base rate."""

    priced_by: PricedBy | None
    usage: MeterUsage


@dataclass(frozen=True)
class MeterSeries:
    meter: str
    total: MeterUsage
    buckets: list[tuple[datetime, MeterUsage]]  # every bucket of the span, oldest first, zeros included
    # the total split by priced dimension value, the base rate's part last; empty when nothing was priced by one
    by_dimension: list[PricedUsage] = field(default_factory=list)


@dataclass(frozen=True)
class UsageSeriesView:
    customer_id: str
    granularity: Granularity
    start: datetime
    end: datetime
    meters: list[MeterSeries]


class UsageSeries:
    """Buckets cover [from, to) with `from` rounded down and `to` rounded up to whole buckets (UTC); buckets
    without usage are listed with zeros, so a chart needs no gap filling."""

    def __init__(self, reader: HourlyUsageReader, clock: Callable[[], datetime]) -> None:
        self._reader = reader
        self._clock = clock

    def read(self, customer_id: str, query: SeriesQuery) -> UsageSeriesView:
        step = STEP[query.granularity]
        end = query.end or self._clock()
        end_bucket = bucket_of(end, query.granularity)
        end = end_bucket if end_bucket == end else end_bucket + step
        start = bucket_of(query.start or end - DEFAULT_SPAN[query.granularity], query.granularity)
        if start >= end:
            raise InvalidRequest(field="from", reason="before to")
        if (end - start) / step > MAX_BUCKETS:
            raise InvalidRequest(field="from", reason=f"at most {MAX_BUCKETS} {query.granularity.value} buckets")
        wallet = self._reader.load(customer_id)
        if wallet is None:
            raise WalletNotFound(customer_id=customer_id)
        hours = hourly_usage(self._reader, wallet, start, end)
        sums: dict[str, dict[datetime, MeterUsage]] = {}
        priced: dict[str, dict[PricedBy, MeterUsage]] = {}
        for hour in hours:
            bucket = bucket_of(hour.hour, query.granularity)
            for meter, usage in hour.meters.items():
                if query.meter is None or meter == query.meter:
                    by_bucket = sums.setdefault(meter, {})
                    by_bucket[bucket] = by_bucket.get(bucket, MeterUsage()).plus(usage)
            for (meter, by), usage in hour.priced.items():
                if query.meter is None or meter == query.meter:
                    by_value = priced.setdefault(meter, {})
                    by_value[by] = by_value.get(by, MeterUsage()).plus(usage)
        if query.meter is not None:
            sums.setdefault(query.meter, {})
        starts = [start + i * step for i in range(int((end - start) / step))]
        meters = []
        for meter, by_bucket in sorted(sums.items()):
            total = _sum(by_bucket.values())
            buckets = [(at, by_bucket.get(at, MeterUsage())) for at in starts]
            meters.append(MeterSeries(meter, total, buckets, _by_dimension(total, priced.get(meter, {}))))
        return UsageSeriesView(customer_id, query.granularity, start, end, meters)


def _sum(usages: Iterable[MeterUsage]) -> MeterUsage:
    total = MeterUsage()
    for usage in usages:
        total = total.plus(usage)
    return total


def _by_dimension(total: MeterUsage, priced: dict[PricedBy, MeterUsage]) -> list[PricedUsage]:
    """A meter's total split by priced value; what no listed price rated (a value not listed, or absent) is the
    rest of the total, so the parts always add up to it."""
    if not priced:
        return []
    parts = [PricedUsage(by, usage) for by, usage in sorted(priced.items(), key=lambda p: (p[0].dimension, p[0].value))]
    listed = _sum(p.usage for p in parts)
    rest = MeterUsage(total.quantity - listed.quantity, total.credits - listed.credits, total.events - listed.events)
    return parts + ([PricedUsage(None, rest)] if rest.events else [])
