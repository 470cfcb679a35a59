"""A wallet's live cards beyond the few a change is likely to touch wait on immutable card pages: a drawdown writes
the same small wallet item at 5 live cards or 500, and what any reader rebuilds is exactly the wallet the domain
decided, whatever moved between the wallet item and its pages."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prepaid.adapters import items
from prepaid.adapters.dynamodb import DynamoWalletStore, item_bytes
from prepaid.application.drawdown import DrawdownService
from prepaid.application.retry import RetryPolicy
from prepaid.application.wallets import PurchaseRequest, WalletService
from prepaid.domain.errors import CardNotVoidable
from prepaid.domain.money import Money
from prepaid.domain.wallet import RatedUsage
from prepaid_local.stack import Stack
from support.aws import REGION
from support.memory_store import MemoryCatalog, MemoryStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NO_WAIT = RetryPolicy(sleep=lambda _: None)


def dynamo(stack: Stack) -> DynamoWalletStore:
    return DynamoWalletStore(boto3.client("dynamodb", region_name=REGION), stack.name("WalletTable"), reads_back=True)


def stored(stack: Stack, customer: str) -> dict[str, dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=REGION)
    found = client.query(
        TableName=stack.name("WalletTable"),
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": items.wallet_pk(customer)}},
        ConsistentRead=True,
    )["Items"]
    return {item["SK"]["S"]: items.from_attributes(item) for item in found}


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages a few cards long, so that short histories spill, name several pages and write them anew."""
    monkeypatch.setattr(items, "HEAD_KEEP", 2)
    monkeypatch.setattr(items, "HEAD_LIMIT", 4)
    monkeypatch.setattr(items, "MAX_PAGES", 3)
    monkeypatch.setattr(items, "PAGE_CARDS", 3)


class Twins:
    """The same history through the use cases on the in-memory store (no pages) and on DynamoDB (pages)."""

    def __init__(self, stack: Stack, customer: str) -> None:
        self.stack, self.customer, self.now = stack, customer, T0
        self.memory, self.table = MemoryStore(), dynamo(stack)
        self.services = [self._services(s) for s in (self.memory, self.table)]
        self.events = itertools.count()

    def _services(self, store: Any) -> tuple[WalletService, DrawdownService]:
        ids = (f"{n:032x}" for n in itertools.count())  # the same ids on both sides
        clock: Callable[[], datetime] = lambda: self.now  # noqa: E731
        return (
            WalletService(store, MemoryCatalog(), clock, lambda: next(ids), NO_WAIT),
            DrawdownService(store, clock, lambda: next(ids), NO_WAIT),
        )

    def both(self, act: Callable[[WalletService, DrawdownService], Any]) -> None:
        outcomes = []
        for wallets, drawdown in self.services:
            try:
                outcomes.append(act(wallets, drawdown))
            except CardNotVoidable:
                outcomes.append("not voidable")
        assert outcomes[0] == outcomes[1]

    def agree(self) -> None:
        expected = self.memory.load(self.customer)
        # a reader in a new environment rebuilds it from the wallet item and the pages it names
        assert dynamo(self.stack).load(self.customer) == expected
        assert self.table.load(self.customer) == expected
        # every page named is stored, and no page is left that no wallet names
        found = stored(self.stack, self.customer)
        pages = {sk.removeprefix("P#") for sk in found if sk.startswith("P#")}
        assert set(items.page_ids(found[items.WALLET_SK])) == pages


buys = st.tuples(st.just("buy"), st.integers(0, 9), st.sampled_from([None, 1, 30]))
history = st.lists(
    st.one_of(
        buys,
        buys,
        buys,  # three times as likely: enough live cards to spill onto pages
        st.tuples(st.just("use"), st.integers(1, 40), st.just(None)),
        st.tuples(st.just("void"), st.integers(0, 10**6), st.just(None)),
        st.tuples(st.just("void"), st.integers(0, 10**6), st.just(None)),
        st.tuples(st.just("wait"), st.integers(1, 48), st.just(None)),
    ),
    min_size=12,
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=history)
def test_any_history_reads_back_as_the_wallet_the_domain_decided(
    stack: Stack, small_pages: None, steps: list[tuple[str, int, int | None]]
) -> None:
    # Given the same history of purchases, usage, voids and clock moves on both stores
    twins = Twins(stack, f"pages-{uuid.uuid4().hex[:8]}")
    customer = twins.customer
    for kind, number, days in steps:
        # When each step is applied
        if kind == "buy":
            expires = twins.now + timedelta(days=days) if days else None
            request = PurchaseRequest(Decimal(100), Money(Decimal("1.00"), "USD"), expires_at=expires, priority=number)
            twins.both(lambda w, _: w.purchase(customer, request).balance)  # noqa: B023
        elif kind == "use" and twins.memory.load(customer) is not None:
            usage = [
                RatedUsage(
                    f"{customer}-e{next(twins.events)}", "api_calls", Decimal(number), Decimal(number), twins.now
                )
            ]
            twins.both(lambda _, d: d.apply(customer, usage).drawn)  # noqa: B023
        elif kind == "void" and (wallet := twins.memory.load(customer)) and wallet.cards:
            card_id = sorted(wallet.cards)[number % len(wallet.cards)]
            twins.both(lambda w, _: w.void(customer, card_id).balance)  # noqa: B023
        elif kind == "wait":
            twins.now += timedelta(hours=number)
        # Then every reader rebuilds exactly the wallet the domain decided, and the pages are as the wallet says
        if twins.memory.load(customer) is not None:
            twins.agree()


