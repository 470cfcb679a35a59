"""The AWS calls each function of the local stack makes: the IAM actions they need, on which resources and keys.

moto enforces no IAM, so a handler calling an API its role does not allow passes every test and fails on AWS with
AccessDenied. `AwsCallRecorder` patches botocore's one funnel for API calls (`BaseClient._make_api_call`, which every
boto3 client, resource, paginator and Powertools provider goes through) and records, for each call made while
`Stack.invoke` runs a handler (`RUNNING_FUNCTION`), the function's logical id, the IAM action the call needs, the ARN
of the resource it acts on and, for DynamoDB items, the partition key value (IAM's `dynamodb:LeadingKeys`).

One API call can need several records: a `TransactWriteItems` needs each item's own action (PutItem, UpdateItem, ...)
on its table and key, a `BatchGetItem` each key of each table, a `CreateSchedule` passing a role `iam:PassRole` on it.
Each record holds one key: IAM evaluates a request's keys together against one statement (`ForAllValues`), which
gives the same answer as long as one statement per action grants a table's keys, as each role of the template does.

Calls made outside a handler (the test itself, the stack's pollers, schedulers and asynchronous destinations) are
not recorded. On AWS some of those use the function's role too (the SQS and stream pollers reading, a failed
asynchronous invocation sent to its DeadLetterQueue or OnFailure destination): they are not checked here. Only the
calls the scenario makes are checked.

`RUNNING_FUNCTION` is a context variable, so each thread (the local server answers each request and pumps
deliveries in threads of their own) sees only its own function. A thread a handler started itself would not
inherit it (none of the handlers starts one).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

from botocore.client import BaseClient

from prepaid_local.stack import RUNNING_FUNCTION

# moto's account, the local stack's (prepaid_local.template.Resolver); SQS URLs name theirs.
ACCOUNT = "123456789012"
# The single-table design's partition key, for a table `partition_keys` does not name.
DEFAULT_PARTITION_KEY = "PK"
# An item call whose partition key could not be read: matches no LeadingKeys pattern but "*", so it is reported.
UNREAD_KEY = "<key not found>"
# The service `iam:PassRole` hands a role to, by the operation that passes it (`Target.RoleArn`).
_PASSES_ROLE = {
    "scheduler:CreateSchedule": "scheduler.amazonaws.com",
    "scheduler:UpdateSchedule": "scheduler.amazonaws.com",
}
# The IAM action is `<signing name>:<operation>` (the signing name is the IAM prefix: dynamodb, sqs, events,
# scheduler, secretsmanager, sns; DynamoDB Streams' is dynamodb too), except for these operations, which IAM
# authorizes as another action (IAM's Service Authorization Reference lists no action of their own).
_AUTHORIZED_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sns:PublishBatch": "sns:Publish",
    "dynamodb:TransactGetItems": "dynamodb:GetItem",
}
# TransactWriteItems needs the action of each kind of item it holds.
_TRANSACT_WRITE = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# `name = :value` or `:value = name` in a key condition (names may be #placeholders)
_EQUALS = re.compile(r"(#?[A-Za-z_][\w.]*)\s*=\s*(:\w+)|(:\w+)\s*=\s*(#?[A-Za-z_][\w.]*)")


@dataclass(frozen=True)
class Access:
    """What IAM authorizes for one part of a call: an action on a resource, with the context its conditions read."""

    action: str  # e.g. dynamodb:PutItem
    resource: str | None = None  # the ARN; None for an action without resource-level permissions (or not known)
    key: str | None = None  # the partition key value (dynamodb:LeadingKeys); None when the call names none
    passed_to: str | None = None  # iam:PassedToService, for iam:PassRole


@dataclass(frozen=True)
class AwsCall:
    """One IAM action a function needed, for one operation it called, on one resource and key."""

    function: str  # the template's logical id
    action: str  # what IAM authorizes, e.g. dynamodb:PutItem
    operation: str  # what was called, e.g. dynamodb:TransactWriteItems
    resource: str | None = None  # the ARN acted on, e.g. arn:aws:dynamodb:us-east-1:123456789012:table/local-T
    key: str | None = None  # DynamoDB: the item's (or queried) partition key value
    passed_to: str | None = None  # iam:PassRole: the service the role is passed to

    def describe(self) -> str:
        """`<function> <action> <resource> <key>`, as a miss is reported."""
        parts = [self.function, self.action, self.resource or "(no resource)"]
        parts += [f"key={self.key}"] if self.key is not None else []
        parts += [f"to={self.passed_to}"] if self.passed_to is not None else []
        return " ".join(parts)


def _value(attribute: Any) -> str | None:
    """A DynamoDB attribute value as IAM sees a key: `{"S": "W#a"}` and the resource API's "W#a" -> "W#a"."""
    if isinstance(attribute, dict) and len(attribute) == 1:
        ((kind, value),) = attribute.items()
        return str(value) if kind in ("S", "N") else None
    return str(attribute) if isinstance(attribute, str | int) else None


