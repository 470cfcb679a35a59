"""A tap on the event bus: a rule that sends every `prepaid.credits` event to a queue, read back in order."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from prepaid_local.queue_messages import take_all

SOURCE_PATTERN = json.dumps({"source": ["prepaid.credits"]})


class BusTap:
    """Every event put on the bus, as a subscriber receives it (the full EventBridge envelope)."""

    def __init__(self, clients: Callable[[str], Any], bus_name: str, name: str = "local-bus-tap") -> None:
        self._sqs = clients("sqs")
        events = clients("events")
        self.url: str = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventBusName=bus_name, EventPattern=SOURCE_PATTERN)
        events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": name, "Arn": arn}])
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def drain(self) -> list[dict[str, Any]]:
        """Read what arrived since the last call; return every event seen so far, oldest first."""
        with self._lock:
            self.seen.extend(json.loads(message["Body"]) for message in take_all(self._sqs, self.url))
            return list(self.seen)

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [e for e in self.drain() if e["detail-type"] == detail_type]
