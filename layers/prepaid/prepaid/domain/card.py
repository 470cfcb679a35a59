"""Cards (credit blocks): credits bought or granted at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from prepaid.domain.money import Money
from prepaid.domain.numbers import COST_BASIS_QUANTUM, DECIMAL_CONTEXT, ZERO


class CardSource(StrEnum):
    PURCHASE = "purchase"
    PROMOTION = "promotion"
    AUTO_RECHARGE = "auto_recharge"
    RECURRING = "recurring"
    ADJUSTMENT = "adjustment"  # credits added by hand (POST .../adjustments), with a reason
    ROLLOVER = "rollover"  # what a recurring card still held at expiry, moved on (its cost basis kept)


class CardStatus(StrEnum):
    PENDING = "pending"  # waiting for its payment: in the wallet, not in the balance, never drawn
    ACTIVE = "active"
    DEPLETED = "depleted"
    EXPIRED = "expired"
    VOIDED = "voided"


PAYMENT_FAILED_REASON = "payment_failed"  # the void reason that cancels a pending card whose payment failed
LIVE = frozenset({CardStatus.PENDING, CardStatus.ACTIVE})  # the statuses of cards that stay in the wallet


class Collect(StrEnum):
    """Who collects a card's price: the SaaS by its own invoice (`manual`) or Stripe."""

    MANUAL = "manual"
    STRIPE = "stripe"


@dataclass(frozen=True)
class Payment:
    """How a card is paid for. Absent when the SaaS had the money before the purchase (the card is active at once)."""

    collect: Collect
    stripe_customer: str | None = None  # None with Stripe: the customer pays on a Checkout page
    payment_method: str | None = None
    reference: str | None = None  # the payment's id at the provider once paid (Stripe: the PaymentIntent)

    @property
    def charged_off_session(self) -> bool:
        """Whether we charge the customer's saved payment method (else a Checkout page or an invoice collects)."""
        return self.collect is Collect.STRIPE and self.stripe_customer is not None


Metadata = tuple[tuple[str, str], ...]  # string pairs, sorted by key: a value, so frozen cards stay comparable
EMPTY_METADATA: Metadata = ()


def metadata_of(pairs: Mapping[str, str]) -> Metadata:
    return tuple(sorted(pairs.items()))


DEFAULT_PRIORITY = 50
NEVER = datetime.max.replace(tzinfo=UTC)  # sorts cards without expiry together, after every dated one


def cost_basis(price: Money, credits: Decimal) -> Decimal:
    """Price per credit, kept to 12 fractional digits."""
    return DECIMAL_CONTEXT.divide(price.amount, credits).quantize(
        COST_BASIS_QUANTUM, rounding=ROUND_HALF_EVEN, context=DECIMAL_CONTEXT
    )


