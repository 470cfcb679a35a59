"""Usage summed per customer and hour (of the events' own timestamps), per meter.

The latest hour a wallet has seen stays open on the wallet itself and is written with it, so drawing usage in
real time costs no write beyond the wallet's own; an hour is closed (added to its stored aggregate) when a later
hour opens. Usage for any other hour (late events) is added to that hour's stored aggregate directly. Hours
only ever open forward, so the open hour never has a stored aggregate while it is open: a reader who finds one
knows the hour was closed after it read the wallet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from prepaid.domain.numbers import ZERO


@dataclass(frozen=True)
class MeterUsage:
    """Quantity, credits and number of events of one meter."""

    quantity: Decimal = ZERO
    credits: Decimal = ZERO
    events: int = 0

    def plus(self, other: MeterUsage) -> MeterUsage:
        return MeterUsage(self.quantity + other.quantity, self.credits + other.credits, self.events + other.events)


@dataclass(frozen=True)
class HourUsage:
    """Usage of one customer in one hour, per meter."""

    hour: datetime
    meters: Mapping[str, MeterUsage] = field(default_factory=dict)

    def plus(self, other: Mapping[str, MeterUsage]) -> HourUsage:
        merged = dict(self.meters)
        for meter, usage in other.items():
            merged[meter] = merged.get(meter, MeterUsage()).plus(usage)
        return HourUsage(self.hour, merged)


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


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def by_hour(usages: Iterable[Metered]) -> dict[datetime, dict[str, MeterUsage]]:
    """Usage per hour and meter."""
    hours: dict[datetime, dict[str, MeterUsage]] = {}
    for u in usages:
        meters = hours.setdefault(hour_of(u.at), {})
        meters[u.meter] = meters.get(u.meter, MeterUsage()).plus(MeterUsage(u.quantity, u.credits, 1))
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
    stored = [HourUsage(hour, meters) for hour, meters in sorted(hours.items()) if hour != latest]
    if open_hour is None or open_hour.hour == latest:
        current = open_hour or HourUsage(latest)
        return current.plus(hours.get(latest, {})), tuple(stored)
    closed = next((h for h in stored if h.hour == open_hour.hour), None)
    stored = [h for h in stored if h.hour != open_hour.hour]
    stored.append(open_hour.plus(closed.meters) if closed else open_hour)
    return HourUsage(latest, hours[latest]), tuple(sorted(stored, key=lambda h: h.hour))


def merged_hours(open_hour: HourUsage | None, stored: Iterable[HourUsage]) -> list[HourUsage]:
    """Every hour of a customer's usage, oldest first, from the wallet's open hour (read first) and the stored
    aggregates (read after it): an open hour that has a stored aggregate was closed in between, and is in it."""
    hours = {h.hour: h for h in stored}
    if open_hour is not None and open_hour.hour not in hours:
        hours[open_hour.hour] = open_hour
    return [hours[h] for h in sorted(hours)]
