"""EventBridge schedule expressions: `rate(5 minutes)`, `cron(0 12 * * ? *)` and Scheduler's `at(2027-01-01T00:00:00)`.

Only what decides *when* something fires: `ScheduleExpression.next_after(t)` is the first occurrence after `t`.
Cron follows EventBridge's six fields (minutes hours day-of-month month day-of-week year; day-of-week 1-7 is
SUN-SAT), with `*`, `?`, lists, ranges, steps, names, `L` and `#`; `W` (nearest weekday) is refused rather than
guessed.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minutes?|hours?|days?)\s*\)$")
_AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")
_CRON = re.compile(r"^cron\(([^)]*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_SEARCH_DAYS = 366 * 8  # a cron that matches nothing for this long is treated as never firing again


@dataclass(frozen=True)
class ScheduleExpression:
    """One parsed expression. `anchor` is when a rate starts counting (the schedule's creation or start)."""

    text: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        self.next_after(datetime(2000, 1, 1, tzinfo=UTC), anchor=datetime(2000, 1, 1, tzinfo=UTC))  # validates

    @property
    def one_time(self) -> bool:
        return self.text.startswith("at(")

    def next_after(self, after: datetime, anchor: datetime) -> datetime | None:
        """The first occurrence strictly after `after` (UTC), or None if there is none."""
        zone = ZoneInfo(self.timezone)
        if found := _RATE.match(self.text):
            period = timedelta(seconds=int(found[1]) * _UNITS[found[2].rstrip("s")])
            if period <= timedelta(0):
                raise ValueError(f"{self.text}: the rate must be positive")
            # A rate fires one period after it starts, then every period (EventBridge: "starts when created").
            steps = max(1, (after - anchor) // period + 1)
            return anchor + steps * period
        if found := _AT.match(self.text):
            when = datetime.fromisoformat(found[1]).replace(tzinfo=zone).astimezone(UTC)
            return when if when > after else None
        if found := _CRON.match(self.text):
            return _Cron.parse(found[1]).next_after(after.astimezone(zone))
        raise ValueError(f"not a schedule expression EventBridge accepts: {self.text!r}")


@dataclass(frozen=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: str  # day-of-month field, read per month (L depends on the month)
    months: frozenset[int]
    weekdays: str  # day-of-week field, read per month (L and # depend on the month)
    years: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> _Cron:
        fields = text.split()
        if len(fields) != 6:
            raise ValueError(f"cron({text}): EventBridge cron has six fields")
        minute, hour, day, month, weekday, year = fields
        if (day == "?") == (weekday == "?"):
            raise ValueError(f"cron({text}): exactly one of day-of-month and day-of-week must be '?'")
        if "W" in day.upper():
            raise ValueError(f"cron({text}): 'W' (nearest weekday) is not supported by the local stack")
        parsed = cls(
            _values(minute, 0, 59),
            _values(hour, 0, 23),
            day.upper(),
            _values(month, 1, 12, _MONTHS),
            weekday.upper(),
            _values(year, 1970, 2199),
        )
        # every field parses for some month, or the expression is refused now rather than when it is due
        parsed._day_matches(date(2024, 2, 29))
        return parsed

    def next_after(self, after: datetime) -> datetime | None:
        zone = after.tzinfo
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if day.year in self.years and day.month in self.months and self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                        if candidate >= start:
                            return candidate.astimezone(UTC)
            day += timedelta(days=1)
        return None

    def _day_matches(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if self.days != "?":
            if self.days == "L":
                return day.day == last
            return day.day in _values(self.days, 1, 31)
        weekday = day.isoweekday() % 7 + 1  # EventBridge: SUN=1 ... SAT=7
        field = self.weekdays
        if field.endswith("L") and field != "L":  # 6L: the month's last Friday
            return weekday == _number(field[:-1], _DAYS) and day.day + 7 > last
        if field == "L":
            return weekday == 7
        if "#" in field:  # 2#1: the month's first Monday
            wanted, nth = field.split("#")
            return weekday == _number(wanted, _DAYS) and (day.day - 1) // 7 + 1 == int(nth)
        return weekday in _values(field, 1, 7, _DAYS)


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    if field in ("*", "?"):
        return frozenset(range(low, high + 1))
    found: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, final = low, high
        elif "-" in span:
            first_text, final_text = span.split("-", 1)
            first, final = _number(first_text, names), _number(final_text, names)
        else:
            first = _number(span, names)
            final = high if step_text else first
        if not low <= first <= high or not low <= final <= high or step < 1:
            raise ValueError(f"cron field {field!r} is out of range {low}-{high}")
        found.update(range(first, final + 1, step))
    return frozenset(found)


def _number(text: str, names: dict[str, int] | None) -> int:
    upper = text.upper()
    if names and upper in names:
        return names[upper]
    return int(upper)
