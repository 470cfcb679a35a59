"""GET /wallets/{customerId}/ledger: newest first, filters, signed cursors, stable while entries are written."""

from __future__ import annotations

from typing import Any

from prepaid_local.stack import Stack
from support.usage import PRICE, RATE_CARD, Queues, usage_event

BOUGHT = 6


def buy(stack: Stack, customer: str, credits: str) -> dict[str, Any]:
    answer = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": PRICE})
    assert answer.status == 201, answer.body
    card: dict[str, Any] = answer.body["card"]
    return card


def pages(stack: Stack, customer: str, query: str = "", limit: int = 2) -> list[list[dict[str, Any]]]:
    """Every page of a query, following nextCursor."""
    found: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        q = "&".join(p for p in (query, f"limit={limit}", f"cursor={cursor}" if cursor else "") if p)
        answer = stack.api("GET", f"/wallets/{customer}/ledger", query=q)
        assert answer.status == 200, answer.body
        found.append(answer.body["entries"])
        cursor = answer.body["nextCursor"]
        if cursor is None:
            return found


def test_entries_come_newest_first_in_pages_that_end_with_a_null_cursor(stack: Stack) -> None:
    # Given six purchases and a void
    cards = [buy(stack, "acme", str(10 * (i + 1))) for i in range(BOUGHT)]
    assert stack.api("POST", f"/wallets/acme/cards/{cards[0]['cardId']}/void").status == 200

    # When the ledger is read two entries at a time
    read = pages(stack, "acme")

    # Then there are four pages (7 entries), the last one short, newest first
    assert [len(p) for p in read] == [2, 2, 2, 1]
    entries = [e for p in read for e in p]
    assert [e["type"] for e in entries] == ["void"] + ["purchase"] * BOUGHT
    assert [e["credits"] for e in entries] == ["10", "60", "50", "40", "30", "20", "10"]
    assert [e["balanceAfter"] for e in entries] == ["200", "210", "150", "100", "60", "30", "10"]
    assert len({e["entryId"] for e in entries}) == len(entries)
    assert entries[0]["cardId"] == cards[0]["cardId"]
    assert entries[1]["value"] == PRICE


def test_filters_by_type_and_time(stack: Stack) -> None:
    # Given purchases, then usage drawn from them
    buy(stack, "acme", "100")
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    Queues(stack).send_usage({"events": [usage_event(f"u-{i}", "acme", "2") for i in range(3)]})
    stack.pump_queues()
    everything = [e for p in pages(stack, "acme", limit=100) for e in p]
    usage = [e for e in everything if e["type"] == "usage"]
    assert len(usage) == 1 and usage[0]["events"] == 3 and usage[0]["credits"] == "3"

    # When filtered by type, and by a window that starts at the usage entry
    by_type = [e for p in pages(stack, "acme", "type=usage") for e in p]
    since = [e for p in pages(stack, "acme", f"from={usage[0]['at']}") for e in p]
    before = [e for p in pages(stack, "acme", f"to={usage[0]['at']}") for e in p]

    # Then each holds exactly the entries it asks for
    assert by_type == usage
    assert since == [e for e in everything if e["at"] >= usage[0]["at"]]
    assert all(e["type"] == "purchase" for e in before) and before


def test_a_tampered_or_foreign_cursor_is_refused(stack: Stack) -> None:
    # Given a cursor handed out for acme's purchases
    for credits in ("1", "2", "3"):
        buy(stack, "acme", credits)
    buy(stack, "globex", "5")
    buy(stack, "globex", "6")
    cursor = stack.api("GET", "/wallets/acme/ledger", query="limit=1").body["nextCursor"]
    assert cursor

    # When it is altered, used for another wallet, or used with other filters
    body, mac = cursor.split(".")
    altered = ("A" if body[0] != "A" else "B") + body[1:] + "." + mac
    answers = [
        stack.api("GET", "/wallets/acme/ledger", query=f"limit=1&cursor={altered}"),
        stack.api("GET", "/wallets/globex/ledger", query=f"limit=1&cursor={cursor}"),
        stack.api("GET", "/wallets/acme/ledger", query=f"limit=1&type=void&cursor={cursor}"),
        stack.api("GET", "/wallets/acme/ledger", query="limit=1&cursor=not-a-cursor"),
    ]

    # Then each is a 400 invalid_cursor, and the untouched cursor still works
    assert [(a.status, a.body["error"]["code"]) for a in answers] == [(400, "invalid_cursor")] * 4
    assert (
        stack.api("GET", "/wallets/acme/ledger", query=f"limit=1&cursor={cursor}").body["entries"][0]["credits"] == "2"
    )


def test_pages_stay_stable_while_new_entries_are_written(stack: Stack) -> None:
    # Given a client half-way through acme's ledger
    for credits in ("1", "2", "3", "4"):
        buy(stack, "acme", credits)
    first = stack.api("GET", "/wallets/acme/ledger", query="limit=2").body
    assert [e["credits"] for e in first["entries"]] == ["4", "3"]

    # When two purchases are written before the client reads on
    buy(stack, "acme", "5")
    buy(stack, "acme", "6")
    rest = stack.api("GET", "/wallets/acme/ledger", query=f"limit=2&cursor={first['nextCursor']}").body

    # Then the next page continues where the first stopped, and a fresh read starts with the new entries
    assert [e["credits"] for e in rest["entries"]] == ["2", "1"]
    assert rest["nextCursor"] is None
    fresh = stack.api("GET", "/wallets/acme/ledger", query="limit=2").body
    assert [e["credits"] for e in fresh["entries"]] == ["6", "5"]


def test_bad_queries_and_unknown_wallets(stack: Stack) -> None:
    buy(stack, "acme", "1")
    # When the query is malformed, or the wallet does not exist
    answers = {
        "limit": stack.api("GET", "/wallets/acme/ledger", query="limit=0"),
        "type": stack.api("GET", "/wallets/acme/ledger", query="type=cash"),
        "from": stack.api("GET", "/wallets/acme/ledger", query="from=yesterday"),
        "window": stack.api("GET", "/wallets/acme/ledger", query="from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
        "unknown": stack.api("GET", "/wallets/nobody/ledger"),
    }
    # Then each gets its own status and code
    assert {k: (a.status, a.body["error"]["code"]) for k, a in answers.items()} == {
        "limit": (422, "validation_error"),
        "type": (422, "validation_error"),
        "from": (422, "validation_error"),
        "window": (422, "invalid_request"),
        "unknown": (404, "wallet_not_found"),
    }
