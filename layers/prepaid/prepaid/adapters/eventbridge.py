"""Publishing outbox events to the EventBridge bus."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from prepaid.application.ports import StoredEvent
from prepaid.domain.events import SOURCE

if TYPE_CHECKING:
    from types_boto3_events import EventBridgeClient


class PublishFailed(Exception):
    def __init__(self, event_id: str, code: str) -> None:
        super().__init__(f"{event_id}: {code}")
        self.event_id = event_id
        self.code = code


class EventBridgePublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, event: StoredEvent) -> None:
        """Put one event on the bus; its detail carries `eventId` for consumers to dedupe."""
        response = self._client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": json.dumps(event.detail, separators=(",", ":")),
                    "EventBusName": self._bus,
                    "Time": event.occurred_at,
                    "Resources": [],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise PublishFailed(event.event_id, entry.get("ErrorCode", "unknown"))
