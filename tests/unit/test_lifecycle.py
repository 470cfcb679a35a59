"""The credit lifecycle use cases against the in-memory store: expiry, its notice, auto-recharge, recurring grants."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from prepaid.application.drawdown import DrawdownService
from prepaid.application.lifecycle import CreditLifecycle, NotYetDue, UncommittedEvent
from prepaid.application.wallets import PurchaseRequest, WalletService
from prepaid.domain.card import CardSource
from prepaid.domain.events import AUTO_RECHARGE_PURCHASED, BALANCE_LOW, CREDITS_EXPIRED, CREDITS_EXPIRING_SOON
from prepaid.domain.ledger import EntryType
from prepaid.domain.money import Money
from prepaid.domain.recurrence import grant_days
from prepaid.domain.settings import AutoRecharge, RecurringGrant, WalletSettings
from prepaid.domain.wallet import RatedUsage
from prepaid.edge.wire import card_result
from support.memory_store import MemoryCatalog, MemoryStore

T0 = datetime(2026, 2, 20, 9, 0, tzinfo=UTC)
USD = "USD"


@dataclass
class Clock:
    at: datetime = T0

    def __call__(self) -> datetime:
        return self.at


@dataclass
class FakeScheduler:
    schedules: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)

    def once(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        self.schedules.setdefault(name, (at, payload))


@dataclass
class World:
    store: MemoryStore
    clock: Clock
    scheduler: FakeScheduler
    wallets: WalletService
    lifecycle: CreditLifecycle
    drawdown: DrawdownService

    def buy(self, credits: str, **request: Any) -> dict[str, Any]:
        return self.buy_priced(credits, Money(Decimal(0), USD), **request)

    def buy_priced(self, credits: str, price: Money, **request: Any) -> dict[str, Any]:
        """A purchase's answer, as the API gives it."""
        return card_result(self.wallets.purchase("acme", PurchaseRequest(Decimal(credits), price, **request)))

    def use(self, event_id: str, credits: str, at: datetime | None = None) -> None:
        self.drawdown.apply(
            "acme", [RatedUsage(event_id, "api_calls", Decimal(credits), Decimal(credits), at or self.clock.at)]
        )


@pytest.fixture
def world() -> World:
    store, clock, scheduler = MemoryStore(), Clock(), FakeScheduler()
    ids = iter(f"id{n:04d}" for n in range(10_000))
    wallets = WalletService(store, MemoryCatalog(), clock, lambda: next(ids))
    lifecycle = CreditLifecycle(
        wallets,
        store,
        clock,
        lambda: next(ids),
        scheduler=scheduler,
        registry=store,
        committed=store,
        warn_before=timedelta(days=7),
    )
    return World(store, clock, scheduler, wallets, lifecycle, DrawdownService(store, clock, lambda: next(ids)))


def test_a_card_gets_its_expiry_and_notice_scheduled_and_expires_once(world: World) -> None:
    # Given a card of 100 credits bought for 5 USD that expires in 30 days
    card = world.buy_priced("100", Money(Decimal(5), USD), expires_in=timedelta(days=30))["card"]
    expires_at = T0 + timedelta(days=30)

    # When its Credits Purchased event is handled (twice: redelivered)
    (purchased,) = world.store.of_type("Credits Purchased")
    world.lifecycle.schedule_expiry("acme", purchased.detail)
    world.lifecycle.schedule_expiry("acme", purchased.detail)

    # Then two schedules exist: the expiry at the instant, the notice 7 days before
    schedules = world.scheduler.schedules
    assert {name: at for name, (at, _) in schedules.items()} == {
        f"expire-{card['cardId']}": expires_at,
        f"warn-{card['cardId']}": expires_at - timedelta(days=7),
    }
    # And the notice, fired twice, is published once
    world.clock.at = expires_at - timedelta(days=7)
    assert world.lifecycle.warn_expiring("acme", card["cardId"]) is True
    assert world.lifecycle.warn_expiring("acme", card["cardId"]) is False
    assert [e.detail["cardId"] for e in world.store.of_type(CREDITS_EXPIRING_SOON)] == [card["cardId"]]
    # And the expiry, fired early, refuses (to be retried); fired on time and again, expires once with breakage
    world.use("u1", "40")
    with pytest.raises(NotYetDue):
        world.lifecycle.expire("acme", card["cardId"], expires_at)
    world.clock.at = expires_at
    assert world.lifecycle.expire("acme", card["cardId"], expires_at) == 1
    assert world.lifecycle.expire("acme", card["cardId"], expires_at) == 0
    expired = world.store.of_type(CREDITS_EXPIRED)
    assert [(e.detail["credits"], e.detail["breakage"]) for e in expired] == [
        ("60", {"amount": "3.00", "currency": USD})
    ]
    entries = [entry for _, _, entry in world.store.ledger if getattr(entry, "type", None) is EntryType.EXPIRY]
    assert len(entries) == 1


