"""Make moto's DynamoDB atomic per request, as DynamoDB is.

moto checks a condition and then writes with no lock, so concurrent requests can overdraw (see TOOLING.md).
Serializing every call into its DynamoDB and DynamoDB Streams backends under one re-entrant lock models
DynamoDB's per-request atomicity (and serializable transactions), so concurrency tests exercise our own
optimistic-concurrency logic rather than moto's races.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

LOCK = threading.RLock()
_PATCHED = "_prepaid_serialized"


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with LOCK:
            return method(*args, **kwargs)

    setattr(call, _PATCHED, True)
    return call


def serialize_dynamodb() -> None:
    """Wrap every public method of moto's DynamoDB backends in the lock (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

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
                setattr(backend, name, method.__wrapped__)
