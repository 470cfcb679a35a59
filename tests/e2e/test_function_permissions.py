"""Every AWS call each Lambda function makes in a realistic run is one its own IAM role allows.

moto enforces no IAM: a handler calling an API its role lacks (ApiFunction nearly shipped a `BatchGetItem` without
the permission) passes every other test and fails with AccessDenied on AWS. Here the demo's story and the API's
other routes run through `make local`'s server while every AWS call a function's handler makes is recorded as the
IAM action it needs (tests/support/aws_calls.py); each must be granted by that function's role in the template
after the SAM transform.
"""

from __future__ import annotations

import io
import socket
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console

from prepaid_local import demo
from prepaid_local.server import DEMO_PRICE_BOOK, LocalServer
from prepaid_local.stack import RUNNING_FUNCTION
from support.aws_calls import AwsCallRecorder
from support.outside import call
from support.template_roles import (
    Template,
    function_ids,
    listed,
    managed_policy_arns,
    role_of,
    statements,
    transformed,
)

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

RATE_CARD = {"meters": {"api_calls": {"creditsPerUnit": "0.5"}, "tokens": {"creditsPerUnit": "0.002"}}}
DEMO_CUSTOMER = "perm-demo"
SECOND_CUSTOMER = "perm-second"
# The actions of the AWS managed policies SAM attaches to the template's roles (from their published documents).
# A role with a managed policy not listed here fails the test: list its actions first.
_LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
MANAGED_POLICY_ACTIONS: dict[str, tuple[str, ...]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": _LOGS,
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": (
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": (
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        *_LOGS,
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": (
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        *_LOGS,
    ),
}
# Functions of the template the scenario cannot reach, with the reason. None: every function runs.
NOT_REACHED: dict[str, str] = {}

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is on loopback


# -- the check ---------------------------------------------------------------------------------------------------------


