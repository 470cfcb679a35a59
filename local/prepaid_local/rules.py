"""EventBridge rules of the template, made real in moto, and what they hand to functions.

Rules come from a function's `EventBridgeRule`/`CloudWatchEvent`/`Schedule` events and from `AWS::Events::Rule`
resources. Each is created in moto on its bus. A pattern rule's function and queue targets get a tap queue in moto
as their target instead (moto's own matcher decides, as it does for every rule), and `Rules.deliver` passes on what
arrived: to a function asynchronously, to a queue as a message, in both cases as EventBridge sends it (moto leaves
`account` out of what it puts on a queue). Moto never fires a scheduled rule: `Rules.fire_due` does, at the stack's
clock. Bus targets are left to moto.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prepaid_local.queue_messages import take_all
from prepaid_local.schedule_expression import ScheduleExpression
from prepaid_local.template import Resolver, resources

log = logging.getLogger("prepaid_local")

_PATTERN_EVENTS = ("EventBridgeRule", "CloudWatchEvent")
# The envelope EventBridge sends a target, in its order; moto's queue targets leave out `account`.
_ENVELOPE = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


@dataclass(frozen=True)
class Target:
    """One target of a rule: a function of the template (`function` set), or an ARN moto delivers to."""

    id: str
    arn: str
    function: str | None = None
    input: str | None = None
    input_path: str | None = None
    input_transformer: dict[str, Any] | None = None
    sqs_parameters: dict[str, Any] | None = None

    def shape(self, event: Any) -> Any:
        """What the function receives for an event: `Input` replaces it, `InputPath` selects part of it."""
        if self.input is not None:
            return json.loads(self.input)
        if self.input_path is not None:
            return _select(event, self.input_path)
        return event


@dataclass
class Rule:
    name: str
    bus: str
    targets: list[Target]
    pattern: str | None = None
    schedule: ScheduleExpression | None = None
    enabled: bool = True
    origin: str = ""  # where the template declares it, for messages
    arn: str = ""
    taps: dict[str, str] = field(default_factory=dict)  # target id -> queue URL (pattern rules, function targets)
    anchor: datetime | None = None  # when a scheduled rule started counting
    last_fired: datetime | None = None


def declared_rules(template: dict[str, Any], resolver: Resolver, function_arns: dict[str, str]) -> list[Rule]:
    """Every rule the template declares, with names, buses and targets resolved (nothing created yet)."""
    stack, found = resolver.stack_name, []
    by_arn = {arn: logical for logical, arn in function_arns.items()}
    for logical, resource in resources(template, "AWS::Serverless::Function").items():
        for event_name, event in resource["Properties"].get("Events", {}).items():
            kind = event.get("Type")
            if kind not in (*_PATTERN_EVENTS, "Schedule"):
                continue
            props = resolver.resolve(event.get("Properties", {}))
            target = Target(
                id=props.get("Target", {}).get("Id", f"{logical}{event_name}Target"),
                arn=function_arns[logical],
                function=logical,
                input=props.get("Input"),
                input_path=props.get("InputPath"),
                input_transformer=props.get("InputTransformer"),
            )
            name = props.get("RuleName") or props.get("Name") or f"{stack}-{logical}-{event_name}"
            enabled = props.get("Enabled", True) not in (False, "false") and props.get("State") != "DISABLED"
            rule = Rule(_rule_name(name), _bus_name(props.get("EventBusName")), [target], enabled=enabled)
            rule.origin = f"{logical}.Events.{event_name}"
            if kind == "Schedule":
                rule.schedule = ScheduleExpression(props["Schedule"])
            else:
                rule.pattern = _pattern_text(props["Pattern"])
            found.append(rule)
    for logical, resource in resources(template, "AWS::Events::Rule").items():
        props = resolver.resolve(resource.get("Properties", {}))
        targets = [
            Target(
                id=t["Id"],
                arn=t["Arn"],
                function=by_arn.get(_unqualified(t["Arn"])),
                input=t.get("Input"),
                input_path=t.get("InputPath"),
                input_transformer=t.get("InputTransformer"),
                sqs_parameters=t.get("SqsParameters"),
            )
            for t in props.get("Targets", [])
        ]
        rule = Rule(
            _rule_name(props.get("Name") or f"{stack}-{logical}"),
            _bus_name(props.get("EventBusName")),
            targets,
            enabled=props.get("State", "ENABLED") == "ENABLED",
            origin=logical,
        )
        if "ScheduleExpression" in props:
            rule.schedule = ScheduleExpression(props["ScheduleExpression"])
        else:
            rule.pattern = _pattern_text(props["EventPattern"])
        # what a Ref or GetAtt of the rule gives (Ref is "bus|name" on a custom bus)
        resolver.physical[logical] = rule.name if rule.bus == "default" else f"{rule.bus}|{rule.name}"
        resolver.attributes[(logical, "Arn")] = rule_arn(resolver, rule.name, rule.bus)
        found.append(rule)
    return found


def rule_arn(resolver: Resolver, name: str, bus: str) -> str:
    """A rule's ARN: the bus is part of it unless it is the default bus."""
    path = name if bus == "default" else f"{bus}/{name}"
    return f"arn:aws:events:{resolver.region}:{resolver.account}:rule/{path}"


