"""The local stack is wired from template.yaml: change a route, a batch size, a rule or a schedule in a copy of the
template and the local behaviour changes, with no other edit. Also the SQS poller's limits (Lambda's 6 MB payload,
the queue's visibility timeout, redrive) and asynchronous invocation's retries and dead letters.

A probe function (a tiny handler written to a temp folder, its CodeUri pointing there) stands in for subscribers
the template does not have yet.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError

from prepaid_local.clock import Clock
from prepaid_local.queue_messages import take_all
from prepaid_local.schedule_expression import ScheduleExpression
from prepaid_local.stack import MAX_PAYLOAD_BYTES, Stack
from prepaid_local.template import load
from support.aws import REGION
from support.usage import PRICE, RATE_CARD, usage_event

Template = dict[str, Any]
Seen = list[tuple[str, Any]]

PROBE = "ProbeFunction"
START = datetime(2026, 11, 24, 11, 59, 30, tzinfo=UTC)

PROBE_SOURCE = '''
"""A probe function for the local stack's tests."""
import json

import boto3


def lambda_handler(event, context):
    if "httpMethod" in event:  # an API Gateway proxy event: say what the gateway routed
        body = {"resource": event["resource"], "pathParameters": event["pathParameters"]}
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
    if "Records" in event and event["Records"] and "dynamodb" in event["Records"][0]:  # a stream batch
        return None
    if "Records" in event:  # SQS: a body starting "fail" fails; "backoff" fails and asks to come back in 120 s
        for r in event["Records"]:
            if r["body"].startswith("backoff"):
                sqs = boto3.client("sqs")
                url = sqs.get_queue_url(QueueName=r["eventSourceARN"].rsplit(":", 1)[1])["QueueUrl"]
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=r["receiptHandle"], VisibilityTimeout=120)
        failed = [r["messageId"] for r in event["Records"] if r["body"].startswith(("fail", "backoff"))]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
    if isinstance(event, dict) and isinstance(event.get("detail"), dict) and event["detail"].get("fail"):
        raise RuntimeError("the probe was told to fail")
    return None