def test_an_expiring_card_without_credits_left_gets_no_notice(world: World) -> None:
    card = world.buy("10", expires_in=timedelta(days=30))["card"]
    world.use("u1", "10")
    world.clock.at = T0 + timedelta(days=23)
    assert world.lifecycle.warn_expiring("acme", card["cardId"]) is False
    assert world.store.of_type(CREDITS_EXPIRING_SOON) == []


def test_usage_one_second_after_expiry_is_not_drawn_from_the_card(world: World) -> None:
    # Given a card that expires at T0 + 1 day, and a card without expiry drawn after it
    world.buy("100", expires_in=timedelta(days=1), priority=10)
    world.buy("100")
    expires_at = T0 + timedelta(days=1)
    world.clock.at = expires_at + timedelta(minutes=5)

    # When usage stamped one second before and one second after the expiry arrives late, after it
    world.use("before", "7", expires_at - timedelta(seconds=1))
    world.use("after", "11", expires_at + timedelta(seconds=1))

    # Then the first is drawn from the expiring card, the second from the other one
    cards = world.store.wallets["acme"].cards
    expiring = next(c for c in cards.values() if c.expires_at == expires_at)
    other = next(c for c in cards.values() if c.expires_at is None)
    assert (expiring.drawn, other.drawn) == (Decimal(7), Decimal(11))


def settle_auto_recharge(world: World, max_per_day: int = 2) -> None:
    world.wallets.configure(
        "acme",
        WalletSettings(auto_recharge=AutoRecharge(Decimal(100), Decimal(500), max_per_day, Money(Decimal(4), USD))),
    )


def test_one_purchase_per_crossing_however_often_the_alert_comes(world: World) -> None:
    # Given auto-recharge at 100 credits (buy 500 for 4 USD) and a wallet drawn from 300 to 50
    settle_auto_recharge(world)
    world.buy("300")
    world.use("u1", "250")
    (low,) = world.store.of_type(BALANCE_LOW)
    assert low.detail["threshold"] == "100"

    # When the Balance Low alert is handled three times
    receipts = [world.lifecycle.auto_recharge("acme", low.detail) for _ in range(3)]

    # Then one card was bought, at the set price, from the auto-recharge source; the replays answered the same
    assert receipts[0] is not None and not receipts[0].replayed
    assert all(
        r is not None and r.replayed and r == dataclasses.replace(receipts[0], replayed=True) for r in receipts[1:]
    )
    auto_cards = [c for c in world.store.wallets["acme"].cards.values() if c.source is CardSource.AUTO_RECHARGE]
    assert [(c.credits, c.price.amount) for c in auto_cards] == [(Decimal(500), Decimal(4))]
    (bought,) = world.store.of_type(AUTO_RECHARGE_PURCHASED)
    assert (bought.detail["balance"], bought.detail["todayCount"]) == ("550", 1)


