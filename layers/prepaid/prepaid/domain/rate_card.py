"""The rate card: what a unit of each meter costs in credits, with per-customer overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from prepaid.domain.errors import UnknownMeter
from prepaid.domain.numbers import DECIMAL_CONTEXT, round_credits


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
        return round_credits(DECIMAL_CONTEXT.multiply(quantity, self.credits_per_unit(customer_id, meter)))
