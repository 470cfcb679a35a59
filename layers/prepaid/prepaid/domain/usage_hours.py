"""Usage summed per customer and hour (of the events' own timestamps), per meter.

The latest hour a wallet has seen stays open on the wallet itself and is written with it, so drawing usage in
real time costs no write beyond the wallet's own; an hour is closed (added to its stored aggregate) when a later
hour opens. Usage for any other hour (late events) is added to that hour's stored aggregate directly. Hours
only ever open forward, so the open hour never has a stored aggregate while it is open: a reader who finds one
knows the hour was closed after it read the wallet.

Usage rated at a dimension value's listed price (`RatedUsage.priced_by`) is also summed per meter and value, beside
its meter's total, in the same hour: the split costs no write of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from prepaid.domain.numbers import ZERO
from prepaid.domain.rate_card import PricedBy


@dataclass(frozen=True)
class MeterUsage:
    """Quantity, credits and number of events of one meter."""

    quantity: Decimal = ZERO
    credits: Decimal = ZERO
    events: int = 0

    def plus(self, other: MeterUsage) -> MeterUsage:
        return MeterUsage(self.quantity + other.quantity, self.credits + other.credits, self.events + other.events)


PricedMeter = tuple[str, PricedBy]  # a meter, and the dimension value that priced part of its usage
Key = TypeVar("Key", str, PricedMeter)


@dataclass(frozen=True)
class HourUsage:
    """Usage of one customer in one hour, per meter; `priced` is the part of it rated at a dimension value's price."""

    hour: datetime
    meters: Mapping[str, MeterUsage] = field(default_factory=dict)
    priced: Mapping[PricedMeter, MeterUsage] = field(default_factory=dict)

    def plus(
        self, other: Mapping[str, MeterUsage], priced: Mapping[PricedMeter, MeterUsage] | None = None
    ) -> HourUsage:
        return HourUsage(self.hour, _summed(self.meters, other), _summed(self.priced, priced or {}))

    def merged(self, other: HourUsage) -> HourUsage:
        """This hour with `other`'s usage (of the same hour) added."""
        return self.plus(other.meters, other.priced)


def _summed(left: Mapping[Key, MeterUsage], right: Mapping[Key, MeterUsage]) -> dict[Key, MeterUsage]:
    merged = dict(left)
    for key, usage in right.items():
        merged[key] = merged.get(key, MeterUsage()).plus(usage)
    return merged


class Metered(Protocol):
    """What `tally` needs of a usage event (a `RatedUsage`)."""

    @property
    def meter(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def credits(self) -> Decimal: ...
    @property
    def at(self) -> datetime: ...
    @property
    def priced_by(self) -> PricedBy | None: ...


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def by_hour(usages: Iterable[Metered]) -> dict[datetime, HourUsage]:
    """Usage per hour and meter (and meter and priced value)."""
    hours: dict[datetime, HourUsage] = {}
    for u in usages:
        hour = hour_of(u.at)
        one = {u.meter: MeterUsage(u.quantity, u.credits, 1)}
        priced = {(u.meter, u.priced_by): one[u.meter]} if u.priced_by is not None else None
        hours[hour] = hours.get(hour, HourUsage(hour)).plus(one, priced)
    return hours


def tally(open_hour: HourUsage | None, usages: Iterable[Metered]) -> tuple[HourUsage | None, tuple[HourUsage, ...]]:
    """Add `usages` to a wallet's open hour: the new open hour, and what to add to stored hourly aggregates.

    The open hour moves to the latest hour seen; the hour it leaves is closed (returned to be stored), and usage
    of earlier hours is returned as is.
    """
    hours = by_hour(usages)
    if not hours:
        return open_hour, ()
    latest = max(hours)
    if open_hour is not None and open_hour.hour >= latest:
        latest = open_hour.hour
    stored = [usage for hour, usage in sorted(hours.items()) if hour != latest]
    if open_hour is None or open_hour.hour == latest:
        current = open_hour or HourUsage(latest)
        return current.merged(hours.get(latest, HourUsage(latest))), tuple(stored)
    closed = next((h for h in stored if h.hour == open_hour.hour), None)
    stored = [h for h in stored if h.hour != open_hour.hour]
    stored.append(open_hour.merged(closed) if closed else open_hour)
    return hours[latest], tuple(sorted(stored, key=lambda h: h.hour))


def merged_hours(open_hour: HourUsage | None, stored: Iterable[HourUsage]) -> list[HourUsage]:
    """Every hour of a customer's usage, oldest first, from the wallet's open hour (read first) and the stored
    aggregates (read after it): an open hour that has a stored aggregate was closed in between, and is in it."""
    hours = {h.hour: h for h in stored}
    if open_hour is not None and open_hour.hour not in hours:
        hours[open_hour.hour] = open_hour
    return [hours[h] for h in sorted(hours)]
