"""Lambda's asynchronous invocation (how EventBridge rules and Scheduler invoke functions): retries, then destinations.

As Lambda does: a function that raises is tried again one minute later, then two minutes after that (2 retries
unless the function's `EventInvokeConfig` sets `MaximumRetryAttempts`), never once the event is older than
`MaximumEventAgeInSeconds` (6 h by default). An event that still fails goes to the function's `OnFailure`
destination (an invocation record) or, failing that, its `DeadLetterQueue` (the event itself); a success goes to an
`OnSuccess` destination if there is one. The waits are measured on the stack's clock.

A rule's own `RetryPolicy`/`DeadLetterConfig` are EventBridge's, for events it cannot hand to Lambda at all
(throttled, function deleted), which does not happen in-process; function errors are Lambda's to retry, here.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prepaid_local.clock import Clock

log = logging.getLogger("prepaid_local")

RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))  # Lambda's waits before the first and second retry
DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE = timedelta(hours=6)


@dataclass(frozen=True)
class Destination:
    """Where a finished invocation is reported: `kind` is SQS, EventBridge or Lambda; `arn` its target."""

    kind: str
    arn: str


@dataclass(frozen=True)
class AsyncConfig:
    """A function's asynchronous invocation settings (SAM `EventInvokeConfig` and `DeadLetterQueue`)."""

    retries: int = DEFAULT_RETRIES
    max_age: timedelta = DEFAULT_MAX_AGE
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter_queue: str | None = None  # SQS ARN


@dataclass
class _Pending:
    function: str
    event: dict[str, Any]
    request_id: str
    received: datetime
    due: datetime
    attempts: int = 0


@dataclass
class AsyncInvoker:
    """Events accepted for asynchronous invocation, run when due on the stack's clock."""

    invoke: Callable[[str, dict[str, Any]], Any]
    configs: dict[str, AsyncConfig]
    function_arns: dict[str, str]  # logical id -> ARN
    send: Callable[[Destination, dict[str, Any], dict[str, Any]], None]  # (destination, body, SQS attributes)
    clock: Clock
    _pending: list[_Pending] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, function: str, event: dict[str, Any]) -> str:
        """Accept an event (Lambda's `Invoke` with `InvocationType=Event`); return its request id."""
        if function not in self.function_arns:
            raise KeyError(f"no function {function} in the template")
        now = self.clock.now()
        request_id = str(uuid.uuid4())
        with self._lock:
            self._pending.append(_Pending(function, event, request_id, now, now))
        return request_id

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((p.due for p in self._pending), default=None)

    def run_due(self) -> int:
        """Run every invocation due now (retries included); return how many ran."""
        ran = 0
        with self._running:
            while True:
                now = self.clock.now()
                with self._lock:
                    due = [p for p in self._pending if p.due <= now]
                    self._pending = [p for p in self._pending if p.due > now]
                if not due:
                    return ran
                for pending in sorted(due, key=lambda p: p.due):
                    self._run(pending, now)
                    ran += 1

    def _run(self, pending: _Pending, now: datetime) -> None:
        config = self.configs.get(pending.function, AsyncConfig())
        pending.attempts += 1
        try:
            answer = self.invoke(pending.function, pending.event)
        except Exception as error:
            retry_at = now + RETRY_DELAYS[min(pending.attempts - 1, len(RETRY_DELAYS) - 1)]
            if pending.attempts <= config.retries and retry_at - pending.received <= config.max_age:
                log.warning("%s failed (attempt %d), retrying at %s", pending.function, pending.attempts, retry_at)
                pending.due = retry_at
                with self._lock:
                    self._pending.append(pending)
                return
            log.exception("%s failed %d time(s); giving the event up", pending.function, pending.attempts)
            self._failed(pending, config, error)
            return
        if config.on_success is not None:
            self.send(config.on_success, self._record(pending, "Success", answer, None), {})

    def _failed(self, pending: _Pending, config: AsyncConfig, error: Exception) -> None:
        if config.on_failure is not None:
            response = {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "stackTrace": traceback.format_exception(error)[1:],
            }
            self.send(config.on_failure, self._record(pending, "RetriesExhausted", response, "Unhandled"), {})
        elif config.dead_letter_queue is not None:
            # Lambda's dead-letter queue gets the event as it was, the error in message attributes
            attributes = {
                "RequestID": {"DataType": "String", "StringValue": pending.request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": str(error)[:256] or type(error).__name__},
            }
            self.send(Destination("SQS", config.dead_letter_queue), pending.event, attributes)

    def _record(self, pending: _Pending, condition: str, response: Any, error: str | None) -> dict[str, Any]:
        """An invocation record, as Lambda sends it to a destination."""
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            context["functionError"] = error
        return {
            "version": "1.0",
            "timestamp": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": pending.request_id,
                "functionArn": f"{self.function_arns[pending.function]}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": pending.attempts,
            },
            "requestPayload": pending.event,
            "responseContext": context,
            "responsePayload": json.loads(json.dumps(response, default=str)),
        }
