"""The local stack treats a failing function as Lambda does: a failed invocation, its messages back after their
visibility timeout (measured from when they were received), then dead-lettered by the redrive policy; never an
error of whoever moved the clock or asked the stack to deliver."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
import pytest

import ingest_handler
from prepaid_local.clock import Clock
from prepaid_local.stack import Stack
from support.aws import REGION
from support.usage import RATE_CARD, Queues, fund, usage_event, wallet

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
USAGE_VISIBILITY = timedelta(seconds=90)  # the template's UsageQueue VisibilityTimeout


class Died(Exception):
    """The function failing (a bug, a timeout, an outage)."""


class ReceiveThatTakesTime:
    """An SQS client whose first receipt of a message comes while the stack's clock moves on (another thread moved
    it, or the call itself took that long): SQS counts the visibility timeout from the receipt, not from before."""

    def __init__(self, client: Any, clock: Clock, by: timedelta) -> None:
        self._client = client
        self._clock = clock
        self._by: timedelta | None = by

    def receive_message(self, **kwargs: Any) -> Any:
        got = self._client.receive_message(**kwargs)
        if got.get("Messages") and self._by is not None:
            self._clock.advance(self._by.total_seconds())
            self._by = None
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def moto_clients(service: str) -> Any:
    return boto3.client(cast(Any, service), region_name=REGION)


def stack_with(clients: Callable[[str], Any], clock: Clock, **options: Any) -> Stack:
    built = Stack(clients, clock=clock, **options)
    built.cold_start()
    assert built.api("PUT", "/rate-card", RATE_CARD).status == 200
    return built


def test_a_failed_message_waits_its_timeout_from_its_receipt(aws: None) -> None:
    # Given a stack on a frozen clock whose SQS receipt takes two hours of the stack's clock
    clock = Clock(frozen_at=START)
    sqs = ReceiveThatTakesTime(boto3.client("sqs", region_name=REGION), clock, timedelta(hours=2))

    def clients(service: str) -> Any:
        return sqs if service == "sqs" else moto_clients(service)

    stack = stack_with(clients, clock)
    fund(stack, "acme", "100")
    Queues(stack).send_usage(usage_event("u1", "acme", "10"))
    failed: list[str] = []

    def dies_once(logical: str, event: dict[str, Any]) -> None:
        if logical == "IngestFunction" and not failed:
            failed.append(logical)
            raise Died(logical)

    # When ingest fails on it
    with pytest.raises(Died):
        stack.pump_queues(crash=dies_once, fast_forward=False)
    # Then it does not come back at once (the timeout runs from the receipt, two hours after the clock was read)
    assert stack.pump_queues(fast_forward=False) == 0
    assert wallet(stack, "acme")["balance"] == "100"
    # And it does come back once its visibility timeout has run out, and is drawn
    stack.advance(USAGE_VISIBILITY.total_seconds())
    assert stack.pump_queues(fast_forward=False) >= 1
    assert wallet(stack, "acme")["balance"] == "95"


def test_a_function_that_raises_is_a_failed_invocation_then_a_dead_letter(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local server's stack (failures logged, not raised) and an ingest that raises on every message
    clock = Clock(frozen_at=START)
    stack = stack_with(
        lambda service: boto3.client(cast(Any, service), region_name=REGION), clock, raise_failures=False
    )
    invocations: list[int] = []

    def raises(event: dict[str, Any], context: Any) -> Any:
        invocations.append(len(event["Records"]))
        raise Died("ingest is broken")

    monkeypatch.setattr(ingest_handler, "lambda_handler", raises)
    queues = Queues(stack)
    queues.send_usage(usage_event("u1", "acme", "10"))
    # When the stack delivers, waiting out each visibility timeout as SQS would
    delivered = stack.pump_queues()
    # Then nothing was raised to the caller; the message was received as often as the redrive policy allows (5),
    # and is then in the usage dead-letter queue
    assert delivered == 5
    assert invocations == [1] * 5
    (letter,) = queues.dead_letters()
    assert (letter.reason, json.loads(letter.body)["eventId"]) == (None, "u1")  # moved by SQS: no reason attached
    assert queues.depth(queues.usage) == 0


def test_the_test_stack_still_hears_of_a_function_that_raises(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the stack the tests use (failures raised after the same bookkeeping)
    stack = stack_with(moto_clients, Clock(frozen_at=START))

    def raises(event: dict[str, Any], context: Any) -> Any:
        raise Died("ingest is broken")

    monkeypatch.setattr(ingest_handler, "lambda_handler", raises)
    Queues(stack).send_usage(usage_event("u1", "acme", "10"))
    # When it delivers, then the failure is raised to the test
    with pytest.raises(Died):
        stack.pump_queues(fast_forward=False)
