"""Alerting rules without AWS: the envelope, the backoff, the delivery state machine, and the use case over fakes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from prepaid.application.webhooks import (
    TOPIC,
    WEBHOOK,
    Addressed,
    AlertingService,
    DeadLetter,
    DeliveryConflict,
    SendResult,
    WebhookRequest,
    endpoint_channel,
    wallet_webhook_secret,
)
from prepaid.domain.alerts import (
    RETRY_GRACE,
    Alert,
    Backoff,
    Delivery,
    DeliveryState,
    MalformedAlert,
    Skip,
    alert_body,
    alert_from_envelope,
    claim,
    in_progress,
    queued,
)
from prepaid.domain.webhook_endpoints import WebhookEndpoint

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
URL = "https://hooks.example.com/credits?token=t0ken"
SECRET = b"k" * 64


def envelope(event_id: str = "ev-1", detail_type: str = "Balance Low", customer: str = "acme") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "eventbridge-id-changes-on-republish",
        "detail-type": detail_type,
        "source": "prepaid.credits",
        "time": "2026-11-24T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"customerId": customer, "eventId": event_id, "balance": "40", "threshold": "50"},
    }


# -- the envelope and the body -------------------------------------------------------------------------------------


def test_an_alert_is_read_from_its_envelope_and_its_body_ignores_the_envelope_id() -> None:
    # Given the same event in two envelopes (republished: a new EventBridge id)
    first, again = envelope(), {**envelope(), "id": "another-id"}
    # When each is read and turned into a webhook body
    bodies = {alert_body(alert_from_envelope(e)) for e in (first, again)}
    # Then both give the same bytes, keyed by the event id
    (body,) = bodies
    assert json.loads(body) == {
        "id": "ev-1",
        "type": "Balance Low",
        "source": "prepaid.credits",
        "time": "2026-11-24T12:00:00Z",
        "customerId": "acme",
        "detail": first["detail"],
    }


@pytest.mark.parametrize(
    ("broken", "field", "reason"),
    [
        ([], "$", "not_an_object"),
        ({**envelope(), "source": "aws.events"}, "source", "not_prepaid_credits"),
        (envelope(detail_type="Credits Bought"), "detail-type", "unknown_detail_type"),
        ({**envelope(), "detail": "text"}, "detail", "not_an_object"),
        (envelope(event_id=""), "detail.eventId", "invalid"),
        (envelope(event_id="x" * 129), "detail.eventId", "invalid"),
        (envelope(customer="no spaces"), "detail.customerId", "invalid"),
        ({k: v for k, v in envelope().items() if k != "time"}, "time", "missing"),
        ({**envelope(), "time": "yesterday"}, "time", "invalid"),
        ({**envelope(), "time": "2026-11-24T12:00:00"}, "time", "invalid"),
    ],
)
def test_what_is_not_an_alert_is_refused_with_the_field_and_reason(broken: Any, field: str, reason: str) -> None:
    # When something that is not an alert envelope is read
    with pytest.raises(MalformedAlert) as refused:
        alert_from_envelope(broken)
    # Then the error says which field and why, as fields
    assert (refused.value.field, refused.value.reason) == (field, reason)


# -- backoff -------------------------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap_and_stops_at_the_budget() -> None:
    backoff = Backoff(max_attempts=6, base=timedelta(seconds=10), cap=timedelta(seconds=60))
    assert [backoff.wait_after(n) for n in range(1, 7)] == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=40),
        timedelta(seconds=60),
        timedelta(seconds=60),
        None,
    ]
    assert Backoff(max_attempts=1).schedule() == []
    with pytest.raises(ValueError):
        Backoff(max_attempts=0)


# -- who attempts --------------------------------------------------------------------------------------------------


def record(state: DeliveryState, owner: str = "m1", attempts: int = 1, lease_until: datetime = T0) -> Delivery:
    return Delivery("ev-1", WEBHOOK, state, owner, attempts, lease_until, version=3)


def attempt_of(decision: Delivery | Skip) -> tuple[str, int, int]:
    assert isinstance(decision, Delivery), decision
    assert decision.state is DeliveryState.SENDING
    return decision.owner, decision.attempts, decision.version


@pytest.mark.parametrize(
    ("current", "owner", "expected"),
    [
        (None, "m1", ("m1", 1, 1)),
        (record(DeliveryState.DELIVERED), "m1", Skip.DELIVERED),
        (record(DeliveryState.DELIVERED), "m2", Skip.DELIVERED),
        # the owner's retry (its backoff set its visibility), or its own crash mid-attempt
        (record(DeliveryState.FAILED, attempts=3, lease_until=T0 + LEASE), "m1", ("m1", 4, 4)),
        (record(DeliveryState.SENDING, attempts=2, lease_until=T0 + LEASE), "m1", ("m1", 3, 4)),
        # a duplicate while the owner is trying or waiting to retry
        (record(DeliveryState.SENDING, lease_until=T0 + LEASE), "m2", Skip.IN_FLIGHT),
        (record(DeliveryState.FAILED, lease_until=T0 + LEASE), "m2", Skip.IN_FLIGHT),
        # a duplicate once the owner's lease ran out: takes over, same round
        (record(DeliveryState.FAILED, attempts=5, lease_until=T0 - LEASE), "m2", ("m2", 6, 4)),
        # dead-lettered: by this message (crashed before deletion) → nothing; by another (a redrive) → new round
        (record(DeliveryState.DEAD, attempts=10), "m1", Skip.DEAD_LETTERED),
        (record(DeliveryState.DEAD, attempts=10), "redriven", ("redriven", 1, 4)),
    ],
)
def test_claim_decides_who_attempts(current: Delivery | None, owner: str, expected: Any) -> None:
    decision = claim(current, event_id="ev-1", channel=WEBHOOK, owner=owner, now=T0, lease=LEASE)
    assert (decision if isinstance(decision, Skip) else attempt_of(decision)) == expected


# -- signing and URLs ----------------------------------------------------------------------------------------------


def test_a_webhook_verifies_with_the_standardwebhooks_library_and_its_own_secret_only() -> None:
    # Given a delivered alert, signed with the wallet's own secret
    world = World()
    world.service().handle(json.dumps(envelope()), owner="m-1", lease=LEASE)
    request = world.sender.sent[0]
    mine = wallet_webhook_secret(SECRET, "acme")
    # When a receiver verifies it with the library (its timestamp check against this test's clock)
    headers = request.headers
    # Then it verifies with the wallet's secret, as Standard Webhooks says: v1,<base64 HMAC of "id.timestamp.body">
    body = (headers["webhook-id"] + "." + headers["webhook-timestamp"] + ".").encode() + request.body
    mac = base64.b64encode(hmac.new(base64.b64decode(mine.removeprefix("whsec_")), body, hashlib.sha256).digest())
    assert headers["webhook-signature"] == "v1," + mac.decode()
    assert headers["webhook-id"] == envelope()["detail"]["eventId"]
    assert headers["webhook-timestamp"] == str(int(T0.timestamp()))
    with time_machine.travel(T0, tick=False):
        assert Webhook(mine).verify(request.body, headers)["id"] == headers["webhook-id"]
        # And not with another wallet's secret, nor with the deployment's key itself
        for other in (wallet_webhook_secret(SECRET, "acme2"), "whsec_" + base64.b64encode(SECRET).decode()):
            with pytest.raises(WebhookVerificationError):
                Webhook(other).verify(request.body, headers)
        # And not once the body is changed
        with pytest.raises(WebhookVerificationError):
            Webhook(mine).verify(request.body + b" ", headers)


# -- the use case over fakes ---------------------------------------------------------------------------------------


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class MemoryLog:
    items: dict[tuple[str, str], Delivery] = field(default_factory=dict)

    def get(self, event_id: str, channel: str) -> Delivery | None:
        return self.items.get((event_id, channel))

    def save(self, delivery: Delivery, addressed: Addressed) -> None:
        key = (delivery.event_id, delivery.channel)
        stored = self.items.get(key)
        if (stored.version if stored else 0) != delivery.version - 1:
            raise DeliveryConflict(delivery.event_id)
        self.items[key] = delivery


@dataclass
class Sender:
    answers: list[SendResult] = field(default_factory=list)
    sent: list[WebhookRequest] = field(default_factory=list)

    def post(self, request: WebhookRequest) -> SendResult:
        self.sent.append(request)
        return self.answers.pop(0) if self.answers else SendResult.success(200)


@dataclass
class Topic:
    answers: list[SendResult] = field(default_factory=list)
    published: list[str] = field(default_factory=list)

    def publish(self, alert: Alert, body: bytes) -> SendResult:
        self.published.append(alert.event_id)
        return self.answers.pop(0) if self.answers else SendResult.success()


@dataclass
class Letters:
    sent: list[tuple[str, DeadLetter]] = field(default_factory=list)

    def send(self, message_body: str, letter: DeadLetter) -> None:
        self.sent.append((message_body, letter))


@dataclass
class Directory:
    urls: dict[str, str]

    def webhook_url(self, customer_id: str) -> str | None:
        return self.urls.get(customer_id)


@dataclass
class Endpoints:
    """Account-level endpoints and their secrets, as the alerting function reads them."""

    listed: list[WebhookEndpoint] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)

    def add(self, endpoint_id: str, url: str, types: frozenset[str] | None, **changes: Any) -> str:
        self.listed.append(WebhookEndpoint(endpoint_id, url, types, "", changes.pop("created_at", T0), **changes))
        self.secrets[endpoint_id] = "whsec_" + base64.b64encode(endpoint_id.encode() * 2).decode()
        return self.secrets[endpoint_id]

    def endpoints(self) -> list[WebhookEndpoint]:
        return list(self.listed)

    def secret(self, endpoint_id: str) -> str:
        return self.secrets[endpoint_id]


@dataclass
class World:
    clock: Clock = field(default_factory=Clock)
    log: MemoryLog = field(default_factory=MemoryLog)
    sender: Sender = field(default_factory=Sender)
    topic: Topic = field(default_factory=Topic)
    letters: Letters = field(default_factory=Letters)
    urls: dict[str, str] = field(default_factory=lambda: {"acme": URL})
    backoff: Backoff = field(default_factory=lambda: Backoff(max_attempts=3))
    endpoints: Endpoints = field(default_factory=Endpoints)

    def service(self) -> AlertingService:
        return AlertingService(
            Directory(self.urls),
            self.log,
            self.sender,
            self.topic,
            self.letters,
            lambda: SECRET,
            self.clock,
            self.backoff,
            endpoints=self.endpoints,
        )


MESSAGE = json.dumps(envelope())


def test_duplicates_while_the_owner_retries_are_done_without_sending() -> None:
    # Given a receiver that fails the first attempt
    world = World(sender=Sender([SendResult(ok=False, reason="http_status", status=500)]))
    service = world.service()
    # When the event's message fails, and two duplicates come before its retry
    first = service.handle(MESSAGE, owner="m1", lease=LEASE)
    duplicates = [service.handle(MESSAGE, owner=m, lease=LEASE) for m in ("m2", "m3")]
    # Then the first waits its backoff; the duplicates are done, having sent nothing
    assert first.retry_in == timedelta(seconds=30)
    assert first.results[WEBHOOK] == "failed:http_status:500"
    assert [d.retry_in for d in duplicates] == [None, None]
    assert [d.results[WEBHOOK] for d in duplicates] == [Skip.IN_FLIGHT.value] * 2
    assert len(world.sender.sent) == 1
    # When the owner retries at its time
    world.clock.now += timedelta(seconds=30)
    retried = service.handle(MESSAGE, owner="m1", lease=LEASE)
    # Then attempt 2 is delivered, and the topic was published once in all
    assert (retried.retry_in, retried.results[WEBHOOK]) == (None, "delivered")
    assert [r.headers["Prepaid-Webhook-Attempt"] for r in world.sender.sent] == ["1", "2"]
    assert world.topic.published == ["ev-1"]


def test_the_last_failed_attempt_dead_letters_with_host_only_and_a_redrive_starts_again() -> None:
    # Given a receiver that times out every time, and a budget of 3 attempts
    timeout = SendResult(ok=False, reason="timeout", error="TimeoutError")
    world = World(sender=Sender([timeout] * 3))
    service = world.service()
    # When the message is tried until the budget is spent
    waits = []
    for _ in range(3):
        outcome = service.handle(MESSAGE, owner="m1", lease=LEASE)
        waits.append(outcome.retry_in)
        world.clock.now += outcome.retry_in or timedelta(0)
    # Then it waited 30 s, 60 s, and was then dead-lettered (done) with the reason, never the path or query
    assert waits == [timedelta(seconds=30), timedelta(seconds=60), None]
    ((body, letter),) = world.letters.sent
    assert body == MESSAGE
    assert letter == DeadLetter(
        reason="timeout",
        channel=WEBHOOK,
        attempts=3,
        error="TimeoutError",
        host="hooks.example.com",
        event_id="ev-1",
        detail_type="Balance Low",
        customer_id="acme",
    )
    # And the same message again (a crash before its deletion) does nothing
    assert service.handle(MESSAGE, owner="m1", lease=LEASE).results[WEBHOOK] == Skip.DEAD_LETTERED.value
    assert len(world.sender.sent) == 3
    # When the dead letter is redriven (a new message) and the receiver is fine
    redriven = service.handle(MESSAGE, owner="redriven", lease=LEASE)
    # Then it is delivered, as attempt 1 of a new round
    assert redriven.results[WEBHOOK] == "delivered"
    assert world.sender.sent[-1].headers["Prepaid-Webhook-Attempt"] == "1"


def test_an_invalid_url_is_dead_lettered_at_once_and_an_exception_counts_as_a_failed_attempt() -> None:
    # Given one wallet with a plain-HTTP URL to a public host, and a sender that raises for another
    world = World(urls={"acme": "http://hooks.example.com/x", "boom": URL})

    class Exploding(Sender):
        def post(self, request: WebhookRequest) -> SendResult:
            raise RuntimeError("bug")

    world.sender = Exploding()
    service = world.service()
    # When an alert comes for each
    bad_url = service.handle(MESSAGE, owner="m1", lease=LEASE)
    exploded = service.handle(json.dumps(envelope("ev-2", customer="boom")), owner="m2", lease=LEASE)
    # Then the first is dead-lettered without any attempt to send, the second waits its backoff
    assert (bad_url.retry_in, bad_url.results[WEBHOOK]) == (None, "dead_lettered")
    assert world.letters.sent[0][1].reason == "invalid_url"
    assert (exploded.retry_in, exploded.results[WEBHOOK]) == (timedelta(seconds=30), "failed:error:RuntimeError")


def test_the_message_waits_for_its_slowest_failing_channel() -> None:
    # Given a topic failing its first two publishes, and a wallet that has no webhook yet
    throttled = SendResult(ok=False, reason="publish_failed", error="Throttled")
    world = World(urls={}, topic=Topic([throttled, throttled]), sender=Sender([SendResult(ok=False, reason="x")]))
    service = world.service()
    first = service.handle(MESSAGE, owner="m1", lease=LEASE)
    assert first.retry_in == timedelta(seconds=30)
    # When the wallet gets a webhook that fails its first attempt, and the message comes back
    world.urls["acme"] = URL
    world.clock.now += timedelta(seconds=30)
    second = service.handle(MESSAGE, owner="m1", lease=LEASE)
    # Then the topic (attempt 2) asks for 60 s and the webhook (attempt 1) for 30 s: the message waits 60 s,
    # so neither channel is tried before its own backoff ran out
    assert (second.results[TOPIC], second.results[WEBHOOK]) == ("failed:publish_failed:Throttled", "failed:x")
    assert second.retry_in == timedelta(seconds=60)


def test_a_wallet_without_a_webhook_still_alerts_the_topic_and_records_no_webhook_delivery() -> None:
    world = World(urls={})
    outcome = world.service().handle(MESSAGE, owner="m1", lease=LEASE)
    assert outcome.done
    assert outcome.results == {TOPIC: "delivered", WEBHOOK: "no_webhook_url"}
    assert list(world.log.items) == [("ev-1", TOPIC)]


# -- account-level endpoints ---------------------------------------------------------------------------------------

EARLIER = T0 - timedelta(days=1)  # envelope() happened at T0


def test_each_endpoint_gets_the_types_it_subscribed_to_signed_with_its_own_secret() -> None:
    # Given endpoints for purchases, for low balances, for everything; one disabled, one created after the event
    world = World()
    purchases = world.endpoints.add(
        "ep_a", "https://a.example.com/h", frozenset({"Credits Purchased"}), created_at=EARLIER
    )
    low = world.endpoints.add("ep_b", "https://b.example.com/h", frozenset({"Balance Low"}), created_at=EARLIER)
    world.endpoints.add("ep_c", "https://c.example.com/h", None, created_at=EARLIER)
    world.endpoints.add("ep_d", "https://d.example.com/h", None, created_at=EARLIER, disabled=True)
    world.endpoints.add("ep_e", "https://e.example.com/h", None, created_at=T0 + timedelta(seconds=1))
    # When a Credits Purchased event and a Balance Low event are handled
    bought = world.service().handle(json.dumps(envelope("ev-p", "Credits Purchased")), owner="m-1", lease=LEASE)
    alerted = world.service().handle(json.dumps(envelope("ev-l", "Balance Low")), owner="m-2", lease=LEASE)
    # Then a purchase (no alert) goes to the endpoints that want it only: not to the topic or the wallet's webhook
    assert bought.results == {endpoint_channel("ep_a"): "delivered", endpoint_channel("ep_c"): "delivered"}
    # And an alert goes to the topic, the wallet's webhook and the endpoints that want it
    assert set(alerted.results) == {TOPIC, WEBHOOK, endpoint_channel("ep_b"), endpoint_channel("ep_c")}
    assert {r.url for r in world.sender.sent} == {URL, *(f"https://{h}.example.com/h" for h in "acbc")}
    # And each endpoint's request verifies with its own secret only
    by_url = {(r.url, r.headers["webhook-id"]): r for r in world.sender.sent}
    with time_machine.travel(T0, tick=False):
        a = by_url[("https://a.example.com/h", "ev-p")]
        b = by_url[("https://b.example.com/h", "ev-l")]
        assert Webhook(purchases).verify(a.body, a.headers)["type"] == "Credits Purchased"
        assert Webhook(low).verify(b.body, b.headers)["type"] == "Balance Low"
        for secret, request in ((low, a), (purchases, b)):
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(request.body, request.headers)


def test_a_resend_message_goes_to_its_one_channel_only() -> None:
    # Given an event delivered everywhere, and a dead delivery to another endpoint
    world = World()
    world.endpoints.add("ep_a", "https://a.example.com/h", None, created_at=EARLIER)
    world.endpoints.add("ep_b", "https://b.example.com/h", None, created_at=EARLIER)
    world.service().handle(MESSAGE, owner="m-1", lease=LEASE)
    sent = len(world.sender.sent)
    key = ("ev-1", endpoint_channel("ep_a"))
    world.log.items[key] = queued(world.log.items[key], "resend-1", T0 + LEASE)
    key_b = ("ev-1", endpoint_channel("ep_b"))
    world.log.items[key_b] = replace(world.log.items[key_b], state=DeliveryState.DEAD, version=9)
    # When the resend's message arrives, for endpoint a
    outcome = world.service().handle(MESSAGE, owner="m-2", lease=LEASE, only_channel=endpoint_channel("ep_a"))
    # Then only endpoint a gets it again, as the first attempt of a new round; b's dead delivery stays dead
    assert outcome.results == {endpoint_channel("ep_a"): "delivered"}
    (again,) = world.sender.sent[sent:]
    assert (again.url, again.headers["Prepaid-Webhook-Attempt"]) == ("https://a.example.com/h", "1")
    assert world.log.items[key_b].state is DeliveryState.DEAD


def test_in_progress_and_queued_decide_whether_a_resend_may_start() -> None:
    base = Delivery("ev-1", WEBHOOK, DeliveryState.DELIVERED, "m-1", 1, T0)
    # a delivered or dead delivery may be sent again; a failed one waits for its own retries
    assert not in_progress(base, T0)
    assert not in_progress(replace(base, state=DeliveryState.DEAD), T0)
    assert in_progress(replace(base, state=DeliveryState.FAILED, lease_until=T0 - LEASE), T0)
    # an attempt in flight is in progress until its lease runs out
    assert in_progress(replace(base, state=DeliveryState.SENDING, lease_until=T0 + LEASE), T0)
    assert not in_progress(replace(base, state=DeliveryState.SENDING, lease_until=T0 - LEASE), T0)
    # a resend not yet picked up is in progress until its lease runs out (its message may have been lost)
    again = queued(base, "resend-1", T0 + LEASE)
    assert (again.state, again.attempts, again.version) == (DeliveryState.QUEUED, 0, 2)
    assert in_progress(again, T0) and not in_progress(again, T0 + LEASE)
    # and the message it queued starts a new round at attempt 1
    decision = claim(again, event_id="ev-1", channel=WEBHOOK, owner="m-9", now=T0, lease=LEASE)
    assert attempt_of(decision) == ("m-9", 1, 3)


def test_a_channel_that_might_not_finish_in_time_is_deferred_and_the_message_comes_back_at_once() -> None:
    # Given three endpoints, and time for one attempt only (the function's invocation is nearly over)
    world = World()
    for name in "abc":
        world.endpoints.add(f"ep_{name}", f"https://{name}.example.com/h", None, created_at=EARLIER)
    left = iter([timedelta(seconds=30), timedelta(seconds=9), timedelta(seconds=8)])
    # When the message is handled
    outcome = world.service().handle(MESSAGE, owner="m-1", lease=LEASE, time_left=lambda: next(left, timedelta(0)))
    # Then the first channel (the topic) is tried, the others are deferred, and the message comes back at once
    assert list(outcome.results.values()) == ["delivered", "deferred", "deferred", "deferred", "deferred"]
    assert outcome.retry_in == timedelta(0)
    # And the next pass, with time enough, sends what was deferred and nothing twice
    again = world.service().handle(MESSAGE, owner="m-1", lease=LEASE, time_left=lambda: timedelta(seconds=40))
    assert list(again.results.values()) == ["already_delivered", "delivered", "delivered", "delivered", "delivered"]
    assert again.retry_in is None
    assert len(world.sender.sent) == 4  # the wallet's webhook and three endpoints, once each


def test_a_failed_delivery_whose_retry_never_came_may_be_resent_after_the_grace() -> None:
    failed_once = Delivery("ev-1", WEBHOOK, DeliveryState.FAILED, "m-1", 1, T0)  # its retry was due at T0
    assert in_progress(failed_once, T0 + RETRY_GRACE - timedelta(seconds=1))
    assert not in_progress(failed_once, T0 + RETRY_GRACE)
