"""The wallet: a customer's cards and overage, and every change that can happen to them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from prepaid.domain.card import (
    EMPTY_METADATA,
    LIVE,
    PAYMENT_FAILED_REASON,
    Card,
    CardSource,
    CardStatus,
    Metadata,
    cost_basis,
    drawdown_order,
)
from prepaid.domain.errors import (
    CardNotActivatable,
    CardNotChangeable,
    CardNotFound,
    CardNotRefundable,
    CardNotVoidable,
    InsufficientCredits,
    InvalidRequest,
    TooManyLiveCards,
)
from prepaid.domain.events import (
    AUTO_RECHARGE_PURCHASED,
    AUTO_RECHARGE_SKIPPED,
    CREDITS_ADJUSTED,
    CREDITS_EXPIRED,
    CREDITS_EXPIRING_SOON,
    CREDITS_PENDING,
    CREDITS_PURCHASED,
    CREDITS_REFUNDED,
    CREDITS_VOIDED,
    OVERAGE_RECORDED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    DomainEvent,
    PercentThreshold,
    balance_events,
)
from prepaid.domain.ledger import CardTerms, Draw, EntryType, LedgerEntry
from prepaid.domain.money import Money
from prepaid.domain.numbers import ZERO
from prepaid.domain.rate_card import PricedBy
from prepaid.domain.recurrence import rolled_over, rollover_card, rollover_card_id
from prepaid.domain.rules import MAX_LIVE_CARDS
from prepaid.domain.settings import Rollover, WalletSettings
from prepaid.domain.usage_hours import HourUsage

EXPIRY_INSTANT = timedelta(microseconds=1)
# Not meter names (a meter starts with a letter or digit): "*" names every meter no card is scoped to, "" the overage
# recorded before the wallet kept it by meter.
ANY_OTHER_METER = "*"
UNKNOWN_METER = ""  # the last instant a card counts is its expiry minus this


@dataclass(frozen=True)
class Totals:
    """Where every credit of a wallet is at one instant:
    `credits = drawn + expired + voided + rolled_over + balance + pending` (a rolled-over credit is counted in the
    credits of the card it left and of the rollover card it joined, so it is a term of its own)."""

    credits: Decimal
    drawn: Decimal
    expired: Decimal
    voided: Decimal
    balance: Decimal
    overage: Decimal
    rated: Decimal
    pending: Decimal = ZERO  # credits of cards waiting for their payment
    rolled_over: Decimal = ZERO  # moved from expired recurring cards into rollover cards


@dataclass(frozen=True)
class Retired:
    """Sums over the cards that left the wallet (depleted, expired or voided), kept for conservation."""

    credits: Decimal = ZERO
    drawn: Decimal = ZERO
    expired: Decimal = ZERO
    voided: Decimal = ZERO
    count: int = 0
    rolled_over: Decimal = ZERO

    def add(self, card: Card) -> Retired:
        return Retired(
            self.credits + card.credits,
            self.drawn + card.drawn,
            self.expired + card.expired,
            self.voided + card.voided,
            self.count + 1,
            self.rolled_over + card.rolled_over,
        )


@dataclass(frozen=True)
class Recharges:
    """How many auto-recharges one wallet bought on one UTC day, against `maxPerDay`, and what they cost in one
    UTC month (`YYYY-MM`, in the price's currency), against `maxSpendPerMonth`."""

    day: date
    count: int
    month: str = ""
    spent: Decimal = ZERO

    def on(self, day: date) -> int:
        return self.count if self.day == day else 0

    def spent_in(self, month: str) -> Decimal:
        return self.spent if self.month == month else ZERO


@dataclass(frozen=True)
class EventDraw:
    """How one usage event was drawn: from which cards, and how much became overage."""

    usage: RatedUsage
    draws: tuple[Draw, ...]
    overage: Decimal


@dataclass(frozen=True)
class Outcome:
    """A wallet change: the new wallet with what it records and reports, and the cards it retired."""

    wallet: Wallet
    ledger: tuple[LedgerEntry, ...] = ()
    events: tuple[DomainEvent, ...] = ()
    retired: tuple[Card, ...] = ()
    usage: tuple[EventDraw, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.ledger) or bool(self.events)

    def card(self, card_id: str) -> Card:
        """A card as this change left it, whether still in the wallet or just retired."""
        retired = {c.card_id: c for c in self.retired}
        return retired[card_id] if card_id in retired else self.wallet.card(card_id)


@dataclass(frozen=True)
class RatedUsage:
    """A usage event with its cost in credits."""

    event_id: str
    meter: str
    quantity: Decimal
    credits: Decimal
    at: datetime
    priced_by: PricedBy | None = None  # the dimension value whose price rated it; None for the meter's base rate
    # the requests it came with (for logs and events only: never part of what the event is, so not compared)
    correlation_ids: tuple[str, ...] = field(default=(), compare=False)


def _noted(reference: str | None, metadata: Metadata) -> dict[str, object]:
    """What the SaaS attached to a change, for its event's detail (only what it attached)."""
    noted: dict[str, object] = {"reference": reference} if reference is not None else {}
    return noted | ({"metadata": dict(metadata)} if metadata else {})


def _sized(card: Card, credits: Decimal, price: Money) -> Card:
    """A new card holding `credits` for `price` instead (an auto-recharge to a target is sized when it buys)."""
    return dataclasses.replace(
        card, credits=credits, remaining=credits, price=price, cost_basis=cost_basis(price, credits)
    )


def allocate(
    cards: Iterable[Card], amount: Decimal, at: datetime, now: datetime | None = None, meter: str | None = None
) -> tuple[list[Draw], Decimal]:
    """Split `amount` of usage at `at`, drawn at `now`, over the usable cards in the contract's order (those that
    apply to `meter`; every card when None).

    Returns the draws and what is left over.
    """
    draws: list[Draw] = []
    left = amount
    usable = (c for c in cards if c.usable_at(at, now) and (meter is None or c.applies_to_meter(meter)))
    for card in sorted(usable, key=drawdown_order):
        if left <= 0:
            break
        take = min(left, card.remaining)
        draws.append(Draw(card.card_id, take))
        left -= take
    return draws, left


@dataclass(frozen=True)
class Wallet:
    """A customer's wallet. `version` counts committed changes; 0 means not stored yet.

    `cards` holds the live (pending or active) cards only: a card that is depleted, expired or voided leaves the
    wallet in the change that ends it (`Outcome.retired`), and only its sums stay, in `retired`. So the wallet stays
    small however many cards a customer buys over the years.
    """

    customer_id: str
    created_at: datetime
    version: int = 0
    cards: Mapping[str, Card] = field(default_factory=dict)
    retired: Retired = field(default_factory=Retired)
    overage: Decimal = ZERO
    rated: Decimal = ZERO
    settings: WalletSettings = field(default_factory=WalletSettings)
    open_hour: HourUsage | None = None  # usage of the latest hour drawn, kept here until a later hour opens
    recharges: Recharges | None = None  # auto-recharges bought on the latest day there was one (UTC)
    funded: Decimal | None = None  # the balance right after the wallet was last funded: what percentages are of
    # The overage by the meter whose usage ran it up, so that a card scoped to some meters pays off only theirs.
    # Sums to `overage` but for what was recorded before meters were kept (see `overage_by_meter`).
    overage_meters: Mapping[str, Decimal] = field(default_factory=dict)

    # -- reading -----------------------------------------------------------------------------------------------

    def balance(self, at: datetime) -> Decimal:
        """Sum of `remaining` over cards active and not expired at `at`."""
        return sum((c.remaining for c in self.cards.values() if c.counts_at(at)), ZERO)

    def available(self, at: datetime) -> Decimal:
        """What usage at `at` may draw now: the balance less the cards not yet in force."""
        return sum((c.remaining for c in self.cards.values() if c.counts_at(at) and c.usable_at(at)), ZERO)

    def available_for(self, meter: str, at: datetime) -> Decimal:
        """What usage of `meter` at `at` may draw now: the available credits of the cards that apply to it."""
        usable = (c for c in self.cards.values() if c.applies_to_meter(meter) and c.counts_at(at) and c.usable_at(at))
        return sum((c.remaining for c in usable), ZERO)

    def available_by_meter(self, at: datetime) -> dict[str, Decimal]:
        """`available_for` each meter a live card is scoped to, and under `ANY_OTHER_METER` what any other meter
        may draw (the cards scoped to no meter)."""
        meters = sorted({m for c in self.cards.values() if c.applies_to for m in c.applies_to})
        shown = {meter: self.available_for(meter, at) for meter in meters}
        return {**shown, ANY_OTHER_METER: self.available_for(ANY_OTHER_METER, at)}

    def overage_by_meter(self) -> dict[str, Decimal]:
        """The overage by meter; what no meter is known for (recorded before meters were kept) under ""."""
        known = {m: v for m, v in self.overage_meters.items() if v > 0}
        unknown = self.overage - sum(known.values(), ZERO)
        return known | ({UNKNOWN_METER: unknown} if unknown > 0 else {})

    def live_cards(self, at: datetime) -> list[Card]:
        """Cards that count in the balance at `at`, in drawdown order."""
        return sorted((c for c in self.cards.values() if c.counts_at(at)), key=drawdown_order)

    def pending_cards(self) -> list[Card]:
        """Cards waiting for their payment, oldest first."""
        pending = (c for c in self.cards.values() if c.status is CardStatus.PENDING)
        return sorted(pending, key=lambda c: (c.created_at, c.card_id))

    def next_expiry(self, at: datetime) -> datetime | None:
        expiries = [c.expires_at for c in self.live_cards(at) if c.expires_at is not None and c.remaining > 0]
        return min(expiries, default=None)

    def card(self, card_id: str) -> Card:
        try:
            return self.cards[card_id]
        except KeyError:
            raise CardNotFound(customer_id=self.customer_id, card_id=card_id) from None

    def totals(self, at: datetime) -> Totals:
        """Conservation: `credits = drawn + expired + voided + rolled_over + balance + pending`, and
        `drawn + overage = rated`.

        A card past its expiry counts as expired at once, whether or not the expiry job has run.
        """
        cards = list(self.cards.values())
        lapsed = sum((c.remaining for c in cards if c.status is CardStatus.ACTIVE and c.is_expired_at(at)), ZERO)
        retired = self.retired
        return Totals(
            credits=sum((c.credits for c in cards), retired.credits),
            drawn=sum((c.drawn for c in cards), retired.drawn),
            expired=sum((c.expired for c in cards), retired.expired) + lapsed,
            voided=sum((c.voided for c in cards), retired.voided),
            balance=self.balance(at),
            overage=self.overage,
            rated=self.rated,
            pending=sum((c.remaining for c in cards if c.status is CardStatus.PENDING), ZERO),
            rolled_over=sum((c.rolled_over for c in cards), retired.rolled_over),
        )

    # -- changing ----------------------------------------------------------------------------------------------

    def _with(self, cards: Mapping[str, Card] | None = None, **changes: object) -> Wallet:
        return dataclasses.replace(self, cards=dict(cards if cards is not None else self.cards), **changes)  # type: ignore[arg-type]

    @staticmethod
    def _settle(
        wallet: Wallet,
        ledger: Iterable[LedgerEntry] = (),
        events: Iterable[DomainEvent] = (),
        usage: Iterable[EventDraw] = (),
    ) -> Outcome:
        """Retire the cards this change ended (every card in `cards` was live before it)."""
        ended = [c for c in wallet.cards.values() if c.status not in LIVE]
        if ended:
            retired = wallet.retired
            for card in ended:
                retired = retired.add(card)
            live = {k: c for k, c in wallet.cards.items() if c.status in LIVE}
            wallet = dataclasses.replace(wallet, cards=live, retired=retired)
        return Outcome(wallet, tuple(ledger), tuple(events), tuple(ended), tuple(usage))

    def configure(self, settings: WalletSettings) -> Outcome:
        return Outcome(self._with(settings=settings))

    def add_card(self, card: Card, at: datetime) -> Outcome:
        """Add a card; an active one first pays off outstanding overage, a pending one waits for its payment. A
        wallet holds at most `MAX_LIVE_CARDS` live cards, pending ones included."""
        if len(self.cards) >= MAX_LIVE_CARDS and card.card_id not in self.cards:
            raise TooManyLiveCards(customer_id=self.customer_id, limit=MAX_LIVE_CARDS)
        if card.status is CardStatus.PENDING:
            return self._hold(card, at)
        return self._fund(card, at)

    def _hold(self, card: Card, at: datetime) -> Outcome:
        """A card waiting for its payment joins the wallet outside the balance; its price moves no money yet."""
        balance = self.balance(at)
        entry = LedgerEntry(EntryType.PENDING, card.credits, at, balance, card_id=card.card_id, value=card.price)
        event = DomainEvent(CREDITS_PENDING, {"customerId": self.customer_id, "balance": balance, "card": card})
        return Outcome(self._with({**self.cards, card.card_id: card}), (entry,), (event,))

    def activate_card(self, card_id: str, at: datetime, reference: str | None = None) -> Outcome:
        """A pending card is paid: it joins the balance as a purchase does (first paying off overage). Activating
        an active card changes nothing; a card past its expiry, voided or ended cannot be activated."""
        card = self.card(card_id)
        if card.status is CardStatus.ACTIVE:
            return Outcome(self)
        if card.status is not CardStatus.PENDING or card.is_expired_at(at):
            status = CardStatus.EXPIRED if card.is_expired_at(at) else card.status
            raise CardNotActivatable(card_id=card_id, status=status.value)
        outcome = self._fund(card.activate(reference), at)
        paid = DomainEvent(
            PAYMENT_SUCCEEDED,
            {
                "customerId": self.customer_id,
                "balance": outcome.wallet.balance(at),
                "cardId": card_id,
                "amount": card.price,
                "collect": card.payment.collect.value if card.payment else None,
                "card": outcome.card(card_id),
            },
        )
        return dataclasses.replace(outcome, events=(paid, *outcome.events))

    def _fund(
        self, card: Card, at: datetime, entry: EntryType = EntryType.PURCHASE, reason: str | None = None
    ) -> Outcome:
        """An active card joins the balance, paying off outstanding overage first (the overage of the meters it
        applies to, in meter order)."""
        before = self.balance(at)
        cards = {**self.cards, card.card_id: card}
        ledger: list[LedgerEntry] = []
        wallet = self._with(cards)
        purchase_balance = wallet.balance(at)
        ledger.append(
            LedgerEntry(
                entry,
                card.credits,
                at,
                purchase_balance,
                card_id=card.card_id,
                value=card.price,
                reason=reason,
                reference=card.reference,
                metadata=card.metadata or EMPTY_METADATA,  # a card joining the wallet is new: its pairs are here
            )
        )
        owed = self.overage_by_meter()
        payable = sorted(m for m in owed if card.applies_to_meter(m))
        if payable and card.usable_at(at):
            paid, left = ZERO, card.remaining
            for meter in payable:
                share = min(owed[meter], left)
                owed[meter] -= share
                paid, left = paid + share, left - share
            cards[card.card_id] = card.draw(paid)
            remaining_by_meter = {m: v for m, v in owed.items() if v > 0 and m != UNKNOWN_METER}
            wallet = self._with(cards, overage=self.overage - paid, overage_meters=remaining_by_meter)
            ledger.append(
                LedgerEntry(
                    EntryType.OVERAGE_PAYOFF,
                    paid,
                    at,
                    wallet.balance(at),
                    card_id=card.card_id,
                    draws=(Draw(card.card_id, paid),),
                    overage=paid,
                    value=card.value_of(paid),
                )
            )
        after = wallet.balance(at)
        purchased = DomainEvent(
            CREDITS_PURCHASED,
            {"customerId": self.customer_id, "balance": after, "card": cards[card.card_id]},
        )
        totals = self.totals(at)
        was_funded = totals.credits - totals.pending > 0  # a card was in force before (a pending one never was)
        events = [purchased, *self._crossings(before, after, funded=after, was_funded=was_funded)]
        return self._settle(dataclasses.replace(wallet, funded=after), ledger, events)

    def _crossings(
        self, before: Decimal, after: Decimal, *, funded: Decimal | None = None, was_funded: bool = True
    ) -> list[DomainEvent]:
        """The threshold events of a change from balance `before` to `after`; `funded`: the balance a funding
        change leaves, which moves what percentage thresholds mean. A wallet never funded has no percentages yet."""
        percents: tuple[PercentThreshold, ...] = ()
        if self.funded is not None:
            then = self.settings.percent_credits(self.funded)
            now = self.settings.percent_credits(self.funded if funded is None else funded)
            percents = tuple(PercentThreshold(p, b, a) for (p, b), (_, a) in zip(then, now, strict=True))
        thresholds = self.settings.alert_thresholds
        return balance_events(self.customer_id, before, after, thresholds, was_funded=was_funded, percents=percents)

    def auto_recharge(
        self, card: Card, at: datetime, threshold: Decimal, price_of: Callable[[Decimal], Money] | None = None
    ) -> Outcome | None:
        """Buy `card` for a crossing of `threshold` downward, or None when auto-recharge should not buy.

        It buys only if auto-recharge is set for that threshold, the balance is still at or below it (a purchase
        made since — another alert's, or a person's — already answered the crossing) and today's count is below
        `maxPerDay`. With `targetBalance` the card is sized here, on this very wallet: target - balance + overage
        credits, priced by `price_of` (the price book); nothing to buy, nothing bought. Past `maxSpendPerMonth`
        (the card's price on top of this month's recharges) it buys nothing and says so: the outcome holds
        `Auto Recharge Skipped` (reason `monthly_cap`) and no card.
        """
        auto = self.settings.auto_recharge
        if auto is None or auto.threshold != threshold or self.balance(at) > threshold:
            return None
        target: dict[str, object] = {}
        if auto.target_balance is not None:
            credits = auto.credits_for(self.balance(at), self.overage)
            if credits <= 0:
                return None
            assert price_of is not None, "a target's credits are priced by the price book"
            card = _sized(card, credits, price_of(credits))
            target = {"credits": credits, "targetBalance": auto.target_balance}
        today = at.date()
        bought = self.recharges.on(today) if self.recharges else 0
        if bought >= auto.max_per_day:
            return None
        month = f"{today:%Y-%m}"
        spent = self.recharges.spent_in(month) if self.recharges else ZERO
        cap = auto.max_spend_per_month
        if cap is not None and (card.price.currency != cap.currency or spent + card.price.amount > cap.amount):
            detail = {"customerId": self.customer_id, "balance": self.balance(at), "threshold": threshold}
            reason = "monthly_cap" if card.price.currency == cap.currency else "cap_in_another_currency"
            spending = {"spentThisMonth": Money(spent, cap.currency), "maxSpendPerMonth": cap, "price": card.price}
            skipped = {**detail, "reason": reason, **spending, **target}
            return Outcome(self, events=(DomainEvent(AUTO_RECHARGE_SKIPPED, skipped),))
        outcome = self.add_card(card, at)
        recharges = Recharges(today, bought + 1, month, spent + card.price.amount)
        wallet = dataclasses.replace(outcome.wallet, recharges=recharges)
        event = DomainEvent(
            AUTO_RECHARGE_PURCHASED,
            {
                "customerId": self.customer_id,
                "balance": wallet.balance(at),
                "threshold": threshold,
                "card": wallet.cards.get(card.card_id, card),
                "todayCount": bought + 1,
                "maxPerDay": auto.max_per_day,
                **target,
            },
        )
        return dataclasses.replace(outcome, wallet=wallet, events=(*outcome.events, event))

    def expiring_soon(self, card_id: str, at: datetime) -> Outcome:
        """The `Credits Expiring Soon` notice for a card that still has credits to lose; nothing otherwise."""
        card = self.cards.get(card_id)
        if card is None or card.expires_at is None or card.remaining <= 0 or not card.counts_at(at):
            return Outcome(self)
        event = DomainEvent(
            CREDITS_EXPIRING_SOON,
            {
                "customerId": self.customer_id,
                "balance": self.balance(at),
                "cardId": card_id,
                "remaining": card.remaining,
                "expiresAt": card.expires_at,
                "card": card,
            },
        )
        return Outcome(self, events=(event,))

    def cancel_pending(self, card_id: str, at: datetime, reason: str) -> Outcome:
        """A pending card's payment failed or was abandoned: void it for `reason`. A card that is no longer pending
        (paid since, or voided) is left as it is: a late failure notice never takes credits that were paid for."""
        if self.card(card_id).status is not CardStatus.PENDING:
            return Outcome(self)
        return self.void_card(card_id, at, reason)

    def void_card(
        self,
        card_id: str,
        at: datetime,
        reason: str | None = None,
        credits: Decimal | None = None,
        refund: bool = False,
        reference: str | None = None,
        metadata: Metadata = EMPTY_METADATA,
    ) -> Outcome:
        """Void `credits` of what remains of a card (all of it by default), for `reason`. Voiding a voided card
        changes nothing. A pending card's void moves no money (its price was never deferred) and is whole; with
        reason `payment_failed` it reports the failure. `refund`: the value of the voided credits (credits x cost
        basis) goes back through the card's payment, recorded as a `refund` entry beside the void. `reference` and
        `metadata`: the SaaS's own, on the void's entry and event."""
        card = self.card(card_id)
        if card.status is CardStatus.VOIDED:
            return Outcome(self)
        pending = card.status is CardStatus.PENDING
        if not pending and (card.status is not CardStatus.ACTIVE or card.is_expired_at(at)):
            status = CardStatus.EXPIRED if card.is_expired_at(at) else card.status
            raise CardNotVoidable(card_id=card_id, status=status.value)
        taken = card.remaining if credits is None else credits
        if taken <= 0 or taken > card.remaining or (pending and taken != card.remaining):
            reason_of = "whole_pending_card_only" if pending else "between_0_and_remaining"
            raise InvalidRequest(field="credits", reason=reason_of)
        if refund and (pending or card.payment is None or card.payment.reference is None):
            raise CardNotRefundable(card_id=card_id, reason="pending" if pending else "no_provider_payment")
        before = self.balance(at)
        voided = card.void(taken)
        wallet = self._with({**self.cards, card_id: voided})
        after = wallet.balance(at)
        value = None if pending else card.value_of(taken)
        void_entry = LedgerEntry(
            EntryType.VOID,
            taken,
            at,
            after,
            card_id=card_id,
            value=value,
            reason=reason,
            reference=reference,
            metadata=metadata,
        )
        entries = [void_entry]
        detail = {"customerId": self.customer_id, "balance": after, "cardId": card_id}
        void = {"credits": taken, "reason": reason, "card": voided, **_noted(reference, metadata)}
        events = [DomainEvent(CREDITS_VOIDED, {**detail, **void})]
        if refund:
            assert value is not None and card.payment is not None
            entries.append(LedgerEntry(EntryType.REFUND, taken, at, after, card_id=card_id, value=value, reason=reason))
            refunded = {**detail, "credits": taken, "amount": value, "reference": card.payment.reference}
            events.append(DomainEvent(CREDITS_REFUNDED, {**refunded, "reason": reason, "card": voided}))
        if pending and reason == PAYMENT_FAILED_REASON:
            events.append(DomainEvent(PAYMENT_FAILED, {**detail, "amount": card.price, "card": voided}))
            if card.source is CardSource.AUTO_RECHARGE:  # the crossing it answered is left unanswered
                events.append(DomainEvent(AUTO_RECHARGE_SKIPPED, {**detail, "reason": reason, "card": voided}))
        events.extend(self._crossings(before, after))
        return self._settle(wallet, entries, events)

    # -- adjustments -------------------------------------------------------------------------------------------

    def credit(self, card: Card, at: datetime, reason: str) -> Outcome:
        """A positive adjustment: `card` (source `adjustment`) joins the balance as a purchase does, first paying
        off overage, recorded as an `adjustment` entry with `reason`; reported as `Credits Adjusted`."""
        if len(self.cards) >= MAX_LIVE_CARDS and card.card_id not in self.cards:
            raise TooManyLiveCards(customer_id=self.customer_id, limit=MAX_LIVE_CARDS)
        outcome = self._fund(card, at, EntryType.ADJUSTMENT, reason)
        first, *rest = outcome.events
        assert first.detail_type == CREDITS_PURCHASED, "a funding reports its card first"
        detail = {**first.detail, "change": EntryType.ADJUSTMENT.value, "credits": card.credits, "reason": reason}
        adjusted = DomainEvent(CREDITS_ADJUSTED, {**detail, **_noted(card.reference, card.metadata or EMPTY_METADATA)})
        return dataclasses.replace(outcome, events=(adjusted, *rest))

    def debit(
        self,
        credits: Decimal,
        at: datetime,
        reason: str,
        reference: str | None = None,
        metadata: Metadata = EMPTY_METADATA,
        meter: str | None = None,
    ) -> Outcome:
        """A negative adjustment: take `credits` from the cards usage could draw now (those applying to `meter`
        when given) in the contract's order. Taken credits are voided (they leave without usage: no revenue is
        recognised for them), recorded as one `adjustment` entry with its draws. Never makes overage: asking more
        than those cards hold is `InsufficientCredits`."""
        draws, short = allocate(self.cards.values(), credits, at, at, meter)
        if short > 0:
            held = credits - short
            raise InsufficientCredits(requested=format(credits, "f"), available=format(held, "f"))
        before = self.balance(at)
        cards = dict(self.cards)
        value = ZERO
        currencies: set[str] = set()
        for draw in draws:
            card = cards[draw.card_id]
            cards[draw.card_id] = card.take(draw.credits)
            value += card.exact_value(draw.credits)
            currencies.add(card.price.currency)
        wallet = self._with(cards)
        after = wallet.balance(at)
        entry = LedgerEntry(
            EntryType.ADJUSTMENT,
            credits,
            at,
            after,
            draws=tuple(draws),
            value=Money.rounded(value, currencies.pop()) if len(currencies) == 1 else None,
            meter=meter,
            reason=reason,
            reference=reference,
            metadata=metadata,
        )
        detail = {"customerId": self.customer_id, "balance": after, "change": EntryType.ADJUSTMENT.value}
        taken = {
            "credits": -credits,
            "reason": reason,
            "draws": [{"cardId": d.card_id, "credits": d.credits} for d in draws],
        }
        events = [DomainEvent(CREDITS_ADJUSTED, {**detail, **taken, **_noted(reference, metadata)})]
        events.extend(self._crossings(before, after))
        return self._settle(wallet, (entry,), events)

    def change_terms(
        self, card_id: str, terms: CardTerms, at: datetime, reason: str, metadata: Metadata = EMPTY_METADATA
    ) -> Outcome:
        """Change when a live card expires or its priority, recorded as an `expiry_change` entry with the terms
        before and after. The same terms again change nothing. A card that has ended (or whose expiry has passed)
        cannot be changed; a new expiry must lie ahead of `at` and after the card takes effect."""
        card = self.card(card_id)
        if card.status not in LIVE or card.is_expired_at(at):
            status = CardStatus.EXPIRED if card.is_expired_at(at) else card.status
            raise CardNotChangeable(card_id=card_id, status=status.value)
        if terms.expires_at is not None and terms.expires_at <= at:
            raise InvalidRequest(field="expiresAt", reason="in_the_past")
        if terms.expires_at is not None and terms.expires_at <= card.effective_at:
            raise InvalidRequest(field="expiresAt", reason="not_after_effectiveAt")
        was = CardTerms(card.expires_at, card.priority)
        if terms == was:
            return Outcome(self)
        changed = dataclasses.replace(card, expires_at=terms.expires_at, priority=terms.priority)
        wallet = self._with({**self.cards, card_id: changed})
        balance = wallet.balance(at)
        entry = LedgerEntry(
            EntryType.EXPIRY_CHANGE,
            ZERO,
            at,
            balance,
            card_id=card_id,
            reason=reason,
            metadata=metadata,
            terms=(was, terms),
        )
        detail = {"customerId": self.customer_id, "balance": balance, "change": EntryType.EXPIRY_CHANGE.value}
        before_after = {"previousExpiresAt": was.expires_at, "previousPriority": was.priority, "card": changed}
        changes = {"cardId": card_id, "reason": reason, **before_after, **_noted(None, metadata)}
        return Outcome(wallet, (entry,), (DomainEvent(CREDITS_ADJUSTED, {**detail, **changes}),))

    def draw(self, usage: RatedUsage, at: datetime) -> Outcome:
        """Draw one rated usage event (see `draw_batch`)."""
        return self.draw_batch((usage,), at)

    def draw_batch(self, usages: Sequence[RatedUsage], at: datetime) -> Outcome:
        """Draw rated usage events in order, each from the cards usable at its own timestamp that apply to its
        meter.

        What the cards cannot cover becomes overage. One ledger entry records the batch (credits, draws per card,
        overage, and, for one event, the event); `Outcome.usage` says how each event was drawn.
        """
        before = self.balance(at)
        # One ordering for the whole batch, and running amounts instead of a new Card per draw: the allocation
        # is the hot path of drawdown. Each event still skips the cards not usable at its own time.
        order = sorted(self.cards.values(), key=drawdown_order)
        left_on: dict[str, Decimal] = {c.card_id: c.remaining for c in order}
        per_card: dict[str, Decimal] = {}
        drawn: list[EventDraw] = []
        for usage in usages:
            need = usage.credits
            draws: list[Draw] = []
            for card in order:
                if need <= 0:
                    break
                have = left_on[card.card_id]
                if have > 0 and card.applies_to_meter(usage.meter) and card.usable_at(usage.at, at):
                    take = have if have < need else need
                    left_on[card.card_id] = have - take
                    per_card[card.card_id] = per_card.get(card.card_id, ZERO) + take
                    draws.append(Draw(card.card_id, take))
                    need -= take
            drawn.append(EventDraw(usage, tuple(draws), need))
        cards = dict(self.cards)
        value = ZERO
        currencies: set[str] = set()
        for card_id, amount in per_card.items():
            card = cards[card_id]
            cards[card_id] = card.draw(amount)
            value += card.exact_value(amount)
            currencies.add(card.price.currency)
        credits = sum((u.credits for u in usages), ZERO)
        short_total = sum((d.overage for d in drawn), ZERO)
        overage_meters = dict(self.overage_meters)
        for d in drawn:
            if d.overage > 0:
                overage_meters[d.usage.meter] = overage_meters.get(d.usage.meter, ZERO) + d.overage
        wallet = self._with(
            cards, overage=self.overage + short_total, rated=self.rated + credits, overage_meters=overage_meters
        )
        after = wallet.balance(at)
        single = usages[0] if len(usages) == 1 else None
        entry = LedgerEntry(
            EntryType.USAGE,
            credits,
            at,
            after,
            draws=tuple(Draw(card_id, amount) for card_id, amount in per_card.items()),
            overage=short_total,
            value=Money.rounded(value, currencies.pop()) if len(currencies) == 1 else None,
            event_id=single.event_id if single else None,
            meter=single.meter if single else None,
            quantity=single.quantity if single else None,
            events=len(usages),
        )
        events = self._crossings(before, after)
        if short_total > 0:
            events.append(
                DomainEvent(
                    OVERAGE_RECORDED,
                    {
                        "customerId": self.customer_id,
                        "balance": after,
                        "overage": wallet.overage,
                        "added": short_total,
                        # a few ids to look at, not all: the outbox item stays under 1 KB (2 write units)
                        "events": sum(1 for d in drawn if d.overage > 0),
                        "eventIds": [d.usage.event_id for d in drawn if d.overage > 0][:5],
                    },
                )
            )
        return self._settle(wallet, (entry,), events, drawn)

    def expire_due(self, at: datetime) -> Outcome:
        """Mark every active card whose expiry has passed as expired, recording the breakage.

        A recurring card moves what it still holds, up to the wallet's rollover caps (the setting in force now),
        into a new `rollover` card (see `_roll_over`); only the rest is breakage. A rollover card does not roll
        again: at its own expiry all it holds is breakage (as Metronome rolls a grant once).
        """
        due = [c for c in self.cards.values() if c.status is CardStatus.ACTIVE and c.is_expired_at(at)]
        if not due:
            return Outcome(self)
        rollover = self.settings.recurring.rollover if self.settings.recurring else None
        cards = dict(self.cards)
        ledger: list[LedgerEntry] = []
        events: list[DomainEvent] = []
        rolling: list[tuple[Card, Decimal]] = []
        # Reads stop counting a card at its expiry, before this runs: the balance does not change here, so the
        # crossing is judged from the balance just before the first card expired.
        first = min(c.expires_at for c in due if c.expires_at is not None)
        before = self.balance(first - EXPIRY_INSTANT)
        balance = self.balance(at)
        for card in sorted(due, key=drawdown_order):
            rolled = rolled_over(card, rollover) if rollover and card.source is CardSource.RECURRING else ZERO
            broken = card.remaining - rolled
            cards[card.card_id] = card.expire(rolled)
            value = card.value_of(broken)
            ledger.append(LedgerEntry(EntryType.EXPIRY, broken, at, balance, card_id=card.card_id, value=value))
            detail = {
                "customerId": self.customer_id,
                "balance": balance,
                "cardId": card.card_id,
                "credits": broken,
                "breakage": value,
                "rolledOver": rolled,
            }
            if rolled > 0:
                rolling.append((card, rolled))
                detail["rolloverCardId"] = rollover_card_id(card.card_id)
            events.append(DomainEvent(CREDITS_EXPIRED, detail))
        outcome = self._settle(self._with(cards), ledger, events)
        for card, rolled in rolling:
            assert rollover is not None
            step = outcome.wallet._roll_over(card, rolled, rollover, at)
            outcome = Outcome(
                step.wallet,
                (*outcome.ledger, *step.ledger),
                (*outcome.events, *step.events),
                (*outcome.retired, *step.retired),
            )
        crossings = self._crossings(before, outcome.wallet.balance(at))
        return dataclasses.replace(outcome, events=(*outcome.events, *crossings))

    def _roll_over(self, card: Card, credits: Decimal, rollover: Rollover, at: datetime) -> Outcome:
        """`credits` of the expired recurring `card` join the balance on a new rollover card, which first pays off
        overage as any new card does. Its deferred revenue is the expired card's, moved: a `rollover` entry (not a
        purchase) drawing from that card, valued at the new card's price; its `Credits Purchased` names the card it
        came from. It is no funding of its own: percentage thresholds keep their base, and the expiry judges the
        crossing."""
        new = rollover_card(card, credits, rollover, at)
        joined = self._fund(new, at, EntryType.ROLLOVER)
        entry, *payoff = joined.ledger
        value = Money.rounded(new.price.amount, new.price.currency)
        moved = dataclasses.replace(entry, draws=(Draw(card.card_id, credits),), value=value)
        purchased = joined.events[0]
        assert purchased.detail_type == CREDITS_PURCHASED, "a funding reports its card first"
        event = DomainEvent(CREDITS_PURCHASED, {**purchased.detail, "rolledOverFrom": card.card_id})
        wallet = dataclasses.replace(joined.wallet, funded=self.funded)
        return Outcome(wallet, (moved, *payoff), (event,), joined.retired)
