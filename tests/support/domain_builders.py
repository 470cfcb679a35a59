"""Builders for domain values in tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prepaid.domain.card import Card, CardSource, Collect, Payment
from prepaid.domain.money import Money
from prepaid.domain.wallet import RatedUsage, Wallet

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MANUAL = Payment(Collect.MANUAL)  # the SaaS invoices the card: pending until activated


def card(
    card_id: str,
    credits: str | Decimal = "100",
    *,
    price: str = "0",
    priority: int = 50,
    effective: datetime = T0,
    expires: datetime | None = None,
    source: CardSource = CardSource.PURCHASE,
    payment: Payment | None = None,
) -> Card:
    return Card.issue(
        card_id=card_id,
        credits=Decimal(credits),
        price=Money(Decimal(price), "USD"),
        source=source,
        priority=priority,
        effective_at=effective,
        expires_at=expires,
        created_at=effective,
        payment=payment,
    )


def usage(event_id: str, credits: str | Decimal, at: datetime = T0 + timedelta(hours=1)) -> RatedUsage:
    return RatedUsage(event_id, "api_calls", Decimal(credits), Decimal(credits), at)


def wallet(*cards: Card, thresholds: tuple[str, ...] = ()) -> Wallet:
    from prepaid.domain.settings import WalletSettings

    w = Wallet(customer_id="acme", created_at=T0, settings=WalletSettings(tuple(Decimal(t) for t in thresholds)))
    for c in cards:
        w = w.add_card(c, c.effective_at).wallet
    return w
