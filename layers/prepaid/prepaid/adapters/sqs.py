"""SQS: the usage queue, the FIFO drawdown queue, and the dead-letter queues that say why.

Each queue's message format belongs here, with the queue: what producers put on the usage queue (and `pack`, the
way to batch it), what screening (ingest, `POST /usage`) puts on the drawdown queue and what drawdown accepts from
it, what the dead-letter queues hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from prepaid.application.ingest import EVENTS_PER_DRAWDOWN_MESSAGE
from prepaid.application.ports import QueueUnavailable
from prepaid.domain.numbers import to_wire
from prepaid.domain.rules import (
    CUSTOMER_ID,
    MAX_CORRELATION_IDS,
    MAX_EVENTS_PER_REQUEST,
    correlation_id,
    correlation_ids,
)
from prepaid.domain.text import instant
from prepaid.domain.usage import Rejection, parse_rated
from prepaid.domain.wallet import RatedUsage
from prepaid.edge.json_text import JsonRefused, read_json

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

MAX_MESSAGE_BYTES = 200 * 1024  # what we pack into one usage message; the template's queues take 256 KiB
MAX_EVENTS_PER_MESSAGE = 100
MAX_RATED_PER_MESSAGE = EVENTS_PER_DRAWDOWN_MESSAGE
BATCH = 10  # SendMessageBatch entries
# SendMessageBatch takes 1 MiB in all (bodies and attributes); counted in UTF-8 bytes, with room to spare.
MAX_BATCH_BYTES = 1_000_000


def message_attributes(fields: Mapping[str, str | int | None]) -> dict[str, Any]:
    """SQS message attributes for the fields that have a value (whole numbers as Number, the rest as String)."""
    return {
        name: {"DataType": "Number" if isinstance(value, int) else "String", "StringValue": str(value)}
        for name, value in fields.items()
        if value not in (None, "")
    }


@dataclass
class Sent:
    """How a send went: the SQS requests it took, and the positions of the entries SQS did not take."""

    requests: int = 0
    failed: list[int] = field(default_factory=list)

    def raise_if_failed(self, url: str) -> int:
        if self.failed:
            raise QueueUnavailable(url, len(self.failed))
        return self.requests


def _entry_bytes(entry: Mapping[str, Any]) -> int:
    """What an entry counts against SendMessageBatch's size limit: its body and its attributes, in bytes."""
    size = len(str(entry["MessageBody"]).encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(value.get("StringValue", "").encode())
    return size


def batches(entries: Sequence[Mapping[str, Any]]) -> list[range]:
    """Positions of `entries` cut into SendMessageBatch requests: at most 10 entries and 1 MB each."""
    cut: list[range] = []
    start, size = 0, 0
    for index, entry in enumerate(entries):
        grown = size + _entry_bytes(entry)
        if index > start and (index - start == BATCH or grown > MAX_BATCH_BYTES):
            cut.append(range(start, index))
            start, grown = index, _entry_bytes(entry)
        size = grown
    if start < len(entries):
        cut.append(range(start, len(entries)))
    return cut


class Queue:
    """One queue; sends in batches cut by count and by bytes, and says which entries were not taken."""

    def __init__(self, client: SQSClient, url: str) -> None:
        self._client = client
        self.url = url

    def send(self, entries: Sequence[dict[str, Any]]) -> Sent:
        """Send entries (`MessageBody` and optional attributes). An entry SQS refuses for a reason of its own (a
        throttle, an outage) is tried once more; what still fails is reported, never raised, so the caller decides
        whose messages to retry."""
        sent = Sent()
        for positions in batches(entries):
            batch = {str(i): {"Id": str(i), **entries[i]} for i in positions}
            for _ in range(2):
                try:
                    response = self._client.send_message_batch(QueueUrl=self.url, Entries=list(batch.values()))  # type: ignore[arg-type]
                except (ClientError, BotoCoreError):
                    sent.requests += 1
                    failed = list(batch)
                    permanent: list[str] = []
                else:
                    sent.requests += 1
                    failed = [f["Id"] for f in response.get("Failed", [])]
                    permanent = [f["Id"] for f in response.get("Failed", []) if f.get("SenderFault")]
                retry = [i for i in failed if i not in permanent]
                sent.failed.extend(int(i) for i in permanent)
                if not retry:
                    break
                batch = {i: batch[i] for i in retry}
            else:
                sent.failed.extend(int(i) for i in batch)
        return sent


def pack(events: Sequence[dict[str, Any]]) -> list[str]:
    """Usage events as a producer sends them to the usage queue: message bodies `{"events": [...]}` of at most 100
    events and 200 KiB (UTF-8) each."""
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for event in events:
        text = json.dumps(event, separators=(",", ":"))
        length = len(text.encode())
        if current and (len(current) == MAX_EVENTS_PER_MESSAGE or size + length + 16 > MAX_MESSAGE_BYTES):
            bodies.append('{"events":[' + ",".join(current) + "]}")
            current, size = [], 0
        current.append(text)
        size += length + 1
    if current:
        bodies.append('{"events":[' + ",".join(current) + "]}")
    return bodies


class MalformedUsageMessage(Exception):
    """A message on the usage queue that holds no usage events to screen; `reason` says why (dead-lettered whole)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The producer's own id for a usage message (a message attribute), followed to the drawdown and its events.
CORRELATION_ID_ATTRIBUTE = "correlationId"
# A drawdown message's: the distinct ids its events came with, joined by commas (an id holds none), at most 10.
CORRELATION_IDS_ATTRIBUTE = "correlationIds"
MAX_CORRELATION_IDS_TEXT = MAX_CORRELATION_IDS * 129


def _string_attribute(attributes: object, name: str) -> object:
    """A String message attribute's value as Lambda passes it (`messageAttributes` of a record), else None."""
    if not isinstance(attributes, Mapping):
        return None
    attribute = attributes.get(name)
    if not isinstance(attribute, Mapping) or attribute.get("dataType") != "String":
        return None
    return attribute.get("stringValue")


def usage_correlation_id(attributes: object, message_id: str) -> str:
    """A usage message's correlation id: the producer's `correlationId` attribute when valid, else the message id."""
    return correlation_id(_string_attribute(attributes, CORRELATION_ID_ATTRIBUTE)) or message_id


def rated_correlation_ids(attributes: object) -> tuple[tuple[str, ...], str | None]:
    """The correlation ids a drawdown message's attribute names, and why they are not read when it is not as
    screening writes it (absent: none, and no reason). Only for logs and events: never a reason to refuse usage."""
    if not isinstance(attributes, Mapping) or CORRELATION_IDS_ATTRIBUTE not in attributes:
        return (), None
    text = _string_attribute(attributes, CORRELATION_IDS_ATTRIBUTE)
    if not isinstance(text, str) or len(text) > MAX_CORRELATION_IDS_TEXT:
        return (), "correlation_ids_not_text"
    named = text.split(",")
    if len(named) > MAX_CORRELATION_IDS or any(correlation_id(i) is None for i in named):
        return (), "correlation_ids_invalid"
    return correlation_ids(named), None


def usage_from_wire(body: str) -> list[Any]:
    """The events of a usage message as a producer sends it: one event object, or `{"events": [...]}` with 1 to
    1,000 of them. Each event is still to be screened on its own; this only refuses a message with none to screen."""
    try:
        message = read_json(body)
    except JsonRefused as refused:
        reason = "body_not_json" if refused.reason == "not_json" else f"body_{refused.reason}"
        raise MalformedUsageMessage(reason) from None
    if isinstance(message, dict) and "events" in message:
        events = message["events"]
        if not isinstance(events, list) or len(message) != 1:
            raise MalformedUsageMessage("malformed_events_envelope")
        if not events:
            raise MalformedUsageMessage("no_events")
        if len(events) > MAX_EVENTS_PER_REQUEST:
            raise MalformedUsageMessage("too_many_events")
        return events
    if not isinstance(message, dict):
        raise MalformedUsageMessage("not_a_usage_event")
    return [message]


# -- the drawdown queue ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatedMessage:
    """One drawdown message: rated events of one customer, at most one transaction's worth."""

    customer_id: str
    usages: tuple[RatedUsage, ...]


class MalformedRatedMessage(Exception):
    """A message on the drawdown queue that is not one ingest wrote: `reason` says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def rated_to_wire(customer_id: str, usages: Sequence[RatedUsage]) -> dict[str, Any]:
    """Rated usage of one customer, as it travels to drawdown."""
    return {
        "customerId": customer_id,
        "events": [_rated_event(u) for u in usages],
    }


def _rated_event(usage: RatedUsage) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": usage.event_id,
        "meter": usage.meter,
        "quantity": to_wire(usage.quantity),
        "credits": to_wire(usage.credits),
        "timestamp": instant(usage.at),
    }
    if usage.priced_by is not None:  # absent for the base rate: a message without prices by dimension is as before
        event["pricedBy"] = {"dimension": usage.priced_by.dimension, "value": usage.priced_by.value}
    return event


def rated_from_wire(body: str, now: datetime, group_id: str | None = None) -> RatedMessage:
    """The rated usage a drawdown message carries, checked as untrusted: any principal able to send to the queue
    could have written it. Raises `MalformedRatedMessage` with the reason (never drawn, dead-lettered)."""
    try:
        message = read_json(body)
    except JsonRefused as refused:
        raise MalformedRatedMessage(f"body_{refused.reason}") from None
    if not isinstance(message, dict) or set(message) != {"customerId", "events"}:
        raise MalformedRatedMessage("not_a_rated_message")
    customer_id, events = message["customerId"], message["events"]
    if not isinstance(customer_id, str) or not CUSTOMER_ID.fullmatch(customer_id):
        raise MalformedRatedMessage("invalid_customer_id")
    if group_id is not None and group_id != customer_id:
        raise MalformedRatedMessage("group_is_not_the_customer")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_RATED_PER_MESSAGE:
        raise MalformedRatedMessage("invalid_events")
    usages: list[RatedUsage] = []
    for index, raw in enumerate(events):
        parsed = parse_rated(raw, now)
        if isinstance(parsed, Rejection):
            raise MalformedRatedMessage(f"events[{index}]:{parsed.reason}")
        usages.append(parsed)
    return RatedMessage(customer_id, tuple(usages))


class DrawdownQueue(Queue):
    """FIFO, grouped by customer: one wallet is never drawn by two batches at once."""

    def send_rated(self, messages: Sequence[RatedMessage]) -> Sent:
        """Send each message; `Sent.failed` holds the positions of those SQS did not take."""
        entries = []
        for message in messages:
            text = json.dumps(rated_to_wire(message.customer_id, message.usages), separators=(",", ":"), sort_keys=True)
            followed = correlation_ids(i for u in message.usages for i in u.correlation_ids)
            traced = {"MessageAttributes": message_attributes({CORRELATION_IDS_ATTRIBUTE: ",".join(followed)})}
            entries.append(
                {
                    "MessageBody": text,
                    **(traced if followed else {}),
                    "MessageGroupId": message.customer_id,
                    # The same message sent again (a retried ingest batch) is dropped by SQS within 5 minutes;
                    # after that, drawdown's event records still make the replay a no-op. The hash covers the
                    # whole content, so a replay with other content (a conflict to report) is never dropped.
                    "MessageDeduplicationId": hashlib.sha256(text.encode()).hexdigest(),
                }
            )
        return self.send(entries)


# -- dead letters ----------------------------------------------------------------------------------------------------


def usage_of(customer_id: str, usage: RatedUsage) -> dict[str, Any]:
    """Rated usage as a usage event a producer could send again (its credits and dimensions left out), e.g. to be
    dead-lettered for a redrive."""
    return {
        "eventId": usage.event_id,
        "customerId": customer_id,
        "meter": usage.meter,
        "quantity": to_wire(usage.quantity),
        "timestamp": instant(usage.at),
    }


class DeadLetters(Queue):
    """Refused usage with its reason in the message attributes (`reason`, and `refused`: `event` or `message`) and
    the body as a producer would send it, so that a redrive (`aws sqs start-message-move-task`) sends it back
    through ingest once the cause is fixed (a meter added to the rate card, a wallet created). On a FIFO queue (the
    drawdown's) each letter is its own message group."""

    def send_refused(self, refused: Sequence[tuple[Any, str]]) -> Sent:
        """Events refused one by one: each as a message of its own holding just that event."""
        return self._send([(json.dumps(event, separators=(",", ":"), default=str), r, "event") for event, r in refused])

    def send_poison(self, messages: Sequence[tuple[str, str]]) -> Sent:
        """Messages refused whole: the body exactly as it came."""
        return self._send([(body, reason, "message") for body, reason in messages])

    def _send(self, letters: Sequence[tuple[str, str, str]]) -> Sent:
        fifo = self.url.endswith(".fifo")
        entries: list[dict[str, Any]] = []
        for body, reason, kind in letters:
            entry: dict[str, Any] = {
                "MessageBody": body,
                "MessageAttributes": message_attributes({"reason": reason[:256], "refused": kind}),
            }
            if fifo:
                digest = hashlib.sha256(body.encode()).hexdigest()
                entry |= {"MessageGroupId": "dead-letters", "MessageDeduplicationId": digest}
            entries.append(entry)
        return self.send(entries)
