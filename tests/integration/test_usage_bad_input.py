"""Bad usage input is refused event by event, each with a clear reason, and never holds back its neighbours.

Over HTTP (`POST /usage` answers 202 with `accepted` and `rejected`) and straight onto the usage queue (refused
events and poison messages land in the usage dead-letter queue with their reason; the good events are drawn).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from prepaid_local.stack import Stack
from support.usage import (
    RATE_CARD,
    Queues,
    Table,
    fund,
    now_iso,
    rated,
    usage_event,
    wallet,
)

DROP = object()


@pytest.fixture(autouse=True)
def rate_card(stack: Stack) -> None:
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200


def changed(event_id: Any = "bad", **changes: Any) -> Callable[[], Any]:
    """A good event with some fields replaced (or dropped with DROP), built when the test runs (fresh time)."""

    def build() -> dict[str, Any]:
        event = usage_event(event_id, quantity="3")
        for name, value in changes.items():
            if value is DROP:
                del event[name]
            else:
                event[name] = value() if callable(value) else value
        return event

    return build


def raw(value: Any) -> Callable[[], Any]:
    return lambda: value


@dataclass(frozen=True)
class Case:
    build: Callable[[], Any]
    reason: str
    field: str | None
    event_id: str | None = "bad"


CASES: dict[str, Case] = {
    "missing eventId": Case(changed(eventId=DROP), "missing_field", "eventId", None),
    "missing customerId": Case(changed(customerId=DROP), "missing_field", "customerId"),
    "missing meter": Case(changed(meter=DROP), "missing_field", "meter"),
    "missing quantity": Case(changed(quantity=DROP), "missing_field", "quantity"),
    "missing timestamp": Case(changed(timestamp=DROP), "missing_field", "timestamp"),
    "empty eventId": Case(changed(""), "invalid_event_id", "eventId", None),
    "eventId of 129 chars": Case(changed("e" * 129), "invalid_event_id", "eventId", None),
    "eventId not a string": Case(changed(12345), "invalid_event_id", "eventId", None),
    "eventId with a newline": Case(changed("bad\nid"), "invalid_event_id", "eventId", None),
    "eventId with a space": Case(changed("bad id"), "invalid_event_id", "eventId", None),
    "eventId not ASCII": Case(changed("caf\u00e9"), "invalid_event_id", "eventId", None),
    "eventId of 128 emoji": Case(changed("\U0001f600" * 128), "invalid_event_id", "eventId", None),
    "customerId with spaces": Case(changed(customerId="acme corp"), "invalid_customer_id", "customerId"),
    "customerId starting with a dash": Case(changed(customerId="-acme"), "invalid_customer_id", "customerId"),
    "customerId of 129 chars": Case(changed(customerId="c" * 129), "invalid_customer_id", "customerId"),
    "customerId not a string": Case(changed(customerId=["acme"]), "invalid_customer_id", "customerId"),
    "negative quantity": Case(changed(quantity="-1"), "quantity_negative", "quantity"),
    "NaN quantity": Case(changed(quantity="NaN"), "quantity_not_a_decimal_string", "quantity"),
    "Infinity quantity": Case(changed(quantity="Infinity"), "quantity_not_a_decimal_string", "quantity"),
    "-Infinity quantity": Case(changed(quantity="-Infinity"), "quantity_not_a_decimal_string", "quantity"),
    "float-typed quantity": Case(changed(quantity=2.5), "quantity_not_a_decimal_string", "quantity"),
    "integer-typed quantity": Case(changed(quantity=7), "quantity_not_a_decimal_string", "quantity"),
    "boolean quantity": Case(changed(quantity=True), "quantity_not_a_decimal_string", "quantity"),
    "quantity not a number": Case(changed(quantity="lots"), "quantity_not_a_decimal_string", "quantity"),
    "fullwidth digits": Case(changed(quantity="\uff11\uff10"), "quantity_not_a_decimal_string", "quantity"),
    "digits with an underscore": Case(changed(quantity="1_000"), "quantity_not_a_decimal_string", "quantity"),
    "digits with spaces": Case(changed(quantity=" 5 "), "quantity_not_a_decimal_string", "quantity"),
    "an exponent": Case(changed(quantity="1e3"), "quantity_not_a_decimal_string", "quantity"),
    "a plus sign": Case(changed(quantity="+5"), "quantity_not_a_decimal_string", "quantity"),
    "huge quantity": Case(changed(quantity="1000000000000.5"), "quantity_too_large", "quantity"),
    "41-digit quantity": Case(changed(quantity="1" * 41), "quantity_not_a_decimal_string", "quantity"),
    "quantity with 10 fraction digits": Case(changed(quantity="0.0000000001"), "quantity_too_precise", "quantity"),
    "timestamp not ISO": Case(changed(timestamp="yesterday at noon"), "invalid_timestamp", "timestamp"),
    "timestamp as epoch number": Case(changed(timestamp=1795500000), "invalid_timestamp", "timestamp"),
    "timestamp without zone": Case(changed(timestamp=lambda: now_iso()[:-6]), "timestamp_without_zone", "timestamp"),
    "timestamp before 1970": Case(changed(timestamp="1969-12-31T23:59:59Z"), "timestamp_out_of_range", "timestamp"),
    "timestamp 6 min in the future": Case(
        changed(timestamp=lambda: now_iso(timedelta(minutes=6))), "timestamp_in_future", "timestamp"
    ),
    "unknown meter": Case(changed(meter="gpu_seconds"), "unknown_meter", "meter"),
    "meter with spaces": Case(changed(meter="api calls"), "invalid_meter", "meter"),
    "unknown field": Case(changed(region="eu"), "unknown_field", "region"),
    "dimensions a list": Case(changed(dimensions=["eu"]), "invalid_dimensions", "dimensions"),
    "dimensions a string": Case(changed(dimensions="region=eu"), "invalid_dimensions", "dimensions"),
    "dimension value not a string": Case(changed(dimensions={"region": 1}), "invalid_dimensions", "dimensions"),
    "event a string": Case(raw("bad"), "not_an_object", None, None),
    "event a list": Case(raw([{"eventId": "x"}]), "not_an_object", None, None),
    "event null": Case(raw(None), "not_an_object", None, None),
}


def expected_rejection(case: Case, index: int) -> dict[str, Any]:
    """The answer's entry: index, event id (null when it had no valid one), reason, and the field concerned."""
    return {"index": index, "eventId": case.event_id, "reason": case.reason, "field": case.field}


