"""Per-wallet settings: thresholds, auto-recharge, recurring grant, webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from prepaid.domain.card import Payment
from prepaid.domain.money import Money


@dataclass(frozen=True)
class AutoRecharge:
    threshold: Decimal
    credits: Decimal
    max_per_day: int
    price: Money | None = None
    payment: Payment | None = None  # who collects the price; None: the SaaS has it (the card is active at once)
    max_spend_per_month: Money | None = None  # what recharges may cost in a UTC month, in the price's currency


@dataclass(frozen=True)
class RecurringGrant:
    credits: Decimal
    day_of_month: int
    price: Money | None = None
    expires_in: timedelta | None = None
    payment: Payment | None = None  # who collects each grant's price; None: the SaaS has it


@dataclass(frozen=True)
class WalletSettings:
    thresholds: tuple[Decimal, ...] = field(default_factory=tuple)
    auto_recharge: AutoRecharge | None = None
    recurring: RecurringGrant | None = None
    webhook_url: str | None = None

    @property
    def alert_thresholds(self) -> tuple[Decimal, ...]:
        """The balances whose crossing raises an event: the thresholds, and auto-recharge's own."""
        extra = () if self.auto_recharge is None else (self.auto_recharge.threshold,)
        return tuple(sorted(set(self.thresholds) | set(extra), reverse=True))
