"""Alerting: each event goes to the alert topic and the wallet's webhook (alerts only) and to every account-level
webhook endpoint that subscribed to its type, once per event id and channel, retried with exponential backoff, and
to the dead-letter queue with its reason after the last try.

Webhooks follow Standard Webhooks (signed by the `standardwebhooks` library): `webhook-id` is the event id (the
receiver's dedupe key), `webhook-timestamp` the attempt's time, `webhook-signature` `v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` keyed with that endpoint's own `whsec_` secret. Each wallet's secret is derived from the
deployment's webhook key and the customer id; each account endpoint has a secret of its own in Secrets Manager.

The queue message that carries an event is the unit of work. `AlertingService.handle` says what to do with it:
`done` (delete it) or `retry_in` (keep it, invisible that long). Attempts are counted per event and channel in the
delivery log, not per message, so duplicates of one event share one budget and one schedule.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from prepaid.application.changes import correlation_ids_in
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
from prepaid.domain.webhook_endpoints import WALLET_ENDPOINT, WebhookEndpoint
from prepaid.domain.webhook_urls import webhook_url_refusal

WEBHOOK = "webhook"  # the wallet's own webhook
TOPIC = "topic"
ENDPOINT = "endpoint"  # an account-level endpoint: channel `endpoint:<endpointId>`
NOT_COMMITTED = "not_committed"  # the dead letter's reason for an event no committed change stands for

# Request headers of a webhook (docs/webhooks.md): Standard Webhooks' three, and two for people reading logs.
ID_HEADER = "webhook-id"  # the event id: the receiver's dedupe key
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
ATTEMPT_HEADER = "Prepaid-Webhook-Attempt"
EVENT_TYPE_HEADER = "Prepaid-Event-Type"
USER_AGENT = "prepaid-credits-webhooks/2"
CLAIM_TRIES = 5
WALLET_SECRET_PURPOSE = b"wallet-webhook\n"


def endpoint_channel(endpoint_id: str) -> str:
    return f"{ENDPOINT}:{endpoint_id}"


def wallet_endpoint(customer_id: str) -> str:
    """The key a wallet's webhook deliveries are listed under."""
    return f"{WALLET_ENDPOINT}{customer_id}"


