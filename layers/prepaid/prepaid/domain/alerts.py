"""Alerts: the balance and expiry events a wallet's webhook and the alert topic receive, and the rules that make
each event id delivered once per channel, retried with exponential backoff, and dead-lettered after the last try.

Pure: what arrives is an EventBridge envelope already parsed from JSON; what leaves are decisions and bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from prepaid.domain.errors import DomainError
from prepaid.domain.events import (
    AUTO_RECHARGE_PURCHASED,
    BALANCE_DEPLETED,
    BALANCE_LOW,
    BALANCE_RECOVERED,
    CREDITS_EXPIRED,
    CREDITS_EXPIRING_SOON,
    DETAIL_TYPES,
    OVERAGE_RECORDED,
    SOURCE,
)
from prepaid.domain.rules import CUSTOMER_ID

# The detail types that raise an alert: those the alert topic and each wallet's webhook get. Account-level webhook
# endpoints may subscribe to any detail type (the template's WebhookRule sends them all to the queue).
ALERT_DETAIL_TYPES = (
    BALANCE_LOW,
    BALANCE_DEPLETED,
    BALANCE_RECOVERED,
    OVERAGE_RECORDED,
    CREDITS_EXPIRING_SOON,
    CREDITS_EXPIRED,
    AUTO_RECHARGE_PURCHASED,
)
MAX_EVENT_ID = 128
# How long past a failed delivery's retry time its message may still come (the queue's visibility timeout, 270 s,
# and a busy queue): later, it is taken as lost and the delivery may be resent.
RETRY_GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class MalformedAlert(DomainError):
    """A message on the alert queue that is not an alert event (anyone allowed to send to the queue could)."""

    code: ClassVar[str] = "malformed_alert"
    field: str
    reason: str


@dataclass(frozen=True)
class Alert:
    """One event on its way to the alert topic and webhooks. `event_id` is the outbox event's id: stable across
    every redelivery."""

    event_id: str
    detail_type: str
    customer_id: str
    time: str  # when the event happened, as the envelope says (ISO 8601, UTC)
    detail: dict[str, Any]

    @property
    def is_alert(self) -> bool:
        """Whether the alert topic and the wallet's webhook get it (endpoints get what they subscribe to)."""
        return self.detail_type in ALERT_DETAIL_TYPES

    @property
    def happened_at(self) -> datetime:
        return datetime.fromisoformat(self.time)


def alert_from_envelope(envelope: Any) -> Alert:
    """The alert an EventBridge envelope (as EventBridge sends it to a queue) carries; `MalformedAlert` if none."""
    if not isinstance(envelope, dict):
        raise MalformedAlert(field="$", reason="not_an_object")
    if envelope.get("source") != SOURCE:
        raise MalformedAlert(field="source", reason="not_prepaid_credits")
    detail_type = envelope.get("detail-type")
    if detail_type not in DETAIL_TYPES:
        raise MalformedAlert(field="detail-type", reason="unknown_detail_type")
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedAlert(field="detail", reason="not_an_object")
    event_id = detail.get("eventId")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID or not event_id.isprintable():
        raise MalformedAlert(field="detail.eventId", reason="invalid")
    customer_id = detail.get("customerId")
    if not isinstance(customer_id, str) or not CUSTOMER_ID.fullmatch(customer_id):
        raise MalformedAlert(field="detail.customerId", reason="invalid")
    time = envelope.get("time")
    if not isinstance(time, str):
        raise MalformedAlert(field="time", reason="missing")
    try:
        happened_at = datetime.fromisoformat(time)
    except ValueError:
        raise MalformedAlert(field="time", reason="invalid") from None
    if happened_at.tzinfo is None:
        raise MalformedAlert(field="time", reason="invalid")
    return Alert(event_id=event_id, detail_type=detail_type, customer_id=customer_id, time=time, detail=detail)


