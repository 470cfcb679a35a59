"""Alerting: each alert event goes to the wallet's webhook (signed) and to the alert topic, once per event id and
channel, retried with exponential backoff, and to the dead-letter queue with its reason after the last try.

The queue message that carries an event is the unit of work. `AlertingService.handle` says what to do with it:
`done` (delete it) or `retry_in` (keep it, invisible that long). Attempts are counted per event and channel in the
delivery log, not per message, so duplicates of one event share one budget and one schedule.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from prepaid.application.ports import Clock
from prepaid.application.provenance import CommittedEvents, committed
from prepaid.domain.alerts import (
    Alert,
    Backoff,
    Delivery,
    MalformedAlert,
    Skip,
    alert_body,
    alert_from_envelope,
    claim,
    dead,
    delivered,
    failed,
)
from prepaid.domain.webhook_urls import webhook_url_refusal

WEBHOOK = "webhook"
TOPIC = "topic"
NOT_COMMITTED = "not_committed"  # the dead letter's reason for an event no committed change stands for

# Request headers of a webhook (docs/webhooks.md).
ID_HEADER = "Prepaid-Webhook-Id"  # the event id: the receiver's dedupe key
TIMESTAMP_HEADER = "Prepaid-Webhook-Timestamp"
ATTEMPT_HEADER = "Prepaid-Webhook-Attempt"
EVENT_TYPE_HEADER = "Prepaid-Event-Type"
SIGNATURE_HEADER = "Prepaid-Signature"
USER_AGENT = "prepaid-credits-webhooks/1"
CLAIM_TRIES = 5


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp is signed with the body, so a
    receiver that refuses old timestamps also refuses a replayed request."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def webhook_request(alert: Alert, url: str, secret: bytes, now: datetime, attempt: int) -> WebhookRequest:
    """The signed POST for one attempt (signed at the time of the attempt, so a late retry is not stale)."""
    body = alert_body(alert)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: alert.event_id,
        TIMESTAMP_HEADER: str(timestamp),
        ATTEMPT_HEADER: str(attempt),
        EVENT_TYPE_HEADER: alert.detail_type,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
    return WebhookRequest(url, headers, body)


# -- ports ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """How one attempt went. `reason`: `http_status` (a non-2xx answer, `status` set), `timeout`,
    `connection_error`, `invalid_url` (`error`: the reason code of prepaid.domain.webhook_urls), `publish_failed`,
    `error` (anything else; `error` names its class). `permanent` failures are not retried."""

    ok: bool
    reason: str = ""
    status: int | None = None
    error: str | None = None
    permanent: bool = False

    @classmethod
    def success(cls, status: int | None = None) -> SendResult:
        return cls(ok=True, status=status)

    def describe(self) -> str:
        return ":".join(str(p) for p in (self.reason, self.status, self.error) if p not in (None, ""))


class WebhookSender(Protocol):
    def post(self, request: WebhookRequest) -> SendResult:
        """POST once with a short timeout; never raises for what the receiver does (down, slow, 500)."""
        ...


class AlertTopic(Protocol):
    def publish(self, alert: Alert, body: bytes) -> SendResult: ...


class WebhookDirectory(Protocol):
    def webhook_url(self, customer_id: str) -> str | None:
        """The wallet's webhook URL now (None: no wallet, or no webhook)."""
        ...


class DeliveryConflict(Exception):
    """The delivery record changed since it was read (another message of the same event got there first)."""


class DeliveryLog(Protocol):
    def get(self, event_id: str, channel: str) -> Delivery | None: ...

    def save(self, delivery: Delivery, alert: Alert) -> None:
        """Write `delivery` if the stored one has `delivery.version - 1` (absent for version 1), else raise
        `DeliveryConflict`."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    """Why an alert was given up on, for the dead-letter queue. Never holds the secret or the webhook's path."""

    reason: str
    channel: str | None = None
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    host: str | None = None
    event_id: str | None = None
    detail_type: str | None = None
    customer_id: str | None = None


class AlertDeadLetters(Protocol):
    def send(self, message_body: str, letter: DeadLetter) -> None:
        """Send the original message body unchanged (so it can be redriven) with the reason beside it."""
        ...


# -- the use case --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What to do with the queue message: delete it (`retry_in` None), or leave it invisible for `retry_in`."""

    retry_in: timedelta | None
    results: dict[str, str]  # channel -> what happened, for logs and tests
    event_id: str | None = None

    @property
    def done(self) -> bool:
        return self.retry_in is None


