"""EventBridge Scheduler on moto: the template's schedules created there, and every schedule fired when due.

Moto stores schedules and never runs them. `Schedules.fire_due` reads them back from moto (so schedules that
functions create at runtime with boto3's `scheduler` client fire too, exactly as the template's `ScheduleV2` events
and `AWS::Scheduler::Schedule` resources do) and fires those due at the stack's clock: a Lambda target gets the
target's `Input` asynchronously, a queue gets it as a message body, a bus as an event's detail. A one-time
`at(...)` schedule fires once; with `ActionAfterCompletion: DELETE` it is then deleted, as Scheduler does.
A recurring schedule fires at most once per call (occurrences the clock jumped over are coalesced).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from prepaid_local.clock import Clock
from prepaid_local.schedule_expression import ScheduleExpression
from prepaid_local.template import Resolver, resources

log = logging.getLogger("prepaid_local")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLEXIBLE_OFF = {"Mode": "OFF"}


def declared_schedules(
    template: dict[str, Any], resolver: Resolver, function_arns: dict[str, str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The template's schedule groups, and `CreateSchedule` requests for its schedules (names known to `resolver`)."""
    stack, region, account = resolver.stack_name, resolver.region, resolver.account
    groups = []
    for logical, resource in resources(template, "AWS::Scheduler::ScheduleGroup").items():
        name = resolver.resolve(resource.get("Properties", {}).get("Name")) or f"{stack}-{logical}"
        groups.append(name)
        resolver.physical[logical] = name
        resolver.attributes[(logical, "Arn")] = f"arn:aws:scheduler:{region}:{account}:schedule-group/{name}"
    role = f"arn:aws:iam::{account}:role/{stack}-scheduler"  # never assumed locally; the API requires one
    found: list[dict[str, Any]] = []
    for logical, resource in resources(template, "AWS::Serverless::Function").items():
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event.get("Type") != "ScheduleV2":
                continue
            props = resolver.resolve(event.get("Properties", {}))
            target: dict[str, Any] = {"Arn": function_arns[logical], "RoleArn": props.get("RoleArn", role)}
            for key in ("Input", "RetryPolicy", "DeadLetterConfig"):
                if key in props:
                    target[key] = props[key]
            found.append(_request(props, props.get("Name") or f"{logical}{event_name}", target))
    for logical, resource in resources(template, "AWS::Scheduler::Schedule").items():
        props = resolver.resolve(resource.get("Properties", {}))
        request = _request(props, props.get("Name") or f"{stack}-{logical}", dict(props["Target"]))
        path = f"{request.get('GroupName', 'default')}/{request['Name']}"
        resolver.physical[logical] = request["Name"]
        resolver.attributes[(logical, "Arn")] = f"arn:aws:scheduler:{region}:{account}:schedule/{path}"
        found.append(request)
    return groups, found


def _request(props: dict[str, Any], name: str, target: dict[str, Any]) -> dict[str, Any]:
    ScheduleExpression(props["ScheduleExpression"], props.get("ScheduleExpressionTimezone", "UTC"))  # validates now
    request: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": props["ScheduleExpression"],
        "FlexibleTimeWindow": props.get("FlexibleTimeWindow", _FLEXIBLE_OFF),
        "Target": target,
    }
    for key in ("GroupName", "ScheduleExpressionTimezone", "State", "StartDate", "EndDate", "Description"):
        if key in props:
            request[key] = props[key]
    return request


@dataclass
class _Seen:
    anchor: datetime  # when the stack first saw the schedule (a rate counts from here unless StartDate says)
    last_fired: datetime | None = None


