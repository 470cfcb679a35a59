"""Alerting end to end: balance events from real usage, through the template's AlertRule and WebhookQueue, to the
real AlertingFunction, a real HTTP receiver on 127.0.0.1 and the alert topic.

Waits are fast-forwarded: the local stack makes a failed message visible again once its queue's visibility
timeout has passed on the stack's clock (not the function's own backoff, which is checked from the
ChangeMessageVisibility calls it makes).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
import time_machine

import alerting_handler
from prepaid.adapters.eventbridge import EventBridgePublisher
from prepaid.adapters.items import outbox_item, to_attributes
from prepaid.application.ports import OutboxEvent, StoredEvent
from prepaid.domain.alerts import Backoff, alert_from_envelope
from prepaid.domain.events import DETAIL_TYPES
from prepaid_local.stack import Stack
from prepaid_local.template import ROOT, load
from support.aws import REGION, on_every_call
from support.usage import PRICE, Queues, Table, fund, usage_event
from support.waiting import PATIENCE_SECONDS
from support.webhooks import AlertSide, Receiver, readme_verifier

RATE_CARD = {"meters": {"api_calls": {"creditsPerUnit": "1"}}}
SAMPLE = ROOT / "events" / "alerting_webhook_batch.json"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def alerts(stack: Stack) -> AlertSide:
    return AlertSide(stack)


@pytest.fixture
def visibility_changes() -> Iterator[list[int]]:
    """Every backoff the alerting function sets on its queue's messages (ChangeMessageVisibility, seconds)."""
    seen: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        # (the local stack's own calls, making held messages visible again, set 0)
        if "WebhookQueue" in params.get("QueueUrl", "") and int(params["VisibilityTimeout"]) > 0:
            seen.append(int(params["VisibilityTimeout"]))

    with on_every_call("provide-client-params.sqs.ChangeMessageVisibility", record):
        yield seen


def wallet_with_webhook(stack: Stack, customer: str, url: str | None, credits: str = "100") -> None:
    """A funded wallet with a threshold at 50 and a webhook (bought first, so no `Balance Recovered` yet)."""
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    answer = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": PRICE})
    assert answer.status == 201, answer.body
    settings: dict[str, Any] = {"thresholds": ["50"]} | ({"webhookUrl": url} if url else {})
    assert stack.api("PUT", f"/wallets/{customer}/settings", settings).status == 200
    stack.pump_streams()  # the purchase's event reaches the alert queue (for endpoints; there are none here)
    stack.pump_rules()
    AlertSide(stack).take_queued()  # and is taken off: each test starts with only the alerts it makes


def use(stack: Stack, customer: str, credits: str, event_id: str) -> None:
    """Usage drawn from the wallet, and its events published on the bus (the rule puts alerts on WebhookQueue);
    the alerting function has not run yet."""
    Queues(stack).send_usage(usage_event(event_id, customer=customer, quantity=credits))
    stack.pump_queues()  # ingest and drawdown (the alert queue is still empty)
    stack.pump_streams()  # the outbox relay publishes
    stack.pump_rules()  # AlertRule delivers to WebhookQueue (and the lifecycle rules to their functions)


def balance_low(stack: Stack, customer: str, url: str | None) -> None:
    wallet_with_webhook(stack, customer, url)
    use(stack, customer, "60", f"{customer}-u1")


# -- the signature, checked with the receiver of README.md (the standardwebhooks library) ---------------------------


