"""The whole stack in one process: template resources in moto, handlers invoked as Lambda would invoke them."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

from botocore.exceptions import ClientError
from moto.events.models import EventPattern

from prepaid_local.apigateway import Gateway, gateway_responses, routes
from prepaid_local.async_invoke import AsyncInvoker, Destination
from prepaid_local.clock import Clock
from prepaid_local.lambda_context import LocalContext
from prepaid_local.resources import FunctionSpec, create_resources, functions, layer_paths
from prepaid_local.rules import Rules, declared_rules
from prepaid_local.schedules import Schedules, declared_schedules
from prepaid_local.template import ROOT, Resolver, load, resources

Clients = Callable[[str], Any]
Observer = Callable[[str, Any], None]

log = logging.getLogger("prepaid_local")

# The template function whose handler is running in this thread (set by `Stack.invoke`), None outside any: lets a
# test tell a function's AWS calls from the stack's own plumbing (tests/support/aws_calls.py).
RUNNING_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("RUNNING_FUNCTION", default=None)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload quota (6,291,456 bytes)
DEFAULT_VISIBILITY_TIMEOUT = 30  # SQS's, for a queue that sets none
SHARDS_RELISTED_AFTER = 5.0  # seconds
# Lambda polls a standard queue with five long-polling connections at first (fewer if the mapping's
# `ScalingConfig.MaximumConcurrency` is lower), each gathering a batch of its own; a FIFO queue keeps one batch in
# flight per message group, which one poller per FIFO queue keeps here, more strictly
STANDARD_QUEUE_POLLERS = 5
BATCHING_POLL_SECONDS = 0.2  # how often a poller inside its batching window looks for more messages
STREAM_READ_LIMIT = 1000  # records per GetRecords call: the API's maximum
# What Lambda's SQS poller copies into a record's `attributes` (the FIFO ones only for FIFO queues).
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
)


@dataclass
class _Held:
    """A received message that failed: SQS shows it again once its visibility timeout has run out."""

    url: str
    receipt_handle: str
    visible_at: datetime


@dataclass(frozen=True)
class _Received:
    """A message as received, and when: on the stack's clock and in real time (moto's timeouts are real)."""

    message: dict[str, Any]
    at: datetime
    real_at: float


class Stack:
    """Resources created from template.yaml; functions resolved from it and run in-process.

    Pollers: `pump()` does everything until quiet; or `pump_streams()`, `pump_rules()` (bus events to their
    subscribers), `pump_schedules()`, `pump_queues()` one by one. `observers` are told each invocation.

    Time: `clock` (real UTC now unless a `Clock(frozen_at=...)` is given) decides when schedules are due, when a
    failed SQS message is visible again and when an asynchronous invocation is retried. `advance(seconds)` and
    `set_time(when)` move it forward; the handlers themselves still read the real time.
    """

    def __init__(
        self,
        clients: Clients,
        stack_name: str = "local",
        template: dict[str, Any] | None = None,
        clock: Clock | None = None,
        *,
        raise_failures: bool = True,
    ) -> None:
        self.clients = clients
        self.template = template if template is not None else load()
        self.clock = clock or Clock()
        self.resolver: Resolver = create_resources(clients, self.template, stack_name)
        self.function_arns = {
            logical: self.resolver.attributes[(logical, "Arn")]
            for logical in resources(self.template, "AWS::Serverless::Function")
        }
        declared = declared_rules(self.template, self.resolver, self.function_arns)
        groups, schedules = declared_schedules(self.template, self.resolver, self.function_arns)
        self.functions: dict[str, FunctionSpec] = functions(self.template, self.resolver)
        self.gateway = Gateway(routes(self.functions), self.invoke, gateway_responses(self.template))
        self.api = self.gateway.request
        self.proxy = self.gateway.proxy
        self.observers: list[Observer] = []  # told (function, event) before each invocation, e.g. by tests
        # A function that raises is a failed invocation: its messages come back after their visibility timeout,
        # its stream batch is retried. Tests want to hear of it at once (raised from the pump, after the same
        # bookkeeping); the local server only logs it, as Lambda does, and never fails a request for it.
        self.raise_failures = raise_failures
        # The pollers take and delete messages straight from moto (in this process); the benchmark sets this to
        # send them through the API instead, where it counts them: SQS bills Lambda's pollers' requests.
        self.polls_through_api = False
        self._stream_attempts: dict[tuple[str, str], int] = {}
        self._stream_shards: dict[str, tuple[float, list[str]]] = {}  # stream -> (when listed, shard ids)
        self._stream_filters: dict[str, list[EventPattern]] = {}
        self._stream_iterators: dict[tuple[str, str], str] = {}
        self._pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._pending_since: dict[tuple[str, str], datetime] = {}  # when the consumer's current window opened
        self._held: list[_Held] = []
        self._carried: dict[tuple[str, int], list[_Received]] = {}  # (queue URL, poller) -> received, not handed
        self._visibility: dict[str, int] = {}
        self._queue_urls: dict[str, str] = {}
        self._stream_lock = threading.Lock()
        self._queue_lock = threading.Lock()  # pump_queues: every source, one after another
        self._source_locks: dict[tuple[str, int], threading.Lock] = {}  # one poll at a time per (source, poller)
        self._held_lock = threading.Lock()
        self._event_lock = threading.Lock()
        # One invocation at a time in this process, whatever the function: Powertools keeps its metric set and the
        # logger's keys per process (a singleton, right on Lambda, where a process is one function's environment),
        # so two functions running at once here flush each other's metrics (a 502 from the API under load) and
        # log under each other's names. Reentrant, in case a handler's call comes back into the stack.
        self._invoke_lock = threading.RLock()
        self._apply_environment()
        self.async_invoker = AsyncInvoker(
            invoke=self.invoke,
            configs={logical: spec.async_config for logical, spec in self.functions.items()},
            function_arns=self.function_arns,
            send=self._send_to_destination,
            clock=self.clock,
        )
        self.rules = Rules(clients, self.resolver, declared, self.invoke_async)
        self.rules.create(self.clock.now())
        self.schedules = Schedules(clients, self.resolver, self.clock, self.invoke_async, self.function_of)
        self.schedules.create(schedules, groups)

    # -- wiring --------------------------------------------------------------------------------------------------

    def _apply_environment(self) -> None:
        merged: dict[str, str] = {}
        for spec in self.functions.values():
            for key, value in spec.environment.items():
                if merged.get(key, value) != value:
                    raise ValueError(f"functions disagree on {key}; the in-process stack shares one environment")
                merged[key] = value
        os.environ.update(merged)
        for path in [*layer_paths(self.template), *(s.code_uri for s in self.functions.values())]:
            folder = str(ROOT / path)
            if folder not in sys.path:
                sys.path.append(folder)

    def handler(self, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
        module_name, function_name = self.functions[logical_id].handler.rsplit(".", 1)
        handler: Callable[[dict[str, Any], Any], Any] = getattr(importlib.import_module(module_name), function_name)
        return handler

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Run one event through a function. One event at a time runs in the process, as in one Lambda execution
        environment: handlers keep per-invocation state in module and Powertools globals (the resolver's current
        event, the logger's keys, the metric set), some shared by every function. Concurrency across environments
        is tested with processes (tests/support/environments.py)."""
        spec = self.functions[logical_id]
        context = LocalContext(function_name=self.name(logical_id), timeout_seconds=spec.timeout)
        with self._invoke_lock:
            # told inside the lock, right before the handler: what an observer does to the process (forgetting
            # cached reads, as a new environment) is what this invocation starts from, not another's
            for observer in list(self.observers):
                observer(logical_id, event)
            running = RUNNING_FUNCTION.set(logical_id)
            try:
                return self.handler(logical_id)(event, context)
            finally:
                RUNNING_FUNCTION.reset(running)

    def invoke_async(self, logical_id: str, event: Any) -> str:
        """Accept an event as Lambda's asynchronous `Invoke` does; a later pump runs it (with retries)."""
        return self.async_invoker.submit(logical_id, event)

    def function_of(self, arn: str) -> str | None:
        """The template's function with this ARN (a version or alias qualifier ignored), or name."""
        parts = arn.split(":")
        unqualified = ":".join(parts[:7]) if len(parts) > 7 else arn
        return next(
            (logical for logical, known in self.function_arns.items() if unqualified in (known, self.name(logical))),
            None,
        )

    def cold_start(self) -> None:
        """Forget what the handler modules cached per process (clients, settings, rate card), as a new execution
        environment would. Matters where handlers ran before in this process (tests, a restarted local server):
        their cached clients point at the moto they were built against. Every cached function of every module under
        the template's code folders is cleared, so a new one cannot be forgotten."""
        code = [*layer_paths(self.template), *(spec.code_uri for spec in self.functions.values())]
        folders = tuple((ROOT / path).resolve() for path in code)
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if not file or not _within(file, folders):
                continue
            for value in list(vars(module).values()):
                if getattr(value, "__module__", None) == module.__name__ and callable(
                    getattr(value, "cache_clear", None)
                ):
                    value.cache_clear()

    def name(self, logical_id: str) -> str:
        return str(self.resolver.physical[logical_id])

    # -- SQS event sources ---------------------------------------------------------------------------------------

    def event_sources(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(function, properties) of every event of one type (`SQS`, `DynamoDB`) in the template."""
        return [
            (logical, event["Properties"])
            for logical, spec in self.functions.items()
            for event in spec.events.values()
            if event.get("Type") == kind
        ]

    def batching_window(self, props: dict[str, Any]) -> float:
        """An event source's `MaximumBatchingWindowInSeconds` (0 when unset), a template parameter's value if it
        names one."""
        return float(self.resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0)))

    def queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:  # a queue's URL never changes: one call per queue, not one per poll
            name = arn.rsplit(":", 1)[1]
            self._queue_urls[arn] = str(self.clients("sqs").get_queue_url(QueueName=name)["QueueUrl"])
        return self._queue_urls[arn]

    def pump_queues(self, crash: Callable[[str, dict[str, Any]], None] | None = None, fast_forward: bool = True) -> int:
        """Deliver each queue's messages to its function as Lambda's SQS poller does, until the queues are empty.

        Batches honour `BatchSize`, and stop short of it where one more record would take the event past Lambda's
        6 MB payload quota (the rest stays received and opens the next batch). With `ReportBatchItemFailures` only
        the reported messages stay, otherwise a failed batch stays whole. What stays becomes visible again when its
        visibility timeout (the queue's from its receipt, or what the function set) has run out on the stack's
        clock; the redrive policy moves it to the dead-letter queue after `maxReceiveCount` receives.

        `fast_forward` (the default, for tests): once nothing is visible, move the stack's clock to the next
        message's timeout and go on, so one call ends with every message handled or dead-lettered, as it would be
        after waiting. Without it (the local server) a failed message waits its timeout like on AWS. `crash` lets
        a test fail a delivery before the function runs; the failure is raised. Returns messages processed.
        """
        processed = 0
        with self._queue_lock:
            for _ in range(10_000):
                self._release_visible()
                sources = self.event_sources("SQS")
                delivered = sum(self._poll_unless_polled(logical, props, crash) for logical, props in sources)
                processed += delivered
                if delivered:
                    continue
                with self._held_lock:
                    wake = min((held.visible_at for held in self._held), default=None)
                if not fast_forward or wake is None:
                    break
                self.clock.set(wake)
        return processed

    def pump_source(
        self,
        logical: str,
        props: dict[str, Any],
        crash: Callable[[str, dict[str, Any]], None] | None = None,
        *,
        wait_seconds: int = 0,
        poller: int = 0,
    ) -> int:
        """One poll of one SQS event source (as one of Lambda's pollers does): a batch received, handed to its
        function, and what it did not finish held back. `wait_seconds`: long polling, as Lambda's pollers do (the
        local server's workers wait up to a second for a first message; a test's pump does not wait). `poller`:
        which of the source's pollers (`pollers`) this is. Returns the messages received."""
        lock = self._source_locks.setdefault((logical, poller), threading.Lock())
        with lock:
            self._release_visible()
            return self._pump_once(logical, props, crash, wait_seconds, poller)

    def pollers(self, props: dict[str, Any]) -> int:
        """How many pollers Lambda runs for an SQS event source at first: one for a FIFO queue here, else five
        or the mapping's maximum concurrency if lower."""
        if str(self.resolver.resolve(props["Queue"])).endswith(".fifo"):
            return 1
        cap = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        return min(STANDARD_QUEUE_POLLERS, int(cap)) if cap else STANDARD_QUEUE_POLLERS

    def _poll_unless_polled(
        self, logical: str, props: dict[str, Any], crash: Callable[[str, dict[str, Any]], None] | None
    ) -> int:
        """One poll of a source, unless a poller (a worker of the local server) is at it already: that one takes
        what there is, and waiting for its lock would only queue behind its long polls."""
        lock = self._source_locks.setdefault((logical, 0), threading.Lock())
        if not lock.acquire(blocking=False):
            return 0
        try:
            self._release_visible()
            return self._pump_once(logical, props, crash)
        finally:
            lock.release()

    def _pump_once(
        self,
        logical: str,
        props: dict[str, Any],
        crash: Callable[[str, dict[str, Any]], None] | None,
        wait_seconds: int = 0,
        poller: int = 0,
    ) -> int:
        arn = self.resolver.resolve(props["Queue"])
        url = self.queue_url(arn)
        batch_size = int(props.get("BatchSize", 10))
        # A poller that waits (the local server's) gathers as Lambda does: from the first message until the batch
        # is full or the template's batching window has run out. A test's pump takes what is there.
        window = self.batching_window(props) if wait_seconds else 0.0
        received = self._carried.pop((url, poller), [])
        window_ends = time.monotonic() + window if received else None
        while len(received) < batch_size:
            wait = wait_seconds if not received else 0  # only for the first message: then take what is there
            got = self._receive(url, min(10, batch_size - len(received)), wait)
            real_now = time.time()  # moto's timeout started within the call: `_hold` rounds to whole seconds
            if window_ends is None and got:
                window_ends = time.monotonic() + window
            if not got:
                left = 0.0 if window_ends is None else window_ends - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(BATCHING_POLL_SECONDS, left))
                continue
            # the stack's clock read after the receipt: a clock moved during the call must not date the receipt
            # earlier than it was, or a failed message would come back before its timeout ran out
            now = self.clock.now()
            received.extend(_Received(message, now, real_now) for message in got)
        if not received:
            return 0
        records: list[dict[str, Any]] = []
        size = len('{"Records":[]}')
        for item in received:
            record = _sqs_record(item.message, arn, self.resolver.region)
            grown = size + len(json.dumps(record, separators=(",", ":")).encode()) + (1 if records else 0)
            if records and grown > MAX_PAYLOAD_BYTES:
                break
            records.append(record)
            size = grown
        batch, rest = received[: len(records)], received[len(records) :]
        if rest:
            # still in flight: they open the next batch, not counted as received twice
            self._carried[(url, poller)] = rest
        messages = [item.message for item in batch]
        event = {"Records": records}
        if crash is not None:
            try:
                crash(logical, event)
            except Exception:
                self._hold(url, batch)
                raise
        try:
            answer = self.invoke(logical, event)
        except BaseException as failure:
            self._hold(url, batch)  # a failed invocation: every message of the batch comes back
            if self.raise_failures or not isinstance(failure, Exception):  # the process itself died: no one logs
                raise
            log.exception("%s failed on %d message(s); they come back after their timeout", logical, len(batch))
            return len(batch)
        partial_failures = "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
        failed = (
            {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])} if partial_failures else set()
        )
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            if self.polls_through_api or not _deleted_in_process(self.resolver, url, entries):
                self.clients("sqs").delete_message_batch(QueueUrl=url, Entries=entries)
        self._hold(url, [item for item in batch if item.message["MessageId"] in failed])
        return len(messages)

    def _receive(self, url: str, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        """A poller's ReceiveMessage, every attribute asked for: straight from moto when it runs in this process."""
        got = None if self.polls_through_api else _received_in_process(self.resolver, url, count, wait_seconds)
        if got is not None:
            return got
        answer = self.clients("sqs").receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=count,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def _hold(self, url: str, messages: list[_Received]) -> None:
        """Keep failed messages invisible until SQS would show them again, on the stack's clock.

        That is when their visibility timeout, counted from their receipt, runs out, unless the function changed
        it (a backoff with `ChangeMessageVisibility`): moto's own deadline for each message says which, in real
        time; the same span after the receipt is kept on the stack's clock.
        """
        for item in messages:
            deadline = _moto_visible_at(self.resolver, url, item.message["ReceiptHandle"])
            if deadline is None:
                visible_at = item.at + timedelta(seconds=self._visibility_timeout(url))
            elif deadline == _GONE:
                continue  # the function deleted or moved it itself
            else:
                # SQS counts timeouts in whole seconds; the fraction is the time the calls took
                visible_at = item.at + timedelta(seconds=max(0, round(deadline - item.real_at)))
            with self._held_lock:
                self._held.append(_Held(url, item.message["ReceiptHandle"], visible_at))

    def _release_visible(self) -> None:
        """Make visible the held messages whose timeout ran out on the stack's clock.

        moto counts the timeout in real time and would show them only after it really elapsed; SQS makes a message
        visible again once the timeout passes, which the stack's clock may say sooner (it was moved forward).
        """
        now = self.clock.now()
        with self._held_lock:
            due = [held for held in self._held if held.visible_at <= now]
            self._held = [held for held in self._held if held.visible_at > now]
        for held in due:
            # moto's own (real-time) timeout may have run out first, and the message been received again or moved
            with contextlib.suppress(ClientError):
                self.clients("sqs").change_message_visibility(
                    QueueUrl=held.url, ReceiptHandle=held.receipt_handle, VisibilityTimeout=0
                )

    def _visibility_timeout(self, url: str) -> int:
        if url not in self._visibility:
            attributes = self.clients("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
            self._visibility[url] = int(attributes["Attributes"].get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT))
        return self._visibility[url]

    # -- EventBridge rules, schedules, asynchronous invocation ------------------------------------------------------

    def pump_rules(self, fast_forward: bool = True) -> int:
        """Hand the events that matched a rule to its function (asynchronously, as EventBridge does), and run the
        asynchronous invocations that are due. A function that raises is retried as Lambda retries it (see
        async_invoke.py); `fast_forward` moves the stack's clock to each retry rather than leaving it for later.
        Returns events handed over plus invocations run."""
        done = 0
        with self._event_lock:
            for _ in range(10_000):
                step = self.rules.deliver() + self.async_invoker.run_due()
                done += step
                if step:
                    continue
                wake = self.async_invoker.next_due()
                if not fast_forward or wake is None:
                    break
                self.clock.set(wake)
        return done

    def pump_schedules(self) -> int:
        """Fire the scheduled rules and Scheduler schedules (the template's and those made at runtime) that are
        due at the stack's clock, and run the invocations that are due. Returns firings plus invocations run."""
        with self._event_lock:
            fired = self.rules.fire_due(self.clock.now()) + self.schedules.fire_due()
            return fired + self.async_invoker.run_due()

    def pump(self, fast_forward: bool = True) -> int:
        """Everything the pollers and schedulers would do, until quiet: streams, rules, schedules, queues.

        Every stage runs in each round even if another fails; the first failure is raised after the round. With
        `fast_forward`, waits AWS would sit out (visibility timeouts, asynchronous retries) are skipped by moving
        the stack's clock; schedules are never waited for. Returns the work done (records, events, messages).
        """
        total = 0
        for _ in range(10_000):
            done, errors = 0, []
            stages = (
                self.pump_streams,
                partial(self.pump_rules, fast_forward=False),
                self.pump_schedules,
                partial(self.pump_queues, fast_forward=False),
            )
            for stage in stages:
                try:
                    done += stage()
                except Exception as error:
                    errors.append(error)
            total += done
            if errors:
                raise errors[0]
            if done:
                continue
            with self._held_lock:
                held = [h.visible_at for h in self._held]
            waits = [t for t in (self.async_invoker.next_due(), *held) if t]
            if not fast_forward or not waits:
                break
            self.clock.set(min(waits))
        return total

    def advance(self, seconds: float) -> datetime:
        """Move the stack's clock forward; nothing fires until the next pump. Returns the new time."""
        return self.clock.advance(seconds)

    def set_time(self, when: datetime) -> datetime:
        """Move the stack's clock forward to `when` (never back). Returns the new time."""
        return self.clock.set(when)

    def _send_to_destination(self, destination: Destination, body: Any, attributes: dict[str, Any]) -> None:
        """Lambda's report of an asynchronous invocation, to the queue, bus or function the config names."""
        if destination.kind == "SQS":
            sqs = self.clients("sqs")
            url = sqs.get_queue_url(QueueName=destination.arn.rsplit(":", 1)[1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageAttributes=attributes)
        elif destination.kind == "EventBridge":
            condition = body["requestContext"]["condition"]
            self.clients("events").put_events(
                Entries=[
                    {
                        "EventBusName": destination.arn.rsplit("/", 1)[1],
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - "
                        + ("Success" if condition == "Success" else "Failure"),
                        "Detail": json.dumps(body),
                        "Resources": [destination.arn],
                    }
                ]
            )
        else:
            function = self.function_of(destination.arn)
            if function is None:
                raise LookupError(f"no function of the template has the ARN {destination.arn}")
            self.invoke_async(function, body)

    # -- DynamoDB streams ----------------------------------------------------------------------------------------

    def pump_streams(
        self, crash: Callable[[str, dict[str, Any]], None] | None = None, *, batching_windows: bool = False
    ) -> int:
        """Deliver new stream records to their functions, filtered and batched as the event source mapping says.

        As Lambda does for a stream, a batch that fails (the function raises, or reports item failures) is
        delivered again, from its first failed record, on the next call. `crash` lets a test fail a delivery
        before the function runs. With `batching_windows`, a consumer's records wait, as Lambda's poller holds
        them, until a full batch (`BatchSize`) is there or the first of them has waited
        `MaximumBatchingWindowInSeconds` on the stack's clock; without, every record goes now (as if each window
        had run out). Returns the number of records the functions finished.
        """
        delivered = 0
        with self._stream_lock:
            sources = self.event_sources("DynamoDB")
            # each stream read once for all its consumers (each keeps its own place: what it has yet to finish)
            arns = {self.resolver.resolve(props["Stream"]) for _, props in sources}
            fresh_of = {arn: self._read_stream(arn) for arn in arns}
            # every consumer's share first: a consumer that fails below must not cost the next one its records
            for logical, props in sources:
                patterns = self._filters(logical, props)
                for shard_id, fresh in fresh_of[self.resolver.resolve(props["Stream"])]:
                    wanted = [r for r in fresh if not patterns or any(p.matches_event(cast(Any, r)) for p in patterns)]
                    pending = self._pending.setdefault((logical, shard_id), [])
                    if wanted and not pending:
                        self._pending_since[(logical, shard_id)] = self.clock.now()
                    pending.extend(wanted)
            for logical, props in sources:
                stream_arn = self.resolver.resolve(props["Stream"])
                batch_size = int(props.get("BatchSize", 100))
                for shard_id, _ in fresh_of[stream_arn]:
                    key = (logical, shard_id)
                    pending = self._pending.setdefault(key, [])
                    while pending and (not batching_windows or self._batch_ready(key, props, len(pending))):
                        batch = pending[:batch_size]
                        if crash is not None:
                            crash(logical, {"Records": batch})
                        try:
                            answer = self.invoke(logical, {"Records": batch})
                        except Exception:
                            if self.raise_failures:
                                raise
                            log.exception("%s failed on a stream batch; it is retried", logical)
                            self._stream_failed(key, props, pending, stream_arn, len(batch))
                            break
                        failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
                        done = next(
                            (i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed), len(batch)
                        )
                        del pending[:done]
                        delivered += done
                        self._pending_since[key] = self.clock.now()  # what is left opens the next window
                        if failed:
                            if self.raise_failures:
                                raise StreamBatchFailed(logical, key[1], sorted(failed))
                            log.warning("%s failed %d stream record(s); they are retried", logical, len(failed))
                            self._stream_failed(key, props, pending, stream_arn, 1)
                            break
                        self._stream_attempts.pop(key, None)
        return delivered

    def _batch_ready(self, key: tuple[str, str], props: dict[str, Any], pending: int) -> bool:
        if pending >= int(props.get("BatchSize", 100)):
            return True
        window = timedelta(seconds=self.batching_window(props))
        return self._pending_since.get(key, self.clock.now()) + window <= self.clock.now()

    def _stream_failed(
        self, key: tuple[str, str], props: dict[str, Any], pending: list[dict[str, Any]], arn: str, size: int
    ) -> None:
        """A stream batch failed: retried on the next pump, until `MaximumRetryAttempts`; then, as Lambda does, its
        description goes to the `OnFailure` destination and the shard moves on past it."""
        attempts = self._stream_attempts.get(key, 0) + 1
        self._stream_attempts[key] = attempts
        limit = int(props.get("MaximumRetryAttempts", -1))  # -1: until the records expire from the stream
        if limit < 0 or attempts <= limit:
            return
        dropped, pending[:size] = pending[:size], []
        self._stream_attempts.pop(key, None)
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination is not None:
            numbers = [r["dynamodb"]["SequenceNumber"] for r in dropped]
            record = {
                "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
                "DDBStreamBatchInfo": {
                    "shardId": key[1],
                    "startSequenceNumber": numbers[0],
                    "endSequenceNumber": numbers[-1],
                    "batchSize": len(dropped),
                    "streamArn": arn,
                },
            }
            self._send_to_destination(Destination("SQS", self.resolver.resolve(destination)), record, {})

    def _filters(self, logical: str, props: dict[str, Any]) -> list[EventPattern]:
        if logical not in self._stream_filters:
            filters = props.get("FilterCriteria", {}).get("Filters", [])
            self._stream_filters[logical] = [EventPattern.load(f["Pattern"]) for f in filters]
        return self._stream_filters[logical]

    def _read_stream(self, stream_arn: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """What is new on each shard since the last read, by shard id (the consumers buffer it until delivered).
        The shards are listed again at most every few seconds: the local table's stream keeps its one shard."""
        streams = self.clients("dynamodbstreams")
        listed = self._stream_shards.get(stream_arn)
        if listed is None or time.monotonic() - listed[0] > SHARDS_RELISTED_AFTER:
            description = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
            shards = [s["ShardId"] for s in description["Shards"]]
            listed = self._stream_shards[stream_arn] = (time.monotonic(), shards)
        found = []
        for shard_id in listed[1]:
            key = (stream_arn, shard_id)
            iterator = (
                self._stream_iterators.get(key)
                or streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
                    "ShardIterator"
                ]
            )
            records: list[dict[str, Any]] = []
            while True:  # read up to the shard's end, 1,000 records a read (GetRecords' limit), as Lambda keeps up
                response = _records_in_process(self.resolver, iterator) or streams.get_records(
                    ShardIterator=iterator, Limit=STREAM_READ_LIMIT
                )
                records.extend(_stream_record(r, stream_arn) for r in response["Records"])
                iterator = response.get("NextShardIterator") or iterator
                if len(response["Records"]) < STREAM_READ_LIMIT:
                    break
            found.append((shard_id, records))
            self._stream_iterators[key] = iterator
        return found


class StreamBatchFailed(Exception):
    """The function did not finish a stream batch; the next pump retries it (the iterator is not advanced)."""

    def __init__(self, function: str, shard_id: str, failures: list[dict[str, str]]) -> None:
        super().__init__(f"{function} failed {len(failures)} record(s) of shard {shard_id}")
        self.failures = failures


_GONE = -1.0  # no deadline: moto no longer holds the message


def _moto_visible_at(resolver: Resolver, url: str, receipt_handle: str) -> float | None:
    """When moto shows a received message again (epoch seconds, real time), `_GONE` if it no longer holds it, or
    None if moto's state cannot be read (not in this process). moto's backends are process-wide; the local server
    runs moto in this process too."""
    try:
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[resolver.account][resolver.region].get_queue(url.rsplit("/", 1)[1])
    except Exception:
        return None
    for message in list(queue._messages):
        if message.had_receipt_handle(receipt_handle):
            return float(message.visible_at) / 1000
    return _GONE


def _queue_in_process(resolver: Resolver, url: str) -> tuple[Any, str] | None:
    """moto's SQS backend and the queue's name, when moto runs in this process (it always does here), else None."""
    try:
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[resolver.account][resolver.region]
        name = url.rsplit("/", 1)[1]
        backend.get_queue(name)
    except Exception:
        return None
    return backend, name


def _received_in_process(resolver: Resolver, url: str, count: int, wait_seconds: int) -> list[dict[str, Any]] | None:
    """ReceiveMessage with every attribute, straight from moto's backend: the same messages as the API call (moto's
    own answer, built as its `SQSResponse.receive_message` builds it), without a request signed, serialized, parsed
    and answered for each poll, which was a quarter of the local stack's CPU under steady queue traffic."""
    found = _queue_in_process(resolver, url)
    if found is None:
        return None
    backend, name = found
    timeout = int(backend.get_queue(name).visibility_timeout)
    return [_received(m) for m in backend.receive_message(name, count, wait_seconds, timeout, ["All"])]


def _received(message: Any) -> dict[str, Any]:
    """A moto message as ReceiveMessage answers it with every attribute asked for."""
    answer: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        answer["MessageAttributes"] = message.message_attributes
        answer["MD5OfMessageAttributes"] = message.attribute_md5
    trace = (message.system_attributes or {}).get("AWSTraceHeader") or {}
    optional = {
        "MessageDeduplicationId": message.deduplication_id,
        "MessageGroupId": message.group_id,
        "AWSTraceHeader": trace.get("StringValue"),
        "SequenceNumber": message.sequence_number,
    }
    answer["Attributes"] = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    } | {k: v for k, v in optional.items() if v is not None}
    return answer


def _deleted_in_process(resolver: Resolver, url: str, entries: list[dict[str, str]]) -> bool:
    """DeleteMessageBatch straight from moto's backend; False when it does not run in this process."""
    found = _queue_in_process(resolver, url)
    if found is None:
        return False
    backend, name = found
    backend.delete_message_batch(name, entries)
    return True


def _records_in_process(resolver: Resolver, iterator: str) -> dict[str, Any] | None:
    """GetRecords straight from moto's backend when it runs in this process (it always does here: the tests' mock
    and the local server's): the same records as the API call, without serializing each image to JSON and back
    twice, which cost a fifth of the local stack's CPU. None when the backend is not at hand."""
    try:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        backend = dynamodbstreams_backends[resolver.account][resolver.region]
        if iterator not in backend.shard_iterators:
            return None
        answer: dict[str, Any] = backend.get_records(iterator, STREAM_READ_LIMIT)
    except Exception:
        return None
    return answer


def _stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A stream record as Lambda passes it: with the source ARN, and the approximate time as epoch seconds."""
    out: dict[str, Any] = json.loads(json.dumps(record, default=_jsonable))
    out["eventSourceARN"] = stream_arn
    return out


def _jsonable(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    if isinstance(value, bytes | bytearray):  # a Binary attribute: base64 in Lambda's event, as on AWS
        return base64.b64encode(value).decode()
    raise TypeError(type(value))


def _sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's poller passes it."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attributes[k] for k in _RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": {k: _message_attribute(v) for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda passes it: a string value, or a binary one in base64."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out | {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}


@functools.cache
def _within(file: str, folders: tuple[Path, ...]) -> bool:
    # cached: a module's file does not move, and resolving and comparing paths of every module per cold start
    # took seconds per test
    resolved = Path(file).resolve()
    return any(resolved.is_relative_to(folder) for folder in folders)
