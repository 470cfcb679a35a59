"""When a recurring grant comes, and what of a recurring card rolls over when it expires.

One grant per period, keyed by the period (the grant's idempotency key):

| interval | the grant's day                                                  | key              |
|----------|------------------------------------------------------------------|------------------|
| week     | ISO weekday `dayOfWeek` (1 Monday .. 7 Sunday) of each ISO week   | `recurring:2026-W49` |
| month    | `dayOfMonth` of each month (a shorter month: its last day)        | `recurring:2026-12`  |
| quarter  | `dayOfMonth` of January, April, July and October                  | `recurring:2026-Q4`  |
| year     | `dayOfMonth` of `month` (January when not given)                  | `recurring:2026`     |

A grant whose day was missed is still made by a later daily run: in the same month (a weekly one: the same ISO
week), or, when its day was one of the last `CATCH_UP_DAYS` days of the month before, in the next one (so a yearly
grant on 31 December missed once is not lost for a year); the daily job looks back `CATCH_UP_DAYS` days.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from prepaid.domain.card import EMPTY_METADATA, Card, CardSource
from prepaid.domain.money import Money
from prepaid.domain.numbers import CREDIT_QUANTUM, DECIMAL_CONTEXT, round_money
from prepaid.domain.settings import Interval, RecurringGrant, Rollover
from prepaid.domain.spans import after

CATCH_UP_DAYS = 2  # a grant missed by up to this many daily runs is still made, in its own month (or week)
WEEKDAY_INDEX = 100  # a weekly grant's index key is this plus its ISO weekday: apart from the days of a month
QUARTER_MONTHS = (1, 4, 7, 10)


@dataclass(frozen=True)
class GrantPeriod:
    """The period a grant is made for: its idempotency key, and the day it falls on."""

    key: str
    day: date


def grant_date(year: int, month: int, day_of_month: int) -> date:
    """The grant's day in a month; in a shorter month, its last day."""
    return date(year, month, min(day_of_month, calendar.monthrange(year, month)[1]))


def due_period(grant: RecurringGrant, today: date) -> GrantPeriod | None:
    """The period whose grant may be made `today`: its day is today or earlier in today's month (a weekly grant:
    in today's ISO week), or within the last `CATCH_UP_DAYS` days of the period before. None when none is due (a
    quarterly grant in February)."""
    current = _period_of(grant, today)
    if current is not None and current.day <= today:
        return current
    earlier = _period_of(grant, today - timedelta(days=CATCH_UP_DAYS))
    if earlier is not None and earlier != current and today - timedelta(days=CATCH_UP_DAYS) <= earlier.day < today:
        return earlier  # missed at the end of the month (week) before: made up now, under that period's key
    return None


def _period_of(grant: RecurringGrant, when: date) -> GrantPeriod | None:
    """The period of `when`'s month (a weekly grant: ISO week) and the day its grant falls on; None when no grant
    falls in that month."""
    year, month = when.year, when.month
    if grant.interval is Interval.WEEK:
        assert grant.day_of_week is not None
        iso_year, week, _ = when.isocalendar()
        day = date.fromisocalendar(iso_year, week, grant.day_of_week)
        period = GrantPeriod(f"recurring:{iso_year}-W{week:02d}", day)
    else:
        assert grant.day_of_month is not None
        day = grant_date(year, month, grant.day_of_month)
        if grant.interval is Interval.MONTH:
            period = GrantPeriod(f"recurring:{year}-{month:02d}", day)
        elif grant.interval is Interval.QUARTER and month in QUARTER_MONTHS:
            period = GrantPeriod(f"recurring:{year}-Q{QUARTER_MONTHS.index(month) + 1}", day)
        elif grant.interval is Interval.YEAR and month == (grant.month or 1):
            period = GrantPeriod(f"recurring:{year}", day)
        else:
            return None
    return period


def index_key(grant: RecurringGrant) -> int:
    """What the daily job looks a grant up by: its day of the month, or for a weekly grant 100 + its weekday."""
    if grant.interval is Interval.WEEK:
        assert grant.day_of_week is not None
        return WEEKDAY_INDEX + grant.day_of_week
    assert grant.day_of_month is not None
    return grant.day_of_month


def grant_days(today: date) -> list[int]:
    """Days of the month whose grants are due today or were due in the last `CATCH_UP_DAYS` days (those of the
    month before too); on the last day of a short month, the days it does not have as well."""
    days: set[int] = set()
    for back in range(CATCH_UP_DAYS + 1):
        day = today - timedelta(days=back)
        days.add(day.day)
        last = calendar.monthrange(day.year, day.month)[1]
        if day.day == last:
            days.update(range(last + 1, 32))
    return sorted(days)


def index_keys(today: date) -> list[int]:
    """The index keys of every grant that may be due today: days of the month (see `grant_days`), and the weekdays
    of today and the `CATCH_UP_DAYS` days before it."""
    weekdays = {WEEKDAY_INDEX + (today - timedelta(days=back)).isoweekday() for back in range(CATCH_UP_DAYS + 1)}
    return [*grant_days(today), *sorted(weekdays)]


def rolled_over(card: Card, rollover: Rollover) -> Decimal:
    """How much of what `card` still holds rolls over: at most `maxPercent` of its original credits (rounded down to
    the credit's 9 digits) and at most `maxCredits`."""
    rolled = card.remaining
    if rollover.max_percent is not None:
        share = DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(card.credits, rollover.max_percent), Decimal(100))
        rolled = min(rolled, share.quantize(CREDIT_QUANTUM, rounding=ROUND_DOWN, context=DECIMAL_CONTEXT))
    if rollover.max_credits is not None:
        rolled = min(rolled, rollover.max_credits)
    return rolled


def rollover_card_id(card_id: str) -> str:
    """Named after the card it came from (a card rolls over once: its expiry ends it)."""
    return f"{card_id}-rollover"


def rollover_card(card: Card, credits: Decimal, rollover: Rollover, at: datetime) -> Card:
    """The card `credits` of an expiring recurring `card` move into: the same cost basis (its price is exactly
    credits x cost basis, so deferred revenue moves over unchanged), priority, meters, reference and metadata; in
    force from the instant the card expired, for `rollover.expires_in` from then (no expiry when not given)."""
    assert card.expires_at is not None
    exact = DECIMAL_CONTEXT.multiply(credits, card.cost_basis)
    in_minor_units = round_money(exact, card.price.currency)
    price = Money(in_minor_units if in_minor_units == exact else exact.normalize(DECIMAL_CONTEXT), card.price.currency)
    return Card.issue(
        card_id=rollover_card_id(card.card_id),
        credits=credits,
        price=price,
        source=CardSource.ROLLOVER,
        priority=card.priority,
        effective_at=card.expires_at,
        expires_at=after(card.expires_at, rollover.expires_in) if rollover.expires_in else None,
        created_at=at,
        applies_to=card.applies_to,
        reference=card.reference,
        # metadata kept apart from the wallet (None) is not at hand here: the rollover card goes without it
        metadata=card.metadata or EMPTY_METADATA,
    )
