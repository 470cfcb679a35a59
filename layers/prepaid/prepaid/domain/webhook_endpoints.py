"""Webhook endpoints: the account-level URLs that events go to besides each wallet's own, and which events each
one wants. Pure values and rules; the secrets live in Secrets Manager, never here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

ENDPOINT_ID_PATTERN = r"^ep_[0-9a-f]{32}$"
ENDPOINT_ID = re.compile(ENDPOINT_ID_PATTERN)
MAX_ENDPOINTS = 20  # per deployment: each is a Secrets Manager secret, and every event is offered to each
MAX_DESCRIPTION = 200  # characters
WALLET_ENDPOINT = "wallet:"  # the listing key of a wallet's own webhook: `wallet:<customerId>`


@dataclass(frozen=True)
class WebhookEndpoint:
    """An account-level endpoint. `event_types` None: every detail type. Created at `created_at`, it is offered
    only events that happened from then on (a retry of an older event does not reach a newer endpoint)."""

    endpoint_id: str
    url: str
    event_types: frozenset[str] | None
    description: str
    created_at: datetime
    disabled: bool = False
    version: int = 1

    def wants(self, detail_type: str, happened_at: datetime) -> bool:
        # an event's time is as EventBridge gives it, to the second: an event of the endpoint's own second counts
        return (
            not self.disabled
            and happened_at >= self.created_at.replace(microsecond=0)
            and (self.event_types is None or detail_type in self.event_types)
        )
