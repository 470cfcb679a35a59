"""Every AWS call each Lambda function makes in a realistic run is one its own IAM role allows.

moto enforces no IAM: a handler calling an API its role lacks (ApiFunction nearly shipped a `BatchGetItem` without
the permission) passes every other test and fails with AccessDenied on AWS. Here the demo's story and the API's
other routes run through `make local`'s server while every AWS call a function's handler makes is recorded as the
IAM action it needs, the ARN it acts on and, for DynamoDB items, the partition key (tests/support/aws_calls.py); each
must be granted by an Allow statement of that function's role in the template after the SAM transform: its Action,
its Resource (the template's Ref, GetAtt and Sub resolved to the local stack's names, then matched with IAM's `*`
and `?`) and its Condition (`dynamodb:LeadingKeys`, `iam:PassedToService`; any other condition fails the check). A
statement scoped to the wrong table, queue or key prefix fails here as it would with AccessDenied on AWS.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console

from prepaid import assembly
from prepaid_demo import story as demo
from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_local.server import LocalServer
from prepaid_local.stack import RUNNING_FUNCTION
from prepaid_local.template import Resolver
from support.aws_calls import UNREAD_KEY, AwsCall, AwsCallRecorder, accesses
from support.outside import aws, call
from support.template_roles import (
    Template,
    function_ids,
    listed,
    managed_policy_arns,
    of_type,
    partition_keys,
    role_of,
    statements,
    transformed,
)
from support.waiting import PATIENCE_SECONDS, eventually
from support.webhooks import Receiver

if TYPE_CHECKING:
    from types_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
    from types_boto3_scheduler.type_defs import TargetTypeDef

RATE_CARD = {"meters": {"api_calls": {"creditsPerUnit": "0.5"}, "tokens": {"creditsPerUnit": "0.002"}}}
DEMO_CUSTOMER = "perm-demo"
SECOND_CUSTOMER = "perm-second"
HOOKED_CUSTOMER = "perm-hooks"
LARGE_CUSTOMER = "perm-large"
# Functions of the template the scenario cannot reach, with the reason. None: every function runs.
NOT_REACHED: dict[str, str] = {}

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is on loopback


# -- the check ---------------------------------------------------------------------------------------------------------


@functools.cache
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """An IAM pattern (`*` any characters, `?` one; nothing else is special) as a regular expression."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(patterns: Iterable[str], value: str, ignore_case: bool = False) -> bool:
    return any(_wildcard(p, ignore_case).fullmatch(value) for p in patterns)


def _leading_keys(call: AwsCall, patterns: list[str]) -> bool:
    """ForAllValues:StringLike on dynamodb:LeadingKeys: the call's partition key matches one of the patterns (a call
    that names no key, e.g. DescribeTable, has no values, which ForAllValues lets through, as IAM does)."""
    assert call.resource is None or "/index/" not in call.resource, (
        f"{call.describe()}: a LeadingKeys condition on an index query is not evaluated (AWS documents nothing)"
    )
    return call.key is None or _like(patterns, call.key)


def _passed_to_service(call: AwsCall, services: list[str]) -> bool:
    """StringEquals on iam:PassedToService: the role is passed to that service (absent on any other call: false)."""
    return call.passed_to is not None and call.passed_to in services


# The conditions the check evaluates, by (operator, key); any other makes it fail (it would otherwise be ignored).
CONDITIONS: dict[tuple[str, str], Callable[[AwsCall, list[str]], bool]] = {
    ("ForAllValues:StringLike", "dynamodb:leadingkeys"): _leading_keys,
    ("StringEquals", "iam:passedtoservice"): _passed_to_service,
}


class FunctionRoles:
    """The Allow statements of each function's role, their Resource and Condition resolved to the local stack's
    names (`resolver`: the local stack's, which knows each logical id's name, URL or ARN)."""

    def __init__(self, cfn: Template, resolver: Resolver) -> None:
        self._cfn = cfn
        self._resolver = resolver
        self._statements: dict[str, list[dict[str, Any]]] = {}

    def statements(self, function: str) -> list[dict[str, Any]]:
        """The role's statements, resolved; fails on what the check cannot evaluate (Deny, managed policies, a
        condition not in CONDITIONS, a resource left unresolved)."""
        if function not in self._statements:
            role = role_of(self._cfn, function)
            (role_id,) = [k for k, v in self._cfn["Resources"].items() if v is role]
            assert managed_policy_arns(role) == [], f"{function}'s role has managed policies: list their statements"
            attached = [
                k
                for k, v in of_type(self._cfn, "AWS::IAM::ManagedPolicy").items()
                if {"Ref": role_id} in v["Properties"].get("Roles", [])
            ]
            assert attached == [], f"{function}'s role has managed policies: {attached}"
            assert "PermissionsBoundary" not in role["Properties"], f"{function}'s role has a permissions boundary"
            self._statements[function] = [self._resolved(function, s) for s in statements(role, self._cfn)]
        return self._statements[function]

    def _resolved(self, function: str, statement: dict[str, Any]) -> dict[str, Any]:
        name = f"{function}'s role, statement {statement.get('Sid', statement)}"
        assert statement.get("Effect") == "Allow", f"{name}: only Allow statements are evaluated"
        resolved = dict(statement)
        for field in ("Resource", "NotResource"):
            if field in statement:
                resources = [self._resolver.resolve(r) for r in listed(statement[field])]
                assert all(isinstance(r, str) and "${" not in r for r in resources), f"{name}: {field} {resources}"
                resolved[field] = resources
        assert ("Resource" in resolved) != ("NotResource" in resolved), f"{name}: one of Resource or NotResource"
        conditions: dict[str, dict[str, list[str]]] = {}
        for operator, keys in statement.get("Condition", {}).items():
            for key, values in keys.items():
                assert (operator, key.lower()) in CONDITIONS, f"{name}: condition {operator} {key} is not evaluated"
                conditions.setdefault(operator, {})[key.lower()] = [
                    str(v) for v in listed(self._resolver.resolve(values))
                ]
        resolved["Condition"] = conditions
        return resolved

    def allows(self, call: AwsCall) -> bool:
        """Whether some Allow statement of the function's role grants the call's action on its resource, with its
        conditions met."""
        return any(_grants(s, call) for s in self.statements(call.function))


