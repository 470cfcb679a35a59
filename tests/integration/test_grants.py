"""Grants that fit real contracts, through the HTTP API: meter-scoped cards, metadata and references, adjustments,
card changes and authorize."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from prepaid_local.apigateway import Gateway
from prepaid_local.stack import Stack
from support.aws import REGION, BusTap
from support.environments import Environment, moto_server, run_environments
from support.usage import usage_event

RATE_CARD = {"meters": {"api_calls": {"creditsPerUnit": "1"}, "gpu_seconds": {"creditsPerUnit": "2"}}}
PRICE = {"amount": "10.00", "currency": "USD"}


def _buy(stack: Stack, customer: str, credits: str, **terms: Any) -> dict[str, Any]:
    answer = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": PRICE, **terms})
    assert answer.status == 201, answer.body
    card: dict[str, Any] = answer.body["card"]
    return card


def _use(stack: Stack, *events: dict[str, Any]) -> None:
    answer = stack.api("POST", "/usage", {"events": list(events)})
    assert answer.status == 202 and not answer.body["rejected"], answer.body
    stack.pump_queues()


def test_a_scoped_card_pays_only_for_its_meters_and_the_read_shows_each_meters_credits(stack: Stack) -> None:
    # Given a card for GPU seconds only (priority 10: first in order) and an unscoped card
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    gpu = _buy(stack, "acme", "100", appliesTo={"meters": ["gpu_seconds"]}, priority=10)
    anything = _buy(stack, "acme", "50")
    assert gpu["appliesTo"] == {"meters": ["gpu_seconds"]} and anything["appliesTo"] is None
    # When 30 API calls and 20 GPU seconds (40 credits) are used
    _use(stack, usage_event("api-1", quantity="30"), usage_event("gpu-1", quantity="20", meter="gpu_seconds"))
    # Then the API calls drew only the unscoped card, the GPU seconds the scoped card first
    wallet = stack.api("GET", "/wallets/acme").body
    remaining = {c["cardId"]: c["remaining"] for c in wallet["cards"]}
    assert remaining == {gpu["cardId"]: "60", anything["cardId"]: "20"}
    assert wallet["availableByMeter"] == {"gpu_seconds": "80", "*": "20"}
    # And usage past what a meter's cards hold becomes overage, though another meter's card still has credits
    _use(stack, usage_event("api-2", quantity="25"))
    wallet = stack.api("GET", "/wallets/acme").body
    assert (wallet["balance"], wallet["overage"]) == ("60", "5")
    # And a new GPU-only card does not pay the API calls' overage; an unscoped one does
    _buy(stack, "acme", "10", appliesTo={"meters": ["gpu_seconds"]})
    assert stack.api("GET", "/wallets/acme").body["overage"] == "5"
    _buy(stack, "acme", "10")
    wallet = stack.api("GET", "/wallets/acme").body
    assert (wallet["overage"], wallet["totals"]["rated"], wallet["totals"]["drawn"]) == ("0", "95", "95")


def test_metadata_and_reference_are_on_the_card_its_ledger_entry_and_its_event(stack: Stack, bus: BusTap) -> None:
    # Given a purchase carrying the SaaS's invoice id and its own pairs
    terms = {"reference": "INV-2026-0042", "metadata": {"contract": "C-7", "region": "eu"}}
    card = _buy(stack, "acme", "100", **terms)
    # Then the answer, the wallet read, the ledger and the Credits Purchased event all carry them
    assert (card["reference"], card["metadata"]) == ("INV-2026-0042", {"contract": "C-7", "region": "eu"})
    read = stack.api("GET", "/wallets/acme").body["cards"][0]
    assert (read["reference"], read["metadata"]) == (card["reference"], card["metadata"])
    entry = stack.api("GET", "/wallets/acme/ledger", query="type=purchase").body["entries"][0]
    assert (entry["reference"], entry["metadata"]) == (card["reference"], card["metadata"])
    stack.pump_streams()
    purchased = [e for e in bus.drain() if e["detail-type"] == "Credits Purchased"]
    assert purchased[0]["detail"]["card"]["metadata"] == {"contract": "C-7", "region": "eu"}
    # And a void carries its own
    void = {"reason": "contract_ended", "reference": "CN-9", "metadata": {"ticket": "T-1"}}
    assert stack.api("POST", f"/wallets/acme/cards/{card['cardId']}/void", void).status == 200
    voided = stack.api("GET", "/wallets/acme/ledger", query="type=void").body["entries"][0]
    assert (voided["reference"], voided["metadata"]) == ("CN-9", {"ticket": "T-1"})


def test_metadata_past_the_contracts_bounds_is_refused(stack: Stack) -> None:
    too_many = {f"k{i}": "v" for i in range(21)}
    for metadata in (too_many, {"k" * 41: "v"}, {"k": "v" * 501}, {"k": 5}):
        answer = stack.api("POST", "/wallets/acme/purchases", {"credits": "1", "price": PRICE, "metadata": metadata})
        assert answer.status == 422, metadata
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "1", "reference": " x"}).status == 422
    scoped_twice = {"credits": "1", "price": PRICE, "appliesTo": {"meters": ["a", "a"]}}
    assert stack.api("POST", "/wallets/acme/purchases", scoped_twice).status == 422


def test_adjustments_add_a_card_or_take_credits_in_card_order_never_into_overage(stack: Stack, bus: BusTap) -> None:
    # Given two cards: 30 credits first in order, 100 after
    first = _buy(stack, "acme", "30", priority=1)
    second = _buy(stack, "acme", "100")
    # When 40 credits are taken with a reason and a key
    take = {"credits": "-40", "reason": "double-billed in October", "metadata": {"ticket": "T-9"}}
    taken = stack.api("POST", "/wallets/acme/adjustments", take, {"Idempotency-Key": "adj-1"})
    # Then the first card gave all it had, the second the rest, and the entry says so
    assert taken.status == 201, taken.body
    assert taken.body["card"] is None and taken.body["balance"] == "90"
    draws = {d["cardId"]: d["credits"] for d in taken.body["adjustment"]["draws"]}
    assert draws == {first["cardId"]: "30", second["cardId"]: "10"}
    # And the same request again changes nothing and answers the same
    again = stack.api("POST", "/wallets/acme/adjustments", take, {"Idempotency-Key": "adj-1"})
    assert (again.status, again.body, again.headers["Idempotent-Replayed"]) == (201, taken.body, "true")
    # When more than the balance is taken: 409, nothing changes
    refused = stack.api("POST", "/wallets/acme/adjustments", {"credits": "-91", "reason": "typo"})
    assert refused.status == 409 and refused.body["error"]["code"] == "insufficient_credits"
    # When 25 are added with an expiry
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    added = stack.api("POST", "/wallets/acme/adjustments", {"credits": "+25", "reason": "goodwill", "expiresAt": later})
    assert added.status == 201, added.body
    assert added.body["card"]["source"] == "adjustment" and added.body["card"]["price"]["amount"] == "0.00"
    # Then the balance and conservation agree: taken credits count as voided
    wallet = stack.api("GET", "/wallets/acme").body
    assert wallet["balance"] == "115"
    totals = wallet["totals"]
    assert (totals["credits"], totals["voided"], totals["drawn"]) == ("155", "40", "0")
    entries = stack.api("GET", "/wallets/acme/ledger", query="type=adjustment").body["entries"]
    assert [(e["credits"], e["reason"]) for e in entries] == [("25", "goodwill"), ("40", "double-billed in October")]
    stack.pump_streams()
    adjusted = [e["detail"] for e in bus.drain() if e["detail-type"] == "Credits Adjusted"]
    assert sorted(d["credits"] for d in adjusted) == ["-40", "25"]
    # And the expiry function took both (the added card's expiry scheduled, the taking has nothing to schedule):
    # nothing went to its dead-letter queue
    stack.pump()
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=stack.name("LifecycleDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    # And revenue counts the taken credits' value as voided (30 at 10.00 for 30, 10 at 10.00 for 100), nothing
    # recognised; the added card cost nothing
    today = datetime.now(UTC).date()
    query = f"from={today.isoformat()}&to={(today + timedelta(days=1)).isoformat()}"
    (usd,) = stack.api("GET", "/reports/revenue", query=query).body["currencies"]
    assert (usd["purchased"], usd["recognised"], usd["voided"], usd["deferred"]) == ("20", "0", "11", "9")


def test_bad_adjustments_are_refused(stack: Stack) -> None:
    _buy(stack, "acme", "10")
    for body in (
        {"credits": "0", "reason": "x"},
        {"credits": "5"},
        {"credits": "++5", "reason": "x"},
        {"credits": "-5", "reason": "x", "expiresIn": "P1D"},
        {"credits": "5", "reason": "x", "meter": "api_calls"},
        {"credits": "5", "reason": "\u0000"},
    ):
        assert stack.api("POST", "/wallets/acme/adjustments", body).status in (400, 422), body
    assert stack.api("POST", "/wallets/nobody/adjustments", {"credits": "-5", "reason": "x"}).status == 404


def test_a_card_change_moves_its_expiry_and_priority_with_an_entry(stack: Stack) -> None:
    # Given a card expiring in 10 days
    soon = datetime.now(UTC) + timedelta(days=10)
    card = _buy(stack, "acme", "100", expiresAt=soon.isoformat())
    path = f"/wallets/acme/cards/{card['cardId']}"
    # When its expiry moves out by 20 days and its priority to 5
    later = (soon + timedelta(days=20)).isoformat().replace("+00:00", "Z")
    changed = stack.api("PATCH", path, {"expiresAt": later, "priority": 5, "reason": "renewal", "metadata": {"a": "b"}})
    # Then the card shows the new terms and the ledger the old and the new
    assert changed.status == 200, changed.body
    assert changed.body["card"]["priority"] == 5
    entry = stack.api("GET", "/wallets/acme/ledger", query="type=expiry_change").body["entries"][0]
    assert entry["terms"]["before"]["priority"] == 50 and entry["terms"]["after"]["priority"] == 5
    assert entry["reason"] == "renewal" and entry["metadata"] == {"a": "b"}
    # And the same change again writes nothing more; removing the expiry is `null`
    stack.api("PATCH", path, {"expiresAt": later, "priority": 5, "reason": "renewal"})
    stack.api("PATCH", path, {"expiresAt": None, "reason": "no expiry after all"})
    entries = stack.api("GET", "/wallets/acme/ledger", query="type=expiry_change").body["entries"]
    assert len(entries) == 2 and stack.api("GET", "/wallets/acme").body["cards"][0]["expiresAt"] is None
    # And bad changes are refused
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert stack.api("PATCH", path, {"expiresAt": past, "reason": "x"}).status == 422
    assert stack.api("PATCH", path, {"reason": "nothing"}).status in (400, 422)
    assert stack.api("PATCH", "/wallets/acme/cards/nope", {"priority": 1, "reason": "x"}).status == 404
    stack.api("POST", f"{path}/void")
    assert stack.api("PATCH", path, {"priority": 1, "reason": "x"}).status == 409


def test_authorize_answers_from_the_rate_card_and_the_wallet_and_the_policy_decides(stack: Stack) -> None:
    # Given 10 credits for GPU seconds (2 credits each)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    _buy(stack, "acme", "10", appliesTo={"meters": ["gpu_seconds"]})
    ask = {"meter": "gpu_seconds", "quantity": "7"}
    # When 7 seconds are asked for under the default policy (allow)
    allowed = stack.api("POST", "/wallets/acme/authorize", ask).body
    assert allowed == {**allowed, "allowed": True, "credits": "14", "balanceAfter": "0", "overageAfter": "4"}
    # Then under `block` the same is refused, and what fits is allowed
    settings = stack.api("GET", "/wallets/acme").body["settings"]
    assert stack.api("PUT", "/wallets/acme/settings", {**settings, "overagePolicy": "block"}).status == 200
    assert stack.api("POST", "/wallets/acme/authorize", ask).body["allowed"] is False
    assert stack.api("POST", "/wallets/acme/authorize", {**ask, "quantity": "5"}).body["allowed"] is True
    # And API calls, which no card pays for, are refused too; an unknown meter is a 422, an unknown wallet a 404
    uncovered = stack.api("POST", "/wallets/acme/authorize", {"meter": "api_calls", "quantity": "1"}).body
    assert uncovered["allowed"] is False
    assert stack.api("POST", "/wallets/acme/authorize", {"meter": "nope", "quantity": "1"}).status == 422
    assert stack.api("POST", "/wallets/nobody/authorize", ask).status == 404
    # And nothing was drawn
    assert stack.api("GET", "/wallets/acme").body["balance"] == "10"


def test_the_openapi_document_gives_the_new_routes_and_their_error_bodies(stack: Stack) -> None:
    document = stack.api("GET", "/openapi.json").body
    paths = document["paths"]
    routes = {
        ("/wallets/{customerId}/adjustments", "post"): {"400", "404", "409", "413", "422"},
        ("/wallets/{customerId}/cards/{cardId}", "patch"): {"400", "404", "409", "413", "422"},
        ("/wallets/{customerId}/authorize", "post"): {"400", "404", "413", "422"},
        ("/wallets/{customerId}/cards", "get"): {"400", "404", "422"},
        ("/wallets", "get"): {"400", "422"},
    }
    for (path, method), errors in routes.items():
        responses = paths[path][method]["responses"]
        assert errors <= set(responses), (path, sorted(responses))
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, status, schema)
    card = document["components"]["schemas"]["CardOut"]["properties"]
    assert {"appliesTo", "reference", "metadata"} <= set(card)


def _take_with_key(n: int, gateway: Gateway) -> int:
    body = {"credits": "-30", "reason": "double-billed"}
    return gateway.request("POST", "/wallets/acme/adjustments", body, {"Idempotency-Key": "adj-same"}).status


def test_concurrent_adjustments_with_one_key_take_once() -> None:
    # Given a wallet of 100 credits, and six execution environments sending the same taking with one key at once
    with moto_server() as server:
        assert server.stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).status == 201
        statuses = run_environments(6, Environment.of(server), _take_with_key)
        # Then all answer 201 and 30 credits were taken once
        assert statuses == [201] * 6
        assert server.stack.api("GET", "/wallets/acme").body["balance"] == "70"
