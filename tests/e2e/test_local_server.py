"""`make local` end to end: HTTP in, real handlers, moto behind, events on the bus, through ports only."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from typing import Any

import pytest

from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_local.server import LocalServer
from support.outside import aws, call
from support.waiting import PATIENCE_SECONDS, eventually

PRICE_BOOK = DEMO_PRICE_BOOK  # the contract's example tiers
PRICE = {"amount": "1.00", "currency": "USD"}
# No proxy, whatever the environment says: both servers are on loopback.


def tap_bus(server: LocalServer) -> str:
    """A queue subscribed to everything the product publishes, as a consumer would subscribe; returns its URL."""
    sqs, events = aws(server, "sqs"), aws(server, "events")
    url: str = sqs.create_queue(QueueName="e2e-bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = server.stack.name("EventBus")
    events.put_rule(Name="e2e-tap", EventBusName=bus, EventPattern=json.dumps({"source": ["prepaid.credits"]}))
    events.put_targets(Rule="e2e-tap", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def wait_for_event(
    server: LocalServer, queue_url: str, detail_type: str, seconds: float = PATIENCE_SECONDS
) -> dict[str, Any]:
    sqs = aws(server, "sqs")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            event: dict[str, Any] = json.loads(message["Body"])
            if event["detail-type"] == detail_type:
                return event
    raise AssertionError(f"no {detail_type!r} event on the bus within {seconds} s")


def test_purchase_over_http_is_read_back_and_published(server: LocalServer) -> None:
    # Given a subscriber on the bus and a price book loaded through the API
    queue_url = tap_bus(server)
    assert call(server, "PUT", "/price-book", PRICE_BOOK)[0] == 200

    # When a customer buys credits, unsigned, as curl would
    status, purchase = call(server, "POST", "/wallets/acme/purchases", {"credits": "5000"})

    # Then the card is priced from the book, the wallet shows it, and the event reaches the bus by itself
    assert status == 201, purchase
    assert purchase["card"]["price"] == {"amount": "50.00", "currency": "USD"}
    status, wallet = call(server, "GET", "/wallets/acme")
    assert (status, wallet["balance"]) == (200, "5000")
    event = wait_for_event(server, queue_url, "Credits Purchased")
    assert event["source"] == "prepaid.credits"
    assert event["detail"]["customerId"] == "acme"


def test_unknown_routes_and_methods_get_the_contract_error_body(server: LocalServer) -> None:
    # Given the running server; When a path no function serves, and a method a real path lacks, are requested
    unknown = call(server, "GET", "/no/such/route")
    wrong_method = call(server, "DELETE", "/wallets/acme")
    # Then both get the template's gateway response: 404 with the contract's error body, not API Gateway's default
    for status, body in (unknown, wrong_method):
        assert status == 404
        assert set(body) == {"error"}
        assert body["error"]["code"] == "route_not_found"
        assert "SigV4" in body["error"]["message"]


def test_bad_body_gets_the_contract_error(server: LocalServer) -> None:
    # Given the running server; When a purchase carries credits that are not a decimal string
    status, body = call(server, "POST", "/wallets/bad-body/purchases", {"credits": "lots"})
    # Then it is refused with the contract's error body, and no wallet is created
    assert status == 422, body
    assert set(body) == {"error"}
    assert body["error"]["code"]
    assert body["error"]["message"]
    assert call(server, "GET", "/wallets/bad-body")[0] == 404


def test_usage_over_http_crosses_a_threshold_seen_on_the_local_events_route(server: LocalServer) -> None:
    # Given a rate card, a wallet of 100 credits with a threshold at 50
    rate_card = {"meters": {"api_calls": {"creditsPerUnit": "1"}}}
    assert call(server, "PUT", "/rate-card", rate_card)[0] == 200
    assert call(server, "PUT", "/wallets/e2e-usage/settings", {"thresholds": ["50"]})[0] == 200
    price = {"amount": "1.00", "currency": "USD"}
    assert call(server, "POST", "/wallets/e2e-usage/purchases", {"credits": "100", "price": price})[0] == 201
    # When 60 credits of usage arrive by HTTP
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = [
        {"eventId": f"e2e-{n}", "customerId": "e2e-usage", "meter": "api_calls", "quantity": "20", "timestamp": now}
        for n in range(3)
    ]
    status, answer = call(server, "POST", "/usage", {"events": events})
    assert (status, len(answer["accepted"])) == (202, 3)

    # Then the wallet is drawn and the local events route shows Balance Low
    def balance_low() -> list[Any]:
        """the local events route shows Balance Low"""
        events: list[Any] = call(server, "GET", "/_local/events?type=Balance%20Low")[1]["events"]
        return events

    low = eventually(balance_low)
    assert [(e["detail"]["customerId"], e["detail"]["threshold"]) for e in low] == [("e2e-usage", "50")]
    assert call(server, "GET", "/wallets/e2e-usage")[1]["balance"] == "40"


def test_a_dashboard_token_is_in_no_log_line(
    server: LocalServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a wallet and a dashboard link for it
    caplog.set_level("DEBUG")
    status, _ = call(server, "POST", "/wallets/e2e-logs/purchases", {"credits": "10", "price": PRICE})
    assert status == 201
    status, link = call(server, "POST", "/wallets/e2e-logs/dashboard-links", {"ttlSeconds": 600})
    assert status == 201
    token = link["token"]
    # When the customer opens it as a browser does (the page, then its data), and someone tries an altered token
    # and one in the query string
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(link["url"], timeout=PATIENCE_SECONDS) as page:  # the fragment stays in the "browser"
        assert page.status == 200
    assert call(server, "GET", "/dashboard/data", Authorization=f"Bearer {token}")[0] == 200
    assert call(server, "GET", "/dashboard/data", Authorization=f"Bearer {token[:-2]}xx")[0] == 403
    assert call(server, "GET", f"/dashboard/data?token={token}")[0] == 401
    # Then no log line holds the token: not the stand-in's access log, not the functions' JSON logs
    logged = capfd.readouterr()
    assert token not in logged.out + logged.err
    assert token.split(".")[0] not in caplog.text


def test_concurrent_usage_and_drawdown_never_fail_the_api(server: LocalServer) -> None:
    # Given a rate card, twenty funded wallets, and thread switches as frequent as Python allows, so that the API and
    # the drawdown poller interleave inside their handlers (on Lambda each runs in an environment of its own; here
    # they share one process and Powertools' metric set and logger keys, which are per process by design)
    rate_card = {"meters": {"api_calls": {"creditsPerUnit": "1"}}}
    assert call(server, "PUT", "/rate-card", rate_card)[0] == 200
    senders = [f"e2e-concurrent-{n}" for n in range(20)]
    for customer in senders:
        assert call(server, "POST", f"/wallets/{customer}/purchases", {"credits": "1000", "price": PRICE})[0] == 201
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    statuses: list[int] = []

    def send(customer: str) -> None:
        for n in range(15):
            event = {"eventId": f"{customer}-{n}", "customerId": customer, "meter": "api_calls", "quantity": "1"}
            statuses.append(call(server, "POST", "/usage", {"events": [{**event, "timestamp": now}]})[0])

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        # When twenty senders post one event per request, all at once
        threads = [threading.Thread(target=send, args=(customer,)) for customer in senders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch_interval)

    # Then every request was accepted and every event drawn
    assert statuses == [202] * len(statuses) and len(statuses) == 20 * 15

    def balances() -> bool:
        """every wallet drawn 15 times"""
        return [call(server, "GET", f"/wallets/{c}")[1]["balance"] for c in senders] == ["985"] * len(senders)

    eventually(balances)


def test_the_usage_queues_five_pollers_draw_a_burst_exactly_once(server: LocalServer) -> None:
    # Given a funded wallet, and the server polling the usage queue with five pollers and the drawdown queue with one
    names = {thread.name for thread in threading.enumerate()}
    assert {f"prepaid-local-IngestFunction-{n}" for n in range(5)} <= names
    assert "prepaid-local-DrawdownFunction-0" in names and "prepaid-local-DrawdownFunction-1" not in names
    rate_card = {"meters": {"api_calls": {"creditsPerUnit": "1"}}}
    assert call(server, "PUT", "/rate-card", rate_card)[0] == 200
    assert call(server, "POST", "/wallets/e2e-pollers/purchases", {"credits": "100", "price": PRICE})[0] == 201
    # When 40 usage messages reach the usage queue, 10 at a time, each event sent twice
    sqs, now = aws(server, "sqs"), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = [
        {"eventId": f"e2e-pollers-{n}", "customerId": "e2e-pollers", "meter": "api_calls", "quantity": "1"}
        for n in range(20)
    ]
    bodies = [json.dumps({**event, "timestamp": now}) for event in events * 2]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        assert not sqs.send_message_batch(QueueUrl=server.stack.name("UsageQueue"), Entries=entries).get("Failed")

    # Then, whichever poller took which message, each event was drawn once
    def drawn() -> bool:
        """the wallet drawn by 20"""
        return bool(call(server, "GET", "/wallets/e2e-pollers")[1]["balance"] == "80")

    eventually(drawn)
    assert call(server, "GET", "/wallets/e2e-pollers")[1]["totals"]["rated"] == "20"
