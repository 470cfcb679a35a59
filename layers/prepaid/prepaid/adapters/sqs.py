"""SQS: the usage queue, the FIFO drawdown queue, and the dead-letter queue that says why."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

MAX_MESSAGE_BYTES = 200 * 1024  # SQS takes 256 KiB; headroom for attributes
MAX_EVENTS_PER_MESSAGE = 100
BATCH = 10  # SendMessageBatch entries


def message_attributes(fields: Mapping[str, str | int | None]) -> dict[str, Any]:
    """SQS message attributes for the fields that have a value (whole numbers as Number, the rest as String)."""
    return {
        name: {"DataType": "Number" if isinstance(value, int) else "String", "StringValue": str(value)}
        for name, value in fields.items()
        if value not in (None, "")
    }


class QueueUnavailable(Exception):
    def __init__(self, queue_url: str, failed: int) -> None:
        super().__init__(f"{failed} message(s) not accepted by {queue_url}")
        self.failed = failed


def pack(events: Sequence[dict[str, Any]]) -> list[str]:
    """Message bodies `{"events": [...]}` of at most 100 events and 200 KiB each."""
    bodies: list[str] = []
    current: list[str] = []
    size = 0
    for event in events:
        text = json.dumps(event, separators=(",", ":"))
        if current and (len(current) == MAX_EVENTS_PER_MESSAGE or size + len(text) + 16 > MAX_MESSAGE_BYTES):
            bodies.append('{"events":[' + ",".join(current) + "]}")
            current, size = [], 0
        current.append(text)
        size += len(text) + 1
    if current:
        bodies.append('{"events":[' + ",".join(current) + "]}")
    return bodies


class Queue:
    """One queue; sends in batches of ten and raises if any message is not accepted."""

    def __init__(self, client: SQSClient, url: str) -> None:
        self._client = client
        self.url = url

    def send(self, entries: Sequence[dict[str, Any]]) -> int:
        """Send entries (`MessageBody` and optional attributes); return the number of SQS requests made."""
        requests = 0
        for start in range(0, len(entries), BATCH):
            chunk = [{"Id": str(i), **e} for i, e in enumerate(entries[start : start + BATCH])]
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=chunk)  # type: ignore[arg-type]
            requests += 1
            failed = response.get("Failed", [])
            if failed:
                retry = [chunk[int(f["Id"])] for f in failed if not f.get("SenderFault")]
                if len(retry) < len(failed):
                    raise QueueUnavailable(self.url, len(failed))
                again = self._client.send_message_batch(QueueUrl=self.url, Entries=retry)  # type: ignore[arg-type]
                requests += 1
                if again.get("Failed"):
                    raise QueueUnavailable(self.url, len(again["Failed"]))
        return requests


class UsageQueue(Queue):
    def send_events(self, events: Sequence[dict[str, Any]]) -> int:
        return self.send([{"MessageBody": body} for body in pack(events)])


class DrawdownQueue(Queue):
    """FIFO, grouped by customer: one wallet is never drawn by two batches at once."""

    def send_rated(self, bodies: Sequence[tuple[str, dict[str, Any]]]) -> int:
        entries = []
        for customer_id, body in bodies:
            text = json.dumps(body, separators=(",", ":"), sort_keys=True)
            entries.append(
                {
                    "MessageBody": text,
                    "MessageGroupId": customer_id,
                    # The same message sent again (a retried ingest batch) is dropped by SQS within 5 minutes;
                    # after that, drawdown's event records still make the replay a no-op. The hash covers the
                    # whole content, so a replay with other content (a conflict to report) is never dropped.
                    "MessageDeduplicationId": hashlib.sha256(text.encode()).hexdigest(),
                }
            )
        return self.send(entries)


class DeadLetters(Queue):
    """Refused usage with its reason in the message attributes (`reason`, and `refused`: `event` or `message`) and
    the body as a producer would send it, so that a redrive (`aws sqs start-message-move-task`) sends it back
    through ingest once the cause is fixed (a meter added to the rate card, a wallet created)."""

    def send_refused(self, refused: Sequence[tuple[Any, str]]) -> int:
        """Events refused one by one: each as a message of its own holding just that event."""
        return self._send([(json.dumps(event, separators=(",", ":"), default=str), r, "event") for event, r in refused])

    def send_poison(self, messages: Sequence[tuple[str, str]]) -> int:
        """Messages refused whole: the body exactly as it came."""
        return self._send([(body, reason, "message") for body, reason in messages])

    def _send(self, letters: Sequence[tuple[str, str, str]]) -> int:
        return self.send(
            [
                {"MessageBody": body, "MessageAttributes": message_attributes({"reason": reason, "refused": kind})}
                for body, reason, kind in letters
            ]
        )
