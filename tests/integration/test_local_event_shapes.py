"""Event shapes are those of AWS: each events/*.json sample equals in shape what the local stack passes.

A realistic flow runs through the stack (every API sample's request sent through the gateway, usage posted and
sent straight to the usage queue, everything pumped), and every event a function receives is recorded. Each sample
is then compared with what its function received: the same keys at every level and the same value types, values
ignored. Lists are compared by their first element; null matches any type (AWS sends null for absent values);
maps whose keys are data (headers, query strings, message attributes) are compared by their values only.

The SQS samples (`ingest_usage_batch`, `drawdown_rated_usage`) follow the records of AWS's documented SQS event;
their bodies were made by the real code, and they run through their handlers below.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlencode

import boto3
import pytest

from prepaid.adapters.sqs import pack, rated_from_wire, rated_to_wire
from prepaid_local.stack import Stack
from prepaid_local.template import ROOT
from support.aws import REGION

EVENTS = ROOT / "events"
FILES = sorted(EVENTS.glob("*.json"))
SQS_SAMPLES = ["ingest_usage_batch", "drawdown_rated_usage"]
# The rate card the SQS samples were rated with (their drawdown body holds the credits it gives).
SAMPLE_RATE_CARD = {
    "meters": {
        "api_calls": {"creditsPerUnit": "0.5"},
        "tokens": {"creditsPerUnit": "0.002", "dimension": "model", "prices": {"large": "0.004"}},
    }
}
# Maps whose keys are data, not shape: compared by their values only.
DATA_MAPS = {"headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters"}
DATA_MAPS |= {"messageAttributes"}
# The order the API samples are sent in, so each finds what it needs (a price book to quote from, a card to void).
API_ORDER = [
    "api_put_price_book",
    "api_get_price_book",
    "api_quote",
    "api_openapi",
    "purchase_card",
    "api_dashboard_link",
    "api_read_wallet",
    "api_put_settings",
    "purchase_void_card",
    "dashboard_page",
    "stripe_webhook_event",
]
# Samples refused on purpose: a dashboard token in a file cannot be signed with the stack's own secret (403), nor a
# Stripe event with the endpoint's (400).
API_REFUSED = {"dashboard_page", "stripe_webhook_event"}

Event = dict[str, Any]
Seen = list[tuple[str, Any]]


def load_event(name: str) -> Event:
    event: Event = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def differences(sample: Any, local: Any, path: str = "$") -> list[str]:
    """Where two events differ in shape (keys and value types), values ignored."""
    if sample is None or local is None:
        return []
    if isinstance(sample, dict) and isinstance(local, dict):
        if path.rsplit(".", 1)[-1] in DATA_MAPS:
            if sample and local:
                return differences(next(iter(sample.values())), next(iter(local.values())), f"{path}.*")
            return []
        found = []
        if set(sample) != set(local):
            only_sample, only_local = sorted(set(sample) - set(local)), sorted(set(local) - set(sample))
            found.append(f"{path}: only in the sample {only_sample}, only locally {only_local}")
        for key in sorted(set(sample) & set(local)):
            found += differences(sample[key], local[key], f"{path}.{key}")
        return found
    if isinstance(sample, list) and isinstance(local, list):
        return differences(sample[0], local[0], f"{path}[0]") if sample and local else []
    if type(sample) is not type(local):
        return [f"{path}: {type(sample).__name__} in the sample, {type(local).__name__} locally"]
    return []


def function_of_sample(stack: Stack, name: str) -> str:
    """The function a sample is for, by its file name: `api_*` is ApiFunction, `drawdown_*` DrawdownFunction."""
    prefixes = {re.sub(r"(?<!^)(?=[A-Z])", "_", f.removesuffix("Function")).lower(): f for f in stack.functions}
    matching = [p for p in prefixes if name.startswith(f"{p}_")]
    assert matching, f"{name}: its name starts with no function's (api_, ingest_, drawdown_, publisher_, ...)"
    return prefixes[max(matching, key=len)]


def candidates(sample: Event, function: str, seen: Seen) -> list[Any]:
    """What the function received that the sample stands for (for the API: the same resource and method)."""
    received = [event for name, event in seen if name == function]
    if "httpMethod" in sample:
        return [e for e in received if (e["resource"], e["httpMethod"]) == (sample["resource"], sample["httpMethod"])]
    return received


def send_api_samples(stack: Stack) -> None:
    """Each API sample's request, as its client sent it, through the gateway (so the stack builds the event)."""
    card_to_void = None
    for name in API_ORDER:
        sample = load_event(name)
        path = sample["path"]
        if name == "purchase_void_card":
            path = path.replace(sample["pathParameters"]["cardId"], cast(str, card_to_void))
        headers = {
            k: v
            for k, v in (sample["headers"] or {}).items()
            if k in ("Content-Type", "Idempotency-Key", "Stripe-Signature")
        }
        answer = stack.proxy(
            sample["httpMethod"],
            path,
            query=urlencode(sample["queryStringParameters"] or {}),
            headers=headers,
            body=sample["body"],
        )
        assert answer["statusCode"] < 300 or name in API_REFUSED, (name, answer)
        if name == "purchase_card":  # a second card, to void
            bought = stack.api("POST", path, {"credits": "10", "price": {"amount": "0.10", "currency": "USD"}})
            card_to_void = bought.body["card"]["cardId"]


