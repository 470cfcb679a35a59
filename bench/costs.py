"""What a run costs at AWS list prices: SQS, EventBridge and Lambda metered here; DynamoDB by `run.DynamoMeter`.

Prices: us-east-1 list prices, on-demand, read from the AWS pricing pages on 2026-12-01 (no free tier counted):

* DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request units;
* SQS: $0.40 per million requests on standard queues, $0.50 on FIFO queues; each 64 KB of a request's payload
  is billed as one request;
* EventBridge: $1.00 per million custom events put (each 64 KB of an entry one event);
* Lambda (arm64): $0.0000133334 per GB-second and $0.20 per million invocations;
* API Gateway REST: $3.50 per million requests (the SQS path, which these runs use, has none).

Lambda time cannot be measured here as AWS would bill it (moto answers in-process), so it is modelled: each
invocation's CPU time (every thread's) with the CPU spent inside AWS SDK calls taken out (that is moto's, not the
function's), stretched by the share of a vCPU the function's `MemorySize` buys (a vCPU at 1,769 MB, so 512 MB runs
3.46 times slower than a core here; this machine's x86 core stands for a Graviton core), plus the time it waits on
AWS: for each SDK call a stated latency (`LATENCY_MS`), calls one after another adding up and calls side by side
(`prepaid.parallel.side_by_side`) counting as long as the longest thread of them; billed at the function's
`MemorySize` in the template. CPU and waits are added, as if no wait overlapped with any CPU (an upper bound).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import boto3

from prepaid import parallel
from prepaid_local.stack import Stack

USD_PER_MILLION = {
    "dynamodb_wru": 0.625,
    "dynamodb_rru": 0.125,
    "sqs_standard": 0.40,
    "sqs_fifo": 0.50,
    "eventbridge": 1.00,
    "lambda_requests": 0.20,
    "api_gateway": 3.50,
}
LAMBDA_USD_PER_GB_SECOND = 0.0000133334
LAMBDA_MB_PER_VCPU = 1769  # "at 1,769 MB, a function has the equivalent of one vCPU" (Lambda's memory settings)
CHUNK = 64 * 1024

# Stated, not measured: typical in-region latencies of one call, which a function waits out and is billed for.
LATENCY_MS = {"dynamodb": 5.0, "dynamodb batch": 10.0, "sqs": 8.0, "events": 15.0, "other": 10.0}
BATCH_OPERATIONS = {"BatchGetItem", "BatchWriteItem", "TransactWriteItems"}

# the AWS waits of the running invocation's thread of work, one after another (a list, to add to in place)
_WAITS: ContextVar[list[float] | None] = ContextVar("bench_waits", default=None)


def finish_time(waits: Sequence[float], workers: int) -> float:
    """How long `waits` take on `workers` threads that each take the next one when free, in order (as a
    `ThreadPoolExecutor` serves `map`)."""
    free_at = [0.0] * max(1, min(workers, len(waits)))
    for wait in waits:
        heapq.heappush(free_at, heapq.heappop(free_at) + wait)
    return max(free_at)


@dataclass
class AwsTally:
    sqs_requests: Counter[str] = field(default_factory=Counter)  # "standard" | "fifo" -> billed requests
    eventbridge_events: int = 0
    invocations: Counter[str] = field(default_factory=Counter)
    gb_seconds: float = 0.0
    modelled_latency_s: float = 0.0
    function_cpu_s: float = 0.0


class AwsMeter:
    """Counts SQS and EventBridge requests of every client built from boto3's default session while active, and
    each function invocation of the stack with its modelled billed duration."""

    def __init__(self) -> None:
        self.active = False
        self.tally = AwsTally()
        self._lock = threading.Lock()
        self._sdk_cpu = 0.0  # CPU inside SDK calls (moto's and the bench's hooks), every thread's

    def hook_session(self) -> None:
        """Hook boto3's default session: call inside `mock_aws`, before any client is built (clients copy it)."""
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("provide-client-params.sqs", self._sqs, unique_id="bench-sqs")
        events.register("provide-client-params.eventbridge", self._events, unique_id="bench-events")
        events.register("before-call", self._call_started, unique_id="bench-call-started")
        events.register("after-call", self._call_ended, unique_id="bench-call-ended")
        if not getattr(parallel.side_by_side, "bench_waits", False):
            parallel.side_by_side = _side_by_side_waits(parallel.side_by_side)

    def wrap(self, stack: Stack) -> None:
        """Meter each function invocation of the stack."""
        invoke = stack.invoke

        def metered(logical_id: str, event: dict[str, Any]) -> Any:
            if not self.active:
                return invoke(logical_id, event)
            sdk_cpu, cpu_started, waits = self._sdk_cpu, time.process_time(), [0.0]
            token = _WAITS.set(waits)
            try:
                return invoke(logical_id, event)
            finally:
                _WAITS.reset(token)
                cpu = max(0.0, time.process_time() - cpu_started - (self._sdk_cpu - sdk_cpu))
                self.tally.invocations[logical_id] += 1
                self.tally.function_cpu_s += cpu
                self.tally.modelled_latency_s += waits[0]
                memory_mb = stack.functions[logical_id].memory_mb
                billed = cpu * max(1.0, LAMBDA_MB_PER_VCPU / memory_mb) + waits[0]
                self.tally.gb_seconds += billed * memory_mb / 1024

        stack.invoke = metered  # type: ignore[method-assign]

    @contextmanager
    def measuring(self) -> Iterator[AwsTally]:
        self.tally = AwsTally()
        self.active = True
        try:
            yield self.tally
        finally:
            self.active = False

    def _call_started(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_cpu_started"] = time.thread_time()

    def _call_ended(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench_cpu_started")
        if started is None or not self.active:
            return
        service = model.service_model.service_name
        if service == "dynamodb":
            kind = "dynamodb batch" if model.name in BATCH_OPERATIONS else "dynamodb"
        else:
            kind = service if service in LATENCY_MS else "other"
        latency = LATENCY_MS[kind] / 1000
        waits = _WAITS.get()
        if waits is not None:
            waits[0] += latency
        with self._lock:
            self._sdk_cpu += time.thread_time() - started + context.get("bench_hook_cpu", 0.0)

    def _sqs(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.active:
            return
        url = str(params.get("QueueUrl", ""))
        kind = "fifo" if url.endswith(".fifo") else "standard"
        if model.name == "SendMessageBatch":
            payload = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
        elif model.name == "SendMessage":
            payload = len(params["MessageBody"].encode())
        else:
            payload = 0  # receive, delete, visibility: one request each (what they return is not metered here)
        self.tally.sqs_requests[kind] += max(1, math.ceil(payload / CHUNK))

    def _events(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.active and model.name == "PutEvents":
            self.tally.eventbridge_events += sum(
                max(1, math.ceil(len(str(e.get("Detail", "")).encode()) / CHUNK)) for e in params["Entries"]
            )


@dataclass(frozen=True)
class Bill:
    """Dollars per million events, by service."""

    lines: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.lines.values())


def bill(events: int, wru: float, rru: float, aws: AwsTally, api_requests: int = 0) -> Bill:
    per = 1_000_000 / events

    def usd(kind: str, count: float) -> float:
        return count * per * USD_PER_MILLION[kind] / 1_000_000

    return Bill(
        {
            "DynamoDB writes": usd("dynamodb_wru", wru),
            "DynamoDB reads": usd("dynamodb_rru", rru),
            "SQS standard": usd("sqs_standard", aws.sqs_requests["standard"]),
            "SQS FIFO": usd("sqs_fifo", aws.sqs_requests["fifo"]),
            "EventBridge": usd("eventbridge", aws.eventbridge_events),
            "Lambda requests": usd("lambda_requests", sum(aws.invocations.values())),
            "Lambda GB-s": aws.gb_seconds * per * LAMBDA_USD_PER_GB_SECOND,
            "API Gateway": usd("api_gateway", api_requests),
        }
    )


def _side_by_side_waits(side_by_side: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """`parallel.side_by_side` that adds to its caller's waits only as long as its threads take, each part's
    waits one after another."""

    def measured(work: Callable[[Any], Any], parts: Sequence[Any], limit: int = parallel.PARALLEL_REQUESTS) -> Any:
        outer = _WAITS.get()
        if outer is None:
            return side_by_side(work, parts, limit)
        lanes = [[0.0] for _ in parts]

        def lane(job: tuple[list[float], Any]) -> Any:
            token = _WAITS.set(job[0])
            try:
                return work(job[1])
            finally:
                _WAITS.reset(token)

        try:
            return side_by_side(lane, list(zip(lanes, parts, strict=True)), limit)
        finally:
            outer[0] += finish_time([w[0] for w in lanes], limit)

    measured.bench_waits = True  # type: ignore[attr-defined]
    return measured
