"""Forecast: how fast a wallet burns credits, when it will run dry, what will expire unused, what to buy.

Burn rate: an exponentially weighted mean of the last 28 complete days' credits (half-life 7 days, so a change in
usage shows within a week), over the days since the first usage when there are fewer. Once 28 days of history
exist, each weekday gets a factor (its mean over the 4 weeks ÷ the overall mean), so a business that is quiet at
weekends is projected quiet at weekends.

Projection: from now, day by day (the first day partial), the projected burn is drawn from the cards in drawdown
order, each card only while it is effective and not expired; what a card still holds when it expires is lost.
So credits that will expire before they can be used do not extend the runway. The purchase that covers the
horizon is what the projected burn over it needs beyond what the cards will supply, plus the overage owed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal, localcontext

from prepaid.domain.card import Card, drawdown_order
from prepaid.domain.numbers import DECIMAL_CONTEXT, ZERO

WINDOW_DAYS = 28
HALF_LIFE_DAYS = Decimal(7)
WEEKDAY_PATTERN_DAYS = 28
DAY = timedelta(days=1)
MAX_PROJECTION_DAYS = 3 * 366  # a depletion further away than this is reported as none in sight
RATE_QUANTUM = Decimal("0.000001")
# Sums of day shares carry division remainders far below a credit's smallest unit; totals are rounded to this
# so that 120 days at 10 a day are 1,200 and not 1,200.0000000000000004 (which would buy one credit more).
TOTAL_QUANTUM = Decimal("1e-12")
MICROSECOND = timedelta(microseconds=1)
MICROSECONDS_PER_DAY = Decimal(DAY // MICROSECOND)


def days_in(span: timedelta) -> Decimal:
    """A time span in days, exactly (timedelta.total_seconds() is a float)."""
    return Decimal(span // MICROSECOND) / MICROSECONDS_PER_DAY


@dataclass(frozen=True)
class BurnRate:
    per_day: Decimal  # the weighted mean, before weekday factors
    weekday_factors: tuple[Decimal, ...] | None  # Monday first, when there is enough history
    days_of_history: int

    def on(self, day: date) -> Decimal:
        factor = self.weekday_factors[day.weekday()] if self.weekday_factors else Decimal(1)
        return self.per_day * factor


@dataclass(frozen=True)
class ExpiringUnused:
    card_id: str
    expires_at: datetime
    credits: Decimal


@dataclass(frozen=True)
class ProjectedDay:
    day: date
    burn: Decimal
    balance: Decimal  # usable credits left at the end of the day


@dataclass(frozen=True)
class MeterForecast:
    """One meter's part of a projection made meter by meter (when some card applies only to some meters)."""

    meter: str
    burn: BurnRate
    depletion_at: datetime | None  # when the cards that apply to the meter can no longer pay for it


@dataclass(frozen=True)
class Forecast:
    burn: BurnRate
    depletion_at: datetime | None  # None: not within MAX_PROJECTION_DAYS (or no burn)
    expiring_unused: tuple[ExpiringUnused, ...]  # within the horizon
    projected_usage: Decimal  # over the horizon
    supplied: Decimal  # what the cards supply of it
    shortfall: Decimal  # projected usage the cards cannot supply over the horizon, plus overage owed
    days: tuple[ProjectedDay, ...]  # the horizon, day by day
    meters: tuple[MeterForecast, ...] = ()  # by meter, when the projection was made meter by meter


def burn_rate(daily: Mapping[date, Decimal], today: date, first_usage: date | None) -> BurnRate:
    """The burn rate from credits per complete day before `today` (days without usage may be missing)."""
    if first_usage is None or first_usage >= today:
        return BurnRate(ZERO, None, 0)
    start = max(first_usage, today - WINDOW_DAYS * DAY)
    days = [start + i * DAY for i in range((today - start).days)]
    weights = [Decimal("0.5") ** (Decimal((today - d).days - 1) / HALF_LIFE_DAYS) for d in days]
    total = sum((w * daily.get(d, ZERO) for w, d in zip(weights, days, strict=True)), ZERO)
    rate = (total / sum(weights, ZERO)).quantize(RATE_QUANTUM)
    factors = None
    if len(days) >= WEEKDAY_PATTERN_DAYS:
        mean = sum((daily.get(d, ZERO) for d in days), ZERO) / len(days)
        if mean > 0:
            by_weekday: dict[int, list[Decimal]] = {}
            for d in days:
                by_weekday.setdefault(d.weekday(), []).append(daily.get(d, ZERO))
            factors = tuple(
                (sum(by_weekday[w], ZERO) / len(by_weekday[w]) / mean).quantize(RATE_QUANTUM) for w in range(7)
            )
    return BurnRate(rate, factors, len(days))