@pytest.fixture
def seen(stack: Stack) -> Iterator[Seen]:
    """Every event each function received during a realistic flow."""
    recorded: Seen = []
    stack.observers.append(lambda function, event: recorded.append((function, copy.deepcopy(event))))
    assert stack.api("PUT", "/rate-card", SAMPLE_RATE_CARD).status == 200
    send_api_samples(stack)
    usage = [
        {"eventId": f"flow-{n}", "customerId": "acme-corp", "meter": "api_calls", "quantity": "4", "timestamp": at}
        for n, at in enumerate(["2026-01-05T10:00:00Z", "2026-01-05T10:00:01.250Z"])
    ]
    assert stack.api("POST", "/usage", {"events": usage}).status == 202
    # a service reporting one event straight to the queue, as the template's output invites
    direct = {"eventId": "flow-direct", "customerId": "acme-corp", "meter": "tokens", "quantity": "900"}
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=stack.name("UsageQueue"), MessageBody=json.dumps(direct | {"timestamp": "2026-01-05T10:00:02Z"})
    )
    # a wallet that crosses its threshold, so balance events reach their subscribers (no webhook: no network)
    assert stack.api("PUT", "/wallets/globex/settings", {"thresholds": ["50"]}).status == 200
    purchase = {"credits": "100", "price": {"amount": "1.00", "currency": "USD"}}
    assert stack.api("POST", "/wallets/globex/purchases", purchase).status == 201
    low = {"eventId": "flow-low", "customerId": "globex", "meter": "api_calls", "quantity": "120"}
    assert stack.api("POST", "/usage", {"events": [low | {"timestamp": "2026-01-05T10:00:03Z"}]}).status == 202
    stack.pump()
    yield recorded


def test_each_sample_has_the_shape_of_what_the_local_stack_passes(stack: Stack, seen: Seen) -> None:
    # Given every sample, and what its function received from the stack during one realistic flow
    assert FILES
    problems = {}
    for path in FILES:
        sample = json.loads(path.read_text())
        function = function_of_sample(stack, path.stem)
        received = candidates(sample, function, seen)
        if not received:
            problems[path.name] = [f"{function} received no such event in the flow; drive it in `seen`"]
            continue
        # Then one of those events has the sample's shape exactly
        compared = sorted((differences(sample, event) for event in received), key=len)
        if compared[0]:
            problems[path.name] = compared[0]
    assert problems == {}, "\n".join(f"{name}: {'; '.join(found)}" for name, found in problems.items())


def test_the_shape_comparison_sees_a_missing_or_retyped_field() -> None:
    # Given an SQS sample, and copies with a field dropped, a type changed, a nested key added
    sample = load_event("ingest_usage_batch")
    dropped, retyped, nested = copy.deepcopy(sample), copy.deepcopy(sample), copy.deepcopy(sample)
    del dropped["Records"][0]["md5OfBody"]
    retyped["Records"][0]["attributes"]["ApproximateReceiveCount"] = 1
    nested["Records"][0]["attributes"]["MessageGroupId"] = "g"
    # Then each differs from the sample, and the sample from itself does not
    assert differences(sample, sample) == []
    at = "$.Records[0]"
    assert differences(sample, dropped) == [f"{at}: only in the sample ['md5OfBody'], only locally []"]
    assert differences(sample, retyped) == [f"{at}.attributes.ApproximateReceiveCount: str in the sample, int locally"]
    assert differences(sample, nested) == [f"{at}.attributes: only in the sample [], only locally ['MessageGroupId']"]


