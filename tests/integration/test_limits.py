"""Nothing grows without a bound a caller can hit: live cards per wallet, and what one ledger page may read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from prepaid.adapters.dynamodb import DynamoWalletStore, item_bytes
from prepaid.adapters.items import ledger_item, to_attributes, wallet_item
from prepaid.application.changes import change_of
from prepaid.application.ledger import MAX_READ_PER_PAGE
from prepaid.domain.card import Card, CardSource
from prepaid.domain.ledger import EntryType, LedgerEntry
from prepaid.domain.money import Money
from prepaid.domain.rules import MAX_LIVE_CARDS
from prepaid.domain.wallet import Outcome, Wallet
from prepaid_local.stack import Stack
from support.aws import REGION, on_every_call
from support.usage import PRICE, Table

DYNAMODB_ITEM_LIMIT = 400 * 1024


def full_wallet(customer: str, cards: int) -> Wallet:
    """A wallet holding `cards` live cards, each as large as the contract lets a card be."""
    now = datetime.now(UTC)
    issued = {}
    for n in range(cards):
        card = Card.issue(
            card_id=f"{n:032x}",
            credits=Decimal("999999999999.999999999"),
            price=Money(Decimal("999999999999999.99"), "USD"),
            source=CardSource.PROMOTION,
            priority=100,
            effective_at=now - timedelta(days=1),
            expires_at=now + timedelta(days=3650, microseconds=123_000),
            created_at=now,
        )
        issued[card.card_id] = card
    return Wallet(customer_id=customer, created_at=now, cards=issued)


def store(stack: Stack) -> DynamoWalletStore:
    return DynamoWalletStore(boto3.client("dynamodb", region_name=REGION), stack.name("WalletTable"))


def test_a_wallet_at_the_live_card_limit_refuses_one_more_with_409(stack: Stack) -> None:
    # Given a wallet holding the documented maximum of live cards, each as large as a card gets
    wallet = full_wallet("c" * 128, MAX_LIVE_CARDS)
    store(stack).commit(
        change_of(Wallet(wallet.customer_id, wallet.created_at), Outcome(wallet), wallet.created_at, "seed")
    )
    # Then it is an item DynamoDB can store (the limit is what keeps it so)
    assert item_bytes(to_attributes(wallet_item(wallet))) < DYNAMODB_ITEM_LIMIT * 0.9
    before = Table(stack).scan()
    # When one more card is bought
    answer = stack.api("POST", f"/wallets/{wallet.customer_id}/purchases", {"credits": "1", "price": PRICE})
    # Then it is refused with the contract's 409, and nothing was written
    assert answer.status == 409, answer.body
    assert answer.body["error"]["code"] == "too_many_live_cards"
    assert str(MAX_LIVE_CARDS) in answer.body["error"]["message"]
    assert Table(stack).scan() == before
    # When one card is voided, then a card can be bought again
    first = next(iter(wallet.cards))
    assert stack.api("POST", f"/wallets/{wallet.customer_id}/cards/{first}/void").status == 200
    again = stack.api("POST", f"/wallets/{wallet.customer_id}/purchases", {"credits": "1", "price": PRICE})
    assert again.status == 201, again.body


# -- ledger pages ----------------------------------------------------------------------------------------------------

ENTRIES = 700


@pytest.fixture
def long_ledger(stack: Stack) -> str:
    """A wallet with 700 purchase entries in its ledger (written straight to the table: 700 purchases through the
    API would take a minute), newest at the top."""
    customer = "ledgered"
    client = boto3.client("dynamodb", region_name=REGION)
    table = stack.name("WalletTable")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    wallet = Wallet(customer_id=customer, created_at=start, version=ENTRIES)
    puts: list[Any] = [{"PutRequest": {"Item": to_attributes(wallet_item(wallet))}}]
    for n in range(ENTRIES):
        entry = LedgerEntry(EntryType.PURCHASE, Decimal(1), start + timedelta(minutes=n), Decimal(n + 1))
        puts.append({"PutRequest": {"Item": to_attributes(ledger_item(customer, n + 1, f"c{n}", 0, entry))}})
    for i in range(0, len(puts), 25):
        client.batch_write_item(RequestItems={table: puts[i : i + 25]})
    return customer


@pytest.fixture
def items_read() -> Iterator[list[int]]:
    """How many items each DynamoDB Query the functions make reads (its ScannedCount), in order."""
    counts: list[int] = []

    def count(parsed: dict[str, Any], **_: Any) -> None:
        counts.append(int(parsed.get("ScannedCount", 0)))

    with on_every_call("after-call.dynamodb.Query", count):
        yield counts


def test_a_page_of_one_reads_no_more_than_it_needs(stack: Stack, long_ledger: str, items_read: list[int]) -> None:
    # When the newest entry is asked for
    stack.cold_start()  # clients built after the hook, so their calls are counted
    answer = stack.api("GET", f"/wallets/{long_ledger}/ledger", query="limit=1")
    # Then it is the newest, with a cursor, and reading it took a handful of items, not 700
    assert answer.status == 200, answer.body
    assert [e["balanceAfter"] for e in answer.body["entries"]] == [str(ENTRIES)]
    assert answer.body["nextCursor"] is not None
    assert 0 < sum(items_read) <= 3


@pytest.mark.parametrize(
    "query", ["type=void", "to=2025-01-01T00:00:00Z", "from=2027-01-01T00:00:00Z"], ids=["type", "to", "from"]
)
def test_a_filter_that_matches_nothing_reads_a_bounded_page(
    stack: Stack, long_ledger: str, items_read: list[int], query: str
) -> None:
    # When the ledger is filtered for entries none of the 700 is
    stack.cold_start()
    answer = stack.api("GET", f"/wallets/{long_ledger}/ledger", query=f"{query}&limit=10")
    # Then the page is empty and says where to go on, and it read at most the documented bound
    assert answer.status == 200, answer.body
    assert answer.body["entries"] == []
    assert answer.body["nextCursor"] is not None
    assert sum(items_read) <= MAX_READ_PER_PAGE + 1
    # And following the cursor reaches the end, with nothing found and nothing read twice
    items_read.clear()
    pages = 1
    while answer.body["nextCursor"]:
        answer = stack.api(
            "GET", f"/wallets/{long_ledger}/ledger", query=f"{query}&limit=10&cursor={answer.body['nextCursor']}"
        )
        assert (answer.status, answer.body["entries"]) == (200, [])
        pages += 1
    assert pages == 2
    assert sum(items_read) <= ENTRIES - MAX_READ_PER_PAGE + 2