def test_webhook_verifies_with_the_readme_receiver_and_tampering_fails(
    stack: Stack, alerts: AlertSide, receiver: Receiver
) -> None:
    # Given the receiver's check exactly as README.md shows it, and the wallet's secret as the SaaS reads it
    verify = readme_verifier()
    # When a wallet's balance falls below its threshold and the alert is delivered
    balance_low(stack, "acme", receiver.url)
    stack.pump_queues()
    secret = alerts.wallet_secret("acme")
    # Then the receiver got one Balance Low, signed as Standard Webhooks says, and the README's check accepts it
    (request,) = receiver.received
    headers = request.headers
    assert headers["Prepaid-Event-Type"] == "Balance Low"
    assert request.path == Receiver.PATH
    assert secret.startswith("whsec_")
    assert headers["webhook-signature"].startswith("v1,")
    timestamp = int(headers["webhook-timestamp"])
    assert abs(time.time() - timestamp) < PATIENCE_SECONDS  # signed at the attempt: now, give or take a busy machine
    event = verify(secret, request.body, headers)
    assert event is not None
    assert (event["type"], event["customerId"], event["id"]) == ("Balance Low", "acme", headers["webhook-id"])
    assert event["detail"]["balance"] == "40"
    # And a tampered body, another id or timestamp, another wallet's secret or the deployment key itself are refused
    tampered = request.body.replace(b'"balance":"40"', b'"balance":"4000"')
    assert tampered != request.body
    assert verify(secret, tampered, headers) is None
    assert verify(secret, request.body, {**headers, "webhook-id": headers["webhook-id"] + "0"}) is None
    assert verify(secret, request.body, {**headers, "webhook-timestamp": str(timestamp + 1)}) is None
    fund(stack, "other", "10")
    assert verify(alerts.wallet_secret("other"), request.body, headers) is None
    assert verify(alerts.secret(), request.body, headers) is None
    assert verify(secret, request.body, {k: v for k, v in headers.items() if k != "webhook-signature"}) is None
    # And the same request replayed later than the library's tolerance (5 minutes) is refused
    with time_machine.travel(timestamp + 301, tick=False):
        assert verify(secret, request.body, headers) is None


# -- once per event id, whatever the bus and the queue do -----------------------------------------------------------


def republish(stack: Stack, envelopes: list[dict[str, Any]]) -> None:
    """Each event put on the bus again as the outbox relay does after a crash: same detail (and eventId), a new
    EventBridge id."""
    publisher = EventBridgePublisher(boto3.client("events", region_name=REGION), stack.name("EventBus"))
    for envelope in envelopes:
        detail = envelope["detail"]
        publisher.publish(
            StoredEvent(
                detail["eventId"],
                detail["customerId"],
                envelope["detail-type"],
                detail,
                stack.clock.now().replace(microsecond=0),
            )
        )


def test_duplicate_and_out_of_order_deliveries_reach_the_receiver_once_per_event_id(
    stack: Stack, alerts: AlertSide, receiver: Receiver
) -> None:
    # Given alerts of four kinds waiting on the alert queue, and a receiver that fails its first 3 requests
    alerts.subscribe_topic()
    wallet_with_webhook(stack, "acme", receiver.url)
    use(stack, "acme", "60", "u1")  # Balance Low
    originals = alerts.take_queued()  # (taken off the queue as they come, so no function gets them yet)
    use(stack, "acme", "60", "u2")  # Balance Depleted, Overage Recorded
    originals += alerts.take_queued()
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "500", "price": PRICE}).status == 201
    stack.pump_streams()  # Balance Recovered (twice: threshold 50 and depletion)
    stack.pump_rules()
    originals += alerts.take_queued()
    kinds = Counter(e["detail-type"] for e in originals)
    assert kinds == {"Balance Low": 1, "Balance Depleted": 1, "Overage Recorded": 1, "Balance Recovered": 2}
    event_ids = {e["detail"]["eventId"] for e in originals}
    receiver.fail_next(3)
    # When every event arrives three times, in a shuffled order: twice more through the bus (the relay
    # republishing, new envelope ids) and once as an exact copy of the message (SQS delivering twice)
    republish(stack, list(reversed(originals)))
    stack.pump_rules()
    for envelope in random.Random(11).sample(originals, len(originals)):
        alerts.send(envelope)
    republish(stack, random.Random(7).sample(originals, len(originals)))
    stack.pump_rules()
    assert alerts.depth(alerts.queue) == 3 * len(originals)
    stack.pump_queues()
    # Then the receiver accepted each event id exactly once; the only extra requests are the 3 it failed
    accepted = Counter(r.event_id for r in receiver.accepted())
    assert accepted == dict.fromkeys(event_ids, 1)
    assert len(receiver.received) == len(event_ids) + 3
    # And every body is the event as published, whichever duplicate carried it
    by_id = {e["detail"]["eventId"]: e for e in originals}
    for request in receiver.accepted():
        assert request.json()["detail"] == by_id[request.event_id]["detail"]
        assert request.json()["type"] == by_id[request.event_id]["detail-type"]
    # And the topic got each once too, with its attributes for filter policies
    notes = alerts.topic_messages()
    assert Counter(n["MessageAttributes"]["eventId"]["Value"] for n in notes) == dict.fromkeys(event_ids, 1)
    for note in notes:
        event_id = note["MessageAttributes"]["eventId"]["Value"]
        assert note["MessageAttributes"]["detailType"]["Value"] == by_id[event_id]["detail-type"]
        assert note["MessageAttributes"]["customerId"]["Value"] == "acme"
        assert note["Subject"] == f"{by_id[event_id]['detail-type']}: acme"
        assert json.loads(note["Message"])["id"] == event_id
    # And nothing is left on the queues
    assert alerts.depth(alerts.queue) == 0
    assert alerts.dead_letters() == []


