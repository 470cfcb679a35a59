"""The credit lifecycle: expiry on time, a notice before it, auto-recharge on a low balance, recurring grants."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prepaid.application.changes import change_of, correlation_ids_in
from prepaid.application.ports import (
    CardResult,
    Clock,
    IdempotencyRace,
    IdempotencyRecord,
    IdFactory,
    RecurringRegistry,
    Scheduler,
    WalletStore,
)
from prepaid.application.provenance import CommittedEvents, committed
from prepaid.application.retry import RetryPolicy
from prepaid.application.wallets import PurchaseRequest, WalletService, add_card
from prepaid.domain.card import CardSource
from prepaid.domain.errors import IdempotencyKeyReused, PaymentDeclined, PaymentsUnavailable, TooManyLiveCards
from prepaid.domain.events import BALANCE_LOW, CREDITS_PURCHASED
from prepaid.domain.ledger import EntryType
from prepaid.domain.money import Money
from prepaid.domain.recurrence import due_period, index_keys
from prepaid.domain.rules import decimal_from_text

if TYPE_CHECKING:
    from prepaid.application.payments import Payments

EXPIRE = "expire"
WARN = "warn"
EXPIRING_SOON_SCOPE = "expiring_soon"


class NotYetDue(Exception):
    """A schedule fired before its time (clock skew); raising makes the invocation retry later."""

    def __init__(self, customer_id: str, card_id: str, expires_at: datetime) -> None:
        super().__init__(f"card {card_id} of {customer_id} expires at {expires_at.isoformat()}")
        self.expires_at = expires_at


def expiry_schedule_names(card_id: str, moved_to: datetime | None = None) -> tuple[str, str]:
    """The names of a card's two schedules (Scheduler allows 64 characters; card ids are 32). An expiry moved by a
    card change gets schedules of its own, named by the new instant (the first ones then find nothing due)."""
    moved = f"-{int(moved_to.timestamp())}" if moved_to is not None else ""
    return f"{EXPIRE}-{card_id}{moved}", f"{WARN}-{card_id}{moved}"


class UncommittedEvent(Exception):
    """A bus event that no committed change of this system stands for (forged, or altered): nothing is done."""

    def __init__(self, event_id: str, detail_type: str) -> None:
        super().__init__(f"{detail_type} {event_id} is not an event this system committed")
        self.event_id = event_id
        self.detail_type = detail_type


class CreditLifecycle:
    """What happens to credits with time and balance, each step safe to run twice or out of order. The steps that
    answer a bus event (`schedule_expiry`, `auto_recharge`) act only on events found committed (`committed`)."""

    def __init__(
        self,
        wallets: WalletService,
        store: WalletStore,
        clock: Clock,
        new_id: IdFactory,
        *,
        scheduler: Scheduler | None = None,
        registry: RecurringRegistry | None = None,
        committed: CommittedEvents | None = None,
        warn_before: timedelta = timedelta(days=7),
        retry: RetryPolicy | None = None,
        payments: Callable[[], Payments] | None = None,
    ) -> None:
        self._payments = payments  # built on use: only a recharge that Stripe collects needs the provider
        self._wallets = wallets
        self._store = store
        self._clock = clock
        self._new_id = new_id
        self._scheduler = scheduler
        self._registry = registry
        self._committed = committed
        self._warn_before = warn_before
        self._retry = retry or RetryPolicy()

    # -- expiry ------------------------------------------------------------------------------------------------

    def _check_committed(self, detail_type: str, customer_id: str, detail: Mapping[str, Any]) -> None:
        event_id = str(detail.get("eventId", ""))
        if self._committed is None:
            return
        if committed(self._committed, event_id, detail_type, customer_id, detail) is None:
            raise UncommittedEvent(event_id, detail_type)

    def schedule_expiry(
        self, customer_id: str, detail: Mapping[str, Any], detail_type: str = CREDITS_PURCHASED
    ) -> list[str]:
        """For a card just bought or added (a `Credits Purchased` or `Credits Adjusted` event's detail), or whose
        expiry a card change moved: schedule its expiry and, when there is still time, its expiring-soon notice.
        Returns what was scheduled or done at once."""
        self._check_committed(detail_type, customer_id, detail)
        card = detail.get("card")
        if not isinstance(card, dict) or not card.get("expiresAt"):
            return []
        assert self._scheduler is not None
        card_id = card["cardId"]
        expires_at = datetime.fromisoformat(card["expiresAt"])
        now = self._clock()
        moved = expires_at if detail.get("change") == EntryType.EXPIRY_CHANGE.value else None
        expire_name, warn_name = expiry_schedule_names(card_id, moved)
        followed = correlation_ids_in(detail)  # the purchase's request: its card's expiry answers to it too
        payload = {"customerId": customer_id, "cardId": card_id, "expiresAt": card["expiresAt"]}
        payload |= {"correlationIds": list(followed)} if followed else {}
        done = []
        if expires_at <= now:
            self.expire(customer_id, card_id, expires_at, followed)
            done.append(EXPIRE)
        else:
            self._scheduler.once(expire_name, expires_at, {"action": EXPIRE, **payload})
            done.append(expire_name)
            warn_at = expires_at - self._warn_before
            if warn_at > now:
                self._scheduler.once(warn_name, warn_at, {"action": WARN, **payload})
                done.append(warn_name)
            else:
                self.warn_expiring(customer_id, card_id, correlation_ids=followed)
                done.append(WARN)
        return done

    def expire(self, customer_id: str, card_id: str, expires_at: datetime, correlation_ids: Sequence[str] = ()) -> int:
        """Expire every card of the wallet that is due (the scheduled one among them); returns how many. Run
        again, it finds nothing due and changes nothing. `correlation_ids`: the request that bought the card."""
        if self._clock() < expires_at:
            raise NotYetDue(customer_id, card_id, expires_at)

        def attempt() -> int:
            now = self._clock()
            wallet = self._store.load(customer_id)
            if wallet is None:
                return 0
            outcome = wallet.expire_due(now)
            if not outcome.ledger:
                return 0
            self._store.commit(change_of(wallet, outcome, now, self._new_id(), correlation_ids=correlation_ids))
            return len(outcome.retired)

        return self._retry.run(customer_id, attempt)

    def warn_expiring(
        self,
        customer_id: str,
        card_id: str,
        expires_at: datetime | None = None,
        correlation_ids: Sequence[str] = (),
    ) -> bool:
        """Publish `Credits Expiring Soon` for a card, once (an idempotency record per card rides along); given
        the expiry a schedule was made for, not when a card change has moved it since."""
        if self._store.idempotency_record(customer_id, EXPIRING_SOON_SCOPE, card_id) is not None:
            return False

        def attempt() -> bool:
            now = self._clock()
            wallet = self._store.load(customer_id)
            if wallet is None:
                return False
            card = wallet.cards.get(card_id)
            if expires_at is not None and card is not None and card.expires_at != expires_at:
                return False  # moved since the schedule was made: the move has its own
            outcome = wallet.expiring_soon(card_id, now)
            if not outcome.events:
                return False
            record = IdempotencyRecord(EXPIRING_SOON_SCOPE, card_id, card_id)
            self._store.commit(
                change_of(wallet, outcome, now, self._new_id(), idempotency=record, correlation_ids=correlation_ids)
            )
            return True

        try:
            return self._retry.run(customer_id, attempt)
        except IdempotencyRace:
            return False

    # -- auto-recharge -----------------------------------------------------------------------------------------

    def auto_recharge(self, customer_id: str, detail: Mapping[str, Any]) -> CardResult | None:
        """Answer a `Balance Low` crossing (the event's detail) with the wallet's auto-recharge purchase, once.

        The crossing's id is the purchase's idempotency key, so redelivered or concurrent alerts buy once; the
        wallet decides on every attempt's fresh read whether to buy at all (see `Wallet.auto_recharge`).
        """
        self._check_committed(BALANCE_LOW, customer_id, detail)
        crossing_id = str(detail["eventId"])
        threshold = decimal_from_text(str(detail["threshold"]))  # None for a percentage ("25%"): never auto-recharge's
        wallet = self._store.load(customer_id)
        auto = wallet.settings.auto_recharge if wallet else None
        if auto is None or threshold is None or auto.threshold != threshold:
            return None
        # With a target, the request names the target (the same for every delivery of this crossing, so the key's
        # fingerprint holds); the wallet sizes and prices the card on the fresh read it commits on.
        named = auto.credits if auto.credits is not None else auto.target_balance
        assert named is not None, "auto-recharge holds credits or a target"
        request = PurchaseRequest(
            credits=named,
            price=auto.price,
            source=CardSource.AUTO_RECHARGE,
            payment=auto.payment,
        )
        crossed = threshold
        followed = correlation_ids_in(detail)  # the requests whose usage crossed the threshold
        try:
            bought = self._wallets.buy(
                customer_id,
                request,
                f"auto-recharge:{crossing_id}",
                lambda current, card, now: current.auto_recharge(card, now, crossed, self._price_of),
                followed,
            )
        except TooManyLiveCards:
            return None  # nothing to retry: the wallet is full until cards are used up or voided
        # a decline voids the card (Payment Failed, Auto Recharge Skipped) and raises, for the handler to say why
        # nothing was bought
        return self._collect(customer_id, bought, followed)

    def _price_of(self, credits: Decimal) -> Money:
        return self._wallets.quote(credits).price

    # -- recurring grants --------------------------------------------------------------------------------------

    def recurring_due(self, today: date) -> Iterator[str]:
        """Customers whose grant may fall on one of the last few days up to today (by day of the month, or by
        weekday for weekly grants); `grant_recurring` decides whether it is due."""
        assert self._registry is not None
        for key in index_keys(today):
            yield from self._registry.customers_granted_on(key)

    def grant_recurring(self, customer_id: str, today: date) -> CardResult | None:
        """This period's recurring grant, if due by `today` and not made yet (one per customer and period: see
        `prepaid.domain.recurrence`)."""
        wallet = self._store.load(customer_id)
        grant = wallet.settings.recurring if wallet else None
        period = due_period(grant, today) if grant else None
        if grant is None or period is None:
            return None
        request = PurchaseRequest(
            credits=grant.credits,
            price=grant.price,
            expires_in=grant.expires_in,
            source=CardSource.RECURRING,
            payment=grant.payment,
            applies_to=grant.applies_to,
            reference=grant.reference,
        )
        try:
            granted = self._wallets.buy(customer_id, request, period.key, add_card)
        except IdempotencyKeyReused:
            return None  # granted this period already, before the grant's settings changed
        except TooManyLiveCards:
            return None  # the wallet is full: no grant this period (a retry would not change that)
        try:
            return self._collect(customer_id, granted)
        except (PaymentDeclined, PaymentsUnavailable):
            return None  # voided (Payment Failed), nothing granted this period: a retry would not change that

    def _collect(
        self, customer_id: str, bought: CardResult | None, correlation_ids: Sequence[str] = ()
    ) -> CardResult | None:
        """Charge a card bought for Stripe to collect, with the card's own key (a redelivery or a second run
        replays the purchase and gets Stripe's first answer); any other card is as bought."""
        if bought is None:
            return None
        if self._payments is None:
            payment = bought.card.payment
            assert payment is None or not payment.charged_off_session, "Stripe's cards need the payments use case"
            return bought
        return self._payments().collect(customer_id, bought, correlation_ids)
