"""The text forms of instants and durations, as the contract writes them (the JSON shapes are the edge's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prepaid.domain.spans import CalendarSpan, Span


def instant(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, milliseconds kept only when present."""
    text = value.astimezone(UTC).isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def to_milliseconds(value: datetime) -> datetime:
    """An instant as `instant` keeps it (stored and shown to the millisecond)."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def optional_instant(value: datetime | None) -> str | None:
    return instant(value) if value is not None else None


def duration(value: Span) -> str:
    """ISO 8601 duration in years, months, days, hours, minutes and seconds (`P30D`, `PT1H30M`, `P1Y6M`)."""
    if isinstance(value, CalendarSpan):
        years, months = divmod(value.months, 12)
        calendar = (f"{years}Y" if years else "") + (f"{months}M" if months else "")
        return "P" + calendar + (duration(value.exact).removeprefix("P") if value.exact else "")
    return _exact_duration(value)


def _exact_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "") if days or time else "PT0S"