def test_a_redelivery_after_the_alert_was_delivered_sends_nothing(
    stack: Stack, alerts: AlertSide, receiver: Receiver
) -> None:
    # Given a Balance Low delivered
    balance_low(stack, "acme", receiver.url)
    (envelope,) = alerts.take_queued()
    alerts.send(envelope)
    stack.pump_queues()
    assert len(receiver.accepted()) == 1
    # When the bus delivers it again a while later
    republish(stack, [envelope])
    stack.pump_rules()
    stack.pump_queues()
    # Then the receiver gets nothing more, and the delivery says delivered after one attempt
    assert len(receiver.received) == 1
    delivery = alerts.delivery(envelope["detail"]["eventId"])
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 1)


# -- a receiver that is down, slow, or answers 500 loses no alert ---------------------------------------------------


def test_receiver_down_for_three_tries_then_up_gets_the_alert(
    stack: Stack, alerts: AlertSide, receiver: Receiver, visibility_changes: list[int]
) -> None:
    # Given a Balance Low on the alert queue, and the receiver down (its port closed)
    balance_low(stack, "acme", receiver.url)
    receiver.stop()
    queue_timeout = int(stack.template["Resources"]["WebhookQueue"]["Properties"]["VisibilityTimeout"])
    # When three attempts fail, each after the message became visible again
    for attempt in range(1, 4):
        assert stack.pump_queues(fast_forward=False) == 1, f"attempt {attempt}"
        stack.advance(queue_timeout + 1)
    (letter,) = [d for d in Table(stack).scan() if str(d["PK"]).startswith("D#") and d["SK"] == "WEBHOOK"]
    assert (letter["state"], letter["attempts"]) == ("failed", 3)
    assert letter["lastFailure"] == "connection_error:ConnectionRefusedError"
    # And the receiver comes back up
    receiver.start()
    stack.pump_queues()
    # Then it gets the alert once, on the fourth attempt, and the message is gone
    (request,) = receiver.received
    assert request.headers["Prepaid-Webhook-Attempt"] == "4"
    assert request.json()["type"] == "Balance Low"
    delivery = alerts.delivery(request.event_id)
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 4)
    assert alerts.depth(alerts.queue) == 0
    assert alerts.dead_letters() == []
    # And each failure set the message's visibility to the backoff schedule: 30 s, 60 s, 120 s
    assert visibility_changes == [30, 60, 120]