def test_post_usage_refuses_each_kind_of_bad_event_with_its_reason_and_draws_its_neighbours(stack: Stack) -> None:
    # Given a wallet of 100 credits, and one batch alternating a good event with each kind of bad event
    fund(stack, "acme", "100")
    events: list[Any] = []
    good: list[str] = []
    for n, case in enumerate(CASES.values()):
        good.append(f"good-{n}")
        events += [usage_event(good[-1], quantity="2"), case.build()]
    # When it is posted
    answer = stack.api("POST", "/usage", {"events": events})
    # Then the answer is 202: the good events accepted, each bad one rejected with its index, id, reason and field
    assert answer.status == 202, answer.body
    assert answer.body["accepted"] == good
    rejected = {r["index"]: r for r in answer.body["rejected"]}
    wrong = {
        name: rejected.get(2 * n + 1)
        for n, (name, case) in enumerate(CASES.items())
        if rejected.get(2 * n + 1) != expected_rejection(case, 2 * n + 1)
    }
    assert wrong == {}, "cases answered otherwise than expected"
    assert len(rejected) == len(CASES) >= 20
    # When the pipeline runs
    queues = Queues(stack)
    stack.pump_queues()
    # Then exactly the good events were drawn: one record each, the balance down by their credits
    assert sorted(Table(stack).event_records()) == sorted(good)
    assert Decimal(wallet(stack, "acme")["balance"]) == 100 - len(good) * rated("2")
    # And nothing reached the dead-letter queue (the API refused the bad ones and queued none of them)
    assert queues.dead_letters() == []


def test_boundary_values_are_accepted(stack: Stack) -> None:
    # Given events at the edge of every limit
    events = [
        usage_event("e" * 128),
        usage_event("zero", quantity="0"),
        usage_event("nine-digits", quantity="0.000000001"),
        usage_event("max", quantity="1000000000000"),
        usage_event("soon", at=now_iso(timedelta(minutes=4))),
        usage_event("zulu", at=now_iso().replace("+00:00", "Z")),
        usage_event("india", at=datetime.now(timezone(timedelta(hours=5, minutes=30))).isoformat()),
        {**usage_event("dims"), "dimensions": {"region": "eu-west-1", "plan": "pro"}},
        usage_event("long-customer", customer="c" * 128),
    ]
    # When they are posted
    answer = stack.api("POST", "/usage", {"events": events})
    # Then all are accepted
    assert answer.status == 202, answer.body
    assert answer.body["rejected"] == []
    assert answer.body["accepted"] == [e["eventId"] for e in events]