'''


def clients(service: str) -> Any:
    return boto3.client(cast(Any, service), region_name=REGION)


@pytest.fixture
def template(tmp_path: Path) -> Template:
    """A copy of template.yaml with a probe function (no events yet) whose code is in a temp folder."""
    module = f"probe_{uuid.uuid4().hex[:8]}"  # a fresh module per test: sys.modules would keep an older probe
    (tmp_path / f"{module}.py").write_text(PROBE_SOURCE)
    copied = copy.deepcopy(load())
    copied["Resources"][PROBE] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {"CodeUri": str(tmp_path), "Handler": f"{module}.lambda_handler", "Events": {}},
    }
    return copied


@pytest.fixture
def build(aws: None) -> Iterator[Callable[..., tuple[Stack, Seen]]]:
    """Build a stack from a template on the test's moto; each invocation is recorded as (function, event)."""
    built: list[Stack] = []

    def make(template: Template, clock: Clock | None = None) -> tuple[Stack, Seen]:
        stack = Stack(clients, template=template, clock=clock)
        stack.cold_start()
        seen: Seen = []
        stack.observers.append(lambda function, event: seen.append((function, json.loads(json.dumps(event)))))
        built.append(stack)
        return stack, seen

    yield make
    for stack in built:
        stack.cold_start()


def probe_events(template: Template) -> dict[str, Any]:
    events: dict[str, Any] = template["Resources"][PROBE]["Properties"]["Events"]
    return events


def add_probe_queue(template: Template, batch_size: int, visibility: int = 30, max_receives: int = 2) -> None:
    """A queue (with a dead-letter queue) whose messages the probe reads."""
    template["Resources"]["ProbeQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "VisibilityTimeout": visibility,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["ProbeDeadLetterQueue", "Arn"]},
                "maxReceiveCount": max_receives,
            },
        },
    }
    template["Resources"]["ProbeDeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    probe_events(template)["Work"] = {
        "Type": "SQS",
        "Properties": {
            "Queue": {"Fn::GetAtt": ["ProbeQueue", "Arn"]},
            "BatchSize": batch_size,
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    }


def of(seen: Seen, function: str) -> list[Any]:
    return [event for name, event in seen if name == function]


def queue_bodies(stack: Stack, logical: str) -> list[str]:
    """Every message on a queue of the template (read and deleted)."""
    return [message["Body"] for message in take_all(clients("sqs"), stack.name(logical))]


# -- routes --------------------------------------------------------------------------------------------------------


def test_a_route_moved_in_the_template_answers_at_its_new_path_only(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a template whose probe route was /probes/{probeId}, moved to /checks/{probeId} in the copy
    probe_events(template)["Read"] = {
        "Type": "Api",
        "Properties": {"RestApiId": {"Ref": "Api"}, "Path": "/checks/{probeId}", "Method": "GET"},
    }
    stack, seen = build(template)
    # When both paths are requested
    moved = stack.api("GET", "/checks/p1")
    old = stack.api("GET", "/probes/p1")
    # Then the new path reaches the function with the template's resource and parameters
    assert moved.status == 200
    assert moved.body == {"resource": "/checks/{probeId}", "pathParameters": {"probeId": "p1"}}
    # And the old one is not a route: the template's gateway response, and no function ran
    assert (old.status, old.body["error"]["code"]) == (404, "route_not_found")
    assert len(of(seen, PROBE)) == 1


def test_a_real_route_moved_in_the_template_leaves_its_old_path(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given the wallet read moved from /wallets/{customerId} to /accounts/{customerId} in a copy
    api_events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    api_events["ReadWallet"]["Properties"]["Path"] = "/accounts/{customerId}"
    stack, seen = build(template)
    # When the old path is requested, then it is no route at all
    assert stack.api("GET", "/wallets/acme").status == 404
    assert of(seen, "ApiFunction") == []
    # When the new one is, then the API function gets it as that resource
    stack.api("GET", "/accounts/acme")
    (event,) = of(seen, "ApiFunction")
    assert (event["resource"], event["pathParameters"]) == ("/accounts/{customerId}", {"customerId": "acme"})


# -- SQS batches ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "expected"), [(2, [2, 2, 1]), (100, [5])])
def test_the_templates_batch_size_bounds_each_invocation(
    template: Template, build: Callable[..., tuple[Stack, Seen]], batch_size: int, expected: list[int]
) -> None:
    # Given the ingest function's BatchSize set in a copy of the template, and five usage messages queued
    usage = template["Resources"]["IngestFunction"]["Properties"]["Events"]["Usage"]["Properties"]
    usage["BatchSize"] = batch_size
    stack, seen = build(template)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).status == 201
    for n in range(5):
        clients("sqs").send_message(QueueUrl=stack.name("UsageQueue"), MessageBody=json.dumps(usage_event(f"u{n}")))
    # When the queues are pumped
    stack.pump_queues()
    # Then each ingest invocation held at most BatchSize records, and every event was drawn
    assert [len(e["Records"]) for e in of(seen, "IngestFunction")] == expected
    assert stack.api("GET", "/wallets/acme").body["balance"] == "75"


def test_the_usage_queues_batching_window_is_the_templates_parameter(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given the template's usage window as a parameter, deployed with its default and then with another value
    usage = template["Resources"]["IngestFunction"]["Properties"]["Events"]["Usage"]["Properties"]
    assert usage["MaximumBatchingWindowInSeconds"] == {"Ref": "UsageBatchingWindow"}
    default = template["Parameters"]["UsageBatchingWindow"]["Default"]
    stack, _ = build(template)
    # When the stack reads the window, Then it is the parameter's value
    assert stack.batching_window(usage) == default
    template["Parameters"]["UsageBatchingWindow"]["Default"] = 7
    assert stack.batching_window(usage) == 7


def test_a_waiting_poller_gathers_its_batch_over_the_templates_batching_window(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given the ingest source with a batch of 3 and a window of a minute (so only a full batch closes it: a minute
    # because three sends take far less, even on a loaded machine), and one usage message queued
    usage = template["Resources"]["IngestFunction"]["Properties"]["Events"]["Usage"]["Properties"]
    usage.update(BatchSize=3, MaximumBatchingWindowInSeconds=60)
    stack, seen = build(template)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).status == 201
    sqs, url = clients("sqs"), stack.name("UsageQueue")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(usage_event("u0")))
    props = next(p for logical, p in stack.event_sources("SQS") if logical == "IngestFunction")
    # When a poller that waits (as the local server's do) polls, and two more messages arrive meanwhile
    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(stack.pump_source, "IngestFunction", props, wait_seconds=1)
        for n in (1, 2):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(usage_event(f"u{n}")))
        # Then its one batch held all three
        assert polled.result() == 3
    assert [len(e["Records"]) for e in of(seen, "IngestFunction")] == [3]


def test_a_standard_queue_gets_lambdas_five_pollers_a_fifo_queue_one(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given the template, with the ingest mapping's maximum concurrency set to 2
    usage = template["Resources"]["IngestFunction"]["Properties"]["Events"]["Usage"]["Properties"]
    usage["ScalingConfig"] = {"MaximumConcurrency": 2}
    stack, _ = build(template)
    # When the stack counts each SQS source's pollers
    pollers = {logical: stack.pollers(props) for logical, props in stack.event_sources("SQS")}
    # Then a standard queue gets five (fewer where its maximum concurrency is lower) and the FIFO drawdown queue one
    assert pollers == {"IngestFunction": 2, "DrawdownFunction": 1, "AlertingFunction": 5}


def test_one_pump_delivers_every_stream_record_however_many_wrote_since_the_last(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a probe on the table's stream (batches of 1,000), and 2,500 items written since the last pump: more
    # than one GetRecords call returns
    probe_events(template)["Table"] = {
        "Type": "DynamoDB",
        "Properties": {
            "Stream": {"Fn::GetAtt": ["WalletTable", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 1000,
            "FilterCriteria": {"Filters": [{"Pattern": '{"dynamodb": {"NewImage": {"itemType": {"S": ["probe"]}}}}'}]},
        },
    }
    stack, seen = build(template)
    table = clients("dynamodb")
    for n in range(2500):
        item = {"PK": {"S": f"P#{n}"}, "SK": {"S": "PROBE"}, "itemType": {"S": "probe"}}
        table.put_item(TableName=stack.name("WalletTable"), Item=item)
    # When the streams are pumped once
    stack.pump_streams()
    # Then every record reached the probe, in batches of the template's size
    assert [len(e["Records"]) for e in of(seen, PROBE)] == [1000, 1000, 500]


def test_stream_records_wait_out_the_templates_batching_window_when_asked(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given the revenue projection's stream mapping with a 30 s window and a batch of 3, and two purchases
    mapping = template["Resources"]["RevenueFunction"]["Properties"]["Events"]["WalletVersions"]["Properties"]
    mapping.update(BatchSize=3, MaximumBatchingWindowInSeconds=30)
    stack, seen = build(template, clock=Clock(frozen_at=START))
    for customer in ("acme", "globex"):
        assert stack.api("POST", f"/wallets/{customer}/purchases", {"credits": "100", "price": PRICE}).status == 201
    # When the streams are pumped as Lambda's poller holds records, before and after the window runs out
    stack.pump_streams(batching_windows=True)
    stack.advance(29)
    stack.pump_streams(batching_windows=True)
    held = len(of(seen, "RevenueFunction"))
    stack.advance(1)
    stack.pump_streams(batching_windows=True)
    # Then the two wallet versions waited the whole window, then went as one batch
    assert held == 0
    assert [len(e["Records"]) for e in of(seen, "RevenueFunction")] == [2]
    # And a full batch goes without waiting
    for customer in ("initech", "umbrella", "hooli"):
        assert stack.api("POST", f"/wallets/{customer}/purchases", {"credits": "100", "price": PRICE}).status == 201
    stack.pump_streams(batching_windows=True)
    assert [len(e["Records"]) for e in of(seen, "RevenueFunction")] == [2, 3]


def test_a_batch_stops_short_of_lambdas_6_mb_payload(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a BatchSize of 1000 and ten messages of 1,000,000 bytes each (10 MB in all)
    add_probe_queue(template, batch_size=1000)
    stack, seen = build(template)
    for n in range(10):
        clients("sqs").send_message(QueueUrl=stack.name("ProbeQueue"), MessageBody=str(n) * 1_000_000)
    # When the queue is pumped
    assert stack.pump_queues() == 10
    # Then the messages came in two invocations, each under the 6 MB payload quota, none received twice
    invocations = of(seen, PROBE)
    assert [len(e["Records"]) for e in invocations] == [6, 4]
    assert all(len(json.dumps(e, separators=(",", ":")).encode()) <= MAX_PAYLOAD_BYTES for e in invocations)
    assert {r["attributes"]["ApproximateReceiveCount"] for e in invocations for r in e["Records"]} == {"1"}
    assert sorted(r["body"][0] for e in invocations for r in e["Records"]) == [str(n) for n in range(10)]


# -- visibility timeout and redrive --------------------------------------------------------------------------------


def test_a_failed_message_comes_back_only_after_the_visibility_timeout_then_goes_to_the_dlq(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a queue with a 30 s visibility timeout, redriven after 2 receives, holding a message that fails
    add_probe_queue(template, batch_size=10, visibility=30, max_receives=2)
    stack, seen = build(template, clock=Clock(frozen_at=START))
    clients("sqs").send_message(QueueUrl=stack.name("ProbeQueue"), MessageBody="fail: poison")

    def deliveries() -> int:
        stack.pump_queues(fast_forward=False)  # as the local server polls: no skipping of waits
        return len(of(seen, PROBE))

    # When it is delivered and fails, then it is not delivered again before 30 s have passed
    assert deliveries() == 1
    stack.advance(29)
    assert deliveries() == 1
    # When the timeout has run out, then it is delivered again (its second receive)
    stack.advance(1)
    assert deliveries() == 2
    assert of(seen, PROBE)[-1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    # When it fails again and its timeout runs out, then SQS moves it to the dead-letter queue instead
    stack.advance(30)
    assert deliveries() == 2
    assert queue_bodies(stack, "ProbeDeadLetterQueue") == ["fail: poison"]
    assert queue_bodies(stack, "ProbeQueue") == []


def test_a_visibility_timeout_the_function_sets_is_the_one_honoured(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a queue with a 30 s visibility timeout, and a message whose function fails it and backs off 120 s
    add_probe_queue(template, batch_size=10, visibility=30, max_receives=5)
    stack, seen = build(template, clock=Clock(frozen_at=START))
    clients("sqs").send_message(QueueUrl=stack.name("ProbeQueue"), MessageBody="backoff: receiver down")
    stack.pump_queues(fast_forward=False)
    # When the queue's own timeout has passed, then it is still invisible
    stack.advance(31)
    stack.pump_queues(fast_forward=False)
    assert len(of(seen, PROBE)) == 1
    # When the function's 120 s have passed, then it is delivered again
    stack.advance(90)
    stack.pump_queues(fast_forward=False)
    assert len(of(seen, PROBE)) == 2


def test_pump_queues_skips_the_waits_by_default_so_a_test_sees_the_end_state(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a failing message and a good one on a queue with a 30 s timeout, redriven after 3 receives
    add_probe_queue(template, batch_size=10, visibility=30, max_receives=3)
    stack, seen = build(template, clock=Clock(frozen_at=START))
    for body in ("fail: poison", "fine"):
        clients("sqs").send_message(QueueUrl=stack.name("ProbeQueue"), MessageBody=body)
    # When the queues are pumped once, with the defaults
    stack.pump_queues()
    # Then the bad message was received 3 times, 30 s apart on the stack's clock, and dead-lettered when its
    # third timeout ran out (SQS redrives on the next receive)
    bodies = [r["body"] for e in of(seen, PROBE) for r in e["Records"]]
    assert sorted(bodies) == ["fail: poison"] * 3 + ["fine"]
    assert stack.clock.now() == START + timedelta(seconds=90)
    assert queue_bodies(stack, "ProbeDeadLetterQueue") == ["fail: poison"]


# -- EventBridge rules ---------------------------------------------------------------------------------------------


def pattern_rule(template: Template, form: str, detail_type: str) -> None:
    """A rule on the stack's bus for one detail type, as a function event or as an AWS::Events::Rule."""
    pattern = {"source": ["prepaid.credits"], "detail-type": [detail_type]}
    if form == "function event":
        probe_events(template)["OnEvent"] = {
            "Type": "EventBridgeRule",
            "Properties": {"EventBusName": {"Ref": "EventBus"}, "Pattern": pattern},
        }
    else:
        template["Resources"]["ProbeRule"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventBusName": {"Ref": "EventBus"},
                "EventPattern": pattern,
                "Targets": [{"Id": "probe", "Arn": {"Fn::GetAtt": [PROBE, "Arn"]}}],
            },
        }


@pytest.mark.parametrize("form", ["function event", "AWS::Events::Rule"])
@pytest.mark.parametrize(("detail_type", "delivered"), [("Credits Purchased", 1), ("Card Voided", 0)])
def test_a_rule_in_the_template_delivers_the_events_its_pattern_matches(
    template: Template, build: Callable[..., tuple[Stack, Seen]], form: str, detail_type: str, delivered: int
) -> None:
    # Given a rule on the bus for one detail type, targeting the probe
    pattern_rule(template, form, detail_type)
    stack, seen = build(template)
    # When a card is bought (its outbox item published on the bus) and everything is pumped
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).status == 201
    stack.pump()
    # Then the probe got the event only if the pattern matches, as EventBridge sends it
    events = of(seen, PROBE)
    assert len(events) == delivered
    for event in events:
        assert list(event) == [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        ]
        assert (event["detail-type"], event["source"]) == (detail_type, "prepaid.credits")
        assert event["account"] == "123456789012"
        assert event["detail"]["customerId"] == "acme"


def test_a_rules_queue_target_gets_the_event_as_eventbridge_sends_it(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a rule in the template sending purchases to a queue
    template["Resources"]["PurchasesQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    template["Resources"]["PurchasesRule"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "EventBusName": {"Ref": "EventBus"},
            "EventPattern": {"source": ["prepaid.credits"], "detail-type": ["Credits Purchased"]},
            "Targets": [{"Id": "purchases", "Arn": {"Fn::GetAtt": ["PurchasesQueue", "Arn"]}}],
        },
    }
    stack, _ = build(template)
    # When a card is bought and its event published
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).status == 201
    stack.pump_streams()
    stack.pump_rules()
    # Then the queue holds the whole envelope, account included, in EventBridge's order
    (body,) = queue_bodies(stack, "PurchasesQueue")
    event = json.loads(body)
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert (event["detail-type"], event["account"], event["detail"]["customerId"]) == (
        "Credits Purchased",
        "123456789012",
        "acme",
    )


def test_a_failing_subscriber_is_retried_twice_then_its_event_is_dead_lettered(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a subscriber that fails, with a dead-letter queue, on the stack's bus
    pattern_rule(template, "function event", "Test Failure")
    template["Resources"]["ProbeDeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    template["Resources"][PROBE]["Properties"]["DeadLetterQueue"] = {
        "Type": "SQS",
        "TargetArn": {"Fn::GetAtt": ["ProbeDeadLetterQueue", "Arn"]},
    }
    stack, seen = build(template, clock=Clock(frozen_at=START))
    detail = {"fail": True, "customerId": "acme"}
    clients("events").put_events(
        Entries=[
            {
                "EventBusName": stack.name("EventBus"),
                "Source": "prepaid.credits",
                "DetailType": "Test Failure",
                "Detail": json.dumps(detail),
            }
        ]
    )

    def attempts() -> int:
        stack.pump_rules(fast_forward=False)
        return len(of(seen, PROBE))

    # When it fails, then Lambda tries again one minute later, then two minutes after that
    assert attempts() == 1
    stack.advance(59)
    assert attempts() == 1
    stack.advance(1)
    assert attempts() == 2
    stack.advance(119)
    assert attempts() == 2
    assert queue_bodies(stack, "ProbeDeadLetterQueue") == []
    stack.advance(1)
    assert attempts() == 3
    # Then, retries spent, the event itself is in the function's dead-letter queue, and nothing runs again
    (letter,) = queue_bodies(stack, "ProbeDeadLetterQueue")
    assert json.loads(letter) == of(seen, PROBE)[0]
    assert json.loads(letter)["detail"] == detail
    stack.advance(3600)
    assert attempts() == 3


def test_event_invoke_config_sets_the_retries_and_the_failure_destination(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a failing subscriber with no retries and an OnFailure queue
    pattern_rule(template, "AWS::Events::Rule", "Test Failure")
    template["Resources"]["ProbeFailures"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    template["Resources"][PROBE]["Properties"]["EventInvokeConfig"] = {
        "MaximumRetryAttempts": 0,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["ProbeFailures", "Arn"]}}},
    }
    stack, seen = build(template)
    clients("events").put_events(
        Entries=[
            {
                "EventBusName": stack.name("EventBus"),
                "Source": "prepaid.credits",
                "DetailType": "Test Failure",
                "Detail": json.dumps({"fail": True}),
            }
        ]
    )
    # When everything is pumped (waits skipped)
    stack.pump()
    # Then it ran once, and the failure destination has Lambda's invocation record
    assert len(of(seen, PROBE)) == 1
    (body,) = queue_bodies(stack, "ProbeFailures")
    record = json.loads(body)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == of(seen, PROBE)[0]
    assert record["responsePayload"]["errorMessage"] == "the probe was told to fail"


# -- schedules -----------------------------------------------------------------------------------------------------


def schedule(template: Template, form: str) -> timedelta:
    """A schedule for the probe in one of the template's forms; returns how long after START it is due."""
    events = probe_events(template)
    target = {"Arn": {"Fn::GetAtt": [PROBE, "Arn"]}, "RoleArn": "arn:aws:iam::123456789012:role/scheduler"}
    if form == "Schedule event, rate":
        events["Tick"] = {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)"}}
        return timedelta(minutes=5)
    if form == "AWS::Events::Rule, cron":
        template["Resources"]["ProbeNoon"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": "cron(0 12 * * ? *)",
                "Targets": [{"Id": "probe", "Arn": {"Fn::GetAtt": [PROBE, "Arn"]}}],
            },
        }
        return timedelta(seconds=30)
    if form == "ScheduleV2 event, cron in a time zone":
        events["Tick"] = {
            "Type": "ScheduleV2",
            "Properties": {
                "ScheduleExpression": "cron(0 13 * * ? *)",  # 13:00 in Paris is 12:00 UTC in November
                "ScheduleExpressionTimezone": "Europe/Paris",
                "Input": '{"job": "noon"}',
            },
        }
        return timedelta(seconds=30)
    template["Resources"]["ProbeOnce"] = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "ScheduleExpression": "at(2026-11-24T12:10:00)",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {**target, "Input": '{"job": "once"}'},
        },
    }
    return timedelta(minutes=10, seconds=30)


SCHEDULE_FORMS = [
    "Schedule event, rate",
    "AWS::Events::Rule, cron",
    "ScheduleV2 event, cron in a time zone",
    "AWS::Scheduler::Schedule, at",
]


@pytest.mark.parametrize("form", SCHEDULE_FORMS)
def test_a_schedule_in_the_template_fires_when_the_clock_passes_it_and_not_before(
    template: Template, build: Callable[..., tuple[Stack, Seen]], form: str
) -> None:
    # Given a schedule for the probe, and the stack's clock at START
    due = schedule(template, form)
    stack, seen = build(template, clock=Clock(frozen_at=START))
    # When the clock is a second short of it, then nothing fires
    stack.advance((due - timedelta(seconds=1)).total_seconds())
    stack.pump()
    assert of(seen, PROBE) == []
    # When it reaches it, then the probe runs once, with the event that kind of schedule sends
    stack.advance(1)
    stack.pump()
    (event,) = of(seen, PROBE)
    if form.startswith(("Schedule event", "AWS::Events::Rule")):
        (rule_arn,) = [r.arn for r in stack.rules.rules if any(t.function == PROBE for t in r.targets)]
        assert {k: event[k] for k in ("detail-type", "source", "resources", "detail")} == {
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "resources": [rule_arn],
            "detail": {},
        }
        assert event["time"] == (START + due).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        assert event == {"job": "noon" if "cron" in form else "once"}
    # And nothing more until the next occurrence
    stack.advance(1)
    stack.pump()
    assert len(of(seen, PROBE)) == 1


def test_a_schedule_a_function_creates_at_runtime_fires_once_then_is_deleted(
    template: Template, build: Callable[..., tuple[Stack, Seen]]
) -> None:
    # Given a one-time schedule created through boto3's scheduler client (as the credit-expiry feature will),
    # targeting a function and deleted after completion, and another targeting a queue
    template["Resources"]["ExpiryQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    stack, seen = build(template, clock=Clock(frozen_at=START))
    scheduler = clients("scheduler")
    role = "arn:aws:iam::123456789012:role/scheduler"
    expires = "at(2027-11-24T12:00:00)"
    for name, arn in (
        ("expire-card-c1", stack.function_arns[PROBE]),
        ("expire-card-c2", stack.resolver.attributes[("ExpiryQueue", "Arn")]),
    ):
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression=expires,
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={"Arn": arn, "RoleArn": role, "Input": json.dumps({"cardId": name[-2:]})},
        )
    # When the clock is a second short of the expiry, then nothing fires
    stack.set_time(datetime(2027, 11, 24, 11, 59, 59, tzinfo=UTC))
    stack.pump()
    assert of(seen, PROBE) == []
    assert queue_bodies(stack, "ExpiryQueue") == []
    # When it reaches it, then the function gets the target's input, the queue the same as a message
    stack.advance(1)
    stack.pump()
    assert of(seen, PROBE) == [{"cardId": "c1"}]
    assert queue_bodies(stack, "ExpiryQueue") == ['{"cardId": "c2"}']
    # And both schedules are gone, so nothing fires again
    for name in ("expire-card-c1", "expire-card-c2"):
        with pytest.raises(ClientError, match="ResourceNotFound"):
            scheduler.get_schedule(Name=name)
    stack.advance(86_400)
    stack.pump()
    assert len(of(seen, PROBE)) == 1


# -- schedule expressions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("cron(0 12 * * ? *)", "UTC", START, datetime(2026, 11, 24, 12, 0, tzinfo=UTC)),
        (
            "cron(0/15 * * * ? *)",
            "UTC",
            datetime(2026, 11, 24, 12, 7, tzinfo=UTC),
            datetime(2026, 11, 24, 12, 15, tzinfo=UTC),
        ),
        # after a Friday's 09:00, weekdays at 09:00 next fire on Monday (day-of-week 1-7 is SUN-SAT)
        (
            "cron(0 9 ? * MON-FRI *)",
            "UTC",
            datetime(2026, 11, 27, 10, tzinfo=UTC),
            datetime(2026, 11, 30, 9, tzinfo=UTC),
        ),
        ("cron(0 0 L * ? *)", "UTC", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
        ("cron(0 10 ? * 6L 2026)", "UTC", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("cron(0 10 ? * 2#1 *)", "UTC", START, datetime(2026, 12, 7, 10, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2020)", "UTC", START, None),
        ("rate(1 day)", "UTC", START, START + timedelta(days=1)),
        ("at(2027-01-01T00:00:00)", "Europe/Paris", START, datetime(2026, 12, 31, 23, tzinfo=UTC)),
        ("at(2026-11-24T11:00:00)", "UTC", START, None),
    ],
)
def test_schedule_expressions_fire_when_eventbridge_would(
    expression: str, zone: str, after: datetime, expected: datetime | None
) -> None:
    # Given an expression (a rate counting from START), then its next occurrence after `after` is EventBridge's
    assert ScheduleExpression(expression, zone).next_after(after, anchor=START) == expected


@pytest.mark.parametrize(
    "expression", ["cron(0 12 * * * *)", "cron(61 * * * ? *)", "cron(0 12 1W * ? *)", "rate(5 fortnights)", "daily"]
)
def test_a_schedule_expression_the_local_stack_cannot_honour_is_refused_when_read(expression: str) -> None:
    # Given an invalid expression, or one the local stack does not evaluate, then reading it fails at once
    with pytest.raises(ValueError):
        ScheduleExpression(expression)