@dataclass
class Rules:
    """The template's rules, created in moto, with what moves their events to functions."""

    clients: Callable[[str], Any]
    resolver: Resolver
    rules: list[Rule]
    submit: Callable[[str, Any], str]  # asynchronous invocation: (function, event) -> request id

    def create(self, now: datetime) -> None:
        """Create each rule on its bus with its targets; a pattern rule's function and queue targets get a tap.

        A disabled rule gets no targets: moto would deliver to them (it does not look at a rule's state)."""
        events, sqs = self.clients("events"), self.clients("sqs")
        for rule in self.rules:
            spec: dict[str, Any] = {"Name": rule.name, "State": "ENABLED" if rule.enabled else "DISABLED"}
            if rule.schedule is not None:
                if rule.bus != "default":
                    raise ValueError(f"{rule.origin}: a scheduled rule must be on the default bus")
                spec["ScheduleExpression"] = rule.schedule.text
            else:
                spec["EventPattern"] = rule.pattern
            rule.arn = events.put_rule(EventBusName=rule.bus, **spec)["RuleArn"]
            rule.anchor = now
            if not rule.enabled:
                continue
            if rule.schedule is not None:
                for target in rule.targets:
                    if target.function is None and not _is_queue(target.arn):
                        raise ValueError(f"{rule.origin}: the local stack fires schedules at functions and queues")
                    if target.input_transformer is not None:
                        raise ValueError(f"{rule.origin}: InputTransformer on a schedule is not supported locally")
                # moto keeps a scheduled rule's targets (for list-targets-by-rule) and never fires them: we do
                targets = [{"Id": t.id, "Arn": t.arn} for t in rule.targets]
            else:
                targets = []
                for target in rule.targets:
                    arn = target.arn
                    if target.function is not None or _is_queue(target.arn):
                        url = sqs.create_queue(QueueName=_tap_name(self.resolver.stack_name, rule, target))["QueueUrl"]
                        rule.taps[target.id] = url
                        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
                        arn = attributes["Attributes"]["QueueArn"]
                    targets.append(_moto_target(target, arn))
            if targets:
                events.put_targets(Rule=rule.name, EventBusName=rule.bus, Targets=targets)

    def deliver(self) -> int:
        """Pass every event waiting in a rule's tap to its target; return how many were passed on."""
        sqs, handed = self.clients("sqs"), 0
        for rule in self.rules:
            for target in rule.targets:
                url = rule.taps.get(target.id)
                if url is None:
                    continue
                for message in take_all(sqs, url):
                    shaped = target.shape(self._as_sent(target, message["Body"]))
                    if target.function is not None:
                        self.submit(target.function, shaped)
                    else:
                        self._send_to_queue(target, shaped)
                    handed += 1
        return handed

    def fire_due(self, now: datetime) -> int:
        """Fire each scheduled rule due at `now` once (occurrences the clock jumped over are coalesced)."""
        fired = 0
        for rule in self.rules:
            due = self._next_fire(rule)
            if due is None or due > now:
                continue
            rule.last_fired = now
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": self.resolver.account,
                "time": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.resolver.region,
                "resources": [rule.arn],
                "detail": {},
            }
            for target in rule.targets:
                shaped = target.shape(event)
                if target.function is not None:
                    self.submit(target.function, shaped)
                else:
                    self._send_to_queue(target, shaped)
            fired += 1
        return fired

    def _next_fire(self, rule: Rule) -> datetime | None:
        if rule.schedule is None or not rule.enabled or rule.anchor is None:
            return None
        return rule.schedule.next_after(rule.last_fired or rule.anchor, anchor=rule.anchor)

    def _as_sent(self, target: Target, body: str) -> Any:
        try:
            event = json.loads(body)
        except ValueError:
            return body  # an InputTransformer's plain text
        if target.input_transformer is None and isinstance(event, dict):
            event.setdefault("account", self.resolver.account)
            return {key: event[key] for key in _ENVELOPE if key in event}
        return event

    def _send_to_queue(self, target: Target, body: Any) -> None:
        """What EventBridge puts on a queue target: the event (or its input) as JSON text, the event id as a FIFO
        queue's deduplication id."""
        sqs = self.clients("sqs")
        url = sqs.get_queue_url(QueueName=target.arn.rsplit(":", 1)[1])["QueueUrl"]
        extra: dict[str, Any] = {}
        if target.arn.endswith(".fifo"):
            extra["MessageGroupId"] = (target.sqs_parameters or {}).get("MessageGroupId", "default")
            event_id = body.get("id") if isinstance(body, dict) else None
            extra["MessageDeduplicationId"] = str(event_id or uuid.uuid4().hex)
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        sqs.send_message(QueueUrl=url, MessageBody=text, **extra)