def test_receiver_answering_500_is_retried_until_it_answers_200(
    stack: Stack, alerts: AlertSide, receiver: Receiver
) -> None:
    # Given a receiver that answers 500 to its first 4 requests
    receiver.fail_next(4, status=500)
    # When a Balance Low is delivered, the waits fast-forwarded
    balance_low(stack, "acme", receiver.url)
    stack.pump_queues()
    # Then it got 5 requests for the one event, attempts 1 to 5, the last one accepted
    assert [r.answered for r in receiver.received] == [500, 500, 500, 500, 200]
    assert [r.headers["Prepaid-Webhook-Attempt"] for r in receiver.received] == ["1", "2", "3", "4", "5"]
    assert len({r.event_id for r in receiver.received}) == 1
    # And each attempt was signed afresh, over the same body
    assert len({r.body for r in receiver.received}) == 1
    assert alerts.dead_letters() == []


def test_receiver_down_past_the_retry_budget_lands_in_the_dead_letter_queue_with_the_reason(
    stack: Stack, alerts: AlertSide, receiver: Receiver, visibility_changes: list[int]
) -> None:
    # Given a receiver that stays down, and a Balance Low for its wallet
    receiver.stop()
    balance_low(stack, "acme", receiver.url)
    (envelope,) = alerts.take_queued()
    alerts.send(envelope)
    # When the retries are fast-forwarded to the end of the budget
    stack.pump_queues()
    # Then the alert is in WebhookDeadLetterQueue: the envelope unchanged, the reason beside it
    budget = Backoff().max_attempts
    (letter,) = alerts.dead_letters()
    assert letter.envelope() == envelope
    assert letter.attributes == {
        "reason": "connection_error",
        "error": "ConnectionRefusedError",
        "attempts": str(budget),
        "channel": "webhook",
        "host": f"127.0.0.1:{receiver.port}",
        "eventId": envelope["detail"]["eventId"],
        "detailType": "Balance Low",
        "customerId": "acme",
    }
    # And the alert queue is empty, the delivery marked dead after the whole budget
    assert alerts.depth(alerts.queue) == 0
    delivery = alerts.delivery(envelope["detail"]["eventId"])
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"]) == ("dead", budget)
    # And the waits between attempts followed the documented schedule
    assert visibility_changes == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert visibility_changes == [int(w.total_seconds()) for w in Backoff().schedule()]
    # When the receiver is back and the dead letter is redriven onto the alert queue
    receiver.start()
    alerts.send(letter.envelope())
    stack.pump_queues()
    # Then the alert is delivered, once, in a new round of attempts
    (request,) = receiver.accepted()
    assert (request.event_id, request.headers["Prepaid-Webhook-Attempt"]) == (envelope["detail"]["eventId"], "1")


def test_a_slow_receiver_is_a_failed_attempt_and_is_retried(
    stack: Stack, alerts: AlertSide, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a webhook timeout of 0.5 s and a receiver that takes 3 s over its first request
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "0.5")
    receiver.slow_next(1, seconds=3.0)
    balance_low(stack, "acme", receiver.url)
    # When the alert is delivered
    stack.pump_queues()
    # Then the first attempt was given up on as a timeout (had the sender waited the receiver's 3 s, it would
    # have had its 200 and been done), and the second succeeded: shown by what happened, not by a stopwatch
    assert [r.headers["Prepaid-Webhook-Attempt"] for r in receiver.received] == ["1", "2"]
    assert receiver.received[1].answered == 200
    delivery = alerts.delivery(receiver.received[0].event_id)
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"], delivery["lastFailure"]) == (
        "delivered",
        2,
        "timeout:TimeoutError",
    )
    # And a receiver deduping on webhook-id keeps one alert, even if the slow one was processed too
    time.sleep(3.2)  # (the slow request has been answered by now, too late)
    assert list(receiver.accepted_once_per_id()) == [receiver.received[0].event_id]


# -- the topic, wallets without a webhook, and what is not an alert ------------------------------------------------


