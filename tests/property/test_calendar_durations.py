"""Calendar durations (`P1M`, `P1Y`): a month after an instant is the same day next month (its last day when
shorter), never 30 days counted blindly; the domain adds them as isodate does, and reads its own text back."""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime, timedelta

import isodate  # type: ignore[import-untyped]  # no type information shipped
from hypothesis import given
from hypothesis import strategies as st

from prepaid.domain.rules import EARLIEST_INSTANT, LATEST_INSTANT, duration_in_range
from prepaid.domain.spans import CalendarSpan, Span, after
from prepaid.domain.text import duration
from prepaid.edge.schemas import PurchaseBody

instants = st.datetimes(
    min_value=EARLIEST_INSTANT.replace(tzinfo=None),
    max_value=LATEST_INSTANT.replace(tzinfo=None) - timedelta(days=1),
    timezones=st.just(UTC),
)
months = st.integers(min_value=1, max_value=1200)
exact_parts = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)).map(
    lambda d: timedelta(seconds=int(d.total_seconds()))  # durations are stored to the second
)


def parsed(text: str) -> Span:
    """`expiresIn` as the API reads it."""
    span = PurchaseBody.model_validate({"credits": "1", "expiresIn": text}).expires_in
    assert span is not None
    return span


@given(effective_at=instants)
def test_one_month_after_any_instant_is_the_same_day_next_month_clamped(effective_at: datetime) -> None:
    # Given an effective instant / When P1M, as the API reads it, is added
    expires_at = after(effective_at, parsed("P1M"))
    # Then it is next month, on the same day or that month's last day, at the same time of day
    year, month = (
        (effective_at.year + 1, 1) if effective_at.month == 12 else (effective_at.year, effective_at.month + 1)
    )
    assert (expires_at.year, expires_at.month) == (year, month)
    assert expires_at.day == min(effective_at.day, monthrange(year, month)[1])
    assert (expires_at.time(), expires_at.tzinfo) == (effective_at.time(), effective_at.tzinfo)
    # And so not 30 days whenever the month is not 30 days long
    if monthrange(effective_at.year, effective_at.month)[1] != 30 and effective_at.day <= 28:
        assert expires_at - effective_at != timedelta(days=30)


@given(effective_at=instants)
def test_one_year_after_any_instant_is_the_same_day_next_year(effective_at: datetime) -> None:
    expires_at = after(effective_at, parsed("P1Y"))
    leap_day = (effective_at.month, effective_at.day) == (2, 29)
    assert expires_at == effective_at.replace(year=effective_at.year + 1, day=28 if leap_day else effective_at.day)


@given(effective_at=instants, count=months, exact=exact_parts)
def test_calendar_durations_add_as_isodate_adds_them(effective_at: datetime, count: int, exact: timedelta) -> None:
    # Given any calendar duration of at most 100 years and an instant it does not carry past the instants we take
    span = CalendarSpan(count, exact)
    years, rest = divmod(count, 12)
    # When the domain adds it / Then it is where isodate puts it
    assert after(effective_at, span) == effective_at + isodate.Duration(years=years, months=rest) + exact


@given(count=months, exact=exact_parts)
def test_a_calendar_duration_reads_back_from_its_own_text(count: int, exact: timedelta) -> None:
    # Given a calendar duration in range
    span = CalendarSpan(count, exact)
    if duration_in_range(span):
        # When written as the API writes it and read as the API reads it / Then it is the same duration
        assert parsed(duration(span)) == span
