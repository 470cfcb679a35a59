"""What crosses a boundary is checked before it can move money or hold back another customer.

Each test reproduces one way in found by trying the stack as an attacker would (the hardening issue's findings 1-3):
a message put straight on the drawdown queue, one producer's oversized or badly rated usage, forged bus events.
The queue and bus policies that keep those senders out on AWS are checked in tests/packaging/test_template.py;
moto enforces no policy, so here the functions themselves must refuse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from prepaid.adapters.items import to_attributes
from prepaid_local.queue_messages import take_all
from prepaid_local.stack import Stack
from support.aws import REGION
from support.usage import PRICE, RATE_CARD, Queues, Table, fund, now_iso, usage_event, wallet
from support.webhooks import AlertSide, Receiver


@pytest.fixture(autouse=True)
def rate_card(stack: Stack) -> None:
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def drawdown_letters(stack: Stack) -> list[tuple[str | None, Any]]:
    """(reason, body) of every message in the drawdown dead-letter queue (read and deleted)."""
    sqs = boto3.client("sqs", region_name=REGION)
    found = []
    for message in take_all(sqs, stack.name("DrawdownDeadLetterQueue"), with_attributes=True):
        attributes = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
        found.append((attributes.get("reason"), message["Body"]))
    return found


def rated_event(event_id: str, credits: Any) -> dict[str, Any]:
    """One event as ingest writes it onto the drawdown queue."""
    return {"eventId": event_id, "meter": "api_calls", "quantity": "1", "credits": credits, "timestamp": now_iso()}


# -- 1. the drawdown queue ---------------------------------------------------------------------------------------------


FORGED_RATED: dict[str, tuple[Any, str]] = {
    "negative credits": (rated_event("neg", "-1000000"), "events[0]:credits_negative"),
    "credits NaN": (rated_event("nan", "NaN"), "events[0]:credits_not_a_decimal_string"),
    "credits with an exponent": (rated_event("exp", "1e30"), "events[0]:credits_not_a_decimal_string"),
    "credits as a JSON number": (rated_event("num", 5), "events[0]:credits_not_a_decimal_string"),
    "credits finer than 1e-9": (rated_event("fine", "0.0000000001"), "events[0]:credits_too_precise"),
    "credits above 10^12": (rated_event("huge", "1000000000001"), "events[0]:credits_too_large"),
    "an extra field": ({**rated_event("extra", "1"), "overage": "-5"}, "events[0]:unexpected_fields"),
    "an event id with a space": (rated_event("a b", "1"), "events[0]:invalid_event_id"),
}


@pytest.mark.parametrize("case", list(FORGED_RATED), ids=list(FORGED_RATED))
def test_a_message_ingest_did_not_write_is_dead_lettered_and_changes_no_wallet(stack: Stack, case: str) -> None:
    # Given a wallet of 100 credits, and a principal sending straight onto the drawdown queue (no policy in moto)
    fund(stack, "acme", "100")
    before = wallet(stack, "acme")
    event, reason = FORGED_RATED[case]
    Queues(stack).send_drawdown(json.dumps({"customerId": "acme", "events": [event]}), "acme")
    # When drawdown runs
    stack.pump_queues()
    # Then the message is in the drawdown dead-letter queue with its reason, and the wallet did not move
    letters = drawdown_letters(stack)
    assert [r for r, _ in letters] == [reason]
    after = wallet(stack, "acme")
    assert (after["balance"], after["overage"], after["totals"]) == (before["balance"], "0", before["totals"])
    assert Table(stack).event_records() == {}


def test_negative_credits_on_the_drawdown_queue_never_forgive_later_usage(stack: Stack) -> None:
    # Given the reproduction: a forged -1,000,000-credit event, then a genuine 2,500-credit event through ingest
    fund(stack, "acme", "100")
    forged = {"customerId": "acme", "events": [rated_event("forged", "-1000000")]}
    Queues(stack).send_drawdown(json.dumps(forged), "acme")
    stack.pump_queues()
    Queues(stack).send_usage(usage_event("genuine", quantity="5000"))  # x 0.5 = 2,500 credits
    # When both are drawn
    stack.pump_queues()
    # Then the genuine usage is owed in full: 100 drawn, 2,400 overage (not 2,400 forgiven)
    after = wallet(stack, "acme")
    assert (after["balance"], after["overage"], after["totals"]["rated"]) == ("0", "2400", "2500")


def test_a_message_whose_group_is_not_its_customer_is_refused(stack: Stack) -> None:
    # Given a message for globex sent in acme's FIFO group (it would be drawn beside acme's, out of globex's order)
    fund(stack, "globex", "100")
    body = json.dumps({"customerId": "globex", "events": [rated_event("g1", "10")]})
    Queues(stack).send_drawdown(body, "acme")
    # When drawdown runs, then it is dead-lettered with the reason and globex's wallet is untouched
    stack.pump_queues()
    assert [r for r, _ in drawdown_letters(stack)] == ["group_is_not_the_customer"]
    assert wallet(stack, "globex")["balance"] == "100"


def test_one_poison_drawdown_message_holds_back_no_one(stack: Stack) -> None:
    # Given a message that is not JSON on the drawdown queue, then two customers' genuine usage
    fund(stack, "acme", "100")
    fund(stack, "globex", "100")
    queues = Queues(stack)
    queues.send_drawdown("{not json", "acme")
    queues.send_usage({"events": [usage_event("a1", "acme", "10"), usage_event("g1", "globex", "10")]})
    # When the pipeline runs
    stack.pump_queues()
    # Then both customers' usage is drawn, and the poison message is dead-lettered once, with its reason
    assert (wallet(stack, "acme")["balance"], wallet(stack, "globex")["balance"]) == ("95", "95")
    assert drawdown_letters(stack) == [("body_not_json", "{not json")]


# -- 2. one producer's message never fails another customer's usage ---------------------------------------------------


def test_refused_events_that_fill_more_than_a_batch_are_each_dead_lettered_and_others_drawn(stack: Stack) -> None:
    # Given ten messages each holding one refused event of ~150 KB (an unknown field: ten of them overflow one
    # SendMessageBatch of 1 MiB), and another customer's good event in the same delivery
    fund(stack, "globex", "100")
    queues = Queues(stack)
    for n in range(10):
        queues.send_usage({**usage_event(f"big-{n}", "acme"), "note": "x" * 150_000})
    queues.send_usage(usage_event("good", "globex", "10"))
    # When ingest and drawdown run (the stack raises if a function fails)
    stack.pump_queues()
    # Then every refused event is in the usage dead-letter queue, alone, with its reason
    letters = queues.dead_letters()
    assert sorted(d.message["eventId"] for d in letters) == [f"big-{n}" for n in range(10)]
    assert {(d.reason, d.refused) for d in letters} == {("unknown_field", "event")}
    # And the other customer's event was drawn, once
    assert wallet(stack, "globex")["balance"] == "95"
    assert sorted(Table(stack).event_records()) == ["good"]


def test_a_valid_post_of_nearly_2_mib_is_queued_whole(stack: Stack) -> None:
    # Given 1,000 valid events of ~2 KB each (dimensions), under the 2 MiB body limit
    dimensions = {f"d{k}": "v" * 250 for k in range(7)}
    events = [{**usage_event(f"e-{n}", "acme"), "dimensions": dimensions} for n in range(1000)]
    body = json.dumps({"events": events})
    assert 1_900_000 < len(body.encode()) < 2 * 1024 * 1024
    # When it is posted
    answer = stack.api("POST", "/usage", body)
    # Then it is accepted (not a 500: the drawdown queue got it in batches within SendMessageBatch's 1 MiB)
    assert answer.status == 202, answer.body
    assert len(answer.body["accepted"]) == 1000
    assert len(Queues(stack).queued_rated()) == 1000


def test_a_meter_priced_out_of_range_refuses_its_events_only(stack: Stack) -> None:
    # Given a rate card stored with a meter priced 10^30 credits a unit (written to the table directly: the API
    # refuses such a rate), and two customers' usage in one delivery
    card = {
        "PK": "CATALOG",
        "SK": "RATE_CARD",
        "itemType": "rate_card",
        "version": 99,
        "meters": {"api_calls": Decimal("0.5"), "gpu": Decimal("1E+30")},
        "overrides": {},
    }
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=stack.name("WalletTable"), Item=to_attributes(card))
    stack.cold_start()  # a fresh environment reads the card
    fund(stack, "acme", "100")
    fund(stack, "globex", "100")
    queues = Queues(stack)
    queues.send_usage({"events": [usage_event("gpu-1", "acme", "5", meter="gpu"), usage_event("a-1", "acme", "2")]})
    queues.send_usage(usage_event("g-1", "globex", "10"))
    # When the pipeline runs
    stack.pump_queues()
    # Then only the event the rate cannot price is refused, with its reason; the rest are drawn
    assert [(d.reason, d.message["eventId"]) for d in queues.dead_letters()] == [("credits_out_of_range", "gpu-1")]
    assert (wallet(stack, "acme")["balance"], wallet(stack, "globex")["balance"]) == ("99", "95")


# -- 3. forged bus events ---------------------------------------------------------------------------------------------


def put_on_the_bus(stack: Stack, detail_type: str, detail: dict[str, Any]) -> None:
    """What any principal allowed events:PutEvents could send (moto applies no bus policy)."""
    boto3.client("events", region_name=REGION).put_events(
        Entries=[
            {
                "EventBusName": stack.name("EventBus"),
                "Source": "prepaid.credits",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Time": datetime.now(UTC),
            }
        ]
    )


def test_a_forged_balance_low_buys_nothing(stack: Stack) -> None:
    # Given a wallet of 50 credits given auto-recharge at 100 (buy 500) afterwards: below it, but it never crossed
    # it, so no Balance Low was ever committed
    fund(stack, "acme", "50")
    settings = {"autoRecharge": {"threshold": "100", "credits": "500", "maxPerDay": 3, "price": PRICE}}
    assert stack.api("PUT", "/wallets/acme/settings", settings).status == 200
    stack.pump()
    # When a made-up Balance Low for it is put on the bus
    forged = {"customerId": "acme", "balance": "50", "previousBalance": "150", "threshold": "100"}
    put_on_the_bus(stack, "Balance Low", {**forged, "eventId": uuid.uuid4().hex + "-0"})
    stack.pump()
    # Then nothing was bought
    cards = wallet(stack, "acme")["cards"]
    assert [(c["source"], c["credits"]) for c in cards] == [("purchase", "50")]


def test_a_forged_alert_never_reaches_the_customers_webhook(stack: Stack, receiver: Receiver) -> None:
    # Given a wallet with a webhook, and a genuine alert delivered to it
    fund(stack, "acme", "100", thresholds=["50"])
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["50"], "webhookUrl": receiver.url}).status == 200
    Queues(stack).send_usage(usage_event("u1", "acme", "120"))  # 60 credits: below 50
    stack.pump()
    genuine = [r.json() for r in receiver.received]
    assert [g["type"] for g in genuine] == ["Balance Low"]
    # When a forged Balance Depleted (a phishing link in it) is put on the bus, and a copy of the genuine alert's
    # id with another detail
    phishing = {"customerId": "acme", "balance": "0", "message": "pay at https://evil.example/pay"}
    put_on_the_bus(stack, "Balance Depleted", {**phishing, "eventId": uuid.uuid4().hex + "-0"})
    put_on_the_bus(stack, "Balance Low", {**genuine[0]["detail"], "balance": "1"})
    stack.pump()
    # Then neither was signed or sent: the receiver still has the genuine alert only
    assert [r.json()["id"] for r in receiver.received] == [genuine[0]["id"]]
    assert "evil.example" not in b"".join(r.body for r in receiver.received).decode()
    # And both are in the alert dead-letter queue, with the reason
    letters = AlertSide(stack).dead_letters()
    assert sorted((d.attributes["reason"], d.envelope()["detail-type"]) for d in letters) == [
        ("not_committed", "Balance Depleted"),
        ("not_committed", "Balance Low"),
    ]
