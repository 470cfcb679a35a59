"""Account-level webhook endpoints end to end: created through the API, fed by the template's rule and queue and
the real AlertingFunction, verified by the README's receiver (the standardwebhooks library) with each endpoint's
own secret; their deliveries listed and resent; a wallet's own webhook likewise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from prepaid.adapters.items import OUTBOX_SK, outbox_pk
from prepaid_local.stack import Stack
from support.aws import REGION
from support.usage import PRICE, Table, usage_event
from support.webhooks import AlertSide, Receiver, readme_verifier

PURCHASED, LOW = "Credits Purchased", "Balance Low"


@pytest.fixture
def alerts(stack: Stack) -> AlertSide:
    return AlertSide(stack)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    first, second = Receiver().start(), Receiver().start()
    yield first, second
    first.stop()
    second.stop()


def endpoint(stack: Stack, url: str, types: list[str] | None = None, **more: Any) -> dict[str, Any]:
    answer = stack.api("POST", "/webhook-endpoints", {"url": url, "eventTypes": types, **more})
    assert answer.status == 201, answer.body
    created: dict[str, Any] = answer.body
    return created


def buy(stack: Stack, customer: str, credits: str = "100") -> None:
    answer = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": PRICE})
    assert answer.status == 201, answer.body


def deliver(stack: Stack, *, retries: bool = True) -> None:
    """What happens in the background after a change, until quiet: the relay publishes, the rule queues, alerting
    sends (and, with `retries`, the clock is moved on to each failed delivery's retry)."""
    stack.pump(fast_forward=retries)


def deliveries(stack: Stack, path: str) -> list[dict[str, Any]]:
    answer = stack.api("GET", path)
    assert answer.status == 200, answer.body
    found: list[dict[str, Any]] = answer.body["deliveries"]
    return found


def test_each_endpoint_gets_its_types_and_verifies_with_its_own_secret_only(
    stack: Stack, receivers: tuple[Receiver, Receiver]
) -> None:
    # Given an endpoint for purchases and one for every type, each on its own receiver
    purchases_only, everything = receivers
    first = endpoint(stack, purchases_only.url, [PURCHASED], description="billing sync")
    second = endpoint(stack, everything.url)
    assert (first["eventTypes"], second["eventTypes"], first["description"]) == ([PURCHASED], None, "billing sync")
    assert first["secret"].startswith("whsec_") and first["secret"] != second["secret"]
    # When a wallet buys credits, sets a threshold and uses credits across it
    buy(stack, "acme")
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["50"]}).status == 200
    assert stack.api("PUT", "/rate-card", {"meters": {"api_calls": {"creditsPerUnit": "1"}}}).status == 200
    assert stack.api("POST", "/usage", {"events": [usage_event("u1", "acme", "60")]}).status == 202
    deliver(stack)
    # Then the purchases endpoint got the purchase only, the other every event
    assert [r.json()["type"] for r in purchases_only.received] == [PURCHASED]
    assert sorted(r.json()["type"] for r in everything.received) == sorted([PURCHASED, LOW])
    # And the README's receiver verifies every delivery with its endpoint's secret (as GET .../secret answers it)
    verify = readme_verifier()
    secret_of = {
        e["id"]: stack.api("GET", f"/webhook-endpoints/{e['id']}/secret").body["secret"] for e in (first, second)
    }
    assert secret_of == {first["id"]: first["secret"], second["id"]: second["secret"]}
    for request in purchases_only.received:
        assert verify(first["secret"], request.body, request.headers) is not None
        # And the second endpoint's secret does not verify the first's deliveries (nor the other way round)
        assert verify(second["secret"], request.body, request.headers) is None
    for request in everything.received:
        assert verify(second["secret"], request.body, request.headers) is not None
        assert verify(first["secret"], request.body, request.headers) is None
    # And the same event carries the same webhook-id to both (the receiver's dedupe key)
    assert purchases_only.received[0].event_id in {r.event_id for r in everything.received}