def test_the_topic_gets_alerts_of_wallets_without_a_webhook(stack: Stack, alerts: AlertSide) -> None:
    # Given an account team subscribed to the alert topic, and a wallet without a webhook URL
    alerts.subscribe_topic()
    # When its balance falls below the threshold
    balance_low(stack, "no-hook", None)
    stack.pump_queues()
    # Then the topic has the alert, and no webhook delivery was even recorded
    (note,) = alerts.topic_messages()
    body = json.loads(note["Message"])
    assert (body["type"], body["customerId"], body["detail"]["threshold"]) == ("Balance Low", "no-hook", "50")
    assert alerts.delivery(body["id"]) is None
    topic = alerts.delivery(body["id"], "TOPIC")
    assert topic is not None
    assert topic["state"] == "delivered"
    assert alerts.depth(alerts.queue) == 0


def test_a_message_that_is_not_an_alert_goes_to_the_dead_letter_queue_at_once(
    stack: Stack, alerts: AlertSide, receiver: Receiver
) -> None:
    # Given messages on the alert queue that are not alert events (anyone allowed to send could put them there)
    alerts.sqs.send_message(QueueUrl=alerts.queue, MessageBody="not json")
    alerts.send({"source": "prepaid.credits", "detail-type": "Credits Purchased", "detail": {}, "time": "x"})
    # When the function runs
    stack.pump_queues()
    # Then both are dead-lettered as they were, each with why, and nothing was sent
    letters = sorted(alerts.dead_letters(), key=lambda d: d.body)
    assert [(d.body[:8], d.attributes["reason"], d.attributes["error"]) for d in letters] == [
        ("not json", "malformed_alert", "$:not_json"),
        ('{"source', "malformed_alert", "detail.eventId:invalid"),
    ]
    assert receiver.received == []


def test_the_alert_rule_matches_every_detail_type(stack: Stack) -> None:
    # Given the template's AlertRule
    pattern = stack.template["Resources"]["AlertRule"]["Properties"]["EventPattern"]
    # Then it selects the product's events, every detail type (endpoints may subscribe to any)
    assert pattern["source"] == ["prepaid.credits"]
    assert sorted(pattern["detail-type"]) == sorted(DETAIL_TYPES)
    # And the queue's redrive (a safety net for crashes) never cuts the function's own retry budget short
    queue = stack.template["Resources"]["WebhookQueue"]["Properties"]
    function = stack.template["Resources"]["AlertingFunction"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] > int(function["Environment"]["Variables"]["WEBHOOK_MAX_ATTEMPTS"])
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]


# -- the secret ----------------------------------------------------------------------------------------------------


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """The alerting function's logger at DEBUG for one test."""
    level = alerting_handler.logger.log_level
    alerting_handler.logger.setLevel(logging.DEBUG)
    yield
    alerting_handler.logger.setLevel(level)


def test_the_signing_secret_never_leaves_the_signature(
    stack: Stack,
    alerts: AlertSide,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    debug_logging: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given the function logging at DEBUG, every log record captured, a budget of 2 attempts, a subscribed topic
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")
    caplog.set_level(logging.DEBUG, logger=alerting_handler.logger.name)
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "2")
    alerts.subscribe_topic()
    secret = alerts.secret()
    # When alerts are delivered, fail (500), fail for good (dead-lettered), and a malformed message comes by
    receiver.fail_next(1)
    balance_low(stack, "acme", receiver.url)
    use(stack, "acme", "60", "u2")
    stack.pump_queues()
    receiver.stop()
    wallet_with_webhook(stack, "down", receiver.url)
    use(stack, "down", "60", "d1")
    stack.pump_queues()
    alerts.sqs.send_message(QueueUrl=alerts.queue, MessageBody="not json")
    stack.pump_queues()
    # Then all of that happened
    assert len(receiver.accepted()) == 3
    letters = alerts.dead_letters()
    assert sorted(d.attributes["reason"] for d in letters) == ["connection_error", "malformed_alert"]
    # And the secret appears nowhere: not in logs, dead letters, the table, topic messages or the requests
    output = capfd.readouterr()
    logged = output.out + output.err + "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "alert" in logged and "dead_lettered" in logged  # the logs were captured
    places = {
        "logs": logged,
        "dead letters": json.dumps([d.__dict__ for d in letters]),
        "table": json.dumps(Table(stack).scan(), default=repr),
        "topic": json.dumps(alerts.topic_messages()),
        "requests": json.dumps([{**r.headers, "body": r.body.decode()} for r in receiver.received]),
    }
    assert len(secret) >= 32
    wallet_secret = alerts.wallet_secret("acme").removeprefix("whsec_")
    leaked = [secret, secret[:16], wallet_secret, wallet_secret[:16]]
    assert [where for where, text in places.items() if any(s in text for s in leaked)] == []
    # And no webhook path or query token leaked into the dead letters either
    assert "receiver-path-token" not in places["dead letters"]