class AlertingService:
    def __init__(
        self,
        directory: WebhookDirectory,
        log: DeliveryLog,
        sender: WebhookSender,
        topic: AlertTopic | None,
        dead_letters: AlertDeadLetters,
        secret: Callable[[], bytes],
        clock: Clock,
        backoff: Backoff | None = None,
        *,
        allow_local_http: bool = False,
        committed: CommittedEvents | None = None,
    ) -> None:
        self._directory = directory
        self._log = log
        self._sender = sender
        self._topic = topic
        self._dead_letters = dead_letters
        self._secret = secret
        self._clock = clock
        self.backoff = backoff or Backoff()
        self._allow_local_http = allow_local_http  # plain http to this machine: the local stack and tests only
        self._committed = committed  # when given, only events found in the outbox are sent

    def handle(self, message_body: str, *, owner: str, lease: timedelta) -> Outcome:
        """Deliver the alert one queue message carries, on every channel that has not had it yet.

        `owner` is the message's id; `lease` how long an attempt may take before another message may take over
        (at least what is left of the invocation). A message that is not an alert is dead-lettered at once.
        """
        try:
            alert = alert_from_envelope(json.loads(message_body))
        except (ValueError, MalformedAlert) as error:
            why = f"{error.field}:{error.reason}" if isinstance(error, MalformedAlert) else "$:not_json"
            self._dead_letters.send(message_body, DeadLetter(reason=MalformedAlert.code, error=why))
            return Outcome(None, {"message": "dead_lettered"})
        if self._committed is not None and not self._is_committed(alert):
            # a forged or altered event (anyone able to put events on the bus or messages on the queue): never
            # signed, never sent; kept with the reason for whoever investigates
            letter = DeadLetter(reason=NOT_COMMITTED, event_id=alert.event_id, detail_type=alert.detail_type)
            self._dead_letters.send(message_body, letter)
            return Outcome(None, {"message": "dead_lettered"}, alert.event_id)
        results: dict[str, str] = {}
        waits: list[timedelta] = []
        if self._topic is not None:
            results[TOPIC], wait = self._deliver(alert, TOPIC, message_body, owner, lease, self._publish, None)
            waits += [wait] if wait is not None else []
        url = self._directory.webhook_url(alert.customer_id)
        if url is None:
            results[WEBHOOK] = "no_webhook_url"
        else:
            host = urlsplit(url).netloc.rpartition("@")[2]  # never the path or query: they may carry tokens
            post = self._post_to(url)
            results[WEBHOOK], wait = self._deliver(alert, WEBHOOK, message_body, owner, lease, post, host)
            waits += [wait] if wait is not None else []
        # Wait for the slowest channel: none is ever tried before its own backoff ran out.
        return Outcome(max(waits) if waits else None, results, alert.event_id)

    def _is_committed(self, alert: Alert) -> bool:
        assert self._committed is not None
        found = committed(self._committed, alert.event_id, alert.detail_type, alert.customer_id, alert.detail)
        return found is not None

    def _publish(self, alert: Alert, attempt: int) -> SendResult:
        assert self._topic is not None
        return self._topic.publish(alert, alert_body(alert))

    def _post_to(self, url: str) -> Callable[[Alert, int], SendResult]:
        def post(alert: Alert, attempt: int) -> SendResult:
            # Checked again before each send: the wallet item is all that stands between the API's check and the
            # POST, and the rule may have tightened since the URL was set.
            refusal = webhook_url_refusal(url, allow_local_http=self._allow_local_http)
            if refusal:
                return SendResult(ok=False, reason="invalid_url", error=refusal, permanent=True)
            return self._sender.post(webhook_request(alert, url, self._secret(), self._clock(), attempt))

        return post

    def _deliver(
        self,
        alert: Alert,
        channel: str,
        message_body: str,
        owner: str,
        lease: timedelta,
        send: Callable[[Alert, int], SendResult],
        host: str | None,
    ) -> tuple[str, timedelta | None]:
        """One channel: claim the delivery, attempt, record how it went. Returns (what happened, wait or None)."""
        attempt = self._claim(alert, channel, owner, lease)
        if isinstance(attempt, Skip):
            return attempt.value, None
        if attempt is None:  # lost every race for the record: try the message again soon
            return "contended", timedelta(seconds=1)
        try:
            result = send(alert, attempt.attempts)
        except Exception as error:  # a bug or an AWS outage: counted as a failed attempt, with its class
            result = SendResult(ok=False, reason="error", error=type(error).__name__)
        now = self._clock()
        if result.ok:
            self._record(delivered(attempt, now), alert)
            return "delivered", None
        wait = None if result.permanent else self.backoff.wait_after(attempt.attempts)
        if wait is None:
            letter = DeadLetter(
                reason=result.reason,
                channel=channel,
                attempts=attempt.attempts,
                status=result.status,
                error=result.error,
                host=host,
                event_id=alert.event_id,
                detail_type=alert.detail_type,
                customer_id=alert.customer_id,
            )
            self._dead_letters.send(message_body, letter)
            self._record(dead(attempt, result.describe(), now), alert)
            return "dead_lettered", None
        self._record(failed(attempt, result.describe(), now + wait), alert)
        return f"failed:{result.describe()}", wait

    def _claim(self, alert: Alert, channel: str, owner: str, lease: timedelta) -> Delivery | Skip | None:
        for _ in range(CLAIM_TRIES):
            current = self._log.get(alert.event_id, channel)
            decision = claim(
                current, event_id=alert.event_id, channel=channel, owner=owner, now=self._clock(), lease=lease
            )
            if isinstance(decision, Skip):
                return decision
            try:
                self._log.save(decision, alert)
            except DeliveryConflict:
                continue
            return decision
        return None

    def _record(self, delivery: Delivery, alert: Alert) -> None:
        """Write the outcome of an attempt. Losing the race here means another message took the delivery over
        after our lease ran out; what we did still happened, and its record is the other message's to keep."""
        with contextlib.suppress(DeliveryConflict):
            self._log.save(delivery, alert)