def wallet_webhook_secret(key: bytes, customer_id: str) -> str:
    """The wallet's own `whsec_` secret: HMAC-SHA256 of the customer id under the deployment's webhook key. One
    secret per customer without a Secrets Manager secret per wallet; the SaaS reads it with
    `GET /wallets/{customerId}/webhook/secret`, and a new deployment key gives every wallet a new one."""
    derived = hmac.new(key, WALLET_SECRET_PURPOSE + customer_id.encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(derived).decode()


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def webhook_request(
    event_id: str, detail_type: str, body: bytes, url: str, secret: str, sent_at: datetime, attempt: int
) -> WebhookRequest:
    """The signed POST for one attempt (signed at the time of the attempt, so a late retry is not stale)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
        SIGNATURE_HEADER: Webhook(secret).sign(event_id, sent_at, body),
        ATTEMPT_HEADER: str(attempt),
        EVENT_TYPE_HEADER: detail_type,
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


class EndpointDirectory(Protocol):
    def endpoints(self) -> list[WebhookEndpoint]:
        """Every account-level endpoint now (a consistent read: one just created gets the next event)."""
        ...

    def secret(self, endpoint_id: str) -> str:
        """The endpoint's `whsec_` secret."""
        ...


class DeliveryConflict(Exception):
    """The delivery record changed since it was read (another message of the same event got there first)."""


@dataclass(frozen=True)
class Addressed:
    """One event on one channel: what its delivery record keeps beside the state."""

    alert: Alert
    message: str  # the queue message's body as it came: a resend queues it again
    endpoint: str | None  # the key it is listed under: an endpoint id or `wallet:<customerId>`; None for the topic


class DeliveryLog(Protocol):
    def get(self, event_id: str, channel: str) -> Delivery | None: ...

    def save(self, delivery: Delivery, addressed: Addressed) -> None:
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
    correlation_id: str | None = None  # the first the event names, for the logs

    @property
    def done(self) -> bool:
        return self.retry_in is None


@dataclass(frozen=True)
class _Channel:
    """Where one alert goes on this pass: its channel name, how to send once, what to record it under."""

    name: str
    send: Callable[[Alert, int], SendResult]
    host: str | None = None  # a webhook's host, for the dead letter (never its path or query: they may hold tokens)
    endpoint: str | None = None


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
        endpoints: EndpointDirectory | None = None,
        allow_local_http: bool = False,
        committed: CommittedEvents | None = None,
        attempt_time: timedelta = timedelta(seconds=10),
    ) -> None:
        self._directory = directory
        self._log = log
        self._sender = sender
        self._topic = topic
        self._dead_letters = dead_letters
        self._secret = secret  # the deployment's webhook key, from which each wallet's secret is derived
        self._clock = clock
        self.backoff = backoff or Backoff()
        self._endpoints = endpoints
        self._allow_local_http = allow_local_http  # plain http to this machine: the local stack and tests only
        self._committed = committed  # when given, only events found in the outbox are sent
        self._attempt_time = attempt_time  # the most one channel's attempt takes (a webhook's deadline, and a margin)

    def handle(
        self,
        message_body: str,
        *,
        owner: str,
        lease: timedelta,
        only_channel: str | None = None,
        time_left: Callable[[], timedelta] | None = None,
    ) -> Outcome:
        """Deliver the event one queue message carries, on every channel that has not had it yet (only on
        `only_channel` when given: a resend of one delivery).

        `owner` is the message's id; `lease` how long an attempt may take before another message may take over
        (at least what is left of the invocation); `time_left` what is left of it: a channel is not started when
        one attempt might not fit (it is `deferred`, and the message comes back at once for it). A message that is
        not an event is dead-lettered at once.
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
        for channel in self._channels(alert, results):
            if only_channel is not None and channel.name != only_channel:
                continue
            if time_left is not None and time_left() < self._attempt_time:
                results[channel.name], waits = "deferred", [*waits, timedelta(0)]
                continue
            addressed = Addressed(alert, message_body, channel.endpoint)
            results[channel.name], wait = self._deliver(addressed, channel, owner, lease)
            waits += [wait] if wait is not None else []
        # Wait for the slowest channel: none is ever tried before its own backoff ran out.
        correlation = next(iter(correlation_ids_in(alert.detail)), None)
        return Outcome(max(waits) if waits else None, results, alert.event_id, correlation)

    def _channels(self, alert: Alert, results: dict[str, str]) -> list[_Channel]:
        """The channels `alert` goes to now: the topic and the wallet's webhook for an alert, and every endpoint
        that wants its type. What has none is noted in `results`."""
        channels: list[_Channel] = []
        if alert.is_alert and self._topic is not None:
            channels.append(_Channel(TOPIC, self._publish))
        if alert.is_alert:
            url = self._directory.webhook_url(alert.customer_id)
            if url is None:
                results[WEBHOOK] = "no_webhook_url"
            else:
                customer = alert.customer_id
                post = self._post_to(url, lambda: wallet_webhook_secret(self._secret(), customer))
                channels.append(_Channel(WEBHOOK, post, _host(url), wallet_endpoint(customer)))
        endpoints = self._endpoints
        for endpoint in endpoints.endpoints() if endpoints is not None else []:
            if endpoints is not None and endpoint.wants(alert.detail_type, alert.happened_at):
                post = self._post_to(endpoint.url, functools.partial(endpoints.secret, endpoint.endpoint_id))
                name = endpoint_channel(endpoint.endpoint_id)
                channels.append(_Channel(name, post, _host(endpoint.url), endpoint.endpoint_id))
        return channels

    def _is_committed(self, alert: Alert) -> bool:
        assert self._committed is not None
        found = committed(self._committed, alert.event_id, alert.detail_type, alert.customer_id, alert.detail)
        return found is not None

    def _publish(self, alert: Alert, attempt: int) -> SendResult:
        assert self._topic is not None
        return self._topic.publish(alert, alert_body(alert))

    def _post_to(self, url: str, secret: Callable[[], str]) -> Callable[[Alert, int], SendResult]:
        def post(alert: Alert, attempt: int) -> SendResult:
            # Checked again before each send: the stored URL is all that stands between the API's check and the
            # POST, and the rule may have tightened since the URL was set.
            refusal = webhook_url_refusal(url, allow_local_http=self._allow_local_http)
            if refusal:
                return SendResult(ok=False, reason="invalid_url", error=refusal, permanent=True)
            body = alert_body(alert)
            request = webhook_request(alert.event_id, alert.detail_type, body, url, secret(), self._clock(), attempt)
            return self._sender.post(request)

        return post

    def _deliver(
        self, addressed: Addressed, channel: _Channel, owner: str, lease: timedelta
    ) -> tuple[str, timedelta | None]:
        """One channel: claim the delivery, attempt, record how it went. Returns (what happened, wait or None)."""
        alert = addressed.alert
        attempt = self._claim(addressed, channel.name, owner, lease)
        if isinstance(attempt, Skip):
            return attempt.value, None
        if attempt is None:  # lost every race for the record: try the message again soon
            return "contended", timedelta(seconds=1)
        try:
            result = channel.send(alert, attempt.attempts)
        except Exception as error:  # a bug or an AWS outage: counted as a failed attempt, with its class
            result = SendResult(ok=False, reason="error", error=type(error).__name__)
        now = self._clock()
        if result.ok:
            self._record(delivered(attempt, now), addressed)
            return "delivered", None
        wait = None if result.permanent else self.backoff.wait_after(attempt.attempts)
        if wait is None:
            letter = DeadLetter(
                reason=result.reason,
                channel=channel.name,
                attempts=attempt.attempts,
                status=result.status,
                error=result.error,
                host=channel.host,
                event_id=alert.event_id,
                detail_type=alert.detail_type,
                customer_id=alert.customer_id,
            )
            self._dead_letters.send(addressed.message, letter)
            self._record(dead(attempt, result.describe(), now), addressed)
            return "dead_lettered", None
        self._record(failed(attempt, result.describe(), now + wait), addressed)
        return f"failed:{result.describe()}", wait

    def _claim(self, addressed: Addressed, channel: str, owner: str, lease: timedelta) -> Delivery | Skip | None:
        event_id = addressed.alert.event_id
        for _ in range(CLAIM_TRIES):
            current = self._log.get(event_id, channel)
            decision = claim(current, event_id=event_id, channel=channel, owner=owner, now=self._clock(), lease=lease)
            if isinstance(decision, Skip):
                return decision
            try:
                self._log.save(decision, addressed)
            except DeliveryConflict:
                continue
            return decision
        return None

    def _record(self, delivery: Delivery, addressed: Addressed) -> None:
        """Write the outcome of an attempt. Losing the race here means another message took the delivery over
        after our lease ran out; what we did still happened, and its record is the other message's to keep."""
        with contextlib.suppress(DeliveryConflict):
            self._log.save(delivery, addressed)


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]  # never the path or query: they may carry tokens
