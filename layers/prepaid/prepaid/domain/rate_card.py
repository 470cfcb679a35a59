"""The rate card: what a unit of each meter costs in credits, with per-customer overrides."""

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
class RateCard:
    meters: Mapping[str, Decimal]
    overrides: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    version: int = 0

    def credits_per_unit(self, customer_id: str, meter: str) -> Decimal:
        override = self.overrides.get(customer_id, {}).get(meter)
        if override is not None:
            return override
        try:
            return self.meters[meter]
        except KeyError:
            raise UnknownMeter(meter=meter) from None

    def rate(self, customer_id: str, meter: str, quantity: Decimal) -> Decimal:
        """Credits for `quantity` units, rounded half-even to 9 fractional digits."""
        return round_credits(EXACT_PRODUCT.multiply(quantity, self.credits_per_unit(customer_id, meter)))