def burn_rate_from_today(credits_today: Decimal, elapsed: timedelta) -> BurnRate:
    """For a wallet with no complete day of usage yet: today's usage so far, scaled to a whole day (at least an
    hour is assumed elapsed, so the first minutes do not project a wild rate)."""
    micros = max(elapsed, timedelta(hours=1)) // MICROSECOND
    return BurnRate((credits_today * MICROSECONDS_PER_DAY / micros).quantize(RATE_QUANTUM), None, 0)


def project(
    cards: Sequence[Card],
    overage: Decimal,
    burn: BurnRate,
    now: datetime,
    horizon_days: int,
    by_meter: Mapping[str, BurnRate] | None = None,
) -> Forecast:
    """Draw the projected burn from the cards, from `now`, and see when they run out. With `by_meter` (each
    meter's own burn rate; `burn` is then their sum, for show), each meter's burn is drawn only from the cards that
    apply to it, meter after meter in name order within each stretch of time, and the wallet runs dry when the
    first meter does."""
    # 38 digits, as everywhere credits are computed: totals of 10^16 credits and more still hold 12 decimals
    with localcontext(DECIMAL_CONTEXT):
        burns: dict[str | None, BurnRate] = {None: burn} if by_meter is None else dict(sorted(by_meter.items()))
        return _project(cards, overage, burn, burns, now, horizon_days)


def _project(
    cards: Sequence[Card],
    overage: Decimal,
    burn: BurnRate,
    burns: Mapping[str | None, BurnRate],
    now: datetime,
    horizon_days: int,
) -> Forecast:
    live = sorted((c for c in cards if c.counts_at(now) and c.remaining > 0), key=drawdown_order)
    left = {c.card_id: c.remaining for c in live}
    horizon_end = now + horizon_days * DAY
    expiring: list[ExpiringUnused] = []
    days: list[ProjectedDay] = []
    depletion: datetime | None = None
    dry: dict[str | None, datetime] = {}  # when each meter ran dry
    projected = supplied = ZERO
    cursor = now
    limit = now + MAX_PROJECTION_DAYS * DAY
    while cursor < limit and (depletion is None or cursor < horizon_end):
        day_end = datetime.combine(cursor.date() + DAY, time(), tzinfo=cursor.tzinfo)
        rates = {meter: rate.on(cursor.date()) for meter, rate in burns.items()}  # credits per day
        burned_today = ZERO
        # pieces of the day between card expiries, effective times and the horizon's end: within a piece the
        # same cards are usable and the piece is wholly inside or outside the horizon
        instants = [e for c in live for e in (c.expires_at, c.effective_at) if e is not None] + [horizon_end]
        start = cursor
        for end in [*sorted({e for e in instants if cursor < e < day_end}), day_end]:
            for meter, rate in rates.items():
                wanted = rate * days_in(end - start)
                need = wanted
                for card in live:
                    if need <= 0:
                        break
                    have = left[card.card_id]
                    if (
                        have > 0
                        and (meter is None or card.applies_to_meter(meter))
                        and card.effective_at <= start
                        and (card.expires_at is None or start < card.expires_at)
                    ):
                        take = min(have, need)
                        left[card.card_id] = have - take
                        need -= take
                if start < horizon_end:
                    projected += wanted
                    supplied += wanted - need
                    burned_today += wanted
                if need > 0 and meter not in dry:
                    # dry inside this piece, after the share of it the cards could still pay for
                    share = (wanted - need) / wanted
                    micros = int((((end - start) // MICROSECOND) * share).to_integral_value())
                    dry[meter] = start + MICROSECOND * micros
                    depletion = dry[meter] if depletion is None else min(depletion, dry[meter])
            for card in live:
                if card.expires_at == end and left[card.card_id] > 0:
                    if end <= horizon_end:
                        expiring.append(ExpiringUnused(card.card_id, end, left[card.card_id]))
                    left[card.card_id] = ZERO
            start = end
        if cursor < horizon_end:
            usable = sum((left[c.card_id] for c in live if c.expires_at is None or c.expires_at > day_end), ZERO)
            days.append(ProjectedDay(cursor.date(), burned_today, usable))
        cursor = day_end
        if cursor >= horizon_end and all(rate.per_day == 0 or meter in dry for meter, rate in burns.items()):
            break  # every meter burns nothing or has run dry: the rest is expiries only, seen within the horizon
    projected, supplied = projected.quantize(TOTAL_QUANTUM), supplied.quantize(TOTAL_QUANTUM)
    shortfall = max(ZERO, projected - supplied) + overage
    meters = tuple(MeterForecast(m, rate, dry.get(m)) for m, rate in burns.items() if m is not None)
    return Forecast(burn, depletion, tuple(expiring), projected, supplied, shortfall, tuple(days), meters)


def credits_to_buy(shortfall: Decimal) -> Decimal:
    """Whole credits covering a shortfall (nothing when there is none)."""
    return shortfall.to_integral_value(ROUND_CEILING) if shortfall > 0 else ZERO
