"""Whether an event read off the bus is one this system committed.

The bus is in the SaaS's account: a principal allowed `events:PutEvents` could put a made-up `Balance Low` (and buy
credits by auto-recharge) or a `Balance Depleted` carrying a phishing link (and have it signed and sent to the
customer's webhook). The bus policy lets only the publisher put `prepaid.credits` events; consumers still act only
on an event whose outbox record says the same: the record is written in the transaction that made the change, so
it exists for every event we published and for no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from prepaid.application.ports import StoredEvent


class CommittedEvents(Protocol):
    def committed_event(self, event_id: str) -> StoredEvent | None:
        """The outbox record of an event id, if this system committed one (a consistent read)."""
        ...


def committed(
    events: CommittedEvents, event_id: str, detail_type: str, customer_id: str, detail: Mapping[str, Any]
) -> StoredEvent | None:
    """The committed event that a bus event claims to be, if it is exactly that event (same type, customer and
    detail); None for anything else."""
    found = events.committed_event(event_id)
    if found is None or found.customer_id != customer_id or found.detail_type != detail_type:
        return None
    return found if found.detail == dict(detail) else None
