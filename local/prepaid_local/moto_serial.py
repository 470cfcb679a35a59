"""Make moto's DynamoDB and SQS atomic per request, as the services are.

moto checks a condition and then writes with no lock, so concurrent requests can overdraw (see TOOLING.md).
Serializing every call into its DynamoDB and DynamoDB Streams backends under one re-entrant lock models
DynamoDB's per-request atomicity (and serializable transactions), so concurrency tests exercise our own
optimistic-concurrency logic rather than moto's races.

moto's SQS backend has no lock either: two receives of one queue at once (the local stack's five pollers) failed
with "Set changed size during iteration", leaving the messages they had taken in flight until their timeout.
Every SQS call runs under a lock of its own; a receive that waits (long polling) waits outside it, for moto's
signal that a message arrived, then takes it under the lock.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

LOCK = threading.RLock()
SQS_LOCK = threading.RLock()
_PATCHED = "_prepaid_serialized"


def _serialized(method: Callable[..., Any], lock: Any = LOCK) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    setattr(call, _PATCHED, True)
    return call


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """All-or-nothing transactions without copying whole tables.

    moto backs up every table a transaction touches with a deep copy, once per item, so each transaction costs
    time in proportion to all the data in the table (and its stream). Under the lock nobody sees a transaction
    half-done, so checking every condition first and writing only when all pass is equivalent; a write that
    still fails restores the items it touched from copies of just those items.
    """
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    plan: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException()
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table = backend.get_table(op["TableName"])
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        marker = (op["TableName"], str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        current = backend.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        passed = condition is None or get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current)
        if passed:
            errors.append((None, None, None))
        else:
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            errors.append(("ConditionalCheckFailed", str(ConditionalCheckFailed().message), old))
        plan.append((op_type, op, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    touched = [(op["TableName"], key, backend.get_item(op["TableName"], key)) for op_type, op, key in plan]
    originals = [(name, key, item.to_json()["Attributes"] if item else None) for name, key, item in touched]
    try:
        for op_type, op, key in plan:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                backend.put_item(op["TableName"], op["Item"])
            elif op_type == "Delete":
                backend.delete_item(op["TableName"], key)
            elif op_type == "Update":
                backend.update_item(
                    op["TableName"],
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for name, key, attributes in originals:
            if attributes is None:
                backend.delete_item(name, key)
            else:
                backend.put_item(name, attributes)
        raise


def serialize_moto() -> None:
    """DynamoDB and SQS atomic per request (idempotent)."""
    serialize_dynamodb()
    serialize_sqs()


def serialize_sqs() -> None:
    """Wrap every public method of moto's SQS backend in `SQS_LOCK`, a receive's long poll waiting outside it."""
    from moto.sqs.models import SQSBackend

    for name, method in inspect.getmembers(SQSBackend, inspect.isfunction):
        if not name.startswith("_") and not getattr(method, _PATCHED, False):
            wrapped = _long_poll(method) if name == "receive_message" else _serialized(method, SQS_LOCK)
            setattr(SQSBackend, name, wrapped)


def _long_poll(receive: Callable[..., Any]) -> Callable[..., Any]:
    """A receive under the lock that does not wait there: with nothing to take, it waits for moto's signal that a
    message arrived (a send holds the lock, so waiting inside it would hold up every sender), then tries again."""

    @functools.wraps(receive)
    def receive_message(
        self: Any, queue_name: str, count: int, wait_seconds_timeout: int, *args: Any, **kwargs: Any
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with SQS_LOCK:
                got = receive(self, queue_name, count, 0, *args, **kwargs)
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            self.get_queue(queue_name).wait_for_messages(left)

    setattr(receive_message, _PATCHED, True)
    return receive_message


def serialize_dynamodb() -> None:
    """Wrap every public method of moto's DynamoDB backends in the lock (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    if not getattr(DynamoDBBackend.transact_write_items, _PATCHED, False):
        DynamoDBBackend._original_transact_write_items = DynamoDBBackend.transact_write_items  # type: ignore[attr-defined]
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign,assignment]
    for backend in (DynamoDBBackend, DynamoDBStreamsBackend):
        for name, method in inspect.getmembers(backend, inspect.isfunction):
            if not name.startswith("_") and not getattr(method, _PATCHED, False):
                setattr(backend, name, _serialized(method))


def unserialize_dynamodb() -> None:
    """Undo `serialize_dynamodb`, for the test that shows plain moto is not atomic."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    for backend in (DynamoDBBackend, DynamoDBStreamsBackend):
        for name, method in inspect.getmembers(backend, inspect.isfunction):
            if getattr(method, _PATCHED, False):
                setattr(backend, name, getattr(method, "__wrapped__"))  # noqa: B009 - typed as a plain function
    original = getattr(DynamoDBBackend, "_original_transact_write_items", None)
    if original is not None:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
