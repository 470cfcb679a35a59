"""The AWS calls each function of the local stack makes, as the IAM actions they need.

moto enforces no IAM, so a handler calling an API its role does not allow passes every test and fails on AWS with
AccessDenied. `AwsCallRecorder` patches botocore's one funnel for API calls (`BaseClient._make_api_call`, which every
boto3 client, resource, paginator and Powertools provider goes through) and records, for each call made while
`Stack.invoke` runs a handler (`RUNNING_FUNCTION`), the function's logical id and the IAM action the call needs.

Calls made outside a handler (the test itself, the stack's pollers, schedulers and asynchronous destinations) are
not recorded. On AWS some of those use the function's role too (the SQS and stream pollers reading, a failed
asynchronous invocation sent to its DeadLetterQueue or OnFailure destination): SAM adds those policies itself, and
they are not checked here. Only the calls the scenario makes are checked.

`RUNNING_FUNCTION` is a context variable, so each thread (the local server answers each request and pumps
deliveries in threads of their own) sees only its own function. A thread a handler started itself would not
inherit it (none of the handlers starts one).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from unittest import mock

from botocore.client import BaseClient

from prepaid_local.stack import RUNNING_FUNCTION

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
# Operations that hand a role to the service, which needs iam:PassRole on it as well.
_PASSES_ROLE = ("scheduler:CreateSchedule", "scheduler:UpdateSchedule")


def iam_actions(prefix: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """The IAM actions one API call needs (`prefix` is the client's signing name)."""
    action = f"{prefix}:{operation}"
    if action == "dynamodb:TransactWriteItems":
        kinds = {kind for item in params.get("TransactItems", []) for kind in item}
        return sorted(_TRANSACT_WRITE[kind] for kind in kinds if kind in _TRANSACT_WRITE)
    needed = [_AUTHORIZED_AS.get(action, action)]
    if action in _PASSES_ROLE and params.get("Target", {}).get("RoleArn"):
        needed.append("iam:PassRole")
    return needed


@dataclass(frozen=True)
class AwsCall:
    """One IAM action a function needed, for one operation it called."""

    function: str  # the template's logical id
    action: str  # what IAM authorizes, e.g. dynamodb:PutItem
    operation: str  # what was called, e.g. dynamodb:TransactWriteItems


class AwsCallRecorder:
    """Records the IAM actions of functions' AWS calls while in use (`with AwsCallRecorder() as calls: ...`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[AwsCall] = Counter()
        self._patch = mock.patch.object(
            BaseClient, "_make_api_call", self._recording(vars(BaseClient)["_make_api_call"])
        )

    def _recording(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def _make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            function = RUNNING_FUNCTION.get()
            if function is not None:  # recorded before the call: a call that fails needs the permission too
                prefix = client.meta.service_model.signing_name
                calls = [
                    AwsCall(function, action, f"{prefix}:{operation_name}")
                    for action in iam_actions(prefix, operation_name, api_params)
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
        """How many times each (function, action, operation) was needed so far."""
        with self._lock:
            return Counter(self._counts)

    def actions(self) -> set[tuple[str, str]]:
        """Every (function, IAM action) recorded so far."""
        return {(call.function, call.action) for call in self.calls}

    def by_function(self) -> dict[str, list[str]]:
        """The IAM actions recorded for each function, sorted."""
        found: dict[str, set[str]] = {}
        for function, action in self.actions():
            found.setdefault(function, set()).add(action)
        return {function: sorted(actions) for function, actions in sorted(found.items())}
