"""Money: an exact amount in a currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from prepaid.domain.errors import InvalidAmount
from prepaid.domain.numbers import MAX_CREDITS, finite, minor_units, round_money

DEFAULT_CURRENCY = "USD"  # a free card's currency when no price book names one


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        """Validate an amount given by a client: finite, not negative, no finer than the currency's minor unit."""
        finite(amount, "price.amount")
        if amount < 0:
            raise InvalidAmount(field="price.amount", value=str(amount), reason="negative")
        if amount > MAX_CREDITS * 1000:
            raise InvalidAmount(field="price.amount", value=str(amount), reason="too_large")
        if amount.as_tuple().exponent < -minor_units(currency):  # type: ignore[operator]
            raise InvalidAmount(field="price.amount", value=str(amount), reason="finer_than_minor_unit")
        return cls(round_money(amount, currency), currency)

    @classmethod
    def rounded(cls, amount: Decimal, currency: str) -> Money:
        """An amount computed by us, rounded half-even to the currency's minor unit."""
        return cls(round_money(amount, currency), currency)