def test_deliveries_are_listed_newest_first_a_page_at_a_time_and_resent_on_request(
    stack: Stack, receivers: tuple[Receiver, Receiver]
) -> None:
    # Given an endpoint for purchases, and three purchases delivered to it
    receiver, _ = receivers
    created = endpoint(stack, receiver.url, [PURCHASED])
    path = f"/webhook-endpoints/{created['id']}/deliveries"
    for _ in range(3):
        buy(stack, "acme")
        deliver(stack)
    ids = [r.event_id for r in receiver.received]
    # When its deliveries are listed two at a time
    first = stack.api("GET", path, query="limit=2")
    second = stack.api("GET", path, query=f"limit=2&cursor={first.body['nextCursor']}")
    # Then they come newest first, delivered at the first attempt, and the second page ends the list
    listed = first.body["deliveries"] + second.body["deliveries"]
    assert [d["eventId"] for d in listed] == ids[::-1]
    assert {(d["state"], d["attempts"], d["eventType"], d["customerId"]) for d in listed} == {
        ("delivered", 1, PURCHASED, "acme")
    }
    assert second.body["nextCursor"] is None
    # And an altered cursor, or one handed out for another endpoint's listing, is refused
    other = endpoint(stack, receiver.url)
    assert stack.api("GET", path, query=f"cursor={first.body['nextCursor']}x").status == 400
    other_path = f"/webhook-endpoints/{other['id']}/deliveries"
    assert stack.api("GET", other_path, query=f"cursor={first.body['nextCursor']}").status == 400
    # When the oldest is resent
    answer = stack.api("POST", f"{path}/{ids[0]}/resend")
    assert answer.status == 202, answer.body
    assert (answer.body["eventId"], answer.body["state"], answer.body["attempts"]) == (ids[0], "queued", 0)
    deliver(stack)
    # Then the receiver gets the same event again (same webhook-id, a new round), and only that endpoint does
    assert [r.event_id for r in receiver.received] == [*ids, ids[0]]
    assert receiver.received[-1].body == receiver.received[0].body
    assert receiver.received[-1].headers["Prepaid-Webhook-Attempt"] == "1"
    assert {d["eventId"]: d["state"] for d in deliveries(stack, path)}[ids[0]] == "delivered"
    # And an unknown event, or one this endpoint never got, cannot be resent
    assert stack.api("POST", f"{path}/nope-0/resend").status == 404
    assert stack.api("POST", f"{other_path}/{ids[0]}/resend").status == 404


def test_a_delivery_still_being_retried_is_not_resent(stack: Stack, receivers: tuple[Receiver, Receiver]) -> None:
    # Given an endpoint whose receiver fails the first attempt (the delivery waits for its retry)
    receiver, _ = receivers
    created = endpoint(stack, receiver.url, [PURCHASED])
    receiver.fail_next(1)
    buy(stack, "acme")
    deliver(stack, retries=False)
    path = f"/webhook-endpoints/{created['id']}/deliveries"
    (failing,) = deliveries(stack, path)
    assert (failing["state"], failing["lastFailure"]) == ("failed", "http_status:500")
    assert failing["nextAttemptAt"] is not None
    # When it is resent before its retry
    answer = stack.api("POST", f"{path}/{failing['eventId']}/resend")
    # Then the API says it is still being tried, and nothing more was sent
    assert answer.status == 409
    assert answer.body["error"]["code"] == "delivery_in_progress"
    assert len(receiver.received) == 1


