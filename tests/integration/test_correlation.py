"""A correlation id follows usage from the request (HTTP header, SQS attribute) to the drawdown, the events the
drawdown commits (outbox and bus), and on to what answers those events (auto-recharge, expiry)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import drawdown_handler
import publisher_handler
from prepaid.domain.text import instant
from prepaid_local.stack import Stack
from support.aws import BusTap
from support.usage import PRICE, RATE_CARD, Queues, Table, fund, usage_event

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def outbox_details(stack: Stack, detail_type: str) -> list[dict[str, Any]]:
    """The details of the outbox records of one type, as the publisher relays them."""
    items = [i for i in Table(stack).scan() if i["PK"].startswith("O#") and i["detailType"] == detail_type]
    return [json.loads(i["detail"]) for i in items]


def recording_drawdown(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The SQS records the drawdown function receives, from now on."""
    received: list[dict[str, Any]] = []
    real = drawdown_handler.lambda_handler

    def recording(event: dict[str, Any], context: Any) -> Any:
        received.extend(event["Records"])
        return real(event, context)

    monkeypatch.setattr(drawdown_handler, "lambda_handler", recording)
    return received


class Formatted(logging.Handler):
    """Log records as Powertools writes them (its JSON, with the keys set when each was logged)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(publisher_handler.logger.registered_formatter.format(record)))


@contextmanager
def written_logs() -> Iterator[list[dict[str, Any]]]:
    """What the functions log (every function's logger is the service's one), INFO and up, while in use."""
    handler, logger = Formatted(), logging.getLogger(publisher_handler.logger.name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_callers_id_follows_post_usage_to_the_balance_low_it_causes(stack: Stack, bus: BusTap) -> None:
    # Given a wallet of 100 credits with a threshold at 50
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "100", thresholds=["50"])
    stack.pump_streams()
    bus.drain()
    # When usage of 60 credits is posted with the caller's correlation id
    body = {"events": [usage_event("corr-u1", quantity="120")]}
    answer = stack.api("POST", "/usage", body, headers={"X-Correlation-Id": "req-abc"})
    stack.pump_queues()
    stack.pump_streams()
    # Then the answer names it back
    assert answer.status == 202, answer.body
    assert answer.headers["X-Correlation-Id"] == "req-abc"
    # And the Balance Low it caused names it, on the bus and in its outbox record
    (low,) = [e for e in bus.drain() if e["detail-type"] == "Balance Low"]
    assert low["detail"]["correlationIds"] == ["req-abc"]
    assert [d["correlationIds"] for d in outbox_details(stack, "Balance Low")] == [["req-abc"]]


def test_a_producers_attribute_follows_the_usage_queue_to_drawdown_and_its_events(
    stack: Stack, bus: BusTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a wallet of 100 credits with a threshold at 50, and the drawdown's deliveries recorded
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "100", thresholds=["50"])
    stack.pump_streams()
    bus.drain()
    received = recording_drawdown(monkeypatch)
    # When a producer sends usage of 60 credits with its correlation id, and another message without one
    queues = Queues(stack)
    attribute: dict[str, Any] = {"correlationId": {"DataType": "String", "StringValue": "producer-7"}}
    body = json.dumps({"events": [usage_event("corr-q1", quantity="120")]})
    queues.sqs.send_message(QueueUrl=queues.usage, MessageBody=body, MessageAttributes=attribute)
    queues.sqs.send_message(QueueUrl=queues.usage, MessageBody=json.dumps(usage_event("corr-q2", quantity="2")))
    stack.pump_queues()
    stack.pump_streams()
    # Then the drawdown messages carry the ids as an attribute (the SQS message id for the one without), and the
    # rated body is as before: no id per event
    carried = [r["messageAttributes"]["correlationIds"]["stringValue"] for r in received]
    assert "producer-7" in carried[0].split(",")
    assert all(UUID.fullmatch(i) for c in carried for i in c.split(",") if i != "producer-7")
    assert all("correlation" not in r["body"] for r in received)
    # And the Balance Low the first message caused names the producer's id
    (low,) = [e for e in bus.drain() if e["detail-type"] == "Balance Low"]
    assert low["detail"]["correlationIds"][0] == "producer-7"


def test_a_purchase_names_its_request(stack: Stack, bus: BusTap) -> None:
    # When credits are bought, once with the caller's id and once without one
    body = {"credits": "100", "price": PRICE}
    named = stack.api("POST", "/wallets/acme/purchases", body, headers={"X-Correlation-Id": "buy-1"})
    plain = stack.api("POST", "/wallets/acme/purchases", body)
    stack.pump_streams()
    # Then each answer names its correlation id: the caller's, else API Gateway's request id
    assert (named.status, plain.status) == (201, 201)
    assert named.headers["X-Correlation-Id"] == "buy-1"
    assert UUID.fullmatch(plain.headers["X-Correlation-Id"])
    # And each Credits Purchased names its request's
    purchased = {e["detail"]["card"]["cardId"]: e["detail"] for e in bus.of_type("Credits Purchased")}
    assert purchased[named.body["card"]["cardId"]]["correlationIds"] == ["buy-1"]
    assert purchased[plain.body["card"]["cardId"]]["correlationIds"] == [plain.headers["X-Correlation-Id"]]


@pytest.mark.parametrize(
    "given",
    ["", " ", "a b", "a,b", "x" * 129, "é", "req\u202eabc", "<script>", "a;b", "\t"],
    ids=lambda v: repr(v[:12]),
)
def test_an_invalid_header_is_replaced_by_the_request_id(stack: Stack, bus: BusTap, given: str) -> None:
    # When settings are changed with an X-Correlation-Id that is not a valid id
    answer = stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["5"]}, headers={"X-Correlation-Id": given})
    # Then the request goes on under API Gateway's request id, which the answer names
    assert answer.status == 200, answer.body
    assert answer.headers["X-Correlation-Id"] != given
    assert UUID.fullmatch(answer.headers["X-Correlation-Id"])


def test_the_header_rides_on_refusals_too(stack: Stack) -> None:
    # When a request is refused before routing (not JSON) and another by its route (no wallet)
    refused = stack.gateway.proxy(
        "POST", "/usage", headers={"Content-Type": "text/plain", "X-Correlation-Id": "r-1"}, body="x"
    )
    missing = stack.api("GET", "/wallets/nobody", headers={"x-correlation-id": "r-2"})
    # Then both answers name the caller's id (the header's name is case-insensitive)
    assert (refused["statusCode"], refused["headers"]["X-Correlation-Id"]) == (415, "r-1")
    assert (missing.status, missing.headers["X-Correlation-Id"]) == (404, "r-2")


def test_a_bad_drawdown_attribute_is_ignored_and_the_usage_drawn(stack: Stack, bus: BusTap) -> None:
    # Given a wallet of 100 credits with a threshold at 50
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "100", thresholds=["50"])
    stack.pump_streams()
    bus.drain()
    # When a drawdown message of 60 credits comes with an attribute that is not ids
    queues, now = Queues(stack), datetime.now(UTC)
    rated = {"eventId": "corr-d1", "meter": "api_calls", "quantity": "120", "credits": "60", "timestamp": instant(now)}
    body = {"customerId": "acme", "events": [rated]}
    queues.sqs.send_message(
        QueueUrl=queues.drawdown,
        MessageBody=json.dumps(body),
        MessageGroupId="acme",
        MessageDeduplicationId="corr-d1",
        MessageAttributes={"correlationIds": {"DataType": "String", "StringValue": "a b," * 20}},
    )
    stack.pump_queues()
    stack.pump_streams()
    # Then the usage is drawn, nothing is dead-lettered, and its events name no id
    assert stack.api("GET", "/wallets/acme").body["balance"] == "40"
    assert queues.depth(queues.drawdown_dead) == 0
    (low,) = [e for e in bus.drain() if e["detail-type"] == "Balance Low"]
    assert "correlationIds" not in low["detail"]


def test_auto_recharge_names_the_requests_of_the_balance_low_it_answers(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    # Given a wallet of 300 credits with auto-recharge at 100
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    auto = {"threshold": "100", "credits": "500", "maxPerDay": 3, "price": {"amount": "4.00", "currency": "USD"}}
    assert stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": auto}).status == 200
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "300", "price": PRICE}).status == 201
    # When usage posted as "use-1" takes the balance to 50
    body = {"events": [usage_event("corr-a1", quantity="500")]}
    assert stack.api("POST", "/usage", body, headers={"X-Correlation-Id": "use-1"}).status == 202
    stack.pump()
    # Then the Balance Low and the purchase that answers it both name "use-1"
    (low,) = bus.of_type("Balance Low")
    (bought,) = bus.of_type("Auto Recharge Purchased")
    assert low["detail"]["correlationIds"] == ["use-1"]
    assert bought["detail"]["correlationIds"] == ["use-1"]


def test_a_cards_expiry_names_the_request_that_bought_it(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    # Given a card bought as "buy-exp", expiring in an hour, scheduled by the expiry function
    body = {"credits": "100", "price": PRICE, "expiresIn": "PT1H"}
    bought = stack.api("POST", "/wallets/acme/purchases", body, headers={"X-Correlation-Id": "buy-exp"})
    assert bought.status == 201, bought.body
    stack.pump()
    # When the clock passes its expiry and the schedule fires
    stack.set_time(datetime.fromisoformat(bought.body["card"]["expiresAt"]) + timedelta(seconds=2))
    stack.pump()
    # Then its expiring-soon notice and its expiry name the purchase's request
    (soon,) = bus.of_type("Credits Expiring Soon")
    (expired,) = bus.of_type("Credits Expired")
    assert soon["detail"]["correlationIds"] == ["buy-exp"]
    assert expired["detail"]["correlationIds"] == ["buy-exp"]


def test_drawdown_publisher_and_alerting_logs_name_the_request(stack: Stack) -> None:
    # Given a wallet of 100 credits with a threshold at 50
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "100", thresholds=["50"])
    stack.pump_streams()
    # When usage crossing it is posted as "req-log", drawn and its events published
    body = {"events": [usage_event("corr-l1", quantity="120")]}
    assert stack.api("POST", "/usage", body, headers={"X-Correlation-Id": "req-log"}).status == 202
    with written_logs() as lines:
        stack.pump_queues()
        stack.pump_streams()
        stack.pump_rules()
        stack.pump_queues()  # the alert queue: alerting handles each event (no webhook: nothing is sent)
    # Then the drawdown's log line, each publication's and each alert's name it
    drawn = [line for line in lines if line["message"] == "drawn"]
    published = [line for line in lines if line["message"] == "published"]
    ids = {line["eventId"] for line in published}
    alerted = [line for line in lines if line["message"] == "alert" and line["eventId"] in ids]
    assert [line.get("correlation_id") for line in drawn] == ["req-log"]
    assert {line["detailType"] for line in published} >= {"Balance Low"}
    assert {line.get("correlation_id") for line in published} == {"req-log"}
    assert len(alerted) == len(published)
    assert {line.get("correlation_id") for line in alerted} == {"req-log"}
