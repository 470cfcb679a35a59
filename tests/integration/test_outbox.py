"""Events are published if and only if their change committed, even when a function crashes in between."""

from __future__ import annotations

from typing import Any

import pytest

from prepaid import assembly
from prepaid_local.stack import Stack
from support.aws import BusTap

PRICED = {"credits": "500", "price": {"amount": "5.00", "currency": "USD"}}


class Crash(Exception):
    """A function dying mid-flight (timeout, out of memory, instance lost)."""


def _crash_once() -> Any:
    crashed: list[str] = []

    def crash(function: str, batch: dict[str, Any]) -> None:
        if not crashed:
            crashed.append(function)
            raise Crash(function)

    return crash


def test_crash_after_commit_before_publish_still_publishes_once(stack: Stack, bus: BusTap) -> None:
    # Given a purchase that committed
    assert stack.api("POST", "/wallets/acme/purchases", PRICED).status == 201
    # When the publisher crashes before it publishes
    with pytest.raises(Crash):
        stack.pump_streams(crash=_crash_once())
    assert bus.of_type("Credits Purchased") == []
    # Then the stream delivers the record again and the event is published exactly once (the stream's other
    # consumer, the revenue projection, gets the purchase's ledger entry: two records in all)
    assert stack.pump_streams() == 2
    assert stack.pump_streams() == 0
    published = bus.of_type("Credits Purchased")
    assert len(published) == 1
    assert published[0]["source"] == "prepaid.credits"
    assert published[0]["detail"]["customerId"] == "acme"
    assert published[0]["detail"]["balance"] == "500"


def test_crash_after_publish_before_checkpoint_gives_a_duplicate_with_the_same_id(
    stack: Stack, bus: BusTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a committed purchase, and a publisher that dies right after putting the event on the bus
    assert stack.api("POST", "/wallets/acme/purchases", PRICED).status == 201
    real = assembly.publisher()
    calls: list[str] = []

    class DiesAfterPublishing:
        def publish(self, event: Any) -> None:
            real.publish(event)
            calls.append(event.event_id)
            if len(calls) == 1:
                raise Crash("after publish")

    monkeypatch.setattr(assembly, "publisher", DiesAfterPublishing)
    # When the batch fails and is delivered again
    with pytest.raises(Exception, match="failed"):
        stack.pump_streams()
    stack.pump_streams()
    # Then consumers see the event twice with one stable id to dedupe on
    published = bus.of_type("Credits Purchased")
    assert len(published) == 2
    assert published[0]["detail"]["eventId"] == published[1]["detail"]["eventId"]
    assert published[0]["detail"] == published[1]["detail"]


def test_api_crash_after_commit_loses_no_event_and_a_retry_buys_once(
    stack: Stack, bus: BusTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an API function that dies right after its transaction committed
    store = assembly.wallet_service()._store
    commit = store.commit
    died: list[bool] = []

    def commit_then_die(change: Any) -> None:
        commit(change)
        if not died:
            died.append(True)
            raise Crash("after commit")

    monkeypatch.setattr(store, "commit", commit_then_die)
    # When the client buys, gets an error, and retries with the same idempotency key
    first = stack.api("POST", "/wallets/acme/purchases", PRICED, {"Idempotency-Key": "order-1"})
    retry = stack.api("POST", "/wallets/acme/purchases", PRICED, {"Idempotency-Key": "order-1"})
    # Then the first answer is a 500, the retry replays the committed purchase, and one card exists
    assert first.status == 500
    assert retry.status == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(stack.api("GET", "/wallets/acme").body["cards"]) == 1
    # And the committed purchase's event is published once
    stack.pump_streams()
    assert len(bus.of_type("Credits Purchased")) == 1


def test_a_refused_change_publishes_nothing(stack: Stack, bus: BusTap) -> None:
    # Given a wallet with a card
    card = stack.api("POST", "/wallets/acme/purchases", PRICED).body["card"]["cardId"]
    stack.pump_streams()
    seen = len(bus.drain())
    # When a void is refused (unknown card) and a void succeeds
    assert stack.api("POST", "/wallets/acme/cards/nope/void").status == 404
    assert stack.api("POST", f"/wallets/acme/cards/{card}/void").status == 200
    stack.pump_streams()
    # Then only the committed void is reported (it also empties the wallet)
    assert [e["detail-type"] for e in bus.drain()[seen:]] == ["Credits Voided", "Balance Depleted"]
