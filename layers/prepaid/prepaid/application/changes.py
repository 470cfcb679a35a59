"""From a domain outcome to the one transaction that commits it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from prepaid.application.ports import IdempotencyRecord, OutboxEvent, WalletChange
from prepaid.domain.rules import MAX_CORRELATION_IDS
from prepaid.domain.rules import correlation_ids as correlation_ids_of
from prepaid.domain.usage_hours import HourUsage
from prepaid.domain.wallet import Outcome, Wallet


def change_of(
    before: Wallet,
    outcome: Outcome,
    now: datetime,
    commit_id: str,
    *,
    idempotency: IdempotencyRecord | None = None,
    hours: tuple[HourUsage, ...] = (),
    correlation_ids: Sequence[str] = (),
) -> WalletChange:
    """The change that moves `before` to `outcome`: the next version, and events with ids stable for consumers.
    `correlation_ids`: the requests (or the event) the change answers; each event's detail names them, so one
    request can be followed to its events and webhooks."""
    followed = correlation_ids_of(correlation_ids)
    traced = {"correlationIds": list(followed)} if followed else {}
    events = tuple(
        OutboxEvent(f"{commit_id}-{i}", e.detail_type, {**e.detail, **traced, "eventId": f"{commit_id}-{i}"}, now)
        for i, e in enumerate(outcome.events)
    )
    wallet = dataclasses.replace(outcome.wallet, version=before.version + 1)
    return WalletChange(
        wallet=wallet,
        expected_version=before.version,
        commit_id=commit_id,
        at=now,
        ledger=outcome.ledger,
        events=events,
        idempotency=idempotency,
        retired=outcome.retired,
        usage=outcome.usage,
        hours=hours,
        noted=tuple(
            card
            for card in (*outcome.wallet.cards.values(), *outcome.retired)
            if card.metadata and card.card_id not in before.cards
        ),
    )


def correlation_ids_in(detail: Mapping[str, Any]) -> tuple[str, ...]:
    """The correlation ids an event's detail names (read as untrusted: anything but a list of ids names none)."""
    named = detail.get("correlationIds")
    if not isinstance(named, list) or len(named) > MAX_CORRELATION_IDS:
        return ()
    return correlation_ids_of(v for v in named if isinstance(v, str))


def items_written(change: WalletChange) -> int:
    """How many items the change's transaction writes (DynamoDB allows 100)."""
    return (
        1
        + len(change.ledger)
        + len(change.events)
        + len(change.retired)
        + len(change.usage)
        + len(change.hours)
        + len(change.noted)
        + (1 if change.idempotency else 0)
    )
