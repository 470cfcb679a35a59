"""Ledger entries: the immutable record of every movement of credits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from prepaid.domain.money import Money
from prepaid.domain.numbers import ZERO


class EntryType(StrEnum):
    PENDING = "pending"  # a card waiting for its payment: no credits in the balance, no money yet
    PURCHASE = "purchase"
    USAGE = "usage"
    OVERAGE_PAYOFF = "overage_payoff"
    VOID = "void"
    REFUND = "refund"  # money returned for voided credits (recorded beside their void, which moves the credits)
    EXPIRY = "expiry"
    ROLLOVER = "rollover"  # a new card for what an expiring recurring card still held (its draws: from that card)
    ADJUSTMENT = "adjustment"  # credits added (a new card) or taken (in card order) by hand, with a reason
    EXPIRY_CHANGE = "expiry_change"  # a card's expiry or priority changed, with a reason


@dataclass(frozen=True)
class Draw:
    """Credits taken from one card."""

    card_id: str
    credits: Decimal


@dataclass(frozen=True)
class CardTerms:
    """What `PATCH .../cards/{cardId}` may change: when a card expires and where it stands in the drawdown order."""

    expires_at: datetime | None
    priority: int


@dataclass(frozen=True)
class LedgerEntry:
    """One movement. `credits` is the magnitude moved; `type` says which way."""

    type: EntryType
    credits: Decimal
    at: datetime
    balance_after: Decimal
    card_id: str | None = None
    draws: tuple[Draw, ...] = ()
    overage: Decimal = ZERO
    value: Money | None = None
    event_id: str | None = None
    meter: str | None = None
    quantity: Decimal | None = None
    events: int = 0  # usage events this entry records (one drawdown may record many)
    reason: str | None = None  # why a card was voided or adjusted
    reference: str | None = None  # the SaaS's own name for what the entry records (an invoice id)
    metadata: tuple[tuple[str, str], ...] = ()  # the SaaS's string pairs, as sent
    terms: tuple[CardTerms, CardTerms] | None = None  # an expiry_change: the card's terms before and after