def alert_body(alert: Alert) -> bytes:
    """What a webhook POSTs (and the topic publishes): the same bytes for every delivery of one event.

    `id` is the dedupe key. EventBridge's own envelope `id` is left out on purpose: a republished event gets a new
    one, so it would make the same event look new.
    """
    payload = {
        "id": alert.event_id,
        "type": alert.detail_type,
        "source": SOURCE,
        "time": alert.time,
        "customerId": alert.customer_id,
        "detail": alert.detail,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


# -- retries ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Attempts per event and channel, and the wait after each failed one: `base`, doubling, at most `cap`."""

    max_attempts: int = 10
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base < timedelta(0) or self.cap < self.base:
            raise ValueError("max_attempts >= 1 and 0 <= base <= cap")

    def wait_after(self, attempt: int) -> timedelta | None:
        """How long to wait after failed attempt `attempt` (1-based); None when it was the last one."""
        if attempt >= self.max_attempts:
            return None
        wait: timedelta = self.base * 2 ** (attempt - 1)
        return min(self.cap, wait)

    def schedule(self) -> list[timedelta]:
        """Every wait, in order (`max_attempts - 1` of them)."""
        return [w for n in range(1, self.max_attempts) if (w := self.wait_after(n)) is not None]


# -- one delivery per event id and channel ------------------------------------------------------------------------


class DeliveryState(StrEnum):
    SENDING = "sending"  # an attempt is in flight (until `lease_until`)
    FAILED = "failed"  # the last attempt failed; the owner retries at `lease_until`
    DELIVERED = "delivered"
    DEAD = "dead"  # the last attempt failed: the owner sent the alert to the dead-letter queue
    QUEUED = "queued"  # resent (the API): a new round starts when the message it queued arrives


@dataclass(frozen=True)
class Delivery:
    """What is known of delivering one event on one channel (webhook, topic).

    `owner` is the queue message carrying the current round of attempts: duplicates of the same event (other
    messages) leave the delivery to it while its lease runs, so they never start a second round of attempts.
    `version` orders writes (each one is conditional on the version read).
    """

    event_id: str
    channel: str
    state: DeliveryState
    owner: str
    attempts: int  # in the current round
    lease_until: datetime
    version: int = 1
    last_failure: str | None = None
    since: datetime | None = None  # when the first round began (kept through every later write)


class Skip(StrEnum):
    """Why a message does nothing for a channel, and is done with it."""

    DELIVERED = "already_delivered"
    IN_FLIGHT = "owned_by_another_message"  # a duplicate: the owner's message is still being tried
    DEAD_LETTERED = "already_dead_lettered"  # this very message already sent it to the dead-letter queue


def claim(
    current: Delivery | None, *, event_id: str, channel: str, owner: str, now: datetime, lease: timedelta
) -> Delivery | Skip:
    """The delivery to write before attempting (the caller writes it conditionally on `current`'s version), or why
    this message should not attempt at all.

    - nothing yet → attempt 1, owned by this message;
    - delivered → skip (a duplicate);
    - owned by this message (a retry, or a crash mid-attempt) → next attempt;
    - owned by another message whose lease still runs → skip: that message retries it;
    - owned by another message whose lease ran out (its message lost, or far behind) → take it over, same round;
    - dead-lettered by another message (a redrive, or a duplicate arriving after the last try), or queued again
      (a resend) → a new round; dead-lettered by this message → skip (a crash after dead-lettering, before the
      message was deleted).
    """
    until = now + lease
    if current is None:
        return Delivery(event_id, channel, DeliveryState.SENDING, owner, 1, until, since=now)
    if current.state is DeliveryState.DELIVERED:
        return Skip.DELIVERED
    if current.state in (DeliveryState.DEAD, DeliveryState.QUEUED):
        if current.owner == owner:
            return Skip.DEAD_LETTERED
        return replace(
            current,
            state=DeliveryState.SENDING,
            owner=owner,
            attempts=1,
            lease_until=until,
            version=current.version + 1,
        )
    if current.owner != owner and current.lease_until > now:
        return Skip.IN_FLIGHT
    return replace(
        current,
        state=DeliveryState.SENDING,
        owner=owner,
        attempts=current.attempts + 1,
        lease_until=until,
        version=current.version + 1,
    )


def delivered(delivery: Delivery, now: datetime) -> Delivery:
    return replace(delivery, state=DeliveryState.DELIVERED, lease_until=now, version=delivery.version + 1)


def failed(delivery: Delivery, reason: str, retry_at: datetime) -> Delivery:
    return replace(
        delivery, state=DeliveryState.FAILED, lease_until=retry_at, last_failure=reason, version=delivery.version + 1
    )


def queued(delivery: Delivery, owner: str, until: datetime) -> Delivery:
    """A delivery sent again (a resend): a new round for the message `owner` names, expected before `until`."""
    return replace(
        delivery, state=DeliveryState.QUEUED, owner=owner, attempts=0, lease_until=until, version=delivery.version + 1
    )


def in_progress(delivery: Delivery, now: datetime) -> bool:
    """Whether a round of attempts is under way: an attempt in flight, a retry to come, or a resend not yet
    picked up. One whose message never came (lost after its receives ran out) may be resent once its lease, or its
    retry's time and `RETRY_GRACE`, ran out."""
    if delivery.state is DeliveryState.FAILED:  # its retry is due at lease_until; a retry lost for good is not
        return delivery.lease_until + RETRY_GRACE > now
    return delivery.state in (DeliveryState.SENDING, DeliveryState.QUEUED) and delivery.lease_until > now


def dead(delivery: Delivery, reason: str, now: datetime) -> Delivery:
    return replace(
        delivery, state=DeliveryState.DEAD, lease_until=now, last_failure=reason, version=delivery.version + 1
    )
