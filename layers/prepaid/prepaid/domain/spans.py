"""Durations as contracts give them (ISO 8601 `expiresIn`): exact (days, hours, minutes, seconds: a `timedelta`), or
calendar (years and months, then an exact part: a `CalendarSpan`). A calendar month is not 30 days: from 31 January,
`P1M` ends on the last day of February, as isodate (and ISO 8601) count it."""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime, timedelta

# The most and the least a calendar year or month can last, to bound a calendar duration without a start
LONGEST_YEAR, SHORTEST_YEAR = timedelta(days=366), timedelta(days=365)
LONGEST_MONTH, SHORTEST_MONTH = timedelta(days=31), timedelta(days=28)


@dataclass(frozen=True)
class CalendarSpan:
    """`months` calendar months (a year is 12), then `exact` more."""

    months: int
    exact: timedelta = timedelta(0)

    def after(self, start: datetime) -> datetime:
        """The same day `months` later (the month's last day when it is shorter), same time of day, then `exact`."""
        later = start.month - 1 + self.months
        year, month = start.year + later // 12, later % 12 + 1
        day = min(start.day, monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day) + self.exact

    @property
    def longest(self) -> timedelta:
        """What it lasts at most, from any start."""
        years, months = divmod(self.months, 12)
        return years * LONGEST_YEAR + months * LONGEST_MONTH + self.exact

    @property
    def shortest(self) -> timedelta:
        """What it lasts at least, from any start."""
        years, months = divmod(self.months, 12)
        return years * SHORTEST_YEAR + months * SHORTEST_MONTH + self.exact


Span = timedelta | CalendarSpan


def after(start: datetime, span: Span) -> datetime:
    """`start` plus a duration, calendar or exact."""
    return span.after(start) if isinstance(span, CalendarSpan) else start + span