def test_unknown_customer_is_refused_under_the_reject_policy(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given usage for customers without a wallet is to be rejected (set before the handlers build their wiring)
    monkeypatch.setenv("UNKNOWN_CUSTOMERS", "reject")
    stack.cold_start()
    fund(stack, "acme", "100")
    queues = Queues(stack)
    # When a batch mixes a known and an unknown customer, over HTTP and straight onto the queue
    answer = stack.api("POST", "/usage", {"events": [usage_event("known-1"), usage_event("ghost-1", "ghost")]})
    queues.send_usage({"events": [usage_event("known-2"), usage_event("ghost-2", "ghost")]})
    stack.pump_queues()
    # Then the HTTP answer rejects the unknown customer's event with its reason
    assert answer.status == 202, answer.body
    assert answer.body["accepted"] == ["known-1"]
    assert answer.body["rejected"] == [
        {"index": 1, "eventId": "ghost-1", "reason": "unknown_customer", "field": "customerId"}
    ]
    # And the one sent to the queue is dead-lettered with that reason
    letters = queues.dead_letters()
    assert [(d.reason, d.refused, d.message["eventId"]) for d in letters] == [("unknown_customer", "event", "ghost-2")]
    # And the known customer's events are drawn, and no wallet was created for the unknown one
    assert sorted(Table(stack).event_records()) == ["known-1", "known-2"]
    assert Decimal(wallet(stack, "acme")["balance"]) == 100 - 2 * rated("10")
    assert stack.api("GET", "/wallets/ghost").status == 404
    # When the customer gets a wallet and the dead-letter queue is redriven onto the usage queue
    fund(stack, "ghost", "100")
    queues.redrive(letters)
    stack.pump_queues()
    # Then the refused event is drawn after all, once, and nothing is dead-lettered again
    assert sorted(Table(stack).event_records()) == ["ghost-2", "known-1", "known-2"]
    assert Decimal(wallet(stack, "ghost")["balance"]) == 100 - rated("10")
    assert queues.dead_letters() == letters  # (the helper keeps what it read; nothing new arrived)


def test_more_than_1000_events_is_413_and_nothing_is_queued(stack: Stack) -> None:
    # Given a batch of 1,001 events
    events = [usage_event(f"e-{n}") for n in range(1001)]
    # When it is posted
    answer = stack.api("POST", "/usage", {"events": events})
    # Then it is refused as too large, with its code, and no event was queued
    assert answer.status == 413
    assert answer.body["error"]["code"] == "too_many_events"
    assert "1001" in answer.body["error"]["message"]
    assert Queues(stack).queued_usage() == []


def test_exactly_1000_events_are_accepted(stack: Stack) -> None:
    answer = stack.api("POST", "/usage", {"events": [usage_event(f"e-{n}") for n in range(1000)]})
    assert answer.status == 202
    assert len(answer.body["accepted"]) == 1000
    assert len(Queues(stack).queued_rated()) == 1000


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"events": [', 400, "malformed_json"),
        ("not json at all", 400, "malformed_json"),
        ([{"eventId": "e-1"}], 422, "validation_error"),
        ({"events": "e-1"}, 422, "validation_error"),
        ({"usage": []}, 422, "validation_error"),
        ({"events": []}, 400, "no_events"),
        ('{"events": [{"eventId": "e-1", "quantity": NaN}]}', 400, "malformed_json"),
        ('{"events": [{"eventId": "e-1", "quantity": Infinity}]}', 400, "malformed_json"),
        ('{"events": [], "events": [{"eventId": "e-1"}]}', 400, "duplicate_key"),
        ('{"events": [' + "[" * 30_000 + "]" * 30_000 + "]}", 400, "json_too_deep"),
    ],
    ids=[
        "truncated JSON",
        "not JSON",
        "a list",
        "events not a list",
        "no events field",
        "an empty list of events",
        "a NaN literal",
        "an Infinity literal",
        "a duplicated key",
        "30,000 levels of nesting",
    ],
)
def test_a_body_that_is_not_a_usage_batch_is_refused_whole(stack: Stack, body: Any, status: int, code: str) -> None:
    # When the body is not a JSON object holding a list of events
    answer = stack.api("POST", "/usage", body)
    # Then the request is refused with the contract's error body, and nothing is queued
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    assert answer.body["error"]["message"]
    assert Queues(stack).queued_usage() == []


