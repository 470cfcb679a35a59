"""The forecast use case: a wallet's burn rate, runway, expiring credits and the purchase that covers a horizon."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from prepaid.application.usage_series import HourlyUsageReader, hourly_usage
from prepaid.domain.errors import InvalidRequest, PriceBookMissing, WalletNotFound
from prepaid.domain.forecast import (
    DAY,
    WINDOW_DAYS,
    Forecast,
    burn_rate,
    burn_rate_from_today,
    credits_to_buy,
    days_in,
    project,
)
from prepaid.domain.numbers import CREDIT_QUANTUM, ZERO, to_wire
from prepaid.domain.price_book import Quote
from prepaid.domain.wire import instant, optional_instant

MAX_HORIZON_DAYS = 366
METHOD = (
    "exponentially weighted mean of the last 28 complete days' credits (half-life 7 days), times a weekday factor "
    "once 28 days of history exist; cards drawn in drawdown order, each only while effective and unexpired"
)


def _credits(value: Decimal) -> Decimal:
    """A projected amount of credits, to the 9 fractional digits credits have."""
    return value.quantize(CREDIT_QUANTUM)


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

    def forecast(self, customer_id: str, horizon_days: int = 30) -> dict[str, Any]:
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
        for hour in hourly_usage(self._usage, wallet, window_start, now):
            credits = sum((u.credits for u in hour.meters.values()), ZERO)
            daily[hour.hour.date()] = daily.get(hour.hour.date(), ZERO) + credits
        if wallet.created_at < window_start:
            first_usage: date | None = window_start.date()
        else:
            first_usage = min((d for d, c in daily.items() if c > 0), default=None)
        burn = burn_rate(daily, today, first_usage)
        if burn.days_of_history == 0 and daily.get(today, ZERO) > 0:
            midnight = datetime.combine(today, time(), tzinfo=UTC)
            burn = burn_rate_from_today(daily[today], now - midnight)
        result = project(list(wallet.cards.values()), wallet.overage, burn, now, horizon_days)
        return self._to_wire(customer_id, now, horizon_days, wallet.balance(now), result)

    def _to_wire(
        self, customer_id: str, now: datetime, horizon_days: int, balance: Decimal, result: Forecast
    ) -> dict[str, Any]:
        burn = result.burn
        runway = None
        if result.depletion_at is not None:
            runway = to_wire(days_in(result.depletion_at - now).quantize(Decimal("0.01")))
        return {
            "customerId": customer_id,
            "asOf": instant(now),
            "horizonDays": horizon_days,
            "method": METHOD,
            "burnRate": {
                "creditsPerDay": to_wire(burn.per_day),
                "weekdayFactors": [to_wire(f) for f in burn.weekday_factors] if burn.weekday_factors else None,
                "daysOfHistory": burn.days_of_history,
            },
            "balance": to_wire(balance),
            "projectedDepletionAt": optional_instant(result.depletion_at),
            "runwayDays": runway,
            "projectedUsage": to_wire(_credits(result.projected_usage)),
            "creditsExpiringUnused": to_wire(_credits(sum((e.credits for e in result.expiring_unused), ZERO))),
            "expiringUnused": [
                {"cardId": e.card_id, "expiresAt": instant(e.expires_at), "credits": to_wire(_credits(e.credits))}
                for e in result.expiring_unused
            ],
            "recommendedPurchase": self._recommendation(result.shortfall),
            "days": [
                {
                    "date": d.day.isoformat(),
                    "projectedBurn": to_wire(d.burn.quantize(Decimal("0.000001"))),
                    "projectedBalance": to_wire(d.balance.quantize(Decimal("0.000001"))),
                }
                for d in result.days
            ],
        }

    def _recommendation(self, shortfall: Decimal) -> dict[str, Any] | None:
        credits = credits_to_buy(shortfall)
        if credits == 0:
            return None
        try:
            quote = self._quote(credits)
        except PriceBookMissing:
            return {"credits": to_wire(credits), "price": None, "unitPrice": None}
        return {"credits": to_wire(credits), "price": quote.price.to_wire(), "unitPrice": to_wire(quote.unit_price)}