def _grants(statement: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement's Action (or NotAction) covers the action: IAM wildcards, case-insensitive."""
    if statement.get("Effect") != "Allow":
        return False

    def matches(patterns: Any) -> bool:
        return any(fnmatchcase(action.lower(), str(p).lower()) for p in listed(patterns))

    if "NotAction" in statement:
        return not matches(statement["NotAction"])
    return matches(statement.get("Action", []))


def not_allowed(recorded: Iterable[tuple[str, str]], cfn: Template) -> list[tuple[str, str]]:
    """The recorded (function, IAM action) pairs that no Allow of the function's role grants, sorted.

    By action only: Resource and Condition are ignored (a call on another table, queue or key prefix than the
    statement names is not caught here; tests/packaging/test_template.py pins those of the sensitive roles), and so
    are Deny statements (the template has none on function roles) and KMS (the table, queues, topic and secrets use
    AWS managed keys, whose key policies let any principal of the account use them through the service)."""
    missing = []
    for function, action in sorted(set(recorded)):
        role = role_of(cfn, function)
        unknown = [arn for arn in managed_policy_arns(role) if arn not in MANAGED_POLICY_ACTIONS]
        assert unknown == [], f"{function}'s role has managed policies whose actions are not listed: {unknown}"
        managed = [a for arn in managed_policy_arns(role) for a in MANAGED_POLICY_ACTIONS[arn]]
        granted = any(_grants(s, action) for s in statements(role, cfn)) or _grants(
            {"Effect": "Allow", "Action": managed}, action
        )
        if not granted:
            missing.append((function, action))
    return missing


# -- the scenario ------------------------------------------------------------------------------------------------------


def eventually(check: Callable[[], Any], seconds: float = 15, every: float = 0.2) -> Any:
    """Call `check` until it returns something truthy, or fail after `seconds`; return what it returned."""
    deadline = time.monotonic() + seconds
    while not (outcome := check()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {seconds} s: {check.__doc__ or check}")
        time.sleep(every)
    return outcome


def get_page(server: LocalServer, path: str) -> tuple[int, str]:
    """A GET as a browser makes it: status and body as text."""
    with _HTTP.open(urllib.request.Request(server.url + path), timeout=10) as response:
        return response.status, response.read().decode()


def stack_now(server: LocalServer) -> datetime:
    return datetime.fromisoformat(call(server, "GET", "/_local/clock")[1]["now"])


def play_the_demo(server: LocalServer) -> None:
    """The demo as tests/e2e/test_end_to_end.py runs it: small, unpaced, on the contract's price book."""
    assert call(server, "PUT", "/price-book", DEMO_PRICE_BOOK)[0] == 200
    assert call(server, "PUT", "/rate-card", RATE_CARD)[0] == 200
    out = io.StringIO()
    argv = ["--url", server.url, "--moto-url", server.moto_url, "--customer", DEMO_CUSTOMER]
    argv += ["--events", "30", "--batch-size", "5", "--pace", "0", "--timeout", "30"]
    code, _ = demo.play(argv, console=Console(file=out, width=160, color_system=None))
    assert code == 0, out.getvalue()


def closed_port() -> int:
    """A loopback port nothing listens on: a webhook sent there fails at once (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def second_customer(server: LocalServer, recorder: AwsCallRecorder) -> None:
    """A card bought and voided, usage over a threshold whose webhook is down (the alert is retried later), and a
    recurring grant on the day the daily schedule fires next, with the clock moved past it."""
    wallet = f"/wallets/{SECOND_CUSTOMER}"
    # The daily cron(5 0 * * ? *) next fires at 00:05 of this day, and its event's time says that day
    fires = datetime.combine((stack_now(server) - timedelta(minutes=5)).date() + timedelta(days=1), datetime.min.time())
    fires = fires.replace(tzinfo=UTC) + timedelta(minutes=5)
    settings = {
        "thresholds": ["50"],
        "webhookUrl": f"http://127.0.0.1:{closed_port()}/hooks",
        "recurring": {"credits": "300", "dayOfMonth": fires.day, "expiresIn": "P60D"},
    }
    cards = [call(server, "POST", f"{wallet}/purchases", {"credits": credits}) for credits in ("100", "200")]
    assert [status for status, _ in cards] == [201, 201], cards
    status, voided = call(server, "POST", f"{wallet}/cards/{cards[1][1]['card']['cardId']}/void")
    assert status == 200, voided
    assert call(server, "PUT", f"{wallet}/settings", settings)[0] == 200
    at = stack_now(server).isoformat()
    event = {"eventId": "perm-1", "customerId": SECOND_CUSTOMER, "meter": "api_calls", "quantity": "120"}
    status, answer = call(server, "POST", "/usage", {"events": [event | {"timestamp": at}]})
    assert (status, answer["accepted"]) == (202, ["perm-1"]), answer

    def put_off() -> bool:
        """the Balance Low alert's webhook failed, and its next attempt was put off"""
        return ("AlertingFunction", "sqs:ChangeMessageVisibility") in recorder.actions()

    eventually(put_off)
    assert call(server, "POST", "/_local/clock", {"to": (fires + timedelta(minutes=1)).isoformat()})[0] == 200

    def granted() -> bool:
        """the recurring grant reached the wallet"""
        cards = call(server, "GET", wallet)[1]["cards"]
        return any(card["source"] == "recurring" for card in cards)

    eventually(granted)


def read_everything(server: LocalServer) -> None:
    """The customer's dashboard (link, page, data) and the API's reads: forecast, usage, ledger, revenue."""
    status, link = call(server, "POST", f"/wallets/{DEMO_CUSTOMER}/dashboard-links", {"ttlSeconds": 900})
    assert status == 201, link
    assert get_page(server, f"/dashboard?token={link['token']}")[0] == 200
    status, data = call(server, "GET", "/dashboard/data", Authorization=f"Bearer {link['token']}")
    assert status == 200, data
    wallet = f"/wallets/{DEMO_CUSTOMER}"
    for path in (f"{wallet}/forecast?horizonDays=30", f"{wallet}/usage?granularity=day", f"{wallet}/ledger?limit=5"):
        status, answer = call(server, "GET", path)
        assert status == 200, (path, answer)
    today = stack_now(server).date()
    start, end = (today - timedelta(days=2)).isoformat(), (today + timedelta(days=1)).isoformat()
    status, report = call(server, "GET", f"/reports/revenue?from={start}&to={end}")
    assert status == 200, report


def quiet(recorder: AwsCallRecorder, seconds: float = 0.6) -> bool:
    """No function made an AWS call for `seconds` (three of the server's pump intervals): all is delivered."""
    before = sum(recorder.calls.values())
    time.sleep(seconds)
    return sum(recorder.calls.values()) == before


# -- tests -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfn() -> Template:
    return transformed()


def test_every_aws_call_a_function_makes_is_allowed_by_its_role(server: LocalServer, cfn: Template) -> None:
    # Given every function of the template, and a record of which ran and of the AWS calls their handlers made
    functions = set(function_ids())
    expected = functions - set(NOT_REACHED)
    invoked: set[str] = set()

    def ran(function: str, _event: Any) -> None:
        invoked.add(function)

    def all_ran() -> bool:
        """every function of the template (but those listed as not reached) ran"""
        return expected <= invoked

    server.stack.observers.append(ran)
    try:
        with AwsCallRecorder() as recorder:
            # When the demo's story runs (usage by HTTP and SQS, alerts to webhooks, an auto-recharge, a promotion
            # that expires on its schedule), another customer voids a card, misses an alert and gets a recurring
            # grant, and the dashboard and the API's reports are read
            play_the_demo(server)
            second_customer(server, recorder)
            read_everything(server)
            eventually(all_ran)
            eventually(lambda: quiet(recorder))  # what is still under way is recorded too
    finally:
        server.stack.observers.remove(ran)

    # Then every function ran, and each made AWS calls that were recorded (so the check below covers them all, and
    # cannot pass for want of a record)
    assert sorted(functions - invoked) == sorted(NOT_REACHED), f"never invoked: {sorted(functions - invoked)}"
    assert sorted(recorder.by_function()) == sorted(expected)
    # And every AWS action a function needed is one its role allows
    missing = not_allowed(recorder.actions(), cfn)
    assert missing == [], "actions called but not allowed by the function's role: " + ", ".join(
        f"{function} {action}" for function, action in missing
    )


def test_the_check_reports_a_call_the_role_does_not_allow(cfn: Template) -> None:
    # Given ApiFunction's handler calling DynamoDB (stubbed): a transaction putting one item and deleting another,
    # then a read made outside any function
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    items: list[TransactWriteItemTypeDef] = [
        {"Put": {"TableName": "t", "Item": {"PK": {"S": "W#a"}, "SK": {"S": "W"}}}},
        {"Delete": {"TableName": "t", "Key": {"PK": {"S": "W#b"}, "SK": {"S": "W"}}}},
    ]
    with Stubber(client) as stub, AwsCallRecorder() as recorder:
        stub.add_response("transact_write_items", {})
        stub.add_response("scan", {"Items": []})
        running = RUNNING_FUNCTION.set("ApiFunction")
        try:
            client.transact_write_items(TransactItems=items)
        finally:
            RUNNING_FUNCTION.reset(running)
        client.scan(TableName="t")

    # When the calls are checked against the role
    recorded = recorder.actions()
    # Then the transaction needed PutItem and DeleteItem, the read outside a function was not recorded, and the
    # delete, which ApiFunction's role does not allow, is reported
    assert recorded == {("ApiFunction", "dynamodb:PutItem"), ("ApiFunction", "dynamodb:DeleteItem")}
    assert not_allowed(recorded, cfn) == [("ApiFunction", "dynamodb:DeleteItem")]
    # And so is an action of another service, while what the role and its managed policies grant is not
    assert not_allowed([("PublisherFunction", "sns:Publish"), ("PublisherFunction", "events:PutEvents")], cfn) == [
        ("PublisherFunction", "sns:Publish")
    ]
    assert not_allowed([("IngestFunction", "sqs:DeleteMessage"), ("IngestFunction", "logs:PutLogEvents")], cfn) == []
