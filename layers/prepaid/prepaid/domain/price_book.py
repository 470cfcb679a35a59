"""The price book: volume tiers for buying credits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from prepaid.domain.errors import InvalidRequest
from prepaid.domain.money import Money
from prepaid.domain.numbers import DECIMAL_CONTEXT, ZERO, minor_units

MAX_UNIT_PRICE = Decimal(10) ** 6  # per credit, in the book's currency
UNIT_PRICE_DIGITS = 12  # fractional digits of a unit price (a cost basis keeps 12)


class PricingMode(StrEnum):
    VOLUME = "volume"  # the tier the whole quantity falls in prices every credit
    GRADUATED = "graduated"  # each tier prices the credits that fall in it


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # inclusive; None is the open last tier
    unit_price: Decimal


@dataclass(frozen=True)
class Quote:
    credits: Decimal
    price: Money
    tier_index: int
    unit_price: Decimal  # of the tier applied (volume) or of the highest tier reached (graduated)


@dataclass(frozen=True)
class PriceBook:
    currency: str
    mode: PricingMode
    tiers: tuple[Tier, ...]
    version: int = 0

    def __post_init__(self) -> None:
        minor_units(self.currency)
        if not self.tiers:
            raise InvalidRequest(field="tiers", reason="empty")
        bounds = [t.up_to for t in self.tiers]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise InvalidRequest(field="tiers", reason="only_last_tier_is_open")
        closed = [b for b in bounds if b is not None]
        if any(b <= 0 for b in closed) or closed != sorted(set(closed)):
            raise InvalidRequest(field="tiers", reason="bounds_not_ascending")
        if any(t.unit_price < 0 or not t.unit_price.is_finite() for t in self.tiers):
            raise InvalidRequest(field="tiers", reason="negative_unit_price")
        if any(t.unit_price > MAX_UNIT_PRICE for t in self.tiers):
            raise InvalidRequest(field="tiers", reason="unit_price_too_large")
        if any(-t.unit_price.as_tuple().exponent > UNIT_PRICE_DIGITS for t in self.tiers):  # type: ignore[operator]
            raise InvalidRequest(field="tiers", reason="unit_price_too_precise")

    def tier_for(self, credits: Decimal) -> int:
        return next(i for i, t in enumerate(self.tiers) if t.up_to is None or credits <= t.up_to)

    def quote(self, credits: Decimal) -> Quote:
        """Price `credits` by the tiers, rounded once, half-even, to the currency's minor unit."""
        index = self.tier_for(credits)
        if self.mode is PricingMode.VOLUME:
            exact = DECIMAL_CONTEXT.multiply(credits, self.tiers[index].unit_price)
        else:
            exact, floor = ZERO, ZERO
            for tier in self.tiers[: index + 1]:
                top = credits if tier.up_to is None else min(credits, tier.up_to)
                exact += DECIMAL_CONTEXT.multiply(top - floor, tier.unit_price)
                floor = top
        return Quote(credits, Money.rounded(exact, self.currency), index, self.tiers[index].unit_price)
