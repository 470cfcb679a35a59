"""Taking every message off an SQS queue: what the local stack's taps and the tests' queue readers all do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def take_all(sqs: Any, url: str, *, with_attributes: bool = False) -> Iterator[dict[str, Any]]:
    """Each message on the queue until none is left; a message is deleted once the caller has handled it (the
    generator resumed), so one that fails its handling stays on the queue."""
    extra = {"MessageAttributeNames": ["All"]} if with_attributes else {}
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **extra).get("Messages", []):
        for message in messages:
            yield message
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
