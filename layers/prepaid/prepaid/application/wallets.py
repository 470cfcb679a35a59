"""Wallet use cases: purchase, activate, void, configure, read, quote, price book."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from prepaid.application.changes import change_of
from prepaid.application.ports import (
    AdjustmentResult,
    CardResult,
    CatalogStore,
    Clock,
    IdempotencyRace,
    IdempotencyRecord,
    IdFactory,
    WalletStore,
)
from prepaid.application.retry import RetryPolicy
from prepaid.domain.card import DEFAULT_PRIORITY, EMPTY_METADATA, Card, CardSource, CardStatus, Metadata, Payment
from prepaid.domain.errors import (
    CardNotActivatable,
    CardNotChangeable,
    CardNotFound,
    CardNotVoidable,
    IdempotencyKeyReused,
    InvalidRequest,
    PriceBookMissing,
    RateCardMissing,
    WalletNotFound,
)
from prepaid.domain.ledger import CardTerms, EntryType
from prepaid.domain.money import DEFAULT_CURRENCY, Money
from prepaid.domain.numbers import exact_credits, to_wire
from prepaid.domain.price_book import PriceBook, Quote
from prepaid.domain.rate_card import RateCard
from prepaid.domain.rules import CUSTOMER_ID
from prepaid.domain.settings import OveragePolicy, WalletSettings
from prepaid.domain.spans import Span, after
from prepaid.domain.text import duration, instant, optional_instant
from prepaid.domain.usage import Rejection, parse_usage, rate
from prepaid.domain.wallet import Outcome, Wallet

Catalogued = TypeVar("Catalogued", PriceBook, RateCard)
Answer = TypeVar("Answer")
PURCHASE_SCOPE = "purchase"
VOID_SCOPE = "void"
ADJUSTMENT_SCOPE = "adjustment"
AUTHORIZE_EVENT_ID = "authorize"  # the usage event an authorization rates: never drawn, never stored


def check_customer_id(customer_id: str) -> str:
    if not CUSTOMER_ID.fullmatch(customer_id):
        raise InvalidRequest(field="customerId", reason="malformed")
    return customer_id


@dataclass(frozen=True)
class PurchaseRequest:
    credits: Decimal
    price: Money | None = None
    expires_at: datetime | None = None
    expires_in: Span | None = None
    priority: int = DEFAULT_PRIORITY
    source: CardSource = CardSource.PURCHASE
    effective_at: datetime | None = None
    payment: Payment | None = None  # who still collects the price; None: the SaaS has it, the card is active
    applies_to: frozenset[str] | None = None  # the meters whose usage may draw the card; None: every meter
    reference: str | None = None
    metadata: Metadata = EMPTY_METADATA

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
            "appliesTo": sorted(self.applies_to) if self.applies_to is not None else None,
            "reference": self.reference,
            "metadata": list(self.metadata),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    def _payment_terms(self) -> list[str | None] | None:
        """What the request says of its payment (a provider's reference comes later, never from the request)."""
        if self.payment is None:
            return None
        return [self.payment.collect.value, self.payment.stripe_customer, self.payment.payment_method]


def _ids(correlation_id: str | None) -> tuple[str, ...]:
    return () if correlation_id is None else (correlation_id,)


def _as_is(card: Card) -> Card:
    return card


def _adjusted_again(record: IdempotencyRecord) -> AdjustmentResult:
    """An adjustment's first answer, given again."""
    assert record.adjustment is not None, "an adjustment's record keeps its answer"
    return dataclasses.replace(record.adjustment, replayed=True)


@dataclass(frozen=True)
class VoidRequest:
    """What a void asks: why, how many of the remaining credits (all when None), and whether their value goes back
    through the card's payment."""

    reason: str | None = None
    credits: Decimal | None = None
    refund: bool = False
    reference: str | None = None
    metadata: Metadata = EMPTY_METADATA

    def fingerprint(self, card_id: str) -> str:
        credits = to_wire(self.credits) if self.credits is not None else None
        terms = [card_id, self.reason, credits, self.refund, self.reference, list(self.metadata)]
        return hashlib.sha256(json.dumps(terms).encode()).hexdigest()


@dataclass(frozen=True)
class AdjustmentRequest:
    """Credits added by hand (`credits` > 0: a new card, source `adjustment`) or taken (< 0: in card order, from
    the cards that apply to `meter` when given), with why."""

    credits: Decimal
    reason: str
    reference: str | None = None
    metadata: Metadata = EMPTY_METADATA
    expires_at: datetime | None = None
    expires_in: Span | None = None
    priority: int | None = None
    applies_to: frozenset[str] | None = None
    meter: str | None = None

    def fingerprint(self) -> str:
        terms = {
            "credits": to_wire(self.credits),
            "reason": self.reason,
            "reference": self.reference,
            "metadata": list(self.metadata),
            "expiresAt": optional_instant(self.expires_at),
            "expiresIn": duration(self.expires_in) if self.expires_in else None,
            "priority": self.priority,
            "appliesTo": sorted(self.applies_to) if self.applies_to is not None else None,
            "meter": self.meter,
        }
        return hashlib.sha256(json.dumps(terms, sort_keys=True).encode()).hexdigest()

    def grant(self) -> PurchaseRequest:
        """What an addition buys: a card of the credits, free, with the request's terms."""
        return PurchaseRequest(
            credits=self.credits,
            expires_at=self.expires_at,
            expires_in=self.expires_in,
            priority=DEFAULT_PRIORITY if self.priority is None else self.priority,
            source=CardSource.ADJUSTMENT,
            applies_to=self.applies_to,
            reference=self.reference,
            metadata=self.metadata,
        )


@dataclass(frozen=True)
class CardChange:
    """`PATCH .../cards/{cardId}`: the terms to change (None: keep; `remove_expiry`: no expiry), and why."""

    reason: str
    expires_at: datetime | None = None
    remove_expiry: bool = False
    priority: int | None = None
    metadata: Metadata = EMPTY_METADATA

    def terms(self, card: Card) -> CardTerms:
        expires_at = None if self.remove_expiry else (self.expires_at or card.expires_at)
        return CardTerms(expires_at, card.priority if self.priority is None else self.priority)


@dataclass(frozen=True)
class AuthorizeRequest:
    meter: str
    quantity: Decimal
    dimensions: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Authorization:
    """Whether usage may go ahead and what it would do to the wallet now: exactly what the drawdown would do with
    the same event on the same wallet version (it is that computation, not committed)."""

    allowed: bool
    credits: Decimal
    balance_after: Decimal
    overage_after: Decimal
    available: Decimal  # what the meter's cards hold now
    policy: OveragePolicy
    at: datetime


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

    def purchase(
        self,
        customer_id: str,
        request: PurchaseRequest,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CardResult:
        """Add a card to the wallet (creating it on first use), priced from the price book unless priced."""
        result = self.buy(customer_id, request, idempotency_key, add_card, _ids(correlation_id))
        assert result is not None, "a plain purchase always buys"
        return result

    def buy(
        self,
        customer_id: str,
        request: PurchaseRequest,
        idempotency_key: str | None,
        decide: Decide,
        correlation_ids: Sequence[str] = (),
    ) -> CardResult | None:
        """A purchase whose last word is `decide(wallet, card, now)`: the outcome to commit, or None to buy
        nothing (decided on the fresh read of every attempt, so a concurrent change is always seen).
        `correlation_ids`: the request (or the event) it answers, named in its events."""
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
            wallet = self._store.load(customer_id) or Wallet(customer_id=customer_id, created_at=now)
            outcome = decide(wallet, self._issue(card_id, request, price, now), now)
            if outcome is None:
                return None
            if card_id not in outcome.wallet.cards and card_id not in {c.card_id for c in outcome.retired}:
                # decided not to buy, and recorded why (its events): once per key, as a purchase would be
                skipped = (
                    None
                    if idempotency_key is None
                    else IdempotencyRecord(PURCHASE_SCOPE, idempotency_key, fingerprint, None)
                )
                self._commit(wallet, outcome, now, skipped, correlation_ids)
                return None
            result = CardResult(outcome.card(card_id), outcome.wallet.balance(now), now)
            record = None
            if idempotency_key is not None:
                record = IdempotencyRecord(PURCHASE_SCOPE, idempotency_key, fingerprint, result)
            self._commit(wallet, outcome, now, record, correlation_ids)
            return result

        keyed = (idempotency_key, fingerprint, PURCHASE_SCOPE)
        return self._run_keyed(customer_id, keyed, attempt, IdempotencyRecord.replayed)

    def _run_keyed(
        self,
        customer_id: str,
        keyed: tuple[str | None, str, str],
        attempt: Callable[[], Answer],
        replay: Callable[[IdempotencyRecord], Answer],
    ) -> Answer:
        """Run `attempt` (again on a concurrent change); when a concurrent request with the same key (`keyed`: key,
        request hash, scope) committed first, answer as it did."""
        try:
            return self._retry.run(customer_id, attempt)
        except IdempotencyRace:
            key, fingerprint, scope = keyed
            assert key is not None
            won = self._recorded(customer_id, key, fingerprint, scope)
            assert won is not None, "an idempotency race leaves the winner's record behind"
            return replay(won)

    def _issue(self, card_id: str, request: PurchaseRequest, price: Money, now: datetime) -> Card:
        effective_at, expires_at = self._lifetime(request, now)
        return Card.issue(
            card_id=card_id,
            credits=request.credits,
            price=price,
            source=request.source,
            priority=request.priority,
            effective_at=effective_at,
            expires_at=expires_at,
            created_at=now,
            payment=request.payment,
            applies_to=request.applies_to,
            reference=request.reference,
            metadata=request.metadata,
        )

    # -- adjustments -------------------------------------------------------------------------------------------

    def adjust(
        self,
        customer_id: str,
        request: AdjustmentRequest,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> AdjustmentResult:
        """Add credits as a free card (source `adjustment`) or take them in card order (never into overage:
        `InsufficientCredits`), recorded as an `adjustment` entry with the request's reason. With a key, the same
        adjustment again answers as the first time and changes nothing."""
        check_customer_id(customer_id)
        grant = self._adjustment_terms(request)
        fingerprint = request.fingerprint()
        if idempotency_key is not None:
            record = self._recorded(customer_id, idempotency_key, fingerprint, ADJUSTMENT_SCOPE)
            if record is not None:
                return _adjusted_again(record)
        card_id = self._new_id()
        book = self._catalog.price_book()
        free = Money.of(Decimal(0), book.currency if book else DEFAULT_CURRENCY)

        def attempt() -> AdjustmentResult:
            now = self._clock()
            if grant is not None:
                wallet = self._store.load(customer_id) or Wallet(customer_id=customer_id, created_at=now)
                outcome = wallet.credit(self._issue(card_id, grant, free, now), now, request.reason)
            else:
                wallet = self._existing(customer_id)
                taken = -request.credits
                outcome = wallet.debit(taken, now, request.reason, request.reference, request.metadata, request.meter)
            entry = next(e for e in outcome.ledger if e.type is EntryType.ADJUSTMENT)
            card = outcome.card(card_id) if grant is not None else None
            result = AdjustmentResult(entry, outcome.wallet.balance(now), now, card)
            record = None
            if idempotency_key is not None:
                record = IdempotencyRecord(ADJUSTMENT_SCOPE, idempotency_key, fingerprint, adjustment=result)
            self._commit(wallet, outcome, now, record, _ids(correlation_id))
            return result

        return self._run_keyed(customer_id, (idempotency_key, fingerprint, ADJUSTMENT_SCOPE), attempt, _adjusted_again)

    def _adjustment_terms(self, request: AdjustmentRequest) -> PurchaseRequest | None:
        """The card an addition makes (None for a taking), once its terms are checked."""
        if request.credits == 0:
            raise InvalidRequest(field="credits", reason="zero")
        exact_credits(abs(request.credits))
        if request.credits > 0:
            if request.meter is not None:
                raise InvalidRequest(field="meter", reason="taken_credits_only")
            grant = request.grant()
            if grant.expires_at is not None and grant.expires_in is not None:
                raise InvalidRequest(field="expiresIn", reason="exclusive_with_expiresAt")
            self._lifetime(grant, self._clock())
            return grant
        added_only = {
            "expiresAt": request.expires_at,
            "expiresIn": request.expires_in,
            "priority": request.priority,
            "appliesTo": request.applies_to,
        }
        for name, value in added_only.items():
            if value is not None:
                raise InvalidRequest(field=name, reason="added_credits_only")
        return None

    def change_card(
        self, customer_id: str, card_id: str, change: CardChange, correlation_id: str | None = None
    ) -> CardResult:
        """Change a live card's expiry or priority (an `expiry_change` entry with the reason). The same terms
        again change nothing and answer the same."""

        def ended(card: Card) -> Card:
            raise CardNotChangeable(card_id=card_id, status=card.status.value)

        def changed(wallet: Wallet, now: datetime) -> Outcome:
            terms = change.terms(wallet.card(card_id))
            return wallet.change_terms(card_id, terms, now, change.reason, change.metadata)

        return self._change_card(customer_id, card_id, changed, ended, correlation_ids=_ids(correlation_id))

    @staticmethod
    def _lifetime(request: PurchaseRequest, now: datetime) -> tuple[datetime, datetime | None]:
        """When the card starts counting and when it expires; `expiresIn` runs from `effectiveAt`."""
        effective_at = request.effective_at or now
        expires_at = request.expires_at
        if request.expires_in is not None:
            expires_at = after(effective_at, request.expires_in)
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

    def activate(
        self,
        customer_id: str,
        card_id: str,
        reference: str | None = None,
        correlation_id: str | None = None,
        *,
        correlation_ids: Sequence[str] = (),
    ) -> CardResult:
        """A pending card is paid (e.g. its invoice; `reference`: the payment at its provider): it joins the
        balance. Activating it again answers the same and changes nothing. `correlation_ids`: the event it
        answers (an auto-recharge's Balance Low), when no request made it."""

        def ended(card: Card) -> Card:
            if card.status is CardStatus.VOIDED:  # a card that ended otherwise was active: the answer stands
                raise CardNotActivatable(card_id=card_id, status=card.status.value)
            return card

        followed = (*_ids(correlation_id), *correlation_ids)
        return self._change_card(
            customer_id, card_id, lambda w, now: w.activate_card(card_id, now, reference), ended, None, followed
        )

    def void(
        self,
        customer_id: str,
        card_id: str,
        request: VoidRequest | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
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
                lambda w, now: w.void_card(
                    card_id, now, asked.reason, asked.credits, asked.refund, asked.reference, asked.metadata
                ),
                ended,
                record,
                _ids(correlation_id),
            )
        except IdempotencyRace:
            assert idempotency_key is not None
            replay = self._replay(customer_id, idempotency_key, fingerprint, VOID_SCOPE)
            assert replay is not None, "an idempotency race leaves the winner's record behind"
            return replay

    def cancel_pending(
        self,
        customer_id: str,
        card_id: str,
        reason: str,
        correlation_id: str | None = None,
        *,
        correlation_ids: Sequence[str] = (),
    ) -> CardResult:
        """Void a card whose payment failed or was abandoned, if it still waits for it; else change nothing.
        `correlation_ids`: the event it answers (an auto-recharge's Balance Low), when no request made it."""
        followed = (*_ids(correlation_id), *correlation_ids)
        return self._change_card(
            customer_id, card_id, lambda w, now: w.cancel_pending(card_id, now, reason), _as_is, None, followed
        )

    def _change_card(
        self,
        customer_id: str,
        card_id: str,
        change: Callable[[Wallet, datetime], Outcome],
        ended: Callable[[Card], Card],
        record: tuple[str, str, str] | None = None,
        correlation_ids: Sequence[str] = (),
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
                self._commit(wallet, outcome, now, kept, correlation_ids)
            return result

        return self._retry.run(customer_id, attempt)

    def configure(self, customer_id: str, settings: WalletSettings, correlation_id: str | None = None) -> WalletView:
        """Replace the wallet's settings, creating the wallet if needed."""
        return self.reconfigure(customer_id, lambda _current: settings, correlation_id)

    def reconfigure(
        self,
        customer_id: str,
        decide: Callable[[WalletSettings], WalletSettings],
        correlation_id: str | None = None,
    ) -> WalletView:
        """Settings `decide`d from the wallet's current ones (a partial change), creating the wallet if needed.
        Decided on each fresh read: two changes of different fields at once both land."""
        check_customer_id(customer_id)

        def attempt() -> WalletView:
            now = self._clock()
            wallet = self._store.load(customer_id) or Wallet(customer_id=customer_id, created_at=now)
            outcome = wallet.configure(decide(wallet.settings))
            return WalletView(self._commit(wallet, outcome, now, correlation_ids=_ids(correlation_id)), now)

        return self._retry.run(customer_id, attempt)

    def _commit(
        self,
        before: Wallet,
        outcome: Outcome,
        now: datetime,
        record: IdempotencyRecord | None = None,
        correlation_ids: Sequence[str] = (),
    ) -> Wallet:
        change = change_of(before, outcome, now, self._new_id(), idempotency=record, correlation_ids=correlation_ids)
        self._store.commit(change)
        return change.wallet

    # -- reads -------------------------------------------------------------------------------------------------

    def _existing(self, customer_id: str) -> Wallet:
        wallet = self._store.load(check_customer_id(customer_id))
        if wallet is None:
            raise WalletNotFound(customer_id=customer_id)
        return wallet

    def card(self, customer_id: str, card_id: str) -> Card:
        """One card of the wallet, live or retired, with its metadata."""
        wallet = self._existing(customer_id)
        card = wallet.cards.get(card_id) or self._store.retired_card(customer_id, card_id)
        if card is None:
            raise CardNotFound(customer_id=customer_id, card_id=card_id)
        return self.with_notes(customer_id, [card])[0]

    def with_notes(self, customer_id: str, cards: list[Card]) -> list[Card]:
        """`cards` with their metadata, which the store keeps apart from the wallet (read only for those that
        have some)."""
        apart = [c.card_id for c in cards if c.metadata is None]
        notes = self._store.card_notes(customer_id, apart) if apart else {}
        return [
            dataclasses.replace(c, metadata=notes.get(c.card_id, EMPTY_METADATA)) if c.metadata is None else c
            for c in cards
        ]

    def wallet(self, customer_id: str) -> WalletView:
        """The wallet as it is now: balance, overage, live cards (with their metadata), next expiry, settings."""
        wallet = self._existing(customer_id)
        cards = self.with_notes(customer_id, list(wallet.cards.values()))
        return WalletView(dataclasses.replace(wallet, cards={c.card_id: c for c in cards}), self._clock())

    def authorize(self, customer_id: str, request: AuthorizeRequest) -> Authorization:
        """Whether usage may go ahead, from the rate card and one wallet read: the drawdown of the same event on
        this wallet version, computed and not committed. `overagePolicy: block` refuses usage that would run
        into overage; ingestion itself never refuses usage for lack of credits."""
        wallet = self._existing(customer_id)
        now = self._clock()
        raw = {
            "eventId": AUTHORIZE_EVENT_ID,
            "customerId": customer_id,
            "meter": request.meter,
            "quantity": format(request.quantity, "f"),
            "timestamp": instant(now),
            "dimensions": dict(request.dimensions),
        }
        event = parse_usage(raw, now)
        rated = rate(event, self.rate_card()) if not isinstance(event, Rejection) else event
        if isinstance(rated, Rejection):
            raise InvalidRequest(field=rated.field or "body", reason=rated.reason)
        drawn = wallet.draw(rated, now)
        policy = wallet.settings.overage_policy
        allowed = policy is OveragePolicy.ALLOW or drawn.usage[0].overage == 0
        after = drawn.wallet
        available = wallet.available_for(request.meter, now)
        return Authorization(allowed, rated.credits, after.balance(now), after.overage, available, policy, now)

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
