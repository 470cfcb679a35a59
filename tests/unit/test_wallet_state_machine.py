"""Random histories of purchases (paid, or invoiced then activated), voids, usage (with replays and conflicting
replays) and clock moves, run through the use cases (WalletService, DrawdownService) and through a reference model
written from the contract alone; after every step the two must agree to the last digit."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from prepaid.application.drawdown import DrawdownService
from prepaid.application.retry import RetryPolicy
from prepaid.application.wallets import PurchaseRequest, VoidRequest, WalletService
from prepaid.domain.card import Collect, Payment
from prepaid.domain.errors import CardNotActivatable, CardNotVoidable
from prepaid.domain.money import Money
from prepaid.domain.wallet import RatedUsage
from support.memory_store import MemoryCatalog, MemoryStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)
amounts = st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(500), places=9)


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
        self.overage = Decimal(0)
        self.rated = Decimal(0)
        self.seen: dict[str, Decimal] = {}
        self.events = itertools.count()

    def balance(self) -> Decimal:
        return sum((c.remaining for c in self.cards.values() if c.counts(self.now)), Decimal(0))

    def _pay_overage(self, card: ModelCard) -> None:
        paid = min(self.overage, card.remaining)
        card.remaining -= paid
        self.overage -= paid

    @rule(
        credits=amounts,
        priority=st.integers(0, 100),
        hours=st.none() | st.integers(1, 72),
        cents=st.integers(0, 10_000),
        invoiced=st.booleans(),
    )
    def buy(self, credits: Decimal, priority: int, hours: int | None, cents: int, invoiced: bool) -> None:
        price = Money(Decimal(cents) / 100, "USD")
        expires = self.now + timedelta(hours=hours) if hours else None
        payment = Payment(Collect.MANUAL) if invoiced else None
        request = PurchaseRequest(credits, price, expires_at=expires, priority=priority, payment=payment)
        receipt = self.wallets.purchase("acme", request)
        card = ModelCard(
            receipt.card.card_id,
            credits,
            priority,
            expires,
            receipt.card.cost_basis,
            self.now,
            pending=invoiced,
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

    @rule(quantities=st.lists(amounts, min_size=1, max_size=5))
    def use(self, quantities: list[Decimal]) -> None:
        usages = [RatedUsage(f"e{next(self.events)}", "api_calls", q, q, self.now) for q in quantities]
        report = self.drawdown.apply("acme", usages)
        assert report.drawn == [u.event_id for u in usages]
        for u in usages:
            self._model_draw(u.event_id, u.credits)

    @precondition(lambda self: self.seen)
    @rule(pick=st.integers(0, 10**6), conflicting=st.booleans())
    def replay(self, pick: int, conflicting: bool) -> None:
        event_id = sorted(self.seen)[pick % len(self.seen)]
        quantity = self.seen[event_id] + (1 if conflicting else 0)
        report = self.drawdown.apply("acme", [RatedUsage(event_id, "api_calls", quantity, quantity, self.now)])
        if conflicting:
            assert [r.event_id for r in report.refused] == [event_id]
        else:
            assert report.duplicates == [event_id]
        assert report.drawn == []

    @rule(hours=st.integers(1, 48))
    def wait(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    def _model_draw(self, event_id: str, credits: Decimal) -> None:
        self.seen[event_id] = credits
        self.rated += credits
        left = credits
        for card in sorted((c for c in self.cards.values() if c.usable(self.now)), key=ModelCard.order):
            take = min(left, card.remaining)
            card.remaining -= take
            left -= take
        self.overage += left

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
        assert t.credits == t.drawn + t.expired + t.voided + t.balance + t.pending
        assert t.drawn + t.overage == t.rated == self.rated


WalletMachine.TestCase.settings = settings(max_examples=1000, stateful_step_count=12, deadline=None)
TestWalletHistories = WalletMachine.TestCase
