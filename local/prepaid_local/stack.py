"""The whole stack in one process: template resources in moto, handlers invoked as Lambda would invoke them."""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from moto.events.models import EventPattern

from prepaid_local.apigateway import Gateway, routes
from prepaid_local.lambda_context import LocalContext
from prepaid_local.resources import FunctionSpec, create_resources, functions, layer_paths
from prepaid_local.template import ROOT, Resolver, load

Clients = Callable[[str], Any]


class Stack:
    """Resources created from template.yaml; functions resolved from it and run in-process."""

    def __init__(self, clients: Clients, stack_name: str = "local", template: dict[str, Any] | None = None) -> None:
        self.clients = clients
        self.template = template if template is not None else load()
        self.resolver: Resolver = create_resources(clients, self.template, stack_name)
        self.functions: dict[str, FunctionSpec] = functions(self.template, self.resolver)
        self.gateway = Gateway(routes(self.functions), self.invoke)
        self.api = self.gateway.request
        self.proxy = self.gateway.proxy
        self._stream_iterators: dict[tuple[str, str], str] = {}
        self._pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._stream_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._invoke_locks = {logical: threading.Lock() for logical in self.functions}
        self._apply_environment()

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
        """Run one event through a function. A function runs one event at a time, as one Lambda execution
        environment does: handlers keep per-invocation state in module globals (the resolver's current event,
        the logger's keys, the metric set). Concurrency across environments is tested with processes
        (tests/support/environments.py)."""
        spec = self.functions[logical_id]
        context = LocalContext(function_name=f"{self.resolver.stack_name}-{logical_id}", timeout_seconds=spec.timeout)
        with self._invoke_locks[logical_id]:
            return self.handler(logical_id)(event, context)

    def cold_start(self) -> None:
        """Forget what the handler modules cached per process (clients, settings, rate card), as a new execution
        environment would. Matters where handlers ran before in this process (tests, a restarted local server):
        their cached clients point at the moto they were built against. Every cached function of every module under
        the template's code folders is cleared, so a new one cannot be forgotten."""
        code = [*layer_paths(self.template), *(spec.code_uri for spec in self.functions.values())]
        folders = [(ROOT / path).resolve() for path in code]
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if not file or not any(Path(file).resolve().is_relative_to(folder) for folder in folders):
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

    def queue_url(self, arn: str) -> str:
        name = arn.rsplit(":", 1)[1]
        return str(self.clients("sqs").get_queue_url(QueueName=name)["QueueUrl"])

    def pump_queues(self, crash: Callable[[str, dict[str, Any]], None] | None = None) -> int:
        """Deliver each queue's messages to its function as Lambda's SQS poller does, until the queues are empty.

        Batches honour `BatchSize`; with `ReportBatchItemFailures` only the reported messages stay, otherwise a
        failed batch stays whole. What stays becomes visible again at once (rather than after the visibility
        timeout), and the queue's redrive policy moves it to the dead-letter queue after `maxReceiveCount`
        receives. `crash` lets a test fail a delivery before the function runs. Returns messages processed.
        """
        processed = 0
        with self._queue_lock:
            for _ in range(10_000):
                delivered = sum(self._pump_once(logical, props, crash) for logical, props in self.event_sources("SQS"))
                processed += delivered
                if not delivered:
                    break
        return processed

    def _pump_once(
        self, logical: str, props: dict[str, Any], crash: Callable[[str, dict[str, Any]], None] | None
    ) -> int:
        sqs = self.clients("sqs")
        arn = self.resolver.resolve(props["Queue"])
        url = self.queue_url(arn)
        batch_size = int(props.get("BatchSize", 10))
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        if not messages:
            return 0
        event = {"Records": [_sqs_record(m, arn, self.resolver.region) for m in messages]}
        try:
            if crash is not None:
                crash(logical, event)
            answer = self.invoke(logical, event)
        except Exception:
            self._release(url, messages)
            raise
        partial = "ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])
        failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])} if partial else set()
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        self._release(url, [m for m in messages if m["MessageId"] in failed])
        return len(messages)

    def _release(self, url: str, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            self.clients("sqs").change_message_visibility(
                QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )

    # -- DynamoDB streams ----------------------------------------------------------------------------------------

    def pump_streams(self, crash: Callable[[str, dict[str, Any]], None] | None = None) -> int:
        """Deliver new stream records to their functions, filtered and batched as the event source mapping says.

        As Lambda does for a stream, a batch that fails (the function raises, or reports item failures) is
        delivered again, from its first failed record, on the next call. `crash` lets a test fail a delivery
        before the function runs. Returns the number of records the functions finished.
        """
        delivered = 0
        with self._stream_lock:
            for logical, props in self.event_sources("DynamoDB"):
                stream_arn = self.resolver.resolve(props["Stream"])
                patterns = [EventPattern.load(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])]
                batch_size = int(props.get("BatchSize", 100))
                for key, fresh in self._read_stream(logical, stream_arn):
                    wanted = [r for r in fresh if not patterns or any(p.matches_event(cast(Any, r)) for p in patterns)]
                    pending = self._pending.setdefault(key, [])
                    pending.extend(wanted)
                    while pending:
                        batch = pending[:batch_size]
                        if crash is not None:
                            crash(logical, {"Records": batch})
                        answer = self.invoke(logical, {"Records": batch})
                        failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
                        done = next(
                            (i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed), len(batch)
                        )
                        del pending[:done]
                        delivered += done
                        if failed:
                            raise StreamBatchFailed(logical, key[1], sorted(failed))
        return delivered

    def _read_stream(self, logical: str, stream_arn: str) -> list[tuple[tuple[str, str], list[dict[str, Any]]]]:
        """Read what is new on each shard since the last read (records are buffered until delivered)."""
        streams = self.clients("dynamodbstreams")
        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        found = []
        for shard in shards:
            key = (logical, shard["ShardId"])
            iterator = (
                self._stream_iterators.get(key)
                or streams.get_shard_iterator(
                    StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            found.append((key, [_stream_record(r, stream_arn) for r in response["Records"]]))
            self._stream_iterators[key] = response.get("NextShardIterator") or iterator
        return found


class StreamBatchFailed(Exception):
    """The function did not finish a stream batch; the next pump retries it (the iterator is not advanced)."""

    def __init__(self, function: str, shard_id: str, failures: list[dict[str, str]]) -> None:
        super().__init__(f"{function} failed {len(failures)} record(s) of shard {shard_id}")
        self.failures = failures


def _stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A stream record as Lambda passes it: with the source ARN, and the approximate time as epoch seconds."""
    out: dict[str, Any] = json.loads(json.dumps(record, default=_jsonable))
    out["eventSourceARN"] = stream_arn
    return out


def _jsonable(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    raise TypeError(type(value))


def _sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's poller passes it."""
    attributes = dict(message.get("Attributes", {}))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            k: {
                "stringValue": v.get("StringValue"),
                "binaryValue": v.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": v["DataType"],
            }
            for k, v in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }
