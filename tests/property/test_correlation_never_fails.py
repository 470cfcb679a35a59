"""Correlation ids are only a trail: whatever a caller or a sender puts where they travel, the request is answered
and the usage drawn.

Properties:
- any `X-Correlation-Id` value (any text, long, unicode, controls) on `POST /usage`: the answer is a 202, its
  `X-Correlation-Id` is the header when that is a valid id (`[A-Za-z0-9._:-]{1,128}`), else API Gateway's request id,
  and the drawdown message carries that one id as its `correlationIds` attribute;
- any `messageAttributes` on a drawdown record (any JSON, wrong types, oversized or malformed id lists): the usage
  is drawn, nothing is reported failed.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from prepaid.domain.text import instant
from prepaid_local.queue_messages import take_all
from prepaid_local.stack import Stack
from property.strategies import JSON_VALUES, SETTINGS, header_values
from support.aws import REGION
from support.usage import RATE_CARD, Queues, Table, fund, usage_event

EXPLORED_HEADERS = 80
EXPLORED_ATTRIBUTES = 80
# The contract's rule, written here on its own so that a change to the code's copy shows
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NUMBERS = itertools.count()


def id_lists() -> st.SearchStrategy[str]:
    """Texts an attribute of ids might hold: comma-joined lists of valid and invalid ids, of any length."""
    ids = st.one_of(st.from_regex(VALID_ID, fullmatch=True), header_values())
    return st.lists(ids, max_size=14).map(",".join)


def attribute_values() -> st.SearchStrategy[Any]:
    """A message attribute as Lambda passes it, or anything in its place."""
    typed = st.fixed_dictionaries(
        {
            "dataType": st.sampled_from(["String", "Number", "Binary", "String.custom", ""]),
            "stringValue": st.one_of(id_lists(), st.text(max_size=40), st.just("a" * 5000), JSON_VALUES),
        }
    )
    return st.one_of(typed, JSON_VALUES)


def message_attributes() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"correlationIds": attribute_values()}),
        st.dictionaries(st.text(max_size=20), attribute_values(), max_size=3),
        JSON_VALUES,
    )


def test_any_header_answers_202_and_the_drawdown_carries_the_id_it_names(stack: Stack) -> None:
    # Given a rate card and the drawdown queue as POST /usage fills it
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    queues = Queues(stack)

    @settings(SETTINGS, max_examples=EXPLORED_HEADERS)
    @given(header=st.one_of(header_values(), st.text(max_size=300), st.from_regex(VALID_ID, fullmatch=True)))
    @example(header="")
    @example(header=" ")
    @example(header="req-abc")
    @example(header="x" * 128)
    @example(header="x" * 129)
    @example(header="a b")
    @example(header="a,b")
    @example(header="é")
    @example(header="a\x00b")
    @example(header="req-abc\n")
    @example(header="\u202e")
    @example(header="\uff52\uff45\uff51")  # fullwidth "req"
    def each(header: str) -> None:
        # When usage is posted with that X-Correlation-Id
        body = {"events": [usage_event(f"corr-h{next(NUMBERS)}")]}
        answer = stack.api("POST", "/usage", body, headers={"X-Correlation-Id": header})
        # Then it is accepted (never a 4xx or 5xx for the header), under the header when valid, else the request id
        assert answer.status == 202, answer.body
        named = answer.headers["X-Correlation-Id"]
        if VALID_ID.fullmatch(header):
            assert named == header
        else:
            assert named != header and UUID.fullmatch(named), named
        # And the drawdown message carries that id, and only that one
        (message,) = take_all(queues.sqs, queues.drawdown, with_attributes=True)
        assert message["MessageAttributes"]["correlationIds"]["StringValue"] == named

    each()


def test_any_drawdown_attribute_leaves_the_usage_drawn(stack: Stack) -> None:
    # Given a funded wallet
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "1000000")
    table = Table(stack)
    arn = f"arn:aws:sqs:{REGION}:123456789012:{stack.name('DrawdownQueue').rsplit('/', 1)[1]}"

    @settings(SETTINGS, max_examples=EXPLORED_ATTRIBUTES)
    @given(attributes=message_attributes())
    @example(attributes={"correlationIds": {"dataType": "String", "stringValue": ",".join(["a"] * 11)}})
    @example(attributes={"correlationIds": {"dataType": "String", "stringValue": "ok,not ok"}})
    @example(attributes={"correlationIds": {"dataType": "String", "stringValue": "x" * 129}})
    @example(attributes={"correlationIds": {"dataType": "Number", "stringValue": "1"}})
    @example(attributes={"correlationIds": None})
    @example(attributes=["correlationIds"])
    def each(attributes: Any) -> None:
        # When a drawdown record of one rated event comes with those message attributes
        event_id = f"corr-a{next(NUMBERS)}"
        rated = {"eventId": event_id, "meter": "api_calls", "quantity": "2", "credits": "1"}
        body = json.dumps({"customerId": "acme", "events": [rated | {"timestamp": instant(datetime.now(UTC))}]})
        record = {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "handle",
            "body": body,
            "attributes": {"MessageGroupId": "acme", "ApproximateReceiveCount": "1"},
            "messageAttributes": attributes,
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }
        answer = stack.invoke("DrawdownFunction", {"Records": [record]})
        # Then nothing failed, and the event is drawn
        assert answer == {"batchItemFailures": []}
        assert event_id in table.event_records()

    each()