# -- the sample event ----------------------------------------------------------------------------------------------


def test_the_sample_alert_batch_runs_through_the_handler(stack: Stack, alerts: AlertSide, receiver: Receiver) -> None:
    # Given the sample SQS event (what Lambda passes AlertingFunction), and its customer's wallet with a webhook
    sample = json.loads(SAMPLE.read_text())
    (record,) = sample["Records"]
    envelope = json.loads(record["body"])
    alert = alert_from_envelope(envelope)
    assert alert.detail_type == "Balance Low"
    wallet_with_webhook(stack, alert.customer_id, receiver.url)
    alerts.subscribe_topic()
    # And it has the shape the template's rule and queue give an alert (the same envelope keys as a fresh one)
    use(stack, alert.customer_id, "60", "fresh")
    (fresh,) = alerts.take_queued()
    assert set(envelope) == set(fresh) | {"account"}  # (moto itself leaves `account` out of queue targets)
    assert set(envelope["detail"]) == set(fresh["detail"])
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].split(":")[-1].startswith("prepaid-credits-WebhookQueue-")
    # And the change it reports was committed (its outbox record is in the table, as the publisher left it)
    committed = OutboxEvent(alert.event_id, alert.detail_type, envelope["detail"], datetime.fromisoformat(alert.time))
    item = to_attributes(outbox_item(alert.customer_id, committed))
    boto3.client("dynamodb", region_name="us-east-1").put_item(TableName=stack.name("WalletTable"), Item=item)
    # When Lambda invokes the function with it
    answer = stack.invoke("AlertingFunction", sample)
    # Then it succeeds, and the receiver got the sample's alert, signed with the wallet's own secret
    assert answer == {"batchItemFailures": []}
    (request,) = receiver.received
    assert request.event_id == alert.event_id
    assert readme_verifier()(alerts.wallet_secret(alert.customer_id), request.body, request.headers) is not None
    assert request.json()["detail"] == envelope["detail"]
    (note,) = alerts.topic_messages()
    assert json.loads(note["Message"])["id"] == alert.event_id


def test_backoff_waits_are_capped_and_never_exceed_sqs_limits() -> None:
    # Given the template's settings for the alerting function
    variables = load()["Resources"]["AlertingFunction"]["Properties"]["Environment"]["Variables"]
    backoff = Backoff(
        max_attempts=int(variables["WEBHOOK_MAX_ATTEMPTS"]),
        base=timedelta(seconds=int(variables["WEBHOOK_BACKOFF_BASE_SECONDS"])),
        cap=timedelta(seconds=int(variables["WEBHOOK_BACKOFF_MAX_SECONDS"])),
    )
    # Then its schedule is the one docs/webhooks.md documents, and each wait fits ChangeMessageVisibility (12 h)
    assert [int(w.total_seconds()) for w in backoff.schedule()] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert all(w <= timedelta(hours=12) for w in backoff.schedule())
    assert sum(backoff.schedule(), timedelta()) == timedelta(hours=3, minutes=3, seconds=30)
