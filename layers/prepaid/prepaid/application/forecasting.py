"""The forecast use case: a wallet's burn rate, runway, expiring credits and the purchase that covers a horizon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from prepaid.application.usage_series import HourlyUsageReader, hourly_usage
from prepaid.domain.errors import InvalidRequest, PriceBookMissing, WalletNotFound
from prepaid.domain.forecast import (
    DAY,
    WINDOW_DAYS,
    BurnRate,
    Forecast,
    burn_rate,
    burn_rate_from_today,
    credits_to_buy,
    project,
)
from prepaid.domain.numbers import ZERO
from prepaid.domain.price_book import Quote

MAX_HORIZON_DAYS = 366
METHOD = (
    "exponentially weighted mean of the last 28 complete days' credits (half-life 7 days), times a weekday factor "
    "once 28 days of history exist; cards drawn in drawdown order, each only while effective and unexpired"
)


@dataclass(frozen=True)
class Recommendation:
    """The purchase that covers the horizon, priced by the book (no quote when there is no price book)."""

    credits: Decimal
    quote: Quote | None


@dataclass(frozen=True)
class ForecastView:
    customer_id: str
    as_of: datetime
    horizon_days: int
    balance: Decimal
    result: Forecast
    recommendation: Recommendation | None


class Forecasts:
    def __init__(
        self,
        usage: HourlyUsageReader,
        quote: Callable[[Decimal], Quote],
        clock: Callable[[], datetime],
    ) -> None:
        self._usage = usage
        self._quote = quote
        self._clock = clock

    def forecast(self, customer_id: str, horizon_days: int = 30) -> ForecastView:
        """`GET /wallets/{customerId}/forecast` (see `prepaid.domain.forecast` for the method)."""
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise InvalidRequest(field="horizonDays", reason=f"between 1 and {MAX_HORIZON_DAYS}")
        now = self._clock()
        wallet = self._usage.load(customer_id)
        if wallet is None:
            raise WalletNotFound(customer_id=customer_id)
        today = now.date()
        window_start = datetime.combine(today - WINDOW_DAYS * DAY, time(), tzinfo=UTC)
        daily: dict[date, Decimal] = {}
        by_meter: dict[str, dict[date, Decimal]] = {}
        for hour in hourly_usage(self._usage, wallet, window_start, now):
            day = hour.hour.date()
            for meter, used in hour.meters.items():
                daily[day] = daily.get(day, ZERO) + used.credits
                by_meter.setdefault(meter, {})[day] = by_meter.get(meter, {}).get(day, ZERO) + used.credits
        if wallet.created_at < window_start:
            first_usage: date | None = window_start.date()
        else:
            first_usage = min((d for d, c in daily.items() if c > 0), default=None)
        burn = self._burn(daily, today, first_usage, now)
        cards = list(wallet.cards.values())
        # Meter by meter only when some card applies to some meters only: else every card pays every meter, and
        # one burn rate over their sum is the same projection
        meters = None
        if any(c.applies_to is not None for c in cards):
            meters = {m: self._burn(d, today, first_usage, now) for m, d in by_meter.items()}
        result = project(cards, wallet.overage, burn, now, horizon_days, meters)
        recommendation = self._recommendation(result.shortfall)
        return ForecastView(customer_id, now, horizon_days, wallet.balance(now), result, recommendation)

    @staticmethod
    def _burn(daily: dict[date, Decimal], today: date, first_usage: date | None, now: datetime) -> BurnRate:
        burn = burn_rate(daily, today, first_usage)
        if burn.days_of_history == 0 and daily.get(today, ZERO) > 0:
            midnight = datetime.combine(today, time(), tzinfo=UTC)
            burn = burn_rate_from_today(daily[today], now - midnight)
        return burn

    def _recommendation(self, shortfall: Decimal) -> Recommendation | None:
        credits = credits_to_buy(shortfall)
        if credits == 0:
            return None
        try:
            return Recommendation(credits, self._quote(credits))
        except PriceBookMissing:
            return Recommendation(credits, None)
