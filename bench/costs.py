"""What a run costs at AWS list prices: SQS, EventBridge and Lambda metered here; DynamoDB by `run.DynamoMeter`.

Prices: us-east-1 list prices, on-demand, read from the AWS pricing pages on 2026-12-01 (no free tier counted):

* DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request units;
* SQS: $0.40 per million requests on standard queues, $0.50 on FIFO queues; each 64 KB of a request's payload
  is billed as one request;
* EventBridge: $1.00 per million custom events put (each 64 KB of an entry one event);
* Lambda (arm64): $0.0000133334 per GB-second and $0.20 per million invocations;
* API Gateway REST: $3.50 per million requests (the SQS path, which these runs use, has none).

Lambda time cannot be measured here as AWS would bill it (moto answers in-process), so it is modelled: each
invocation's wall time with the time spent inside AWS SDK calls taken out (that is moto's, not the function's),
stretched by the share of a vCPU the function's `MemorySize` buys (a vCPU at 1,769 MB, so 512 MB runs 3.46 times
slower than a core here; this machine's x86 core stands for a Graviton core), plus for each SDK call a stated AWS
latency (`LATENCY_MS`), billed at the function's `MemorySize` in the template.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

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
        self._sdk_started: dict[int, float] = {}
        self._sdk_seconds = 0.0
        self._sdk_latency = 0.0

    def hook_session(self) -> None:
        """Hook boto3's default session: call inside `mock_aws`, before any client is built (clients copy it)."""
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("provide-client-params.sqs", self._sqs, unique_id="bench-sqs")
        events.register("provide-client-params.eventbridge", self._events, unique_id="bench-events")
        events.register("before-call", self._call_started, unique_id="bench-call-started")
        events.register("after-call", self._call_ended, unique_id="bench-call-ended")

    def wrap(self, stack: Stack) -> None:
        """Meter each function invocation of the stack."""
        invoke = stack.invoke

        def metered(logical_id: str, event: dict[str, Any]) -> Any:
            if not self.active:
                return invoke(logical_id, event)
            sdk, latency, started = self._sdk_seconds, self._sdk_latency, time.perf_counter()
            try:
                return invoke(logical_id, event)
            finally:
                wall = time.perf_counter() - started
                cpu = max(0.0, wall - (self._sdk_seconds - sdk))
                waited = self._sdk_latency - latency
                self.tally.invocations[logical_id] += 1
                self.tally.function_cpu_s += cpu
                self.tally.modelled_latency_s += waited
                memory_mb = stack.functions[logical_id].memory_mb
                billed = cpu * max(1.0, LAMBDA_MB_PER_VCPU / memory_mb) + waited
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
        context["bench_started"] = time.perf_counter()

    def _call_ended(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench_started")
        if started is None or not self.active:
            return
        # requests a commit sends side by side overlap: this sum can exceed the wall time they took (then the
        # function's own time counts as 0, and the modelled waits below stand for it)
        self._sdk_seconds += time.perf_counter() - started
        service = model.service_model.service_name
        if service == "dynamodb":
            kind = "dynamodb batch" if model.name in BATCH_OPERATIONS else "dynamodb"
        else:
            kind = service if service in LATENCY_MS else "other"
        self._sdk_latency += LATENCY_MS[kind] / 1000

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