def test_endpoints_are_changed_disabled_and_deleted(stack: Stack, receivers: tuple[Receiver, Receiver]) -> None:
    # Given an endpoint for purchases
    receiver, _ = receivers
    created = endpoint(stack, receiver.url, [PURCHASED])
    url = f"/webhook-endpoints/{created['id']}"
    # When it is disabled, then a purchase is made
    changed = stack.api("PATCH", url, {"disabled": True})
    assert changed.status == 200 and changed.body["disabled"] is True
    assert changed.body["eventTypes"] == [PURCHASED]  # what the patch leaves out stays
    buy(stack, "acme")
    deliver(stack)
    # Then it gets nothing
    assert receiver.received == []
    # When it is enabled for every type (eventTypes null), and another purchase is made
    changed = stack.api("PATCH", url, {"disabled": False, "eventTypes": None})
    assert (changed.body["disabled"], changed.body["eventTypes"]) == (False, None)
    buy(stack, "acme")
    deliver(stack)
    # Then it gets that one (and not the earlier one, made while it was disabled)
    assert [r.json()["type"] for r in receiver.received] == [PURCHASED]
    listed = stack.api("GET", "/webhook-endpoints").body["endpoints"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    # When it is deleted
    assert stack.api("DELETE", url).status == 204
    # Then it is gone, with its secret, and gets nothing more
    assert stack.api("GET", url).status == 404
    assert stack.api("GET", f"{url}/secret").status == 404
    assert stack.api("DELETE", url).status == 404
    buy(stack, "acme")
    deliver(stack)
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://10.0.0.1/hooks"}, "url"),
        ({"url": "http://example.com/hooks"}, "url"),
        ({"url": "https://example.com/h", "eventTypes": ["Credits Bought"]}, "eventTypes"),
        ({"url": "https://example.com/h", "eventTypes": []}, "eventTypes"),
        ({"url": "https://example.com/h", "description": "x" * 201}, "description"),
        ({"url": "https://example.com/h", "secret": "whsec_mine"}, "secret"),
    ],
)
def test_a_bad_endpoint_is_refused_with_the_field(stack: Stack, body: dict[str, Any], field: str) -> None:
    # When an endpoint is created with a bad value
    answer = stack.api("POST", "/webhook-endpoints", body)
    # Then it is refused, naming the field, and nothing was stored
    assert answer.status == 422, answer.body
    assert field in str(answer.body["error"]), answer.body
    assert stack.api("GET", "/webhook-endpoints").body["endpoints"] == []


def test_a_deployment_has_at_most_twenty_endpoints(stack: Stack) -> None:
    # Given twenty endpoints
    for n in range(20):
        endpoint(stack, f"https://hooks{n}.example.com/h")
    # When a twenty-first is asked for
    answer = stack.api("POST", "/webhook-endpoints", {"url": "https://more.example.com/h"})
    # Then it is refused with a conflict, and no secret was made for it
    assert (answer.status, answer.body["error"]["code"]) == (409, "too_many_endpoints")
    assert len(stack.api("GET", "/webhook-endpoints").body["endpoints"]) == 20


def test_a_wallets_own_webhook_lists_and_resends_its_deliveries_only(
    stack: Stack, receivers: tuple[Receiver, Receiver], alerts: AlertSide
) -> None:
    # Given two wallets with webhooks and a threshold, each crossing it
    receiver, _ = receivers
    assert stack.api("PUT", "/rate-card", {"meters": {"api_calls": {"creditsPerUnit": "1"}}}).status == 200
    for customer in ("acme", "globex"):
        buy(stack, customer)
        settings = {"thresholds": ["50"], "webhookUrl": receiver.url}
        assert stack.api("PUT", f"/wallets/{customer}/settings", settings).status == 200
        assert stack.api("POST", "/usage", {"events": [usage_event(f"{customer}-u1", customer, "60")]}).status == 202
    deliver(stack)
    # When each wallet's webhook deliveries are listed
    acme = deliveries(stack, "/wallets/acme/webhook/deliveries")
    globex = deliveries(stack, "/wallets/globex/webhook/deliveries")
    # Then each lists its own alert, delivered
    assert [(d["customerId"], d["eventType"], d["state"]) for d in acme + globex] == [
        ("acme", LOW, "delivered"),
        ("globex", LOW, "delivered"),
    ]
    # And each verifies with its own wallet's secret only
    by_customer = {r.json()["customerId"]: r for r in receiver.received}
    verify = readme_verifier()
    acme_request = by_customer["acme"]
    assert verify(alerts.wallet_secret("acme"), acme_request.body, acme_request.headers) is not None
    assert verify(alerts.wallet_secret("globex"), acme_request.body, acme_request.headers) is None
    # And one wallet cannot resend another's delivery; its own comes again
    assert stack.api("POST", f"/wallets/globex/webhook/deliveries/{acme[0]['eventId']}/resend").status == 404
    assert stack.api("POST", f"/wallets/acme/webhook/deliveries/{acme[0]['eventId']}/resend").status == 202
    deliver(stack)
    assert [r.json()["customerId"] for r in receiver.received].count("acme") == 2
    # And a wallet that does not exist has no secret and no deliveries
    assert stack.api("GET", "/wallets/nobody/webhook/secret").status == 404
    assert stack.api("GET", "/wallets/nobody/webhook/deliveries").status == 404
    # And the table holds no secret of any endpoint or wallet
    assert "whsec_" not in str(Table(stack).scan())