@dataclass(frozen=True)
class Card:
    """A credit block. `credits = remaining + drawn + expired + voided + rolled_over` always holds."""

    card_id: str
    credits: Decimal
    remaining: Decimal
    price: Money
    cost_basis: Decimal
    source: CardSource
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    status: CardStatus
    created_at: datetime
    drawn: Decimal = ZERO
    expired: Decimal = ZERO
    voided: Decimal = ZERO
    rolled_over: Decimal = ZERO  # moved into a `rollover` card when it expired (the rest of `remaining` broke)
    payment: Payment | None = None
    applies_to: frozenset[str] | None = None  # the meters whose usage may draw the card; None: every meter
    reference: str | None = None  # the SaaS's own name for it (an invoice id, a contract line)
    # The SaaS's string pairs. None: the card has some, kept apart from the wallet (a store keeps them in their
    # own item, so that a card's metadata never rides on every write of the wallet) and not read with it.
    metadata: Metadata | None = EMPTY_METADATA

    @classmethod
    def issue(
        cls,
        *,
        card_id: str,
        credits: Decimal,
        price: Money,
        source: CardSource,
        priority: int,
        effective_at: datetime,
        expires_at: datetime | None,
        created_at: datetime,
        payment: Payment | None = None,
        applies_to: frozenset[str] | None = None,
        reference: str | None = None,
        metadata: Metadata = EMPTY_METADATA,
    ) -> Card:
        """A new card: `pending` until paid when someone still has to collect its price, else `active`."""
        return cls(
            card_id=card_id,
            credits=credits,
            remaining=credits,
            price=price,
            cost_basis=cost_basis(price, credits),
            source=source,
            priority=priority,
            effective_at=effective_at,
            expires_at=expires_at,
            status=CardStatus.ACTIVE if payment is None else CardStatus.PENDING,
            created_at=created_at,
            payment=payment,
            applies_to=applies_to,
            reference=reference,
            metadata=metadata,
        )

    def is_expired_at(self, at: datetime) -> bool:
        """A card expires exactly at `expires_at`: usable strictly before it."""
        return self.status is CardStatus.EXPIRED or (self.expires_at is not None and at >= self.expires_at)

    def status_at(self, at: datetime) -> CardStatus:
        """The status as the API shows it at `at`: a live card past its expiry is expired, whether or not the expiry
        job has run; a retired card keeps the status it ended with (depleted, expired or voided)."""
        return CardStatus.EXPIRED if self.status in LIVE and self.is_expired_at(at) else self.status

    def counts_at(self, at: datetime) -> bool:
        """Whether the card's remaining credits are in the balance at `at` (active and not expired)."""
        return self.status is CardStatus.ACTIVE and not self.is_expired_at(at)

    def usable_at(self, at: datetime, now: datetime | None = None) -> bool:
        """Whether usage that happened at `at`, drawn at `now`, may draw from the card.

        Expiry is judged at the usage's own time (usage after the expiry instant never draws the card, however
        early it arrives). Being effective is judged when it is drawn: a card in force now pays for usage that
        happened a little before it was bought, exactly as it would have paid that usage off as overage had the
        usage arrived first — so the result does not depend on arrival order.
        """
        effective_by = at if now is None else max(at, now)
        return self.counts_at(at) and self.effective_at <= effective_by and self.remaining > 0

    def applies_to_meter(self, meter: str) -> bool:
        """Whether usage of `meter` may draw the card."""
        return self.applies_to is None or meter in self.applies_to

    def exact_value(self, credits: Decimal) -> Decimal:
        """Money value of `credits` of this card at its price, unrounded."""
        return DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(self.price.amount, credits), self.credits)

    def value_of(self, credits: Decimal) -> Money:
        """Money value of `credits` of this card, rounded to the currency's minor unit."""
        return Money.rounded(self.exact_value(credits), self.price.currency)

    def draw(self, amount: Decimal) -> Card:
        remaining = self.remaining - amount
        return dataclasses.replace(
            self,
            remaining=remaining,
            drawn=self.drawn + amount,
            status=CardStatus.DEPLETED if remaining == 0 else self.status,
        )

    def activate(self, reference: str | None = None) -> Card:
        """The card is paid; `reference` names the payment at its provider."""
        payment = self.payment
        if payment is not None and reference is not None:
            payment = dataclasses.replace(payment, reference=reference)
        return dataclasses.replace(self, status=CardStatus.ACTIVE, payment=payment)

    def void(self, credits: Decimal | None = None) -> Card:
        """Void `credits` of what remains (all of it by default); the card ends voided once nothing remains."""
        taken = self.remaining if credits is None else credits
        remaining = self.remaining - taken
        status = CardStatus.VOIDED if remaining == ZERO else self.status
        return dataclasses.replace(self, remaining=remaining, voided=self.voided + taken, status=status)

    def take(self, amount: Decimal) -> Card:
        """Credits taken by a negative adjustment: they leave unused, as voided ones do, but the card is not voided
        by it: once nothing remains it is depleted, as by usage."""
        remaining = self.remaining - amount
        status = CardStatus.DEPLETED if remaining == 0 else self.status
        return dataclasses.replace(self, remaining=remaining, voided=self.voided + amount, status=status)

    def expire(self, rolled_over: Decimal = ZERO) -> Card:
        """The card ends: `rolled_over` of what remains moves on to a rollover card, the rest is breakage."""
        return dataclasses.replace(
            self,
            remaining=ZERO,
            expired=self.expired + self.remaining - rolled_over,
            rolled_over=self.rolled_over + rolled_over,
            status=CardStatus.EXPIRED,
        )


def drawdown_order(card: Card) -> tuple[int, bool, datetime, Decimal, datetime, str]:
    """Sort key of the contract's card order.

    priority ascending, soonest expiry first (no expiry last), cheaper credits first, oldest first, then cardId.
    """
    no_expiry = card.expires_at is None
    return (
        card.priority,
        no_expiry,
        card.expires_at if card.expires_at is not None else NEVER,
        card.cost_basis,
        card.effective_at,
        card.card_id,
    )
