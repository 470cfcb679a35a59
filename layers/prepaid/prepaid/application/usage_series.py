"""Usage series: a wallet's usage and credits per meter, in hour or day buckets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from prepaid.domain.errors import InvalidRequest, WalletNotFound
from prepaid.domain.numbers import ZERO
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
class MeterSeries:
    meter: str
    total: MeterUsage
    buckets: list[tuple[datetime, MeterUsage]]  # every bucket of the span, oldest first, zeros included


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
        for hour in hours:
            bucket = bucket_of(hour.hour, query.granularity)
            for meter, usage in hour.meters.items():
                if query.meter is None or meter == query.meter:
                    by_bucket = sums.setdefault(meter, {})
                    by_bucket[bucket] = by_bucket.get(bucket, MeterUsage()).plus(usage)
        if query.meter is not None:
            sums.setdefault(query.meter, {})
        starts = [start + i * step for i in range(int((end - start) / step))]
        meters = [
            MeterSeries(
                meter,
                MeterUsage(
                    sum((u.quantity for u in by_bucket.values()), ZERO),
                    sum((u.credits for u in by_bucket.values()), ZERO),
                    sum(u.events for u in by_bucket.values()),
                ),
                [(at, by_bucket.get(at, MeterUsage())) for at in starts],
            )
            for meter, by_bucket in sorted(sums.items())
        ]
        return UsageSeriesView(customer_id, query.granularity, start, end, meters)