class _Arns:
    """ARNs of the resources a call names, in one region and account."""

    def __init__(self, region: str, account: str) -> None:
        self.region, self.account = region, account

    def arn(self, service: str, resource: str, account: str | None = None) -> str:
        return f"arn:aws:{service}:{self.region}:{account or self.account}:{resource}"

    def table(self, name: str, index: str | None = None) -> str:
        table = name if name.startswith("arn:") else self.arn("dynamodb", f"table/{name}")
        return f"{table}/index/{index}" if index else table

    def queue(self, url: str) -> str:
        """From a queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or moto's) or an ARN."""
        if url.startswith("arn:"):
            return url
        parts = urlsplit(url).path.strip("/").split("/")
        return self.arn("sqs", parts[-1], parts[-2] if len(parts) > 1 else None)

    def bus(self, name: str) -> str:
        return name if name.startswith("arn:") else self.arn("events", f"event-bus/{name}")

    def secret(self, secret_id: str) -> str:
        # A name stays a name: the ARN IAM checks has a random suffix, which a name does not tell
        return secret_id if secret_id.startswith("arn:") else self.arn("secretsmanager", f"secret:{secret_id}")

    def schedule(self, group: str | None, name: str) -> str:
        return self.arn("scheduler", f"schedule/{group or 'default'}/{name}")


class _DynamoDB:
    """The accesses of DynamoDB calls: each item's action, table and partition key."""

    def __init__(self, arns: _Arns, partition_keys: Mapping[str, str]) -> None:
        self._arns = arns
        self._partition_keys = partition_keys

    def _pk_name(self, table: str, index: str | None = None) -> str | None:
        if index is not None:
            return self._partition_keys.get(f"{table}/index/{index}")
        return self._partition_keys.get(table, DEFAULT_PARTITION_KEY)

    def item(self, action: str, table: str, key: Mapping[str, Any] | None) -> Access:
        """An item call (`Key` or `Item`) on a table."""
        name = self._pk_name(table)
        value = _value(key.get(name)) if key is not None and name is not None else None
        return Access(action, self._arns.table(table), value if value is not None else UNREAD_KEY)

    def query(self, action: str, params: Mapping[str, Any]) -> Access:
        """A Query: the table or index, and the value its partition key condition binds."""
        table, index = params["TableName"], params.get("IndexName")
        name = self._pk_name(table, index)
        names, values = params.get("ExpressionAttributeNames", {}), params.get("ExpressionAttributeValues", {})
        bound: dict[str, Any] = {}
        expression = params.get("KeyConditionExpression")
        if isinstance(expression, str):
            for match in _EQUALS.finditer(expression):
                attribute, placeholder = (match[1], match[2]) if match[1] else (match[4], match[3])
                bound.setdefault(names.get(attribute, attribute), values.get(placeholder))
        for attribute, condition in params.get("KeyConditions", {}).items():  # the legacy form
            if condition.get("ComparisonOperator") == "EQ":
                bound.setdefault(attribute, condition.get("AttributeValueList", [None])[0])
        if name is None and len(bound) == 1:  # an index not described: its one equality is its partition key
            name = next(iter(bound))
        value = _value(bound.get(name)) if name is not None else None
        return Access(action, self._arns.table(table, index), value if value is not None else UNREAD_KEY)

    def accesses(self, operation: str, params: Mapping[str, Any]) -> Iterator[Access]:
        action = _AUTHORIZED_AS.get(f"dynamodb:{operation}", f"dynamodb:{operation}")
        if operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                for kind, item in entry.items():
                    needed = _TRANSACT_WRITE.get(kind, f"dynamodb:{kind}")
                    yield self.item(needed, item["TableName"], item.get("Key", item.get("Item")))
        elif operation == "TransactGetItems":
            for entry in params.get("TransactItems", []):
                yield self.item(action, entry["Get"]["TableName"], entry["Get"].get("Key"))
        elif operation == "BatchGetItem":
            for table, request in params.get("RequestItems", {}).items():
                for key in request.get("Keys", []):
                    yield self.item(action, table, key)
        elif operation == "BatchWriteItem":
            for table, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    put, delete = request.get("PutRequest", {}), request.get("DeleteRequest", {})
                    yield self.item(action, table, put.get("Item", delete.get("Key")))
        elif operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            yield self.item(action, params["TableName"], params.get("Key", params.get("Item")))
        elif operation == "Query":
            yield self.query(action, params)
        elif "TableName" in params:  # Scan, DescribeTable, ...: the table (or index), no key
            yield Access(action, self._arns.table(params["TableName"], params.get("IndexName")))
        elif "StreamArn" in params:  # DescribeStream, GetShardIterator
            yield Access(action, params["StreamArn"])
        else:
            yield Access(action)  # GetRecords (a shard iterator names no ARN), ListTables, ...: only "*" grants


