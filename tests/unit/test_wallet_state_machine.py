"""Random histories of purchases (paid, or invoiced then activated; scoped to some meters or not), voids, usage of
several meters (with replays and conflicting replays), adjustments (credits added or taken), card changes, recurring
grants rolling over, and clock moves, run through the use cases (WalletService, DrawdownService) and through a
reference model written from the contract alone; after every step the two must agree to the last digit."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from prepaid.application.drawdown import DrawdownService
from prepaid.application.lifecycle import CreditLifecycle
from prepaid.application.retry import RetryPolicy
from prepaid.application.wallets import AdjustmentRequest, CardChange, PurchaseRequest, VoidRequest, WalletService
from prepaid.domain.card import CardSource, Collect, Payment
from prepaid.domain.errors import CardNotActivatable, CardNotChangeable, CardNotVoidable, InsufficientCredits
from prepaid.domain.money import Money
from prepaid.domain.settings import RecurringGrant, Rollover, WalletSettings
from prepaid.domain.spans import after
from prepaid.domain.wallet import RatedUsage
from support.memory_store import MemoryCatalog, MemoryStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)
amounts = st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(500), places=9)
RECURRING = CardSource.RECURRING
METERS = ("api_calls", "gpu", "storage")
scopes = st.none() | st.frozensets(st.sampled_from(METERS), min_size=1)


@dataclass
class ModelCard:
    """A card as the contract describes it."""

    card_id: str
    remaining: Decimal
    priority: int
    expires: datetime | None
    cost: Decimal
    effective: datetime
    voided: bool = False
    pending: bool = False  # invoiced and not yet paid: neither in the balance nor drawn
    recurring: bool = False  # granted by a recurring grant: rolls over at expiry, as far as the caps allow
    ended: bool = False  # the expiry job ran on it: what it held rolled over or broke
    granted: Decimal = Decimal(0)  # a recurring card's original credits: what a rollover's percentage is of
    meters: frozenset[str] | None = None  # the meters whose usage may draw it; None: every meter

    def applies(self, meter: str | None) -> bool:
        return meter is None or self.meters is None or meter in self.meters

    def counts(self, at: datetime) -> bool:
        return not self.voided and not self.pending and (self.expires is None or at < self.expires)

    def usable(self, at: datetime) -> bool:
        return self.counts(at) and self.effective <= at

    def order(self) -> tuple[int, bool, datetime, Decimal, datetime, str]:
        return (self.priority, self.expires is None, self.expires or FAR, self.cost, self.effective, self.card_id)


class WalletMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.store = MemoryStore()
        ids = (f"id{n:06d}" for n in itertools.count())
        no_wait = RetryPolicy(sleep=lambda _: None)
        self.wallets = WalletService(self.store, MemoryCatalog(), lambda: self.now, lambda: next(ids), no_wait)
        self.drawdown = DrawdownService(self.store, lambda: self.now, lambda: next(ids), no_wait)
        # the reference model
        self.cards: dict[str, ModelCard] = {}
        self.owed: dict[str, Decimal] = {}  # the overage by the meter that ran it up
        self.rated = Decimal(0)
        self.seen: dict[str, tuple[Decimal, str]] = {}
        self.events = itertools.count()
        self.lifecycle = CreditLifecycle(self.wallets, self.store, lambda: self.now, lambda: next(ids), retry=no_wait)
        self.rollover: Rollover | None = None  # the caps in force when the expiry job runs
        self.rolled = Decimal(0)
        self.broken = Decimal(0)

    def balance(self) -> Decimal:
        return sum((c.remaining for c in self.cards.values() if c.counts(self.now)), Decimal(0))

    @property
    def overage(self) -> Decimal:
        return sum(self.owed.values(), Decimal(0))

    def _pay_overage(self, card: ModelCard) -> None:
        """A new card pays off the overage of the meters it applies to, in meter order."""
        for meter in sorted(self.owed):
            if card.applies(meter):
                paid = min(self.owed[meter], card.remaining)
                card.remaining -= paid
                self.owed[meter] -= paid

    @rule(
        credits=amounts,
        priority=st.integers(0, 100),
        hours=st.none() | st.integers(1, 72),
        cents=st.integers(0, 10_000),
        invoiced=st.booleans(),
        meters=scopes,
    )
    def buy(
        self,
        credits: Decimal,
        priority: int,
        hours: int | None,
        cents: int,
        invoiced: bool,
        meters: frozenset[str] | None,
    ) -> None:
        price = Money(Decimal(cents) / 100, "USD")
        expires = self.now + timedelta(hours=hours) if hours else None
        payment = Payment(Collect.MANUAL) if invoiced else None
        request = PurchaseRequest(
            credits, price, expires_at=expires, priority=priority, payment=payment, applies_to=meters
        )
        receipt = self.wallets.purchase("acme", request)
        card = ModelCard(
            receipt.card.card_id,
            credits,
            priority,
            expires,
            receipt.card.cost_basis,
            self.now,
            pending=invoiced,
            meters=meters,
        )
        if not invoiced:
            self._pay_overage(card)
        self.cards[card.card_id] = card
        assert receipt.balance == self.balance()

    @precondition(lambda self: self.cards)
    @rule(pick=st.integers(0, 10**6))
    def void(self, pick: int) -> None:
        card = self.cards[sorted(self.cards)[pick % len(self.cards)]]
        try:
            reason = "payment_failed" if card.pending else None
            answer = self.wallets.void("acme", card.card_id, VoidRequest(reason))
        except CardNotVoidable:
            assert not card.voided and not card.pending
            assert card.remaining == 0 or (card.expires is not None and self.now >= card.expires)
            return
        assert card.voided or card.pending or card.remaining > 0 or card.expires is None or self.now < card.expires
        card.remaining, card.voided, card.pending = Decimal(0), True, False
        assert answer.balance == self.balance()

    @precondition(lambda self: self.cards)
    @rule(pick=st.integers(0, 10**6))
    def activate(self, pick: int) -> None:
        card = self.cards[sorted(self.cards)[pick % len(self.cards)]]
        try:
            answer = self.wallets.activate("acme", card.card_id)
        except CardNotActivatable:
            assert card.voided or (card.pending and card.expires is not None and self.now >= card.expires)
            return
        assert not card.voided and (not card.pending or card.expires is None or self.now < card.expires)
        if card.pending:
            card.pending = False
            self._pay_overage(card)
        assert answer.balance == self.balance()

    @rule(used=st.lists(st.tuples(amounts, st.sampled_from(METERS)), min_size=1, max_size=5))
    def use(self, used: list[tuple[Decimal, str]]) -> None:
        usages = [RatedUsage(f"e{next(self.events)}", meter, q, q, self.now) for q, meter in used]
        report = self.drawdown.apply("acme", usages)
        assert report.drawn == [u.event_id for u in usages]
        for u in usages:
            self._model_draw(u.event_id, u.credits, u.meter)

    @precondition(lambda self: self.seen)
    @rule(pick=st.integers(0, 10**6), conflicting=st.booleans())
    def replay(self, pick: int, conflicting: bool) -> None:
        event_id = sorted(self.seen)[pick % len(self.seen)]
        credits, meter = self.seen[event_id]
        quantity = credits + (1 if conflicting else 0)
        report = self.drawdown.apply("acme", [RatedUsage(event_id, meter, quantity, quantity, self.now)])
        if conflicting:
            assert [r.event_id for r in report.refused] == [event_id]
        else:
            assert report.duplicates == [event_id]
        assert report.drawn == []

    @rule(
        credits=amounts,
        priority=st.integers(0, 100),
        hours=st.integers(1, 72),
        cents=st.integers(0, 10_000),
    )
    def grant(self, credits: Decimal, priority: int, hours: int, cents: int) -> None:
        """A recurring grant's card (as the daily job makes it): it may roll over when it expires."""
        expires = self.now + timedelta(hours=hours)
        request = PurchaseRequest(
            credits, Money(Decimal(cents) / 100, "USD"), expires_at=expires, priority=priority, source=RECURRING
        )
        receipt = self.wallets.purchase("acme", request)
        card = ModelCard(receipt.card.card_id, credits, priority, expires, receipt.card.cost_basis, self.now)
        card.recurring, card.granted = True, credits
        self._pay_overage(card)
        self.cards[card.card_id] = card
        assert receipt.balance == self.balance()

    @rule(
        percent=st.none() | st.decimals(min_value=0, max_value=100, places=2),
        most=st.none() | amounts,
        hours=st.none() | st.integers(1, 72),
    )
    def set_rollover(self, percent: Decimal | None, most: Decimal | None, hours: int | None) -> None:
        self.rollover = Rollover(percent, most, timedelta(hours=hours) if hours else None)
        grant = RecurringGrant(Decimal(1), 1, rollover=self.rollover)
        self.wallets.configure("acme", WalletSettings(recurring=grant))

    @rule()
    def expire(self) -> None:
        """The expiry job: each card past its expiry ends; a recurring one rolls over up to the caps (in card
        order), and each rollover card pays off overage as a new card does."""
        self.lifecycle.expire("acme", "any", self.now)
        due = [
            c
            for c in self.cards.values()
            if not (c.voided or c.pending or c.ended) and c.remaining > 0 and c.expires and self.now >= c.expires
        ]
        for card in sorted(due, key=ModelCard.order):
            assert card.expires is not None
            rolled = Decimal(0)
            if card.recurring and self.rollover is not None:
                caps = [card.remaining]
                if self.rollover.max_percent is not None:
                    share = (card.granted * self.rollover.max_percent / 100).quantize(Decimal("1e-9"), ROUND_DOWN)
                    caps.append(share)
                if self.rollover.max_credits is not None:
                    caps.append(self.rollover.max_credits)
                rolled = min(caps)
            self.rolled += rolled
            self.broken += card.remaining - rolled
            card.remaining, card.ended = Decimal(0), True
            if rolled > 0:
                life = self.rollover.expires_in if self.rollover else None
                new = ModelCard(
                    f"{card.card_id}-rollover",
                    rolled,
                    card.priority,
                    after(card.expires, life) if life else None,
                    card.cost,
                    card.expires,
                )
                if new.counts(self.now):
                    self._pay_overage(new)
                self.cards[new.card_id] = new

    @rule(hours=st.integers(1, 48))
    def wait(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    def _model_draw(self, event_id: str, credits: Decimal, meter: str) -> None:
        self.seen[event_id] = (credits, meter)
        self.rated += credits
        left = self._take(credits, meter)
        self.owed[meter] = self.owed.get(meter, Decimal(0)) + left

    def _take(self, credits: Decimal, meter: str | None) -> Decimal:
        """Draw `credits` from the usable cards that apply to `meter` (any, for None) in card order; what is left."""
        left = credits
        usable = (c for c in self.cards.values() if c.usable(self.now) and c.applies(meter))
        for card in sorted(usable, key=ModelCard.order):
            take = min(left, card.remaining)
            card.remaining -= take
            left -= take
        return left

    @rule(credits=amounts, meters=scopes, hours=st.none() | st.integers(1, 72))
    def add_credits(self, credits: Decimal, meters: frozenset[str] | None, hours: int | None) -> None:
        """A positive adjustment: a free card, which pays off overage as any new card does."""
        expires = self.now + timedelta(hours=hours) if hours else None
        answer = self.wallets.adjust(
            "acme", AdjustmentRequest(credits, "goodwill", expires_at=expires, applies_to=meters)
        )
        assert answer.card is not None
        card = ModelCard(answer.card.card_id, credits, 50, expires, Decimal(0), self.now, meters=meters)
        self._pay_overage(card)
        self.cards[card.card_id] = card
        assert answer.balance == self.balance()

    @precondition(lambda self: self.store.load("acme") is not None)
    @rule(credits=amounts, meter=st.none() | st.sampled_from(METERS))
    def take_credits(self, credits: Decimal, meter: str | None) -> None:
        """A negative adjustment: credits taken in card order, all or nothing, never into overage."""
        usable = (c for c in self.cards.values() if c.usable(self.now) and c.applies(meter))
        if sum((c.remaining for c in usable), Decimal(0)) < credits:
            try:
                self.wallets.adjust("acme", AdjustmentRequest(-credits, "correction", meter=meter))
            except InsufficientCredits:
                return
            raise AssertionError("taking more than the cards hold must be refused")
        answer = self.wallets.adjust("acme", AdjustmentRequest(-credits, "correction", meter=meter))
        assert self._take(credits, meter) == 0
        assert answer.balance == self.balance()

    @precondition(lambda self: self.cards)
    @rule(pick=st.integers(0, 10**6), priority=st.none() | st.integers(0, 100), hours=st.none() | st.integers(0, 72))
    def change_card(self, pick: int, priority: int | None, hours: int | None) -> None:
        """A card change: a new priority, a new expiry (hours from now), no expiry (0), or both."""
        card = self.cards[sorted(self.cards)[pick % len(self.cards)]]
        change = CardChange(
            "renewal",
            expires_at=self.now + timedelta(hours=hours) if hours else None,
            remove_expiry=hours == 0,
            priority=priority if priority is not None or hours is not None else 7,
        )
        live = card.pending or (not card.voided and not card.ended and card.remaining > 0 and card.counts(self.now))
        try:
            self.wallets.change_card("acme", card.card_id, change)
        except CardNotChangeable:
            assert not live or (card.expires is not None and self.now >= card.expires)
            return
        assert live
        card.priority = change.priority if change.priority is not None else card.priority
        card.expires = None if change.remove_expiry else (change.expires_at or card.expires)

    @invariant()
    def agrees_with_the_model(self) -> None:
        wallet = self.store.load("acme")
        if wallet is None:
            assert not self.cards and self.rated == 0
            return
        assert wallet.balance(self.now) == self.balance()
        assert wallet.overage == self.overage
        live = {c.card_id: (c.remaining, c.status.value == "pending") for c in wallet.cards.values()}
        model = {c.card_id: (c.remaining, c.pending) for c in self.cards.values() if not c.voided and c.remaining > 0}
        assert live == model
        t = wallet.totals(self.now)
        assert t.pending == sum((c.remaining for c in self.cards.values() if c.pending), Decimal(0))
        lapsed = (c.remaining for c in self.cards.values() if not (c.pending or c.counts(self.now)))
        assert (t.rolled_over, t.expired) == (self.rolled, self.broken + sum(lapsed, Decimal(0)))
        assert t.credits == t.drawn + t.expired + t.voided + t.rolled_over + t.balance + t.pending
        assert t.drawn + t.overage == t.rated == self.rated


WalletMachine.TestCase.settings = settings(max_examples=1000, stateful_step_count=12, deadline=None)
TestWalletHistories = WalletMachine.TestCase