def test_cards_that_leave_or_change_on_a_page_read_back_as_they_are_now(stack: Stack, small_pages: None) -> None:
    twins = Twins(stack, "moves")

    def buy(priority: int) -> None:
        request = PurchaseRequest(Decimal(100), Money(Decimal("1.00"), "USD"), priority=priority)
        twins.both(lambda w, _: w.purchase("moves", request).balance)

    def card_of(priority: int) -> str:
        wallet = twins.memory.load("moves")
        assert wallet is not None
        return next(c.card_id for c in wallet.cards.values() if c.priority == priority)

    # Given six cards, of which all but the first two and the latest in drawdown order were moved to a page
    for priority in range(10, 16):
        buy(priority)
    twins.agree()
    paged = {c["cardId"] for c in items.unpacked(stored(stack, "moves")[items.WALLET_SK]["cards"])}
    assert paged == {card_of(10), card_of(11), card_of(15)}
    # When a card on the page is voided
    voided = card_of(13)
    twins.both(lambda w, _: w.void("moves", voided).balance)
    # Then it is gone for every reader
    twins.agree()
    # When usage empties the first two cards and draws from one on the page, and three cards that come first in
    # drawdown order are bought, so the drawn one moves to a second page (the first still holds its old copy)
    usage = [RatedUsage("moves-e1", "api_calls", Decimal(250), Decimal(250), twins.now)]
    twins.both(lambda _, d: d.apply("moves", usage).drawn)
    drawn = card_of(12)
    for priority in (1, 2, 3):
        buy(priority)
    # Then the newer copy wins for every reader
    assert len(items.page_ids(stored(stack, "moves")[items.WALLET_SK])) == 2
    twins.agree()
    wallet = dynamo(stack).load("moves")
    assert wallet is not None and wallet.cards[drawn].remaining == 50


@pytest.fixture
def many_cards(stack: Stack) -> Iterator[Callable[[int], tuple[str, DrawdownService, DynamoWalletStore]]]:
    def bought(count: int) -> tuple[str, DrawdownService, DynamoWalletStore]:
        customer, store = f"cards-{count}", dynamo(stack)
        ids = (uuid.uuid4().hex for _ in itertools.count())
        wallets = WalletService(store, MemoryCatalog(), lambda: T0, lambda: next(ids), NO_WAIT)
        for n in range(count):
            wallets.purchase(customer, PurchaseRequest(Decimal(1000), Money(Decimal(10), "USD"), priority=n % 100))
        return customer, DrawdownService(store, lambda: T0, lambda: next(ids), NO_WAIT), store

    yield bought


def test_a_drawdown_writes_a_wallet_item_no_larger_at_500_live_cards_than_at_5(
    stack: Stack, many_cards: Callable[[int], tuple[str, DrawdownService, DynamoWalletStore]]
) -> None:
    sizes = {}
    for count in (5, 500):
        # Given a wallet holding `count` live cards, bought one at a time
        customer, drawdown, _ = many_cards(count)
        # When one event is drawn
        usage = RatedUsage(f"{customer}-e", "api_calls", Decimal(1), Decimal(1), T0)
        assert drawdown.apply(customer, [usage]).drawn == [usage.event_id]
        # Then the wallet item written holds a bounded number of cards
        wallet = stored(stack, customer)[items.WALLET_SK]
        sizes[count] = item_bytes(items.to_attributes(wallet))
        assert len(items.unpacked(wallet["cards"])) <= items.HEAD_LIMIT
        # And a reader in a new environment sees every card
        loaded = dynamo(stack).load(customer)
        assert loaded is not None and len(loaded.cards) == count
    assert sizes[500] <= 2 * 1024, sizes


def test_a_reader_whose_page_was_dropped_meanwhile_reads_the_newer_wallet(
    stack: Stack, small_pages: None, many_cards: Callable[[int], tuple[str, DrawdownService, DynamoWalletStore]]
) -> None:
    # Given a wallet whose cards are on pages, and a reader in a new environment
    customer, _, writer = many_cards(12)
    reader = dynamo(stack)
    old_item = stored(stack, customer)[items.WALLET_SK]
    # When a newer version drops a page the reader's wallet item names, and deletes it, between the reader's read
    # of the wallet item and of its pages
    real_get = reader._get
    served = iter([old_item])

    def racing_get(pk: str, sk: str) -> items.Item | None:
        first = next(served, None)
        if first is not None:
            voids = WalletService(writer, MemoryCatalog(), lambda: T0, lambda: uuid.uuid4().hex, NO_WAIT)
            while set(items.page_ids(first)) & set(items.page_ids(stored(stack, customer)[items.WALLET_SK])):
                wallet = writer.load(customer)  # voids until the pages are written anew, the old ones dropped
                assert wallet is not None and wallet.cards
                voids.void(customer, sorted(wallet.cards)[0])
            return first
        return real_get(pk, sk)

    reader._get = racing_get  # type: ignore[method-assign]
    # Then the reader reads the wallet again and rebuilds the newer version
    loaded = reader.load(customer)
    assert loaded == dynamo(stack).load(customer)
    assert loaded is not None and loaded.version > int(old_item["version"])