# -- the SQS samples -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SQS_SAMPLES)
def test_an_sqs_sample_comes_from_the_queue_its_function_reads(stack: Stack, name: str) -> None:
    # Given an SQS sample and the function its name says
    event = load_event(name)
    function = function_of_sample(stack, name)
    (props,) = [p for logical, p in stack.event_sources("SQS") if logical == function]
    queue = props["Queue"]["Fn::GetAtt"][0]
    fifo = stack.template["Resources"][queue]["Properties"].get("FifoQueue", False)
    arn = rf"arn:aws:sqs:us-east-1:\d{{12}}:[\w-]+-{queue}-\w+{'.fifo' if fifo else ''}"
    for record in event["Records"]:
        # Then each record comes from that queue (CloudFormation names it <stack>-<logical id>-<suffix>)
        assert re.fullmatch(arn, record["eventSourceARN"])
        assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")
        # And its digest is its body's, with the attributes SQS gives a standard or FIFO queue
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        expected = {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
        expected |= {"MessageGroupId", "MessageDeduplicationId", "SequenceNumber"} if fifo else set()
        assert set(record["attributes"]) == expected


def test_the_ingest_samples_bodies_are_as_a_producer_packs_usage() -> None:
    # Given the ingest sample, then each body is what the usage queue's adapter packs for a producer's events
    for record in load_event("ingest_usage_batch")["Records"]:
        assert pack(json.loads(record["body"])["events"]) == [record["body"]]


def test_the_drawdown_samples_body_is_as_ingest_writes_it() -> None:
    # Given the drawdown sample, then its body is ingest's wire form, grouped and deduplicated as ingest sends it
    (record,) = load_event("drawdown_rated_usage")["Records"]
    body = json.loads(record["body"])
    at = datetime.fromisoformat(body["events"][-1]["timestamp"])  # read when it was written, not years later
    message = rated_from_wire(record["body"], at, record["attributes"]["MessageGroupId"])
    wire = rated_to_wire(message.customer_id, message.usages)
    assert json.dumps(wire, separators=(",", ":"), sort_keys=True) == record["body"]
    assert record["attributes"]["MessageGroupId"] == body["customerId"]
    assert record["attributes"]["MessageDeduplicationId"] == hashlib.sha256(record["body"].encode()).hexdigest()


def test_the_ingest_sample_runs_through_its_handler_and_yields_the_drawdown_sample(stack: Stack) -> None:
    # Given the rate card the samples were rated with
    assert stack.api("PUT", "/rate-card", SAMPLE_RATE_CARD).status == 200
    # When Lambda invokes the ingest function with the sample
    answer = stack.invoke("IngestFunction", load_event("ingest_usage_batch"))
    # Then no record failed, and the drawdown queue holds exactly the drawdown sample's message
    assert answer == {"batchItemFailures": []}
    sqs = boto3.client("sqs", region_name=REGION)
    got = sqs.receive_message(
        QueueUrl=stack.name("DrawdownQueue"),
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )["Messages"]
    (expected,) = load_event("drawdown_rated_usage")["Records"]
    assert [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in got] == [(expected["body"], "acme-corp")]
    # And its correlation ids are the sample's: the producer's on the first message, the second's message id
    followed = expected["messageAttributes"]["correlationIds"]["stringValue"]
    assert [m["MessageAttributes"]["correlationIds"]["StringValue"] for m in got] == [followed]


def test_the_drawdown_sample_runs_through_its_handler(stack: Stack) -> None:
    # Given a wallet of 1,000 credits
    purchase = {"credits": "1000", "price": {"amount": "10.00", "currency": "USD"}}
    assert stack.api("POST", "/wallets/acme-corp/purchases", purchase).status == 201
    # When Lambda invokes the drawdown function with the sample (60 + 61 + 1.5 credits of usage; the tokens priced
    # by their model, `large`)
    answer = stack.invoke("DrawdownFunction", load_event("drawdown_rated_usage"))
    # Then nothing failed and the wallet was drawn by the sample's credits
    assert answer == {"batchItemFailures": []}
    wallet = stack.api("GET", "/wallets/acme-corp").body
    assert (wallet["balance"], wallet["totals"]["rated"]) == ("877.5", "122.5")
