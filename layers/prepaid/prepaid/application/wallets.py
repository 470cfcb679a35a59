"""Wallet use cases: purchase, activate, void, configure, read, quote, price book."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from prepaid.application.changes import change_of
from prepaid.application.ports import (
    CardResult,
    CatalogStore,
    Clock,
    IdempotencyRace,
    IdempotencyRecord,
    IdFactory,
    WalletStore,
)
from prepaid.application.retry import RetryPolicy
from prepaid.domain.card import DEFAULT_PRIORITY, Card, CardSource, CardStatus, Payment
from prepaid.domain.errors import (
    CardNotActivatable,
    CardNotFound,
    CardNotVoidable,
    IdempotencyKeyReused,
    InvalidRequest,
    PriceBookMissing,
    RateCardMissing,
    WalletNotFound,
)
from prepaid.domain.ledger import EntryType
from prepaid.domain.money import Money
from prepaid.domain.numbers import exact_credits, to_wire
from prepaid.domain.price_book import PriceBook, Quote
from prepaid.domain.rate_card import RateCard
from prepaid.domain.rules import CUSTOMER_ID
from prepaid.domain.settings import WalletSettings
from prepaid.domain.text import duration, optional_instant
from prepaid.domain.wallet import Outcome, Wallet

Catalogued = TypeVar("Catalogued", PriceBook, RateCard)
PURCHASE_SCOPE = "purchase"
VOID_SCOPE = "void"


def check_customer_id(customer_id: str) -> str:
    if not CUSTOMER_ID.fullmatch(customer_id):
        raise InvalidRequest(field="customerId", reason="malformed")
    return customer_id


@dataclass(frozen=True)
class PurchaseRequest:
    credits: Decimal
    price: Money | None = None
    expires_at: datetime | None = None
    expires_in: timedelta | None = None
    priority: int = DEFAULT_PRIORITY
    source: CardSource = CardSource.PURCHASE
    effective_at: datetime | None = None
    payment: Payment | None = None  # who still collects the price; None: the SaaS has it, the card is active

    def fingerprint(self) -> str:
        """Hash of the request's meaning, so that key order or number spelling in the body do not matter."""
        canonical = {
            "credits": to_wire(self.credits),
            "price": [to_wire(self.price.amount), self.price.currency] if self.price else None,
            "expiresAt": optional_instant(self.expires_at),
            "expiresIn": duration(self.expires_in) if self.expires_in else None,
            "priority": self.priority,
            "source": self.source.value,
            "effectiveAt": optional_instant(self.effective_at),
            "payment": self._payment_terms(),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    def _payment_terms(self) -> list[str | None] | None:
        """What the request says of its payment (a provider's reference comes later, never from the request)."""
        if self.payment is None:
            return None
        return [self.payment.collect.value, self.payment.stripe_customer, self.payment.payment_method]


def _as_is(card: Card) -> Card:
    return card


@dataclass(frozen=True)
class VoidRequest:
    """What a void asks: why, how many of the remaining credits (all when None), and whether their value goes back
    through the card's payment."""

    reason: str | None = None
    credits: Decimal | None = None
    refund: bool = False

    def fingerprint(self, card_id: str) -> str:
        terms = [card_id, self.reason, to_wire(self.credits) if self.credits is not None else None, self.refund]
        return hashlib.sha256(json.dumps(terms).encode()).hexdigest()


# How a new card joins a wallet: the outcome to commit, or None to buy nothing.
Decide = Callable[[Wallet, Card, datetime], Outcome | None]


def add_card(wallet: Wallet, card: Card, now: datetime) -> Outcome:
    """The plain purchase: the card joins the wallet."""
    return wallet.add_card(card, now)


@dataclass(frozen=True)
class WalletView:
    """A wallet as it is at `at` (what the reads show)."""

    wallet: Wallet
    at: datetime


@dataclass(frozen=True)
class PricedQuote:
    """A quote with the price book it came from."""

    quote: Quote
    book: PriceBook
    at: datetime


class WalletService:
    """The wallet use cases. Every change is decided on a fresh read and committed in one transaction."""

    def __init__(
        self,
        store: WalletStore,
        catalog: CatalogStore,
        clock: Clock,
        new_id: IdFactory,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._new_id = new_id
        self._retry = retry or RetryPolicy()

    # -- purchases ---------------------------------------------------------------------------------------------

    def purchase(self, customer_id: str, request: PurchaseRequest, idempotency_key: str | None = None) -> CardResult:
        """Add a card to the wallet (creating it on first use), priced from the price book unless priced."""
        result = self.buy(customer_id, request, idempotency_key, add_card)
        assert result is not None, "a plain purchase always buys"
        return result

    def buy(
        self, customer_id: str, request: PurchaseRequest, idempotency_key: str | None, decide: Decide
    ) -> CardResult | None:
        """A purchase whose last word is `decide(wallet, card, now)`: the outcome to commit, or None to buy
        nothing (decided on the fresh read of every attempt, so a concurrent change is always seen)."""
        check_customer_id(customer_id)
        exact_credits(request.credits)
        if not 0 <= request.priority <= 100:
            raise InvalidRequest(field="priority", reason="out_of_range")
        if request.expires_at is not None and request.expires_in is not None:
            raise InvalidRequest(field="expiresIn", reason="exclusive_with_expiresAt")
        self._lifetime(request, self._clock())
        fingerprint = request.fingerprint()
        if idempotency_key is not None:
            record = self._recorded(customer_id, idempotency_key, fingerprint, PURCHASE_SCOPE)
            if record is not None:
                return record.replayed()
        price = request.price if request.price is not None else self.quote(request.credits).price
        card_id = self._new_id()

        def attempt() -> CardResult | None:
            now = self._clock()
            effective_at, expires_at = self._lifetime(request, now)
            wallet = self._store.load(customer_id) or Wallet(customer_id=customer_id, created_at=now)
            card = Card.issue(
                card_id=card_id,
                credits=request.credits,
                price=price,
                source=request.source,
                priority=request.priority,
                effective_at=effective_at,
                expires_at=expires_at,
                created_at=now,
                payment=request.payment,
            )
            outcome = decide(wallet, card, now)
            if outcome is None:
                return None
            if card_id not in outcome.wallet.cards and card_id not in {c.card_id for c in outcome.retired}:
                # decided not to buy, and recorded why (its events): once per key, as a purchase would be
                skipped = (
                    None
                    if idempotency_key is None
                    else IdempotencyRecord(PURCHASE_SCOPE, idempotency_key, fingerprint, None)
                )
                self._commit(wallet, outcome, now, skipped)
                return None
            result = CardResult(outcome.card(card_id), outcome.wallet.balance(now), now)
            record = None
            if idempotency_key is not None:
                record = IdempotencyRecord(PURCHASE_SCOPE, idempotency_key, fingerprint, result)
            self._commit(wallet, outcome, now, record)
            return result

        try:
            return self._retry.run(customer_id, attempt)
        except IdempotencyRace:
            assert idempotency_key is not None
            won = self._recorded(customer_id, idempotency_key, fingerprint, PURCHASE_SCOPE)
            assert won is not None, "an idempotency race leaves the winner's record behind"
            return won.replayed()

    @staticmethod
    def _lifetime(request: PurchaseRequest, now: datetime) -> tuple[datetime, datetime | None]:
        """When the card starts counting and when it expires; `expiresIn` runs from `effectiveAt`."""
        effective_at = request.effective_at or now
        expires_at = request.expires_at
        if request.expires_in is not None:
            expires_at = effective_at + request.expires_in
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest(field="expiresAt", reason="in_the_past")
        if expires_at is not None and expires_at <= effective_at:
            raise InvalidRequest(field="expiresAt", reason="not_after_effectiveAt")
        return effective_at, expires_at

    def _recorded(self, customer_id: str, key: str, fingerprint: str, scope: str) -> IdempotencyRecord | None:
        """The request made before with this key (its answer None when it decided to buy nothing)."""
        record = self._store.idempotency_record(customer_id, scope, key)
        if record is not None and record.request_hash != fingerprint:
            raise IdempotencyKeyReused(key=key)
        return record

    def _replay(self, customer_id: str, key: str, fingerprint: str, scope: str) -> CardResult | None:
        record = self._recorded(customer_id, key, fingerprint, scope)
        if record is None:
            return None
        assert record.result is not None, "a void's record keeps its answer"
        return record.replayed()

    # -- other changes -----------------------------------------------------------------------------------------

    def activate(self, customer_id: str, card_id: str, reference: str | None = None) -> CardResult:
        """A pending card is paid (e.g. its invoice; `reference`: the payment at its provider): it joins the
        balance. Activating it again answers the same and changes nothing."""

        def ended(card: Card) -> Card:
            if card.status is CardStatus.VOIDED:  # a card that ended otherwise was active: the answer stands
                raise CardNotActivatable(card_id=card_id, status=card.status.value)
            return card

        return self._change_card(customer_id, card_id, lambda w, now: w.activate_card(card_id, now, reference), ended)

    def void(
        self, customer_id: str, card_id: str, request: VoidRequest | None = None, idempotency_key: str | None = None
    ) -> CardResult:
        """Void what `request` says of a card (all that remains by default); with `refund`, the answer says what
        goes back through the card's payment. Voiding a voided card again answers the same and changes nothing;
        with an idempotency key, the same void again answers as the first time (a partial void is not voided
        twice)."""
        asked = request or VoidRequest()
        if asked.credits is not None:
            exact_credits(asked.credits, "credits")
        fingerprint = asked.fingerprint(card_id)
        if idempotency_key is not None:
            replay = self._replay(customer_id, idempotency_key, fingerprint, VOID_SCOPE)
            if replay is not None:
                return replay

        def ended(card: Card) -> Card:
            if card.status is not CardStatus.VOIDED:
                raise CardNotVoidable(card_id=card_id, status=card.status.value)
            return card

        record = None if idempotency_key is None else (VOID_SCOPE, idempotency_key, fingerprint)
        try:
            return self._change_card(
                customer_id,
                card_id,
                lambda w, now: w.void_card(card_id, now, asked.reason, asked.credits, asked.refund),
                ended,
                record,
            )
        except IdempotencyRace:
            assert idempotency_key is not None
            replay = self._replay(customer_id, idempotency_key, fingerprint, VOID_SCOPE)
            assert replay is not None, "an idempotency race leaves the winner's record behind"
            return replay

    def cancel_pending(self, customer_id: str, card_id: str, reason: str) -> CardResult:
        """Void a card whose payment failed or was abandoned, if it still waits for it; else change nothing."""
        return self._change_card(customer_id, card_id, lambda w, now: w.cancel_pending(card_id, now, reason), _as_is)

    def _change_card(
        self,
        customer_id: str,
        card_id: str,
        change: Callable[[Wallet, datetime], Outcome],
        ended: Callable[[Card], Card],
        record: tuple[str, str, str] | None = None,
    ) -> CardResult:
        """`change` one card of the wallet; a card no longer in it is answered by `ended(card)` (or not found).
        `record`: (scope, idempotency key, request hash) to commit the answer under."""

        def attempt() -> CardResult:
            now = self._clock()
            wallet = self._existing(customer_id)
            try:
                outcome = change(wallet, now)
            except CardNotFound:
                card = self._store.retired_card(customer_id, card_id)
                if card is None:
                    raise
                return CardResult(ended(card), wallet.balance(now), now)
            refund = next((e.value for e in outcome.ledger if e.type is EntryType.REFUND), None)
            result = CardResult(outcome.card(card_id), outcome.wallet.balance(now), now, refund=refund)
            if outcome.changed:  # an activated card activated again changes nothing: no new version
                kept = None if record is None else IdempotencyRecord(*record, result)
                self._commit(wallet, outcome, now, kept)
            return result

        return self._retry.run(customer_id, attempt)

    def configure(self, customer_id: str, settings: WalletSettings) -> WalletView:
        """Replace the wallet's settings, creating the wallet if needed."""
        check_customer_id(customer_id)

        def attempt() -> WalletView:
            now = self._clock()
            wallet = self._store.load(customer_id) or Wallet(customer_id=customer_id, created_at=now)
            return WalletView(self._commit(wallet, wallet.configure(settings), now), now)

        return self._retry.run(customer_id, attempt)

    def _commit(
        self, before: Wallet, outcome: Outcome, now: datetime, record: IdempotencyRecord | None = None
    ) -> Wallet:
        change = change_of(before, outcome, now, self._new_id(), idempotency=record)
        self._store.commit(change)
        return change.wallet

    # -- reads -------------------------------------------------------------------------------------------------

    def _existing(self, customer_id: str) -> Wallet:
        wallet = self._store.load(check_customer_id(customer_id))
        if wallet is None:
            raise WalletNotFound(customer_id=customer_id)
        return wallet

    def card(self, customer_id: str, card_id: str) -> Card:
        """One card of the wallet, live or retired."""
        wallet = self._existing(customer_id)
        if card_id in wallet.cards:
            return wallet.cards[card_id]
        retired = self._store.retired_card(customer_id, card_id)
        if retired is None:
            raise CardNotFound(customer_id=customer_id, card_id=card_id)
        return retired

    def wallet(self, customer_id: str) -> WalletView:
        """The wallet as it is now: balance, overage, live cards, next expiry, settings."""
        return WalletView(self._existing(customer_id), self._clock())

    def quote(self, credits: Decimal) -> Quote:
        """Price `credits` from the price book."""
        return self.price_book().quote(exact_credits(credits))

    def priced_quote(self, credits: Decimal) -> PricedQuote:
        """`GET /quotes`: the price of `credits`, with the tier and the book that priced them."""
        book = self.price_book()
        return PricedQuote(book.quote(exact_credits(credits)), book, self._clock())

    def price_book(self) -> PriceBook:
        book = self._catalog.price_book()
        if book is None:
            raise PriceBookMissing()
        return book

    def replace_price_book(self, book: PriceBook) -> PriceBook:
        """Store a new price book; concurrent replacements each land, in some order, none lost half-way."""
        return self._replace("price-book", book, self._catalog.price_book, self._catalog.save_price_book)

    def rate_card(self) -> RateCard:
        card = self._catalog.rate_card()
        if card is None:
            raise RateCardMissing()
        return card

    def replace_rate_card(self, card: RateCard) -> RateCard:
        """Store a new rate card; ingest picks it up within its cache's time to live."""
        return self._replace("rate-card", card, self._catalog.rate_card, self._catalog.save_rate_card)

    def _replace(
        self, name: str, new: Catalogued, read: Callable[[], Catalogued | None], save: Callable[[Catalogued], None]
    ) -> Catalogued:
        """Store `new` as the next version of a catalog item, retrying when another replacement got there first."""

        def attempt() -> Catalogued:
            current = read()
            stored = dataclasses.replace(new, version=(current.version if current else 0) + 1)
            save(stored)
            return stored

        return self._retry.run(name, attempt)