def test_an_event_whose_record_is_no_longer_kept_is_not_resent(
    stack: Stack, receivers: tuple[Receiver, Receiver]
) -> None:
    # Given a purchase delivered to an endpoint, and its outbox record gone (DynamoDB's TTL, after 15 days)
    receiver, _ = receivers
    created = endpoint(stack, receiver.url, [PURCHASED])
    buy(stack, "acme")
    deliver(stack)
    (request,) = receiver.received
    key = {"PK": {"S": outbox_pk(request.event_id)}, "SK": {"S": OUTBOX_SK}}
    boto3.client("dynamodb", region_name=REGION).delete_item(TableName=stack.name("WalletTable"), Key=key)
    # When it is resent
    path = f"/webhook-endpoints/{created['id']}/deliveries/{request.event_id}/resend"
    answer = stack.api("POST", path)
    # Then the API says it is too old, rather than queueing what alerting would dead-letter as not committed
    assert (answer.status, answer.body["error"]["code"]) == (409, "event_no_longer_kept")
    deliver(stack)
    assert len(receiver.received) == 1
    assert {d["state"] for d in deliveries(stack, f"/webhook-endpoints/{created['id']}/deliveries")} == {"delivered"}


def test_a_resend_that_would_not_be_sent_is_refused_and_a_record_without_its_message_is_not_found(
    stack: Stack, receivers: tuple[Receiver, Receiver]
) -> None:
    # Given a purchase delivered to an endpoint, and a Balance Low delivered to a wallet's webhook
    receiver, _ = receivers
    created = endpoint(stack, receiver.url, [PURCHASED, LOW])
    assert stack.api("PUT", "/rate-card", {"meters": {"api_calls": {"creditsPerUnit": "1"}}}).status == 200
    buy(stack, "acme")
    settings = {"thresholds": ["50"], "webhookUrl": receiver.url}
    assert stack.api("PUT", "/wallets/acme/settings", settings).status == 200
    assert stack.api("POST", "/usage", {"events": [usage_event("u1", "acme", "60")]}).status == 202
    deliver(stack)
    purchase = next(r.event_id for r in receiver.received if r.json()["type"] == PURCHASED)
    alert = next(d["eventId"] for d in deliveries(stack, "/wallets/acme/webhook/deliveries"))
    path = f"/webhook-endpoints/{created['id']}"
    # When the endpoint no longer gets purchases, is disabled, and the wallet's webhook URL is removed
    assert stack.api("PATCH", path, {"eventTypes": [LOW]}).status == 200
    not_subscribed = stack.api("POST", f"{path}/deliveries/{purchase}/resend")
    assert stack.api("PATCH", path, {"disabled": True}).status == 200
    disabled = stack.api("POST", f"{path}/deliveries/{purchase}/resend")
    assert stack.api("PATCH", "/wallets/acme/settings", {"webhookUrl": None}).status == 200
    no_url = stack.api("POST", f"/wallets/acme/webhook/deliveries/{alert}/resend")
    # Then each resend is refused with why (a 202 means a round of attempts is under way), and nothing is queued
    reasons = [(a.status, a.body["error"]["details"][0]["reason"]) for a in (not_subscribed, disabled, no_url)]
    assert reasons == [(409, "not_subscribed"), (409, "endpoint_disabled"), (409, "no_webhook_url")]
    assert {d["state"] for d in deliveries(stack, f"{path}/deliveries")} == {"delivered"}
    # And a delivery record kept from before deliveries held their message is not found, never a 500
    key = {"PK": {"S": f"D#{alert}"}, "SK": {"S": "WEBHOOK"}}
    table = boto3.client("dynamodb", region_name=REGION)
    table.update_item(TableName=stack.name("WalletTable"), Key=key, UpdateExpression="REMOVE message")
    assert stack.api("PATCH", "/wallets/acme/settings", {"webhookUrl": receiver.url}).status == 200
    answer = stack.api("POST", f"/wallets/acme/webhook/deliveries/{alert}/resend")
    assert (answer.status, answer.body["error"]["code"]) == (404, "delivery_not_found")