def test_a_stale_alert_or_a_spent_daily_budget_buys_nothing(world: World) -> None:
    settle_auto_recharge(world, max_per_day=1)
    world.buy("300")
    world.use("u1", "250")
    first = world.store.of_type(BALANCE_LOW)[0]
    # Given someone bought credits after the crossing: the alert is stale
    world.buy("1000")
    assert world.lifecycle.auto_recharge("acme", first.detail) is None
    # And when the wallet crosses again and buys once, a further crossing the same day buys nothing
    world.use("u2", "1250")
    second = world.store.of_type(BALANCE_LOW)[1]
    assert world.lifecycle.auto_recharge("acme", second.detail) is not None
    world.use("u3", "500")
    third = world.store.of_type(BALANCE_LOW)[2]
    assert world.lifecycle.auto_recharge("acme", third.detail) is None
    # Then the next day it buys again
    world.clock.at = T0 + timedelta(days=1)
    assert world.lifecycle.auto_recharge("acme", third.detail) is not None
    assert [e.detail["todayCount"] for e in world.store.of_type(AUTO_RECHARGE_PURCHASED)] == [1, 1]


def test_a_threshold_other_than_auto_recharges_buys_nothing(world: World) -> None:
    # Given an alert threshold at 200 beside auto-recharge at 100, and a wallet drawn from 300 to 150
    auto = AutoRecharge(Decimal(100), Decimal(500), 2, Money(Decimal(4), USD))
    world.wallets.configure("acme", WalletSettings(thresholds=(Decimal(200),), auto_recharge=auto))
    world.buy("300")
    world.use("u1", "150")
    # When the Balance Low of the 200 threshold is handled, then nothing is bought
    (low,) = world.store.of_type(BALANCE_LOW)
    assert low.detail["threshold"] == "200"
    assert world.lifecycle.auto_recharge("acme", low.detail) is None


def test_a_balance_low_no_change_committed_buys_nothing(world: World) -> None:
    # Given auto-recharge at 100 credits and a wallet of 300 that never crossed it
    settle_auto_recharge(world)
    world.buy("300")
    genuine = world.store.published_events()[-1]
    forged = {"customerId": "acme", "balance": "0", "previousBalance": "300", "threshold": "100", "eventId": "x-0"}
    # When a made-up Balance Low arrives, or a genuine event's id carrying another detail, then each is refused
    with pytest.raises(UncommittedEvent):
        world.lifecycle.auto_recharge("acme", forged)
    with pytest.raises(UncommittedEvent):
        world.lifecycle.auto_recharge("acme", {**forged, "eventId": genuine.event_id})
    # And nothing was bought
    assert world.store.of_type(AUTO_RECHARGE_PURCHASED) == []
    assert [c.source for c in world.store.wallets["acme"].cards.values()] == [CardSource.PURCHASE]


def test_recurring_grants_come_once_a_month_and_on_the_last_day_of_a_short_month(world: World) -> None:
    # Given a grant of 1,000 credits on the 31st, expiring after 40 days
    grant = RecurringGrant(Decimal(1000), 31, Money(Decimal(0), USD), timedelta(days=40))
    world.wallets.configure("acme", WalletSettings(recurring=grant))

    # When the daily job runs through February 2026 (28 days) and into March, some days twice
    granted = []
    for day in [date(2026, 2, d) for d in range(20, 29)] + [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 31)]:
        world.clock.at = datetime(day.year, day.month, day.day, 0, 5, tzinfo=UTC)
        for customer in world.lifecycle.recurring_due(day):
            receipt = world.lifecycle.grant_recurring(customer, day)
            if receipt is not None and not receipt.replayed:
                granted.append((day, card_result(receipt)["card"]["expiresAt"]))

    # Then February's grant came on the 28th and March's on the 31st, each once, each with its expiry
    assert granted == [(date(2026, 2, 28), "2026-04-09T00:05:00Z"), (date(2026, 3, 31), "2026-05-10T00:05:00Z")]
    sources = [c.source for c in world.store.wallets["acme"].cards.values()]
    assert sources == [CardSource.RECURRING, CardSource.RECURRING]


def test_grant_days_catch_up_and_cover_days_a_month_lacks() -> None:
    assert grant_days(date(2026, 2, 28)) == [26, 27, 28, 29, 30, 31]
    assert grant_days(date(2026, 3, 1)) == [1, 27, 28, 29, 30, 31]  # February's last days, caught up
    assert grant_days(date(2026, 3, 15)) == [13, 14, 15]
    assert grant_days(date(2028, 2, 29)) == [27, 28, 29, 30, 31]