@dataclass
class Schedules:
    clients: Callable[[str], Any]
    resolver: Resolver
    clock: Clock
    submit: Callable[[str, Any], str]  # asynchronous invocation: (function, event) -> request id
    function_of: Callable[[str], str | None]  # a Lambda ARN -> the template's function, if it is one
    _seen: dict[tuple[str, Any, str], _Seen] = field(default_factory=dict)
    _details: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, requests: list[dict[str, Any]], groups: list[str]) -> None:
        scheduler = self.clients("scheduler")
        for group in groups:
            scheduler.create_schedule_group(Name=group)
        for request in requests:
            scheduler.create_schedule(**request)

    def fire_due(self) -> int:
        """Fire every enabled schedule due at the stack's clock; return how many fired."""
        with self._lock:
            now, fired = self.clock.now(), 0
            for schedule in self._enabled():
                expression = ScheduleExpression(
                    schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC"
                )
                key = (schedule["Arn"], schedule.get("CreationDate"), schedule["ScheduleExpression"])
                seen = self._seen.setdefault(key, _Seen(anchor=_start(schedule) or now))
                after = seen.last_fired or (_EPOCH if expression.one_time else seen.anchor)
                due = expression.next_after(after, anchor=seen.anchor)
                end = _moment(schedule.get("EndDate"))
                if due is None or due > now or (end is not None and due > end):
                    continue
                seen.last_fired = now
                self._fire(schedule, due)
                fired += 1
                if expression.one_time and schedule.get("ActionAfterCompletion") == "DELETE":
                    self._delete(schedule)
                    self._seen.pop(key, None)
            return fired

    def _enabled(self) -> list[dict[str, Any]]:
        """Every enabled schedule in moto, in full (`get_schedule` only when it changed since the last read)."""
        scheduler = self.clients("scheduler")
        found = []
        for page in scheduler.get_paginator("list_schedules").paginate(State="ENABLED"):
            for summary in page.get("Schedules", []):
                cached = self._details.get(summary["Arn"])
                if cached is None or cached[0] != summary.get("LastModificationDate"):
                    detail = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
                    cached = (summary.get("LastModificationDate"), detail)
                    self._details[summary["Arn"]] = cached
                found.append(cached[1])
        return found

    def _fire(self, schedule: dict[str, Any], due: datetime) -> None:
        target = schedule["Target"]
        arn: str = target["Arn"]
        text = _with_context(target.get("Input"), schedule["Arn"], due)
        try:
            if arn.startswith("arn:aws:lambda:"):
                function = self.function_of(arn)
                if function is None:
                    raise LookupError(f"no function of the template has the ARN {arn}")
                self.submit(function, json.loads(text) if text is not None else {})
            elif arn.startswith("arn:aws:sqs:"):
                sqs = self.clients("sqs")
                url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
                extra: dict[str, Any] = {}
                if arn.endswith(".fifo"):
                    extra["MessageGroupId"] = target.get("SqsParameters", {}).get("MessageGroupId", "default")
                    extra["MessageDeduplicationId"] = uuid.uuid4().hex
                sqs.send_message(QueueUrl=url, MessageBody=text if text is not None else "{}", **extra)
            elif arn.startswith("arn:aws:events:") and ":event-bus/" in arn:
                parameters = target.get("EventBridgeParameters", {})
                self.clients("events").put_events(
                    Entries=[
                        {
                            "EventBusName": arn.rsplit("/", 1)[1],
                            "Source": parameters.get("Source", "aws.scheduler"),
                            "DetailType": parameters.get("DetailType", "Scheduled Event"),
                            "Detail": text if text is not None else "{}",
                        }
                    ]
                )
            else:
                raise LookupError(f"the local stack cannot deliver to {arn}")
        except (LookupError, ValueError, ClientError) as error:
            self._undeliverable(schedule, text, error)

    def _undeliverable(self, schedule: dict[str, Any], text: str | None, error: Exception) -> None:
        """Scheduler's dead-letter queue, if the target has one, gets what could not be delivered."""
        dead = schedule["Target"].get("DeadLetterConfig", {}).get("Arn")
        log.error("schedule %s could not deliver: %s", schedule["Name"], error)
        if dead is None:
            return
        sqs = self.clients("sqs")
        sqs.send_message(
            QueueUrl=sqs.get_queue_url(QueueName=dead.rsplit(":", 1)[1])["QueueUrl"],
            MessageBody=text if text is not None else "{}",
            MessageAttributes={
                "ERROR_CODE": {"DataType": "String", "StringValue": type(error).__name__},
                "ERROR_MESSAGE": {"DataType": "String", "StringValue": str(error)[:256] or "error"},
                "SCHEDULE_ARN": {"DataType": "String", "StringValue": schedule["Arn"]},
                "TARGET_ARN": {"DataType": "String", "StringValue": schedule["Target"]["Arn"]},
            },
        )

    def _delete(self, schedule: dict[str, Any]) -> None:
        try:
            self.clients("scheduler").delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])
        except ClientError as error:  # deleted meanwhile, by its owner: nothing left to do
            log.info("schedule %s already gone: %s", schedule["Name"], error)
        self._details.pop(schedule["Arn"], None)


def _with_context(text: str | None, schedule_arn: str, due: datetime) -> str | None:
    """The target's input with Scheduler's context attributes filled in."""
    if text is None:
        return None
    values = {
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": str(uuid.uuid4()),
        "<aws.scheduler.attempt-number>": "1",
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _start(schedule: dict[str, Any]) -> datetime | None:
    return _moment(schedule.get("StartDate"))
