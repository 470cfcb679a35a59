"""The rate card: what a unit of each meter costs in credits, with per-customer overrides and prices by the value
of one event dimension (e.g. `model`: `gpt-4` costs more than `small`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal

from prepaid.domain.errors import InvalidAmount, UnknownMeter
from prepaid.domain.numbers import round_credits

# A product of a quantity (22 digits at most) and a rate (31 at most) is exact in 80 digits: it is rounded once, to
# credits, never first to the 38 digits of the stored values.
EXACT_PRODUCT = Context(prec=80)
MAX_RATE = Decimal(10) ** 12  # credits per unit
RATE_DIGITS = 18  # fractional digits a rate may have (a token priced 0.000002 credits needs 6)


def check_rate(value: Decimal, field: str) -> Decimal:
    """A rate as a client may set it: not negative, at most 10^12 credits per unit, at most 18 fractional digits."""
    if not value.is_finite() or value < 0:
        raise InvalidAmount(field=field, value=str(value), reason="negative")
    if value > MAX_RATE:
        raise InvalidAmount(field=field, value=str(value), reason="too_large")
    if -value.as_tuple().exponent > RATE_DIGITS:  # type: ignore[operator]
        raise InvalidAmount(field=field, value=str(value), reason="too_many_fractional_digits")
    return value


@dataclass(frozen=True)
class PricedBy:
    """The dimension value whose listed price rated a usage event (e.g. `model` = `gpt-4`)."""

    dimension: str
    value: str


@dataclass(frozen=True)
class DimensionPrices:
    """A meter's prices by the value of one event dimension; a value not listed (or absent) pays the base rate."""

    dimension: str
    prices: Mapping[str, Decimal]


@dataclass(frozen=True)
class UnitPrice:
    """What one unit of a meter costs a customer, and the dimension value that set it (None: the base rate)."""

    credits_per_unit: Decimal
    priced_by: PricedBy | None = None


@dataclass(frozen=True)
class RateCard:
    """`meters` and `overrides` hold base rates; `by_dimension` and `overrides_by_dimension` the prices by dimension
    value of the same meters. A customer's override of a meter replaces the whole rate: its base rate and its
    prices by dimension (its own, or none)."""

    meters: Mapping[str, Decimal]
    overrides: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    version: int = 0
    by_dimension: Mapping[str, DimensionPrices] = field(default_factory=dict)
    overrides_by_dimension: Mapping[str, Mapping[str, DimensionPrices]] = field(default_factory=dict)

    def unit_price(self, customer_id: str, meter: str, dimensions: Mapping[str, str] | None = None) -> UnitPrice:
        """The price of one unit for this customer and event dimensions; `UnknownMeter` for a meter not listed."""
        override = self.overrides.get(customer_id, {}).get(meter)
        if override is not None:
            base, priced = override, self.overrides_by_dimension.get(customer_id, {}).get(meter)
        elif meter in self.meters:
            base, priced = self.meters[meter], self.by_dimension.get(meter)
        else:
            raise UnknownMeter(meter=meter)
        value = (dimensions or {}).get(priced.dimension) if priced is not None else None
        if priced is None or value is None or value not in priced.prices:
            return UnitPrice(base)
        return UnitPrice(priced.prices[value], PricedBy(priced.dimension, value))

    def credits_per_unit(self, customer_id: str, meter: str, dimensions: Mapping[str, str] | None = None) -> Decimal:
        return self.unit_price(customer_id, meter, dimensions).credits_per_unit

    def rate(
        self, customer_id: str, meter: str, quantity: Decimal, dimensions: Mapping[str, str] | None = None
    ) -> Decimal:
        """Credits for `quantity` units, rounded half-even to 9 fractional digits."""
        return self.cost(quantity, self.credits_per_unit(customer_id, meter, dimensions))

    @staticmethod
    def cost(quantity: Decimal, credits_per_unit: Decimal) -> Decimal:
        """`quantity` units at `credits_per_unit`, rounded once, half-even, to 9 fractional digits."""
        return round_credits(EXACT_PRODUCT.multiply(quantity, credits_per_unit))
