"""GET /wallets/{customerId}/cards (every card, retired ones included, newest first) and GET /wallets (every wallet,
in customer id order), through the HTTP API: order, filters, pages, cursors, unknown wallets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
import pytest

from prepaid.adapters import items
from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid_local.stack import Stack
from support.aws import REGION
from support.usage import PRICE, RATE_CARD, Queues, usage_event


def buy(stack: Stack, customer: str, credits: str, **extra: Any) -> str:
    answer = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": PRICE, **extra})
    assert answer.status == 201, answer.body
    card_id: str = answer.body["card"]["cardId"]
    return card_id


def every_page(stack: Stack, path: str, key: str, query: str = "", limit: int | None = None) -> list[list[Any]]:
    """Every page of a listing, following nextCursor."""
    found: list[list[Any]] = []
    cursor = None
    while True:
        parts = (query, f"limit={limit}" if limit else "", f"cursor={cursor}" if cursor else "")
        answer = stack.api("GET", path, query="&".join(p for p in parts if p))
        assert answer.status == 200, answer.body
        found.append(answer.body[key])
        cursor = answer.body["nextCursor"]
        if cursor is None:
            return found


def test_every_card_is_listed_newest_first_retired_ones_included(timed_stack: Stack) -> None:
    stack = timed_stack
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given seven cards bought a second apart: one used up (drawn first, by its priority), one voided, one expired
    # (the job has run), four live
    bought = []
    terms: list[tuple[str, dict[str, Any]]] = [("10", {"priority": 10}), ("20", {"expiresIn": "PT1H"})]
    for credits, extra in [*terms, ("30", {}), ("40", {}), ("50", {})]:
        bought.append(buy(stack, "acme", credits, **extra))
        stack.advance(1)
    assert stack.api("POST", f"/wallets/acme/cards/{bought[2]}/void").status == 200
    Queues(stack).send_usage({"events": [usage_event("u-1", "acme", "20")]})  # 10 credits: the first card
    stack.pump()
    stack.advance(2 * 3600)
    stack.pump()  # the expiry job retires the second card
    bought += [
        buy(stack, "acme", "60", metadata={"deal": "Q4"}),
        buy(stack, "acme", "70", payment={"collect": "manual"}),
    ]

    # When the cards are read three at a time
    pages = every_page(stack, "/wallets/acme/cards", "cards", limit=3)

    # Then there are three pages, newest first, each card once, retired ones with the status they ended with
    assert [len(p) for p in pages] == [3, 3, 1]
    cards = [c for p in pages for c in p]
    assert [c["cardId"] for c in cards] == bought[::-1]
    assert [c["status"] for c in cards] == ["pending", "active", "active", "active", "voided", "expired", "depleted"]
    assert [c["remaining"] for c in cards] == ["70", "60", "50", "40", "0", "0", "0"]
    # And each card has the wallet read's shape
    wallet = stack.api("GET", "/wallets/acme").body
    live = {c["cardId"]: c for c in wallet["cards"]}
    assert [c for c in cards if c["cardId"] in live] == [live[c["cardId"]] for c in cards if c["cardId"] in live]
    assert cards[1]["metadata"] == {"deal": "Q4"}  # kept apart from the wallet item, shown as the wallet read does
    assert wallet["totals"]["credits"] == str(sum(int(c["credits"]) for c in cards))


def test_a_status_filter_shows_cards_as_the_api_shows_them(timed_stack: Stack) -> None:
    stack = timed_stack
    # Given a card past its expiry that the expiry job has not retired yet, a voided card and a live one
    lapsing = buy(stack, "acme", "10", expiresIn="PT1H")
    voided = buy(stack, "acme", "20")
    live = buy(stack, "acme", "30")
    assert stack.api("POST", f"/wallets/acme/cards/{voided}/void").status == 200
    stack.advance(2 * 3600)

    # When the cards are listed by status
    def listed(status: str) -> list[str]:
        return [c["cardId"] for p in every_page(stack, "/wallets/acme/cards", "cards", f"status={status}") for c in p]

    # Then the lapsed card is expired already (as the balance treats it), and each filter holds only its own
    assert listed("expired") == [lapsing]
    assert listed("voided") == [voided]
    assert listed("active") == [live]
    assert listed("depleted") == listed("pending") == []


def test_more_cards_than_a_page_come_in_pages_of_fifty_by_default(timed_stack: Stack) -> None:
    stack = timed_stack
    # Given 60 live cards (more than the wallet item holds: most of them wait on card pages) and 2 voided ones
    bought = []
    for n in range(62):
        bought.append(buy(stack, "acme", str(n + 1)))
        stack.advance(1)
    for card_id in bought[:2]:
        assert stack.api("POST", f"/wallets/acme/cards/{card_id}/void").status == 200

    # When they are read with the default page size
    pages = every_page(stack, "/wallets/acme/cards", "cards")

    # Then the first page holds 50, the second the other 12, newest first, each once
    assert [len(p) for p in pages] == [50, 12]
    assert [c["cardId"] for p in pages for c in p] == bought[::-1]
    assert [c["status"] for c in pages[1][-2:]] == ["voided", "voided"]


def test_pages_stay_stable_while_cards_are_bought(timed_stack: Stack) -> None:
    stack = timed_stack
    # Given a client half-way through acme's cards
    first_bought = []
    for credits in ("1", "2", "3", "4"):
        first_bought.append(buy(stack, "acme", credits))
        stack.advance(1)
    first = stack.api("GET", "/wallets/acme/cards", query="limit=2").body
    assert [c["credits"] for c in first["cards"]] == ["4", "3"]

    # When a card is bought before the client reads on
    buy(stack, "acme", "5")
    rest = stack.api("GET", "/wallets/acme/cards", query=f"limit=2&cursor={first['nextCursor']}").body

    # Then the next page goes on where the first stopped; the new card is on a fresh first page
    assert ([c["credits"] for c in rest["cards"]], rest["nextCursor"]) == (["2", "1"], None)
    assert stack.api("GET", "/wallets/acme/cards", query="limit=1").body["cards"][0]["credits"] == "5"


class Crash(BaseException):
    """The purchase function dying between its wallet put and the items that change still owes (a BaseException:
    the handler's own error handling must not answer for it, as a process that dies answers nothing)."""


def test_a_card_retired_by_a_change_whose_items_are_not_written_yet_is_listed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a void whose wallet put committed, and whose retired card item was never written (a crash right after)
    kept, voided = buy(stack, "acme", "1"), buy(stack, "acme", "2")
    put_all = DynamoWalletStore._put_all

    def crash_on_retired_cards(store: DynamoWalletStore, puts: Sequence[items.Item]) -> None:
        if any(i.get("itemType") == "card" for i in puts):
            raise Crash()
        put_all(store, puts)

    monkeypatch.setattr(DynamoWalletStore, "_put_all", crash_on_retired_cards)
    with pytest.raises(Crash):
        stack.api("POST", f"/wallets/acme/cards/{voided}/void")
    monkeypatch.undo()
    assert (
        DynamoWalletStore(boto3.client("dynamodb", region_name=REGION), stack.name("WalletTable")).retired_card(
            "acme", voided
        )
        is None
    )

    # When the cards are listed, before and after the next change writes what the void owes
    before = stack.api("GET", "/wallets/acme/cards").body["cards"]
    buy(stack, "acme", "3")
    after = stack.api("GET", "/wallets/acme/cards").body["cards"]

    # Then the voided card is listed, once, as voided, both times
    assert [(c["cardId"], c["status"]) for c in before] == [(voided, "voided"), (kept, "active")]
    assert [(c["cardId"], c["status"]) for c in after][1:] == [(voided, "voided"), (kept, "active")]


def test_bad_card_queries_and_unknown_wallets(stack: Stack) -> None:
    for credits in ("1", "2"):
        buy(stack, "acme", credits)
    buy(stack, "globex", "3")
    cursor = stack.api("GET", "/wallets/acme/cards", query="limit=1").body["nextCursor"]
    assert cursor
    body, mac = cursor.split(".")
    altered = ("A" if body[0] != "A" else "B") + body[1:] + "." + mac

    # When the query is malformed, the cursor altered or handed out for another query, or the wallet unknown
    answers = {
        "limit 0": stack.api("GET", "/wallets/acme/cards", query="limit=0"),
        "limit 201": stack.api("GET", "/wallets/acme/cards", query="limit=201"),
        "status": stack.api("GET", "/wallets/acme/cards", query="status=gone"),
        "altered": stack.api("GET", "/wallets/acme/cards", query=f"cursor={altered}"),
        "not a cursor": stack.api("GET", "/wallets/acme/cards", query="cursor=not-a-cursor"),
        "other wallet": stack.api("GET", "/wallets/globex/cards", query=f"cursor={cursor}"),
        "other status": stack.api("GET", "/wallets/acme/cards", query=f"status=voided&cursor={cursor}"),
        "wallet list": stack.api("GET", "/wallets", query=f"cursor={cursor}"),
        "unknown": stack.api("GET", "/wallets/nobody/cards"),
    }

    # Then each gets its own status and code, and the untouched cursor still works
    assert {k: (a.status, a.body["error"]["code"]) for k, a in answers.items()} == {
        "limit 0": (422, "validation_error"),
        "limit 201": (422, "validation_error"),
        "status": (422, "validation_error"),
        "altered": (400, "invalid_cursor"),
        "not a cursor": (400, "invalid_cursor"),
        "other wallet": (400, "invalid_cursor"),
        "other status": (400, "invalid_cursor"),
        "wallet list": (400, "invalid_cursor"),
        "unknown": (404, "wallet_not_found"),
    }
    assert stack.api("GET", "/wallets/acme/cards", query=f"limit=1&cursor={cursor}").body["cards"][0]["credits"] == "1"


def test_wallets_are_listed_in_customer_id_order_a_page_at_a_time(stack: Stack) -> None:
    # Given five wallets; one with a voided card, one with usage past its balance (overage)
    for customer, credits in [("delta", "4"), ("alpha", "1"), ("echo", "5"), ("charlie", "3"), ("bravo", "2")]:
        buy(stack, customer, credits)
    voided = buy(stack, "bravo", "7")
    assert stack.api("POST", f"/wallets/bravo/cards/{voided}/void").status == 200
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    Queues(stack).send_usage({"events": [usage_event("u-1", "charlie", "10")]})  # 5 credits against 3
    stack.pump()

    # When the wallets are read two at a time
    pages = every_page(stack, "/wallets", "wallets", limit=2)

    # Then they come in customer id order, three pages, with their balances, overage and card counts
    assert [len(p) for p in pages] == [2, 2, 1]
    wallets = {w["customerId"]: w for p in pages for w in p}
    assert list(wallets) == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert {c: (w["balance"], w["overage"], w["liveCards"], w["retiredCards"]) for c, w in wallets.items()} == {
        "alpha": ("1", "0", 1, 0),
        "bravo": ("2", "0", 1, 1),
        "charlie": ("0", "2", 0, 1),
        "delta": ("4", "0", 1, 0),
        "echo": ("5", "0", 1, 0),
    }
    assert wallets["charlie"]["version"] == stack.api("GET", "/wallets/charlie").body["version"]


def test_the_wallet_index_holds_one_entry_per_wallet_whatever_its_changes(stack: Stack) -> None:
    # Given two wallets, one changed many times (purchases, usage, a void)
    buy(stack, "acme", "100")
    buy(stack, "globex", "1")
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    for n in range(5):
        Queues(stack).send_usage({"events": [usage_event(f"u-{n}", "acme", "2")]})
        stack.pump()
    assert stack.api("POST", f"/wallets/acme/cards/{buy(stack, 'acme', '5')}/void").status == 200

    # When the index is read
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = stack.name("WalletTable")
    keys = dynamodb.scan(TableName=table, IndexName=items.WALLET_INDEX)["Items"]

    # Then it holds each wallet once, by the key every version of it carries
    assert sorted(k["PK"]["S"] for k in keys) == ["W#acme", "W#globex"]
    assert {k[items.WALLET_LIST_KEY]["S"] for k in keys} == {items.WALLET_LIST}


def test_an_empty_deployment_lists_no_wallets(stack: Stack) -> None:
    answer = stack.api("GET", "/wallets")
    assert (answer.status, answer.body["wallets"], answer.body["nextCursor"]) == (200, [], None)


def test_the_openapi_document_describes_both_listings(stack: Stack) -> None:
    document = stack.api("GET", "/openapi.json").body
    cards, wallets = document["paths"]["/wallets/{customerId}/cards"]["get"], document["paths"]["/wallets"]["get"]
    assert [p["name"] for p in cards["parameters"]] == ["customerId", "status", "limit", "cursor"]
    assert [p["name"] for p in wallets["parameters"]] == ["limit", "cursor"]
    answers = [op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] for op in (cards, wallets)]
    assert answers == ["#/components/schemas/CardListOut", "#/components/schemas/WalletListOut"]