def test_bad_messages_on_the_usage_queue_are_dead_lettered_with_their_reason(stack: Stack) -> None:
    # Given a wallet of 100 credits, and a producer sending good and bad messages straight onto the usage queue
    fund(stack, "acme", "100")
    queues = Queues(stack)
    in_a_list = json.dumps([usage_event("sqs-in-a-list")])
    with_extra_key = json.dumps({"events": [usage_event("sqs-extra")], "source": "billing"})
    no_timestamp = {k: v for k, v in usage_event("sqs-no-time").items() if k != "timestamp"}
    for body in [
        usage_event("sqs-good-1"),
        "{not json",
        in_a_list,
        '{"events": "x"}',
        {"events": [usage_event("sqs-good-2"), usage_event("sqs-gpu", meter="gpu_seconds"), usage_event("sqs-good-3")]},
        with_extra_key,
        "42",
        {"events": [usage_event("sqs-nan", quantity="NaN"), "not an event"]},
        {"events": []},
        '{"events": [' + "[" * 30_000 + "]" * 30_000 + "]}",
        '{"eventId": "sqs-twice", "eventId": "sqs-twice-2"}',
        no_timestamp,
        {"events": [usage_event("sqs-good-4")]},
    ]:
        queues.send_usage(body)
    # When the pipeline runs
    stack.pump_queues()
    # Then every poison message (body as it came) and refused event (alone) is in the dead-letter queue, with its reason
    letters = queues.dead_letters()
    whole = {"body_not_json", "not_a_usage_event", "malformed_events_envelope", "no_events", "body_too_deep"}
    whole |= {"body_duplicate_key"}
    assert all(d.refused == ("message" if d.reason in whole else "event") for d in letters), letters
    found = sorted((d.reason, d.message["eventId"] if isinstance(d.message, dict) else d.message) for d in letters)
    assert found == sorted(
        [
            ("body_not_json", "{not json"),
            ("not_a_usage_event", in_a_list),
            ("malformed_events_envelope", '{"events": "x"}'),
            ("unknown_meter", "sqs-gpu"),
            ("malformed_events_envelope", with_extra_key),
            ("not_a_usage_event", "42"),
            ("quantity_not_a_decimal_string", "sqs-nan"),
            ("no_events", '{"events": []}'),
            ("body_too_deep", '{"events": [' + "[" * 30_000 + "]" * 30_000 + "]}"),
            ("body_duplicate_key", '{"eventId": "sqs-twice", "eventId": "sqs-twice-2"}'),
            ("not_an_object", "not an event"),
            ("missing_field", "sqs-no-time"),
        ]
    )
    # And the good events of the same batch were drawn, and nothing is left on the usage queue
    assert sorted(Table(stack).event_records()) == ["sqs-good-1", "sqs-good-2", "sqs-good-3", "sqs-good-4"]
    assert Decimal(wallet(stack, "acme")["balance"]) == 100 - 4 * rated("10")
    assert queues.depth(queues.usage) == 0


UNREPRESENTABLE = "0001-01-01T00:00:00+14:00"  # valid ISO 8601 with a zone, but before datetime.min in UTC


def test_post_usage_refuses_a_timestamp_utc_cannot_hold_and_accepts_its_neighbours(stack: Stack) -> None:
    # Given a batch with one event stamped at a valid ISO instant that falls before year 1 in UTC
    events = [usage_event("good-1"), usage_event("ancient", at=UNREPRESENTABLE), usage_event("good-2")]
    # When it is posted
    answer = stack.api("POST", "/usage", {"events": events})
    # Then that event is rejected with a reason, and its neighbours are accepted
    assert answer.status == 202, answer.body
    assert answer.body["accepted"] == ["good-1", "good-2"]
    assert answer.body["rejected"] == [
        {"index": 1, "eventId": "ancient", "reason": "invalid_timestamp", "field": "timestamp"}
    ]


def test_a_timestamp_utc_cannot_hold_on_the_usage_queue_is_dead_lettered_and_its_neighbours_drawn(
    stack: Stack,
) -> None:
    # Given a wallet, and the usage queue holding good events and one stamped before year 1 in UTC
    fund(stack, "acme", "100")
    queues = Queues(stack)
    queues.send_usage(usage_event("good-1"))
    queues.send_usage(usage_event("ancient", at=UNREPRESENTABLE))
    queues.send_usage({"events": [usage_event("good-2")]})
    # When the pipeline runs, as often as SQS would deliver (five receives, then redrive)
    failures: list[str] = []
    for _ in range(6):
        try:
            stack.pump_queues()
        except Exception as error:
            failures.append(type(error).__name__)
    # Then the good events were drawn, and the bad one dead-lettered with its reason
    drawn = sorted(Table(stack).event_records())
    letters = [(d.reason, d.message) for d in queues.dead_letters()]
    assert (drawn, failures) == (["good-1", "good-2"], [])
    assert [reason for reason, _ in letters] == ["invalid_timestamp"]