def accesses(
    prefix: str,
    operation: str,
    params: Mapping[str, Any],
    *,
    region: str = "us-east-1",
    account: str = ACCOUNT,
    partition_keys: Mapping[str, str] | None = None,
) -> list[Access]:
    """What IAM authorizes for one API call (`prefix` is the client's signing name).

    `partition_keys` names each table's (`<table name>`) and index's (`<table name>/index/<index name>`) partition
    key attribute; a table not named has `DEFAULT_PARTITION_KEY`."""
    arns = _Arns(region, account)
    called = f"{prefix}:{operation}"
    action = _AUTHORIZED_AS.get(called, called)
    if prefix == "dynamodb":
        return list(_DynamoDB(arns, partition_keys or {}).accesses(operation, params))
    if prefix == "sqs":
        if "QueueUrl" in params:
            return [Access(action, arns.queue(params["QueueUrl"]))]
        if "QueueName" in params:  # GetQueueUrl, CreateQueue
            return [Access(action, arns.arn("sqs", params["QueueName"], params.get("QueueOwnerAWSAccountId")))]
        return [Access(action)]
    if prefix == "sns":
        topic = params.get("TopicArn", params.get("TargetArn"))
        return [Access(action, topic)]
    if called == "events:PutEvents":
        buses = dict.fromkeys(entry.get("EventBusName", "default") for entry in params.get("Entries", []))
        return [Access(action, arns.bus(bus)) for bus in buses]
    if prefix == "secretsmanager":  # a secret by its id, or (CreateSecret) by the name it is given
        secret_id = params.get("SecretId", params.get("Name"))
        return [Access(action, arns.secret(secret_id) if isinstance(secret_id, str) else None)]
    if prefix == "s3":  # an object's ARN (`arn:aws:s3:::<bucket>/<key>`), or the bucket's for bucket calls
        bucket = params.get("Bucket")
        path = f"{bucket}/{params['Key']}" if bucket and "Key" in params else bucket
        return [Access(action, f"arn:aws:s3:::{path}" if path else None)]
    if prefix == "scheduler":
        found = [Access(action, arns.schedule(params.get("GroupName"), params["Name"]) if "Name" in params else None)]
        role = params.get("Target", {}).get("RoleArn")
        if called in _PASSES_ROLE and role:
            found.append(Access("iam:PassRole", role, passed_to=_PASSES_ROLE[called]))
        return found
    return [Access(action)]  # a service this module does not know: only a "*" resource grants it


def iam_actions(prefix: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """The IAM actions one API call needs (`prefix` is the client's signing name), sorted."""
    return sorted({access.action for access in accesses(prefix, operation, params)})


class AwsCallRecorder:
    """Records the IAM accesses of functions' AWS calls while in use (`with AwsCallRecorder() as calls: ...`).

    `partition_keys`: see `accesses` (tests/support/template_roles.py `partition_keys` reads them from the template);
    `account`: for ARNs whose call does not name the account (tables, buses, schedules, secrets by name)."""

    def __init__(self, partition_keys: Mapping[str, str] | None = None, account: str = ACCOUNT) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[AwsCall] = Counter()
        self._partition_keys = dict(partition_keys or {})
        self._account = account
        self._patch = mock.patch.object(
            BaseClient, "_make_api_call", self._recording(vars(BaseClient)["_make_api_call"])
        )

    def _recording(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def _make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            function = RUNNING_FUNCTION.get()
            if function is not None:  # recorded before the call: a call that fails needs the permission too
                prefix = client.meta.service_model.signing_name
                operation = f"{prefix}:{operation_name}"
                try:
                    found = accesses(
                        prefix,
                        operation_name,
                        api_params,
                        region=client.meta.region_name or "us-east-1",
                        account=self._account,
                        partition_keys=self._partition_keys,
                    )
                except Exception:  # a call this module cannot read must not fail the handler: it is reported instead
                    found = [Access(operation, None, UNREAD_KEY)]
                calls = [
                    AwsCall(function, a.action, operation, a.resource, a.key, a.passed_to) for a in dict.fromkeys(found)
                ]
                with self._lock:
                    self._counts.update(calls)
            return original(client, operation_name, api_params)

        return _make_api_call

    def __enter__(self) -> AwsCallRecorder:
        self._patch.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._patch.stop()

    @property
    def calls(self) -> Counter[AwsCall]:
        """How many times each (function, action, operation, resource, key) was needed so far."""
        with self._lock:
            return Counter(self._counts)

    def accesses(self) -> set[AwsCall]:
        """Every (function, action, operation, resource, key) recorded so far."""
        return set(self.calls)

    def actions(self) -> set[tuple[str, str]]:
        """Every (function, IAM action) recorded so far."""
        return {(call.function, call.action) for call in self.calls}

    def by_function(self) -> dict[str, list[str]]:
        """The IAM actions recorded for each function, sorted."""
        found: dict[str, set[str]] = {}
        for function, action in self.actions():
            found.setdefault(function, set()).add(action)
        return {function: sorted(actions) for function, actions in sorted(found.items())}