def _grants(statement: dict[str, Any], call: AwsCall) -> bool:
    """Whether a resolved Allow statement grants the call: Action (or NotAction; IAM wildcards, case-insensitive),
    Resource (or NotResource; wildcards, case-sensitive; a call of unknown resource only by "*") and Condition."""
    if "NotAction" in statement:
        acts = not _like(listed(statement["NotAction"]), call.action, ignore_case=True)
    else:
        acts = _like(listed(statement.get("Action", [])), call.action, ignore_case=True)
    if not acts:
        return False
    if call.resource is None:
        on = "*" in statement.get("Resource", [])
    elif "NotResource" in statement:
        on = not _like(statement["NotResource"], call.resource)
    else:
        on = _like(statement["Resource"], call.resource)
    if not on:
        return False
    return all(
        CONDITIONS[(operator, key)](call, values)
        for operator, keys in statement["Condition"].items()
        for key, values in keys.items()
    )


# What Lambda itself does with a function's role, which no handler call records: its logs and traces, and polling
# the function's event sources (queues, streams).
PLATFORM_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
PLATFORM_ACTIONS |= {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
PLATFORM_ACTIONS |= {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
PLATFORM_ACTIONS |= {"dynamodb:ListStreams"}


def forget_cached_reads() -> None:
    """What the composition root read and keeps for an environment's lifetime: read again by the next function."""
    assembly._signing_secret.cache_clear()
    assembly._payments_secret.cache_clear()
    assembly.forget_rate_card()
    assembly.alerting.cache_clear()
    assembly.webhook_endpoints.cache_clear()
    assembly.endpoint_secrets.cache_clear()
    assembly.wallet_store.cache_clear()  # the card pages it read or wrote: another function reads them again


def failure_destinations(cfn: Template, function: str) -> set[str]:
    """Where Lambda itself sends the function's failures (after the SAM transform): its dead-letter queue
    (asynchronous invocations) and its event source mappings' on-failure destinations (streams)."""
    found = [cfn["Resources"][function]["Properties"].get("DeadLetterConfig", {}).get("TargetArn")]
    for mapping in of_type(cfn, "AWS::Lambda::EventSourceMapping").values():
        if mapping["Properties"]["FunctionName"] == {"Ref": function}:
            found.append(mapping["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"))
    return {json.dumps(d, sort_keys=True) for d in found if d}


def unused(calls: Iterable[AwsCall], roles: FunctionRoles, cfn: Template, functions: Iterable[str]) -> list[str]:
    """Each action a function's role grants that none of its recorded calls needed, as `<function> <sid> <action>`:
    a grant wider than the routes and messages it serves. Lambda's own uses of the role are left out: the
    platform's actions, and sending to the function's failure destinations."""
    made = list(calls)
    found = []
    for function in functions:
        own = [c for c in made if c.function == function]
        destinations = failure_destinations(cfn, function)
        raw = {s.get("Sid"): s for s in statements(role_of(cfn, function), cfn)}
        for statement in roles.statements(function):
            resources = raw[statement.get("Sid")].get("Resource")
            if {json.dumps(r, sort_keys=True) for r in listed(resources)} <= destinations:
                continue
            for action in listed(statement.get("Action", [])):
                if action in PLATFORM_ACTIONS:
                    continue
                needed = [c for c in own if _like([action], c.action, ignore_case=True)]
                if not any(_grants(statement, c) for c in needed):
                    found.append(f"{function} {statement.get('Sid')} {action}")
    return sorted(found)


def not_allowed(calls: Iterable[AwsCall], roles: FunctionRoles) -> list[str]:
    """The recorded calls that no Allow of the function's role grants, as `<function> <action> <resource> <key>`,
    sorted, once each.

    Action, Resource and the conditions in CONDITIONS are checked; KMS is not (the table, queues, topic and secrets
    use AWS managed keys, whose key policies let any principal of the account use them through the service)."""
    return sorted({call.describe() for call in calls if not roles.allows(call)})


# -- the scenario ------------------------------------------------------------------------------------------------------


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
    argv += ["--events", "30", "--batch-size", "5", "--pace", "0", "--timeout", str(int(PATIENCE_SECONDS))]
    code, _ = demo.play(argv, console=Console(file=out, width=160, color_system=None))
    assert code == 0, out.getvalue()


def closed_port() -> int:
    """A loopback port nothing listens on: a webhook sent there fails at once (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def second_customer(server: LocalServer, recorder: AwsCallRecorder) -> None:
    """A card bought and voided, usage over a threshold whose webhook is down (the alert is retried later) with a
    late event (added to its past hour's stored usage), and a recurring grant on the day the daily schedule fires
    next, with the clock moved past it."""
    wallet = f"/wallets/{SECOND_CUSTOMER}"
    # The daily cron(5 0 * * ? *) next fires at 00:05 of this day, and its event's time says that day
    fires = datetime.combine((stack_now(server) - timedelta(minutes=5)).date() + timedelta(days=1), datetime.min.time())
    fires = fires.replace(tzinfo=UTC) + timedelta(minutes=5)
    settings = {
        "thresholds": ["50"],
        "webhookUrl": f"http://127.0.0.1:{closed_port()}/hooks",
        "recurring": {
            "credits": "300",
            "dayOfMonth": fires.day,
            "expiresIn": "P60D",
            "payment": {"collect": "stripe", "stripeCustomer": "cus_demo"},  # charged through Stripe
        },
    }
    cards = [call(server, "POST", f"{wallet}/purchases", {"credits": credits}) for credits in ("100", "200")]
    assert [status for status, _ in cards] == [201, 201], cards
    status, voided = call(server, "POST", f"{wallet}/cards/{cards[1][1]['card']['cardId']}/void")
    assert status == 200, voided
    assert call(server, "PUT", f"{wallet}/settings", settings)[0] == 200
    now = stack_now(server)
    event = {"customerId": SECOND_CUSTOMER, "meter": "api_calls"}
    events = [
        event | {"eventId": "perm-1", "quantity": "120", "timestamp": now.isoformat()},
        event | {"eventId": "perm-2", "quantity": "2", "timestamp": (now - timedelta(hours=2)).isoformat()},
    ]
    status, answer = call(server, "POST", "/usage", {"events": events})
    assert (status, answer["accepted"]) == (202, ["perm-1", "perm-2"]), answer

    def put_off() -> bool:
        """the Balance Low alert's webhook failed, and its next attempt was put off"""
        return ("AlertingFunction", "sqs:ChangeMessageVisibility") in recorder.actions()

    eventually(put_off)
    # settings changed after usage: the API writes what the drawdown's last version of the wallet owed again; then
    # one more event, whose version the recurring grant below finds owing
    assert call(server, "PUT", f"{wallet}/settings", settings)[0] == 200
    rated = call(server, "GET", wallet)[1]["totals"]["rated"]
    late = event | {"eventId": "perm-3", "quantity": "1", "timestamp": now.isoformat()}
    assert call(server, "POST", "/usage", {"events": [late]})[0] == 202

    def drawn() -> bool:
        """the last event is in the wallet"""
        return bool(call(server, "GET", wallet)[1]["totals"]["rated"] != rated)

    eventually(drawn)
    assert call(server, "POST", "/_local/clock", {"to": (fires + timedelta(minutes=1)).isoformat()})[0] == 200

    def granted() -> bool:
        """the recurring grant reached the wallet"""
        cards = call(server, "GET", wallet)[1]["cards"]
        return any(card["source"] == "recurring" for card in cards)

    eventually(granted)


def poison(server: LocalServer, recorder: AwsCallRecorder) -> None:
    """A message that is no usage sent straight onto the usage queue, one ingest did not write onto the drawdown
    queue, and one that is no alert onto the alert queue: the function reading each sends it to its dead-letter
    queue."""
    resolver, sqs = server.stack.resolver, aws(server, "sqs")
    sqs.send_message(QueueUrl=resolver.physical["UsageQueue"], MessageBody="not usage")
    forged = {"QueueUrl": resolver.physical["DrawdownQueue"], "MessageBody": "not rated usage"}
    sqs.send_message(**forged, MessageGroupId=SECOND_CUSTOMER, MessageDeduplicationId="perm-forged")
    sqs.send_message(QueueUrl=resolver.physical["WebhookQueue"], MessageBody="not an alert")
    letters = {
        ("IngestFunction", resolver.attributes[("UsageDeadLetterQueue", "Arn")]),
        ("DrawdownFunction", resolver.attributes[("DrawdownDeadLetterQueue", "Arn")]),
        ("AlertingFunction", resolver.attributes[("WebhookDeadLetterQueue", "Arn")]),
    }

    def dead_lettered() -> bool:
        """each message was sent to its dead-letter queue"""
        sent = {(c.function, c.resource) for c in recorder.accesses() if c.action == "sqs:SendMessage"}
        return letters <= sent

    eventually(dead_lettered)


def read_everything(server: LocalServer) -> None:
    """The customer's dashboard (link, page, data, every card) and the API's reads: forecast, usage, ledger, cards,
    the wallet list, revenue."""
    status, link = call(server, "POST", f"/wallets/{DEMO_CUSTOMER}/dashboard-links", {"ttlSeconds": 900})
    assert status == 201, link
    assert get_page(server, "/dashboard")[0] == 200
    status, data = call(server, "GET", "/dashboard/data", Authorization=f"Bearer {link['token']}")
    assert status == 200, data
    status, cards = call(server, "GET", "/dashboard/cards", Authorization=f"Bearer {link['token']}")
    assert status == 200, cards
    wallet = f"/wallets/{DEMO_CUSTOMER}"
    reads = (f"{wallet}/forecast?horizonDays=30", f"{wallet}/usage?granularity=day", f"{wallet}/ledger?limit=5")
    for path in (*reads, f"{wallet}/cards?limit=5", "/wallets?limit=5"):
        status, answer = call(server, "GET", path)
        assert status == 200, (path, answer)
    today = stack_now(server).date()
    start, end = (today - timedelta(days=2)).isoformat(), (today + timedelta(days=1)).isoformat()
    status, report = call(server, "GET", f"/reports/revenue?from={start}&to={end}")
    assert status == 200, report


def grants_on_a_large_wallet(server: LocalServer) -> None:
    """A wallet with more live cards than its item holds (the rest on card pages), some with metadata (kept beside
    the wallet): more purchases, an adjustment each way, a card change, an authorization, its read and dashboard."""
    wallet = f"/wallets/{LARGE_CUSTOMER}"
    price = {"amount": "1.00", "currency": "USD"}
    for n in range(40):
        body = {"credits": "10", "price": price, "metadata": {"n": str(n)}, "appliesTo": {"meters": ["api_calls"]}}
        status, bought = call(server, "POST", f"{wallet}/purchases", body)
        assert status == 201, bought
    # a threshold the taking adjustment crosses (405 -> 398): the alerting function reads the paged wallet's webhook
    status, settings = call(server, "PUT", f"{wallet}/settings", {"thresholds": ["400"]})
    assert status == 200, settings
    for adjustment in ({"credits": "+5", "reason": "goodwill"}, {"credits": "-7", "reason": "correction"}):
        status, adjusted = call(server, "POST", f"{wallet}/adjustments", adjustment)
        assert status == 201, adjusted
    change = {"priority": 3, "reason": "first", "metadata": {"ticket": "T-1"}}
    status, changed = call(server, "PATCH", f"{wallet}/cards/{bought['card']['cardId']}", change)
    assert status == 200, changed
    status, allowed = call(server, "POST", f"{wallet}/authorize", {"meter": "api_calls", "quantity": "2"})
    assert status == 200, allowed
    status, read = call(server, "GET", wallet)
    assert status == 200 and read["cards"][0]["metadata"], read
    status, link = call(server, "POST", f"{wallet}/dashboard-links", {"ttlSeconds": 900})
    assert status == 201, link
    for path in ("/dashboard/data", "/dashboard/cards"):
        status, data = call(server, "GET", path, Authorization=f"Bearer {link['token']}")
        assert status == 200, data


def webhook_endpoints(server: LocalServer) -> None:
    """An account-level webhook endpoint created, listed, read, changed and its secret read; events delivered to
    it and to a wallet's own webhook by the alerting function (each signed with its own secret), both listings of
    deliveries paged, one delivery of each resent and delivered again, wallets' webhook secrets read (the large
    wallet's too: its card pages are read to load it); then the endpoint removed, with its secret."""
    receiver = Receiver().start()
    try:
        body = {"url": receiver.url, "eventTypes": ["Credits Purchased", "Balance Low"], "description": "perm"}
        status, created = call(server, "POST", "/webhook-endpoints", body)
        assert status == 201, created
        endpoint = f"/webhook-endpoints/{created['id']}"
        status, listed_ = call(server, "GET", "/webhook-endpoints")
        assert status == 200 and created["id"] in [e["id"] for e in listed_["endpoints"]], listed_
        assert call(server, "GET", endpoint)[0] == 200
        status, changed = call(server, "PATCH", endpoint, {"description": "perm, changed"})
        assert (status, changed.get("description")) == (200, "perm, changed"), changed
        assert call(server, "GET", f"{endpoint}/secret") == (200, {"secret": created["secret"]})
        # a wallet whose webhook is the same receiver: two purchases (the endpoint's), then usage below its
        # threshold (Balance Low: the wallet's webhook and the endpoint's)
        wallet = f"/wallets/{HOOKED_CUSTOMER}"
        assert call(server, "PUT", f"{wallet}/settings", {"thresholds": ["50"], "webhookUrl": receiver.url})[0] == 200
        for _ in range(2):
            assert call(server, "POST", f"{wallet}/purchases", {"credits": "100"})[0] == 201
        usage = {"eventId": "perm-hooks-1", "customerId": HOOKED_CUSTOMER, "meter": "api_calls", "quantity": "320"}
        usage["timestamp"] = stack_now(server).isoformat()
        assert call(server, "POST", "/usage", {"events": [usage]})[0] == 202

        def delivered() -> bool:
            """the endpoint had both purchases and the alert, and the wallet's webhook the alert"""
            types = [r.json()["type"] for r in receiver.accepted() if r.json()["customerId"] == HOOKED_CUSTOMER]
            return types.count("Credits Purchased") == 2 and types.count("Balance Low") == 2

        eventually(delivered)
        # Each listing, a page at a time (its cursor signed and opened again)
        status, first = call(server, "GET", f"{endpoint}/deliveries?limit=1")
        assert status == 200 and first["nextCursor"], first
        status, second = call(server, "GET", f"{endpoint}/deliveries?limit=1&cursor={first['nextCursor']}")
        assert status == 200 and len(second["deliveries"]) == 1, second
        status, own = call(server, "GET", f"{wallet}/webhook/deliveries")
        alerts = [d["eventId"] for d in own["deliveries"] if d["eventType"] == "Balance Low"]
        assert status == 200 and len(alerts) == 1, own
        for customer in (HOOKED_CUSTOMER, LARGE_CUSTOMER):
            status, secret = call(server, "GET", f"/wallets/{customer}/webhook/secret")
            assert status == 200 and secret["secret"].startswith("whsec_"), secret
        # One delivery of each resent: the alerting function delivers it again, on that channel only
        before = len(receiver.accepted())
        resent = first["deliveries"][0]["eventId"]
        status, queued = call(server, "POST", f"{endpoint}/deliveries/{resent}/resend")
        assert status == 202, queued
        (alert,) = alerts
        status, queued = call(server, "POST", f"{wallet}/webhook/deliveries/{alert}/resend")
        assert status == 202, queued

        def delivered_again() -> bool:
            """both resends reached the receiver"""
            again = [r.event_id for r in receiver.accepted()[before:]]
            return resent in again and alert in again

        eventually(delivered_again)
        assert call(server, "DELETE", endpoint)[0] == 204
        assert call(server, "GET", endpoint)[0] == 404
    finally:
        receiver.stop()


def pay_with_stripe(server: LocalServer) -> None:
    """A purchase charged through Stripe, and a customer's checkout on the dashboard paid on the stand-in's page,
    whose events reach the Stripe webhook."""
    charged = {"credits": "100", "payment": {"collect": "stripe", "stripeCustomer": "cus_demo"}}
    status, answer = call(server, "POST", f"/wallets/{DEMO_CUSTOMER}/purchases", charged)
    assert status == 201, answer
    status, link = call(server, "POST", f"/wallets/{DEMO_CUSTOMER}/dashboard-links", {"ttlSeconds": 900})
    assert status == 201, link
    bearer = f"Bearer {link['token']}"
    status, checkout = call(server, "POST", "/dashboard/checkout", {"credits": "100"}, Authorization=bearer)
    assert status == 201, checkout
    session = checkout["checkoutUrl"].rsplit("/", 1)[1]
    paid = urllib.request.Request(f"{server.stripe.url}/checkout/{session}/pay", data=b"", method="POST")
    with contextlib.suppress(urllib.error.HTTPError):  # the page sends the browser back: a redirect, not followed
        _NO_REDIRECT.open(paid, timeout=PATIENCE_SECONDS).close()

    def activated() -> bool:
        """Stripe's event activated the checkout's card"""
        cards = call(server, "GET", f"/wallets/{DEMO_CUSTOMER}")[1]["cards"]
        return any(c["cardId"] == checkout["card"]["cardId"] and c["status"] == "active" for c in cards)

    eventually(activated)
    # and an auto-recharge that Stripe charges to the saved card, answering a crossing
    third = "/wallets/perm-third"
    auto = {"threshold": "100", "credits": "500", "maxPerDay": 1, "payment": charged["payment"]}
    assert call(server, "PUT", f"{third}/settings", {"autoRecharge": auto})[0] == 200
    assert call(server, "POST", f"{third}/purchases", {"credits": "150"})[0] == 201
    usage = {"eventId": "perm-third-1", "customerId": "perm-third", "meter": "api_calls", "quantity": "200"}
    assert call(server, "POST", "/usage", {"events": [usage | {"timestamp": stack_now(server).isoformat()}]})[0] == 202

    def recharged() -> bool:
        """the auto-recharge was charged and granted"""
        cards = call(server, "GET", third)[1]["cards"]
        return any(c["source"] == "auto_recharge" and c["status"] == "active" for c in cards)

    eventually(recharged)


class _Unredirected(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any) -> None:
        return None


_NO_REDIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _Unredirected())


def export_today(server: LocalServer) -> None:
    """The daily export run for today so far, as an operator asks for a day: the revenue projection's notes of who
    had entries, those ledgers (what the wallet carries, then the stored entries) and the revenue days, to S3."""
    today = stack_now(server).date().isoformat()

    def exported() -> bool:
        """the export found today's ledger entries (once the revenue projection noted their customers)"""
        entries: int = server.stack.invoke("ExportFunction", {"day": today})["entries"]
        return entries > 0

    eventually(exported)


def revenue_batch_again(server: LocalServer, delivered: list[dict[str, Any]]) -> None:
    """A revenue batch Lambda delivers again (the function died after its transaction): it reads the guards it
    finds moved, and adds nothing."""
    assert delivered, "the revenue projection ran"
    assert server.stack.invoke("RevenueFunction", delivered[0]) == {"added": 0}


def quiet(recorder: AwsCallRecorder, seconds: float = 0.6) -> bool:
    """No function made an AWS call for `seconds` (three of the server's pump intervals): all is delivered."""
    before = sum(recorder.calls.values())
    time.sleep(seconds)
    return sum(recorder.calls.values()) == before


# -- tests -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfn() -> Template:
    return transformed()


@pytest.fixture(scope="module")
def roles(server: LocalServer, cfn: Template) -> FunctionRoles:
    return FunctionRoles(cfn, server.stack.resolver)


def recorder_for(server: LocalServer) -> AwsCallRecorder:
    """A recorder that knows the local stack's tables' partition keys and its account."""
    resolver = server.stack.resolver
    return AwsCallRecorder(partition_keys(server.stack.template, resolver.physical), account=resolver.account)


def test_every_aws_call_a_function_makes_is_allowed_by_its_role_and_needs_all_it_allows(
    server: LocalServer, roles: FunctionRoles, cfn: Template
) -> None:
    # Given every function of the template, and a record of which ran and of the AWS calls their handlers made
    functions = set(function_ids())
    expected = functions - set(NOT_REACHED)
    invoked: set[str] = set()
    revenue_batches: list[dict[str, Any]] = []

    def ran(function: str, event: Any) -> None:
        invoked.add(function)
        if function == "RevenueFunction" and any(r["dynamodb"]["NewImage"].get("ledger") for r in event["Records"]):
            revenue_batches.append(event)
        # On AWS each function has its own environments; here they share one process. What one function read and
        # cached (the signing key, the rate card, the webhook key) must not spare another the call it makes.
        forget_cached_reads()

    def all_ran() -> bool:
        """every function of the template (but those listed as not reached) ran"""
        return expected <= invoked

    server.stack.observers.append(ran)
    try:
        with recorder_for(server) as recorder:
            # When the demo's story runs (usage by HTTP and SQS, alerts to webhooks, an auto-recharge, a promotion
            # that expires on its schedule), another customer voids a card, misses an alert, sends a late event and
            # gets a recurring grant, poison messages are dead-lettered, the dashboard and the API's reports are
            # read, a purchase is charged through Stripe and a checkout paid on its page, the day is exported for
            # finance, and a revenue batch is delivered again
            play_the_demo(server)
            second_customer(server, recorder)
            poison(server, recorder)
            read_everything(server)
            grants_on_a_large_wallet(server)
            webhook_endpoints(server)
            pay_with_stripe(server)
            export_today(server)
            eventually(all_ran)
            eventually(lambda: quiet(recorder))  # what is still under way is recorded too
            revenue_batch_again(server, revenue_batches)
    finally:
        server.stack.observers.remove(ran)

    # Then every function ran, and each made AWS calls that were recorded (so the check below covers them all, and
    # cannot pass for want of a record)
    assert sorted(functions - invoked) == sorted(NOT_REACHED), f"never invoked: {sorted(functions - invoked)}"
    assert sorted(recorder.by_function()) == sorted(expected)
    # And each call's resource, and each DynamoDB item call's partition key, was known
    calls = recorder.accesses()
    unknown = sorted({c.describe() for c in calls if c.resource is None or c.key == UNREAD_KEY})
    assert unknown == [], "calls whose resource or key the recorder could not tell:\n" + "\n".join(unknown)
    # And every action a function needed, on the resource and the key it needed it on, is one its role allows
    missing = not_allowed(calls, roles)
    assert missing == [], "called but not allowed by the function's role:\n" + "\n".join(missing)
    # And every action each role grants was needed by some call: no role is wider than what its function does
    wider = unused(calls, roles, cfn, expected)
    assert wider == [], "granted but never needed by the function's calls:\n" + "\n".join(wider)
    # And no handler made a call that is Lambda's own (so leaving those out above hides none of the handlers')
    assert sorted({c.describe() for c in calls if c.action in PLATFORM_ACTIONS}) == []


@contextlib.contextmanager
def running(function: str) -> Iterator[None]:
    """Calls made in the block are the function's, as `Stack.invoke` makes them."""
    token = RUNNING_FUNCTION.set(function)
    try:
        yield
    finally:
        RUNNING_FUNCTION.reset(token)


def test_the_check_reports_a_call_the_role_does_not_allow(server: LocalServer, roles: FunctionRoles) -> None:
    # Given the local stack's names, and DynamoDB, SQS and Scheduler stubbed
    resolver = server.stack.resolver
    table, table_arn = resolver.physical["WalletTable"], resolver.attributes[("WalletTable", "Arn")]
    urls = resolver.physical
    scheduler_role = resolver.attributes[("SchedulerRole", "Arn")]
    other_role = f"arn:aws:iam::{resolver.account}:role/someone-else"
    group = resolver.physical["ExpiryScheduleGroup"]
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    dynamodb, sqs, scheduler = session.client("dynamodb"), session.client("sqs"), session.client("scheduler")
    items: list[TransactWriteItemTypeDef] = [
        {"Put": {"TableName": table, "Item": {"PK": {"S": "W#a"}, "SK": {"S": "WALLET"}}}},
        {"Delete": {"TableName": table, "Key": {"PK": {"S": "W#b"}, "SK": {"S": "WALLET"}}}},
    ]
    expiry = resolver.attributes[("ExpiryFunction", "Arn")]

    def schedule(name: str, role: str) -> None:
        target: TargetTypeDef = {"Arn": expiry, "RoleArn": role}
        scheduler.create_schedule(
            Name=name,
            GroupName=group,
            ScheduleExpression="at(2030-01-01T00:00:00)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
        )

    with Stubber(dynamodb) as db, Stubber(sqs) as queues, Stubber(scheduler) as schedules, recorder_for(server) as rec:
        for operation in ("transact_write_items", "put_item", "put_item", "get_item", "scan"):
            db.add_response(operation, {})
        for _ in range(2):
            queues.add_response("send_message", {"MessageId": "m"})
            schedules.add_response("create_schedule", {"ScheduleArn": "arn:aws:scheduler:::schedule/x"})
        # When ApiFunction commits a wallet change deleting a wallet, puts the catalog and a delivery record
        # (D#: the alerting function's), and reads another table
        with running("ApiFunction"):
            dynamodb.transact_write_items(TransactItems=items)
            dynamodb.put_item(TableName=table, Item={"PK": {"S": "CATALOG"}, "SK": {"S": "PRICE_BOOK"}})
            dynamodb.put_item(TableName=table, Item={"PK": {"S": "D#x"}, "SK": {"S": "WEBHOOK"}})
            dynamodb.get_item(TableName="other-table", Key={"PK": {"S": "W#a"}, "SK": {"S": "WALLET"}})
        # And IngestFunction sends to the drawdown queue and to the webhook queue (the alerting function's)
        with running("IngestFunction"):
            sqs.send_message(QueueUrl=urls["DrawdownQueue"], MessageBody="{}")
            sqs.send_message(QueueUrl=urls["WebhookQueue"], MessageBody="{}")
        # And ExpiryFunction schedules an expiry with the scheduler's role, and another with someone else's
        with running("ExpiryFunction"):
            schedule("card-1", scheduler_role)
            schedule("card-2", other_role)
        # And a read is made outside any function
        dynamodb.scan(TableName=table)

    # Then each part of each call was recorded with its resource and key, but the read outside a function (the
    # server's own work goes on meanwhile, e.g. an alert's retry from the test before: only these three functions'
    # calls are this test's)
    schedules_arn = f"arn:aws:scheduler:us-east-1:{resolver.account}:schedule/{group}"
    drawdown, webhook = (resolver.attributes[(q, "Arn")] for q in ("DrawdownQueue", "WebhookQueue"))
    other_table = f"arn:aws:dynamodb:us-east-1:{resolver.account}:table/other-table"
    made_here = [c for c in rec.accesses() if c.function in ("ApiFunction", "IngestFunction", "ExpiryFunction")]
    assert [c.describe() for c in rec.accesses() if c.action == "dynamodb:Scan"] == []  # the one made outside
    assert {c.describe() for c in made_here} == {
        f"ApiFunction dynamodb:PutItem {table_arn} key=W#a",
        f"ApiFunction dynamodb:DeleteItem {table_arn} key=W#b",
        f"ApiFunction dynamodb:PutItem {table_arn} key=CATALOG",
        f"ApiFunction dynamodb:PutItem {table_arn} key=D#x",
        f"ApiFunction dynamodb:GetItem {other_table} key=W#a",
        f"IngestFunction sqs:SendMessage {drawdown}",
        f"IngestFunction sqs:SendMessage {webhook}",
        f"ExpiryFunction scheduler:CreateSchedule {schedules_arn}/card-1",
        f"ExpiryFunction scheduler:CreateSchedule {schedules_arn}/card-2",
        f"ExpiryFunction iam:PassRole {scheduler_role} to=scheduler.amazonaws.com",
        f"ExpiryFunction iam:PassRole {other_role} to=scheduler.amazonaws.com",
    }
    # And the check reports the action the role lacks, the key prefix, the table, the queue and the role it does
    # not grant, while what it grants is not reported
    assert not_allowed(made_here, roles) == sorted(
        [
            f"ApiFunction dynamodb:DeleteItem {table_arn} key=W#b",
            f"ApiFunction dynamodb:PutItem {table_arn} key=D#x",
            f"ApiFunction dynamodb:GetItem {other_table} key=W#a",
            f"IngestFunction sqs:SendMessage {webhook}",
            f"ExpiryFunction iam:PassRole {other_role} to=scheduler.amazonaws.com",
        ]
    )
    # And so is the scheduler's role passed to another service, an index the role does not name, and an action of
    # another service, while an index query the role grants (whatever its key) is not
    index = f"{table_arn}/index/RecurringIndex"
    calls = [
        AwsCall("ExpiryFunction", "iam:PassRole", "", scheduler_role, passed_to="lambda.amazonaws.com"),
        AwsCall("ApiFunction", "dynamodb:Query", "", index, key="5"),
        AwsCall("PublisherFunction", "sns:Publish", "", resolver.physical["AlertTopic"]),
        AwsCall("RecurringFunction", "dynamodb:Query", "", index, key="5"),
    ]
    assert not_allowed(calls, roles) == sorted(call.describe() for call in calls[:3])


def _with_statement(cfn: Template, function: str, statement: dict[str, Any]) -> Template:
    changed = copy.deepcopy(cfn)
    role = role_of(changed, function)
    role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)
    return changed


def _with_managed_policy(cfn: Template, function: str) -> Template:
    changed = copy.deepcopy(cfn)
    role_of(changed, function)["Properties"]["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    return changed


WALLETS = {"Fn::GetAtt": ["WalletTable", "Arn"]}


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param(
            lambda cfn: _with_statement(
                cfn,
                "ApiFunction",
                {
                    "Effect": "Allow",
                    "Action": "dynamodb:PutItem",
                    "Resource": WALLETS,
                    "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                },
            ),
            "condition Bool aws:SecureTransport is not evaluated",
            id="a condition it does not evaluate",
        ),
        pytest.param(
            lambda cfn: _with_statement(
                cfn,
                "ApiFunction",
                {
                    "Effect": "Allow",
                    "Action": "dynamodb:GetItem",
                    "Resource": WALLETS,
                    "Condition": {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["W#*"]}},
                },
            ),
            "condition ForAnyValue:StringLike dynamodb:LeadingKeys is not evaluated",
            id="LeadingKeys under another operator",
        ),
        pytest.param(
            lambda cfn: _with_statement(
                cfn, "ApiFunction", {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": WALLETS}
            ),
            "only Allow statements are evaluated",
            id="a Deny statement",
        ),
        pytest.param(lambda cfn: _with_managed_policy(cfn, "ApiFunction"), "managed policies", id="a managed policy"),
        pytest.param(
            lambda cfn: _with_statement(
                cfn,
                "ApiFunction",
                {
                    "Effect": "Allow",
                    "Action": "dynamodb:Query",
                    "Resource": {"Fn::Sub": "${WalletTable.Arn}/index/*"},
                    "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["5"]}},
                },
            ),
            "LeadingKeys condition on an index query is not evaluated",
            id="LeadingKeys on an index",
        ),
    ],
)
def test_the_check_fails_on_what_it_cannot_evaluate(
    server: LocalServer, cfn: Template, change: Callable[[Template], Template], refusal: str
) -> None:
    # Given ApiFunction's role with a statement, or a policy, whose effect the check does not evaluate
    roles = FunctionRoles(change(cfn), server.stack.resolver)
    index = f"{server.stack.resolver.attributes[('WalletTable', 'Arn')]}/index/RecurringIndex"
    # When ApiFunction's index query is checked against it
    # Then the check fails, rather than treat the statement as granting or not
    with pytest.raises(AssertionError, match=re.escape(refusal)):
        not_allowed([AwsCall("ApiFunction", "dynamodb:Query", "", index, key="5")], roles)


def test_each_call_is_read_as_the_resources_and_keys_iam_authorizes() -> None:
    # Given calls as the handlers make them, on a table "t" (partition key PK) with an index "i" (partition key day)
    keys = {"t": "PK", "t/index/i": "day"}
    arn = "arn:aws:{}:us-east-1:123456789012:{}".format
    table = arn("dynamodb", "table/t")

    def read(prefix: str, operation: str, **params: Any) -> list[tuple[str, str | None, str | None]]:
        found = accesses(prefix, operation, params, partition_keys=keys)
        return [(a.action, a.resource, a.key) for a in found]

    # When each is read, then each table and key of a batch or transaction is its own access, with its own action
    pk = {"PK": {"S": "W#a"}, "SK": {"S": "WALLET"}}
    assert read("dynamodb", "BatchGetItem", RequestItems={"t": {"Keys": [pk, {"PK": {"S": "E#1"}}]}}) == [
        ("dynamodb:BatchGetItem", table, "W#a"),
        ("dynamodb:BatchGetItem", table, "E#1"),
    ]
    transaction = [{"Get": {"TableName": "t", "Key": pk}}, {"Get": {"TableName": "u", "Key": {"PK": {"S": "x"}}}}]
    assert read("dynamodb", "TransactGetItems", TransactItems=transaction) == [
        ("dynamodb:GetItem", table, "W#a"),
        ("dynamodb:GetItem", arn("dynamodb", "table/u"), "x"),
    ]
    checked = [{"ConditionCheck": {"TableName": "t", "Key": pk, "ConditionExpression": "attribute_exists(PK)"}}]
    assert read("dynamodb", "TransactWriteItems", TransactItems=checked) == [
        ("dynamodb:ConditionCheckItem", table, "W#a")
    ]
    # And a query's key is the value bound to the partition key (named through a placeholder or not), on the table
    # or on the index
    query = {"ExpressionAttributeValues": {":p": {"S": "A#c"}, ":s": {"S": "H#"}}}
    expression = "#s = :s AND #pk = :p"
    names = {"#pk": "PK", "#s": "SK"}
    assert read(
        "dynamodb", "Query", TableName="t", KeyConditionExpression=expression, ExpressionAttributeNames=names, **query
    ) == [("dynamodb:Query", table, "A#c")]
    by_day = {"KeyConditionExpression": "day = :d", "ExpressionAttributeValues": {":d": {"N": "5"}}}
    assert read("dynamodb", "Query", TableName="t", IndexName="i", **by_day) == [
        ("dynamodb:Query", f"{table}/index/i", "5")
    ]
    # And an item call whose partition key is missing is read as such (so it is reported, not let through)
    assert read("dynamodb", "GetItem", TableName="t", Key={"SK": {"S": "WALLET"}}) == [
        ("dynamodb:GetItem", table, UNREAD_KEY)
    ]
    # And the other services' calls name their queue, topic, buses and secret
    url = "https://sqs.us-east-1.amazonaws.com/210987654321/q.fifo"
    assert read("sqs", "SendMessageBatch", QueueUrl=url, Entries=[]) == [
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:210987654321:q.fifo", None)
    ]
    assert read("sns", "Publish", TopicArn=arn("sns", "alerts"), Message="m") == [
        ("sns:Publish", arn("sns", "alerts"), None)
    ]
    entries = [{"EventBusName": "b"}, {"EventBusName": arn("events", "event-bus/c")}, {}]
    assert read("events", "PutEvents", Entries=entries) == [
        ("events:PutEvents", arn("events", "event-bus/b"), None),
        ("events:PutEvents", arn("events", "event-bus/c"), None),
        ("events:PutEvents", arn("events", "event-bus/default"), None),
    ]
    secret = arn("secretsmanager", "secret:s-AbCdEf")
    assert read("secretsmanager", "GetSecretValue", SecretId=secret) == [
        ("secretsmanager:GetSecretValue", secret, None)
    ]
    # And a secret being created is named by the name it is given (the ARN's random suffix is not known yet)
    assert read("secretsmanager", "CreateSecret", Name="s/webhook-endpoints/ep_1", SecretString="x") == [
        ("secretsmanager:CreateSecret", arn("secretsmanager", "secret:s/webhook-endpoints/ep_1"), None)
    ]
