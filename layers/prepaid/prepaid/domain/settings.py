"""Per-wallet settings: thresholds, auto-recharge, recurring grant, webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from prepaid.domain.card import Payment
from prepaid.domain.errors import InvalidRequest
from prepaid.domain.money import Money
from prepaid.domain.numbers import DECIMAL_CONTEXT, ZERO, round_credits, to_wire
from prepaid.domain.spans import Span


class OveragePolicy(StrEnum):
    """What `authorize` answers when usage would run past the balance (ingestion itself never refuses usage)."""

    ALLOW = "allow"
    BLOCK = "block"


@dataclass(frozen=True)
class AutoRecharge:
    """What a crossing of `threshold` downward buys: `credits`, or what lifts the balance to `target_balance`
    (target - balance + overage, priced by the book), exactly one of the two."""

    threshold: Decimal
    credits: Decimal | None
    max_per_day: int
    price: Money | None = None
    payment: Payment | None = None  # who collects the price; None: the SaaS has it (the card is active at once)
    max_spend_per_month: Money | None = None  # what recharges may cost in a UTC month, in the price's currency
    target_balance: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.credits is None) == (self.target_balance is None):
            raise InvalidRequest(field="autoRecharge.credits", reason="exactly_one_of_credits_targetBalance")
        if self.target_balance is None:
            return
        if self.target_balance <= self.threshold:
            raise InvalidRequest(field="autoRecharge.targetBalance", reason="not_above_threshold")
        # the credits a target buys are known only when it buys: the book prices them, not a fixed price
        if self.price is not None:
            raise InvalidRequest(field="autoRecharge.price", reason="exclusive_with_targetBalance")

    def credits_for(self, balance: Decimal, overage: Decimal) -> Decimal:
        """The credits one recharge buys at `balance` with `overage` owed (nothing, at or past the target)."""
        if self.target_balance is None:
            assert self.credits is not None
            return self.credits
        return max(self.target_balance - balance + overage, ZERO)


class Interval(StrEnum):
    """How often a recurring grant comes; its day in the period is anchored as `prepaid.domain.recurrence` says."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True)
class Rollover:
    """What a recurring card still holds when it expires moves into a new `rollover` card, up to both caps (none
    given: all of it); only the rest is breakage."""

    max_percent: Decimal | None = None  # of the expiring card's original credits, 0 to 100
    max_credits: Decimal | None = None
    expires_in: Span | None = None  # the rollover card's life from the expiry it came from; None: no expiry

    def __post_init__(self) -> None:
        if self.max_percent is not None and not ZERO <= self.max_percent <= 100:
            raise InvalidRequest(field="recurring.rollover.maxPercent", reason="between_0_and_100")


@dataclass(frozen=True)
class RecurringGrant:
    """`credits` granted once per `interval`: weekly on `day_of_week`; monthly, quarterly (January, April, July,
    October) and yearly (in `month`, January by default) on `day_of_month`."""

    credits: Decimal
    day_of_month: int | None
    price: Money | None = None
    expires_in: Span | None = None
    payment: Payment | None = None  # who collects each grant's price; None: the SaaS has it
    interval: Interval = Interval.MONTH
    day_of_week: int | None = None  # ISO weekday: 1 is Monday, 7 Sunday
    month: int | None = None
    rollover: Rollover | None = None
    # the granted cards' scope and the SaaS's reference (no metadata: settings ride on every write of the wallet)
    applies_to: frozenset[str] | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        weekly = self.interval is Interval.WEEK
        if weekly and (self.day_of_week is None or self.day_of_month is not None):
            raise InvalidRequest(field="recurring.dayOfWeek", reason="a_weekly_grant_needs_dayOfWeek_not_dayOfMonth")
        if not weekly and (self.day_of_month is None or self.day_of_week is not None):
            raise InvalidRequest(field="recurring.dayOfMonth", reason="needs_dayOfMonth_not_dayOfWeek")
        if self.month is not None and self.interval is not Interval.YEAR:
            raise InvalidRequest(field="recurring.month", reason="only_with_interval_year")


@dataclass(frozen=True)
class WalletSettings:
    thresholds: tuple[Decimal, ...] = field(default_factory=tuple)
    percent_thresholds: tuple[Decimal, ...] = ()  # shares of the balance right after the last funding, 0 < p <= 100
    auto_recharge: AutoRecharge | None = None
    recurring: RecurringGrant | None = None
    webhook_url: str | None = None
    overage_policy: OveragePolicy = OveragePolicy.ALLOW

    @property
    def alert_thresholds(self) -> tuple[Decimal, ...]:
        """The balances whose crossing raises an event: the thresholds, and auto-recharge's own."""
        extra = () if self.auto_recharge is None else (self.auto_recharge.threshold,)
        return tuple(sorted(set(self.thresholds) | set(extra), reverse=True))

    def percent_credits(self, funded: Decimal) -> tuple[tuple[Decimal, Decimal], ...]:
        """Each percentage threshold with the credits it means when the wallet was last funded to `funded`."""
        return tuple((p, _share(funded, p)) for p in self.percent_thresholds)


def percent_text(percent: Decimal) -> str:
    """A percentage threshold as the API shows it: "25%"."""
    return f"{to_wire(percent)}%"


def _share(funded: Decimal, percent: Decimal) -> Decimal:
    return round_credits(DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(funded, percent), Decimal(100)))