def _moto_target(target: Target, arn: str) -> dict[str, Any]:
    """A target for moto: a tap gets the event whole (Input/InputPath are applied when it is passed on)."""
    spec: dict[str, Any] = {"Id": target.id, "Arn": arn}
    if target.input_transformer is not None:
        spec["InputTransformer"] = target.input_transformer  # moto applies it, for buses as for our taps
    tapped = target.function is not None or _is_queue(target.arn)
    if not tapped and (target.input is not None or target.input_path is not None):
        raise ValueError(f"target {target.id}: Input/InputPath are applied locally for function and queue targets")
    if target.sqs_parameters is not None and not tapped:
        spec["SqsParameters"] = target.sqs_parameters  # a tap is a standard queue; the group id is used on delivery
    return spec


def _select(event: Any, path: str) -> Any:
    """A simple JSONPath (`$`, `$.detail`, `$.detail.card`) applied to an event; anything else is refused."""
    if not re.fullmatch(r"\$(\.[A-Za-z0-9_-]+)*", path):
        raise ValueError(f"InputPath {path!r}: the local stack supports $.a.b paths only")
    for key in path.split(".")[1:]:
        event = event[key] if isinstance(event, dict) and key in event else None
    return event


def _pattern_text(pattern: Any) -> str:
    return pattern if isinstance(pattern, str) else json.dumps(pattern)


def _bus_name(value: Any) -> str:
    if not value:
        return "default"
    text = str(value)
    return text.rsplit("/", 1)[1] if text.startswith("arn:") else text


def _unqualified(arn: str) -> str:
    """A function ARN without its version or alias (`...:function:name:live` → `...:function:name`)."""
    parts = arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 and parts[5] == "function" else arn


def _is_queue(arn: str) -> bool:
    return arn.startswith("arn:aws:sqs:")


def _rule_name(name: str) -> str:
    """EventBridge allows 64 characters of [.-_A-Za-z0-9]; a longer name keeps a hash of the whole."""
    clean = re.sub(r"[^.\-_A-Za-z0-9]", "-", name)
    return clean if len(clean) <= 64 else f"{clean[:55]}-{hashlib.sha256(clean.encode()).hexdigest()[:8]}"


def _tap_name(stack: str, rule: Rule, target: Target) -> str:
    """A queue name (80 characters of [-_A-Za-z0-9]) for one function target of one rule."""
    clean = re.sub(r"[^\-_A-Za-z0-9]", "-", f"{stack}-rule-{rule.name}-{target.id}")
    return clean if len(clean) <= 80 else f"{clean[:71]}-{hashlib.sha256(clean.encode()).hexdigest()[:8]}"
