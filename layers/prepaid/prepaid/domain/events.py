"""Events the wallet reports, published on the bus under source `prepaid.credits`."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prepaid.domain.numbers import ZERO
from prepaid.domain.settings import percent_text

SOURCE = "prepaid.credits"
CREDITS_PURCHASED = "Credits Purchased"
CREDITS_VOIDED = "Credits Voided"
BALANCE_LOW = "Balance Low"
BALANCE_DEPLETED = "Balance Depleted"
BALANCE_RECOVERED = "Balance Recovered"
OVERAGE_RECORDED = "Overage Recorded"
CREDITS_EXPIRING_SOON = "Credits Expiring Soon"
CREDITS_EXPIRED = "Credits Expired"
AUTO_RECHARGE_PURCHASED = "Auto Recharge Purchased"
AUTO_RECHARGE_SKIPPED = "Auto Recharge Skipped"
CREDITS_REFUNDED = "Credits Refunded"
CREDITS_PENDING = "Credits Pending"
PAYMENT_SUCCEEDED = "Payment Succeeded"
PAYMENT_FAILED = "Payment Failed"
CREDITS_ADJUSTED = "Credits Adjusted"
# Every detail type, in the order docs/webhooks.md lists them: what a webhook endpoint may subscribe to.
DETAIL_TYPES = (
    CREDITS_PURCHASED,
    CREDITS_VOIDED,
    BALANCE_LOW,
    BALANCE_RECOVERED,
    BALANCE_DEPLETED,
    OVERAGE_RECORDED,
    CREDITS_EXPIRING_SOON,
    CREDITS_EXPIRED,
    AUTO_RECHARGE_PURCHASED,
    CREDITS_PENDING,
    PAYMENT_SUCCEEDED,
    PAYMENT_FAILED,
    CREDITS_REFUNDED,
    AUTO_RECHARGE_SKIPPED,
    CREDITS_ADJUSTED,
)


@dataclass(frozen=True)
class DomainEvent:
    """An event about one wallet; its id is given when the change is committed. `detail` holds values (Decimal,
    datetime, Card, Money, strings, numbers, lists of them): the edge renders them to JSON when the event is
    written."""

    detail_type: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class PercentThreshold:
    """A threshold given as a percentage of the balance right after the wallet was last funded, over one change:
    the credits it meant before the change and after it (they differ only when the change funded the wallet)."""

    percent: Decimal
    before: Decimal
    after: Decimal

    @property
    def shown(self) -> str:
        return percent_text(self.percent)


def balance_events(
    customer_id: str,
    before: Decimal,
    after: Decimal,
    thresholds: tuple[Decimal, ...],
    *,
    was_funded: bool = True,
    percents: tuple[PercentThreshold, ...] = (),
) -> list[DomainEvent]:
    """Threshold crossings between two balances.

    A wallet is "low" for a threshold when its balance is at or below it, so crossing downward is
    `before > t >= after` and upward `before <= t < after`. Zero acts as the threshold of depletion. A wallet
    that never had credits (`was_funded=False`) does not "recover" with its first card: it was never low.
    A percentage threshold is judged the same way, `before` against what it meant before the change and `after`
    against what it means after; its event shows it as configured ("25%") and the credits it meant.
    """
    events: list[DomainEvent] = []
    base: dict[str, Any] = {"customerId": customer_id, "balance": after, "previousBalance": before}
    # (sort key, low at or below before, low at or below after, what the event shows of the threshold)
    judged: list[tuple[tuple[Decimal, bool], Decimal, Decimal, dict[str, Any]]] = [
        ((t, False), t, t, {"threshold": t}) for t in set(thresholds)
    ]
    judged += [
        ((p.after, True), p.before, p.after, {"threshold": p.shown, "thresholdCredits": p.after}) for p in percents
    ]
    for _, low_before, low_after, shown in sorted(judged, key=lambda j: j[0], reverse=after < before):
        detail = {**base, **shown}
        if before > low_before and after <= low_after:
            events.append(DomainEvent(BALANCE_LOW, detail))
        elif before <= low_before and after > low_after and was_funded:
            events.append(DomainEvent(BALANCE_RECOVERED, detail))
    if before > ZERO >= after:
        events.append(DomainEvent(BALANCE_DEPLETED, base))
    elif before <= ZERO < after and ZERO not in thresholds and was_funded:
        events.append(DomainEvent(BALANCE_RECOVERED, {**base, "threshold": ZERO}))
    return events
