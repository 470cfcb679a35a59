"""The whole system from outside: HTTP in, usage by HTTP and by SQS, events read by a subscriber of the bus.

The stack runs as `make local` runs it (free ports); the tests talk to it only through its edges — the HTTP API,
the SQS usage queue and an EventBridge rule of their own on the product's bus — as the SaaS's services would.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Self

import pytest
import standardwebhooks.webhooks
from rich.console import Console
from standardwebhooks.webhooks import Webhook

from prepaid_demo import story as demo
from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_demo.webhooks import WebhookReceiver
from prepaid_local.queue_messages import take_all
from prepaid_local.server import LocalServer
from support.outside import aws, call
from support.waiting import PATIENCE_SECONDS, eventually
from support.webhooks import readme_verifier

RATE_CARD = {"meters": {"api_calls": {"creditsPerUnit": "0.5"}, "tokens": {"creditsPerUnit": "0.002"}}}
RATES = {"api_calls": Decimal("0.5"), "tokens": Decimal("0.002")}
NINE_DIGITS = Decimal("0.000000001")
CUSTOMER = "e2e-story"


# -- talking to the system from outside -------------------------------------------------------------------------------


def rated(quantity: str, meter: str) -> Decimal:
    """Credits of one event by the rate card: quantity × rate, half-even to 9 fractional digits (the contract)."""  # noqa: RUF002
    return (Decimal(quantity) * RATES[meter]).quantize(NINE_DIGITS, rounding=ROUND_HALF_EVEN)


def usage(event_id: str, meter: str, quantity: str, customer: str = CUSTOMER) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {"eventId": event_id, "customerId": customer, "meter": meter, "quantity": quantity, "timestamp": now}


class Subscriber:
    """An outside consumer of the product's events: its own rule on the bus, delivering to its own SQS queue."""

    def __init__(self, server: LocalServer) -> None:
        self.sqs, events = aws(server, "sqs"), aws(server, "events")
        buses = events.list_event_buses()["EventBuses"]
        bus = next(b["Name"] for b in buses if b["Name"].endswith("-prepaid-credits"))  # the template's bus
        name = f"e2e-subscriber-{uuid.uuid4().hex[:8]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": ["prepaid.credits"], "detail": {"customerId": [{"prefix": "e2e-"}]}}
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
        self.received: list[dict[str, Any]] = []

    def of(self, detail_type: str, customer: str) -> list[dict[str, Any]]:
        """Every event of that type for that customer received so far (reading what has arrived since)."""
        self.received.extend(json.loads(message["Body"]) for message in take_all(self.sqs, self.url))
        return [
            e for e in self.received if e["detail-type"] == detail_type and e["detail"].get("customerId") == customer
        ]


# -- the story, told once per module -----------------------------------------------------------------------------------


@dataclass
class Story:
    server: LocalServer
    subscriber: Subscriber
    purchase: dict[str, Any]
    expected_rated: Decimal
    wallet: dict[str, Any]


@pytest.fixture(scope="module")
def story(server: LocalServer) -> Story:
    """A customer buys 1,000 credits, then usage arrives by HTTP and by SQS (one message sent twice)."""
    # Given a subscriber on the bus, the contract's price book, a rate card, and a threshold at 500
    subscriber = Subscriber(server)
    assert call(server, "PUT", "/price-book", DEMO_PRICE_BOOK)[0] == 200
    assert call(server, "PUT", "/rate-card", RATE_CARD)[0] == 200
    assert call(server, "PUT", f"/wallets/{CUSTOMER}/settings", {"thresholds": ["500"]})[0] == 200

    # When the customer buys 1,000 credits without a price
    status, purchase = call(
        server, "POST", f"/wallets/{CUSTOMER}/purchases", {"credits": "1000"}, **{"Idempotency-Key": "p1"}
    )
    assert status == 201, purchase

    # And usage arrives by HTTP (two events whose credits round half-even at the 9th digit)...
    by_http = [
        usage("h1", "api_calls", "100"),
        usage("h2", "tokens", "12345.678"),
        usage("h3", "api_calls", "0.000000003"),  # 0.0000000015 → 0.000000002
        usage("h4", "api_calls", "0.000000005"),  # 0.0000000025 → 0.000000002
    ]
    status, answer = call(server, "POST", "/usage", {"events": by_http})
    assert (status, answer["accepted"], answer["rejected"]) == (202, ["h1", "h2", "h3", "h4"], [])
    # ... and straight onto the usage queue: one event alone, two in one message, and the first one again
    sqs = aws(server, "sqs")
    queue = sqs.get_queue_url(QueueName="local-UsageQueue")["QueueUrl"]
    single = usage("s1", "api_calls", "700.5")
    pair = [usage("s2", "tokens", "50000"), usage("s3", "api_calls", "1")]
    for body in (single, {"events": pair}, single):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))

    expected = sum((rated(e["quantity"], e["meter"]) for e in [*by_http, single, *pair]), Decimal(0))
    assert expected == Decimal("525.441356004")  # the arithmetic this story is about, written out

    def drawn() -> dict[str, Any] | None:
        """the wallet has drawn every event"""
        wallet = call(server, "GET", f"/wallets/{CUSTOMER}")[1]
        return wallet if Decimal(wallet["totals"]["rated"]) >= expected else None

    return Story(server, subscriber, purchase, expected, eventually(drawn))


# -- tests -------------------------------------------------------------------------------------------------------------


def test_a_purchase_without_price_is_priced_by_the_volume_tier(story: Story) -> None:
    # Given the contract's price book (0-9,999 credits at 0.010 USD); When 1,000 credits were bought without a price
    card = story.purchase["card"]
    # Then the card costs 10.00 USD at 0.01 per credit, and the first answer said the balance was 1,000
    assert card["price"] == {"amount": "10.00", "currency": "USD"}
    assert Decimal(card["costBasis"]) == Decimal("0.01")
    assert story.purchase["balance"] == "1000"
    # And a quote for 10,000 lands in the second tier (tier bounds inclusive at the top)
    status, quote = call(story.server, "GET", "/quotes?credits=10000")
    assert (status, quote["tier"]["index"], quote["price"]["amount"]) == (200, 1, "90.00")


def test_usage_by_http_and_by_sqs_is_drawn_exactly_once_to_the_last_digit(story: Story) -> None:
    # Given the story's usage: 7 distinct events, one of them sent twice on the queue
    # When every event has been drawn
    wallet = story.wallet
    # Then the rated usage is exactly the rate card's price of each event once, and the balance what is left
    assert Decimal(wallet["totals"]["rated"]) == story.expected_rated
    assert Decimal(wallet["balance"]) == Decimal(1000) - story.expected_rated == Decimal("474.558643996")
    assert Decimal(wallet["overage"]) == 0
    # And conservation holds on the wallet's totals
    totals = {k: Decimal(v) for k, v in wallet["totals"].items()}
    assert totals["credits"] == totals["drawn"] + totals["expired"] + totals["voided"] + Decimal(wallet["balance"])
    assert totals["drawn"] + Decimal(wallet["overage"]) == totals["rated"]
    # And, read again a moment later, nothing more has been drawn (the replayed message changed nothing)
    time.sleep(1)  # a window for a late duplicate to show up; there is nothing to poll for when nothing happens
    again = call(story.server, "GET", f"/wallets/{CUSTOMER}")[1]
    assert (again["balance"], again["totals"]["rated"]) == (wallet["balance"], wallet["totals"]["rated"])


def test_a_subscriber_of_the_bus_sees_the_purchase_and_the_threshold_crossed(story: Story) -> None:
    # Given the subscriber's own rule and queue, created before anything happened
    # When the events have been published
    purchased = eventually(lambda: story.subscriber.of("Credits Purchased", CUSTOMER))
    low = eventually(lambda: story.subscriber.of("Balance Low", CUSTOMER))
    # Then the purchase carries the card and the balance
    assert len(purchased) == 1
    assert purchased[0]["source"] == "prepaid.credits"
    assert purchased[0]["detail"]["balance"] == "1000"
    assert purchased[0]["detail"]["card"]["cardId"] == story.purchase["card"]["cardId"]
    # And the threshold at 500 was crossed downward once, from above it to the balance after
    assert [e["detail"]["threshold"] for e in low] == ["500"]
    detail = low[0]["detail"]
    assert Decimal(detail["previousBalance"]) > 500 >= Decimal(detail["balance"]) >= Decimal("474.558643996")
    # And nothing was depleted
    assert story.subscriber.of("Balance Depleted", CUSTOMER) == []


def ledger(server: LocalServer, customer: str, **query: str) -> dict[str, Any]:
    """One page of a wallet's ledger."""
    status, page = call(server, "GET", f"/wallets/{customer}/ledger?{urllib.parse.urlencode(query)}")
    assert status == 200, page
    return dict(page)


def test_the_ledger_lists_the_purchase_and_the_usage_newest_first(story: Story) -> None:
    # Given the story's wallet; When its whole ledger is read, one entry per page
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = ledger(story.server, CUSTOMER, limit="1", **({"cursor": cursor} if cursor else {}))
        assert len(page["entries"]) <= 1
        entries.extend(page["entries"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # Then the pages together are the single-page answer, newest first
    assert entries == ledger(story.server, CUSTOMER, limit="100")["entries"]
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    # And the oldest entry is the purchase, the newest leaves the wallet's balance
    assert (entries[-1]["type"], Decimal(entries[-1]["credits"])) == ("purchase", Decimal(1000))
    assert Decimal(entries[-1]["balanceAfter"]) == 1000
    assert Decimal(entries[0]["balanceAfter"]) == Decimal(story.wallet["balance"])
    # And the usage entries add up to the rated usage (credits are magnitudes; the type says which way)
    usage_entries = [e for e in entries if e["type"] == "usage"]
    assert sum((abs(Decimal(e["credits"])) for e in usage_entries), Decimal(0)) == story.expected_rated
    assert {e["type"] for e in entries} == {"purchase", "usage"}
    # And filtering by type gives just those entries
    assert ledger(story.server, CUSTOMER, type="usage", limit="100")["entries"] == usage_entries


def post_webhook(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to a receiver as the alerting function would; return the status it answered."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def new_secret() -> str:
    """A Standard Webhooks secret, as an endpoint gets one."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed(secret: str, event_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers the alerting function sends, signed by the library at `at`."""
    return {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


@contextmanager
def library_clock_at(instant: float) -> Iterator[None]:
    """The `standardwebhooks` library's clock stopped at `instant` (unix seconds): README's receiver, run as it
    would have run when a request arrived at a stack whose clock the demo moved forward."""

    class Stopped(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(instant, tz)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(standardwebhooks.webhooks, "datetime", Stopped)
        yield


def test_the_demo_receiver_verifies_with_the_library_and_keeps_one_request_per_webhook_id() -> None:
    # Given the demo's webhook receiver holding an endpoint's secret, and another endpoint's secret
    secret, other = new_secret(), new_secret()
    now = datetime.now(UTC)
    body = json.dumps({"customerId": "c", "id": "e-1", "type": "Balance Low"}).encode()
    minutes = timedelta(minutes=7)  # past the 5 minutes' tolerance, with room for a slow machine
    with WebhookReceiver(secret, path="/hooks/c") as receiver:
        # When an event arrives signed, then again (a redelivery), then tampered with, signed too long ago or too
        # far ahead, signed with the other endpoint's secret, and sent to another path
        first = post_webhook(receiver.url, body, signed(secret, "e-1", body, now))
        again = post_webhook(receiver.url, body, signed(secret, "e-1", body, now + timedelta(seconds=1)))
        tampered = post_webhook(receiver.url, body + b" ", signed(secret, "e-1", body, now))
        stale = post_webhook(receiver.url, body, signed(secret, "e-1", body, now - minutes))
        early = post_webhook(receiver.url, body, signed(secret, "e-1", body, now + minutes))
        foreign = post_webhook(receiver.url, body, signed(other, "e-1", body, now))
        elsewhere = post_webhook(receiver.url.replace("/hooks/c", "/hooks/d"), body, signed(secret, "e-1", body, now))
    # Then the signed ones are answered 200 and kept once; the others are refused
    assert (first, again, tampered, stale, early, foreign, elsewhere) == (200, 200, 401, 401, 401, 401, 404)
    assert list(receiver.kept) == ["e-1"]
    assert receiver.kept["e-1"].copies == 1
    assert receiver.kept["e-1"].event_type == "Balance Low"
    assert len(receiver.rejected()) == 4
    # And it judges each request as README's receiver (the standardwebhooks library) does
    verify = readme_verifier()
    for delivery in receiver.requests:
        assert delivery.verified is (verify(secret, delivery.body, delivery.headers) is not None)


def test_the_demo_receiver_judges_timestamps_by_the_stacks_clock() -> None:
    # Given the demo's receiver on a stack whose clock was moved three days forward
    secret, ahead = new_secret(), timedelta(days=3)
    body = json.dumps({"customerId": "c", "id": "e-2", "type": "Credits Expired"}).encode()
    with WebhookReceiver(secret, path="/hooks/c", now=lambda: time.time() + ahead.total_seconds()) as receiver:
        # When the stack signs an event at its own time, and someone sends one signed at this machine's time
        on_stack_time = signed(secret, "e-2", body, datetime.now(UTC) + ahead)
        by_stack = post_webhook(receiver.url, body, on_stack_time)
        by_machine = post_webhook(receiver.url, body, signed(secret, "e-3", body, datetime.now(UTC)))
    # Then the stack's is kept and the other is refused (three days old for the stack)
    assert (by_stack, by_machine) == (200, 401)
    # And the plain library, judging by this machine's clock, would refuse the stack's (why the demo's receiver
    # moves the library's "now", and only that)
    assert readme_verifier()(secret, body, on_stack_time) is None


def test_the_demo_tells_its_story_and_ends_where_the_rate_card_says(story: Story) -> None:
    # Given the running system (the story's price book and rate card loaded); the demo's usage is deterministic
    server, customer = story.server, "demo-e2e"
    planned = demo.plan_usage(customer, RATES, count=30, worth=Decimal("12200"))
    expected_rated = sum((rated(e["quantity"], e["meter"]) for e in planned), Decimal(0))
    # the usage runs past the first card (10,000) and one auto-recharge (2,000) into overage
    assert expected_rated > Decimal(12000)

    # When the demo runs against it, small and unpaced
    out = io.StringIO()
    argv = ["--url", server.url, "--moto-url", server.moto_url, "--customer", customer]
    argv += ["--events", "30", "--batch-size", "5", "--pace", "0", "--timeout", str(int(PATIENCE_SECONDS))]
    code, result = demo.play(argv, console=Console(file=out, width=160, color_system=None))

    # Then it reports success, and the wallet is where the rate card puts it: 10,000 bought, 2,000 auto-recharged,
    # 2,000 topped up, usage drawn; the 500 promotional credits expired
    text = out.getvalue()
    assert code == 0, text
    assert result is not None
    wallet = call(server, "GET", f"/wallets/{customer}")[1]
    assert Decimal(wallet["totals"]["rated"]) == expected_rated
    assert Decimal(wallet["balance"]) == Decimal(14000) - expected_rated
    assert Decimal(wallet["overage"]) == 0
    assert Decimal(wallet["totals"]["expired"]) == 500
    assert Decimal(wallet["totals"]["credits"]) == Decimal(14500)
    # And it bought the first card in the second volume tier, and showed the events as they reached the bus
    assert "tier 2 at 0.009 → 90.00 USD" in text
    shown = ("Balance Low", "Balance Depleted", "Overage Recorded", "Balance Recovered", "Auto Recharge Purchased")
    for kind in (*shown, "Credits Expiring Soon", "Credits Expired"):
        assert f"⚡ {kind}" in text, kind
    bus = [
        e
        for e in call(server, "GET", "/_local/events?limit=100000")[1]["events"]
        if e["detail"].get("customerId") == customer
    ]
    thresholds = {e["detail"]["threshold"] for e in bus if e["detail-type"] == "Balance Low"}
    assert thresholds == {"2500", "1000"}
    # And one of its SQS batches was sent twice yet drawn once (the exact rated usage above), and it printed tables
    assert "sent twice" in text
    assert "Wallet demo-e2e" in text
    assert "Ledger —" in text

    # And the auto-recharge bought once, 2,000 credits at its own price, though the balance crossed 1,000 again
    recharges = [e["detail"] for e in bus if e["detail-type"] == "Auto Recharge Purchased"]
    assert len({d["eventId"] for d in recharges}) == 1
    card = recharges[0]["card"]
    assert (card["source"], card["credits"], card["price"]) == (
        "auto_recharge",
        "2000",
        {"amount": "18.00", "currency": "USD"},
    )
    assert (recharges[0]["todayCount"], recharges[0]["maxPerDay"]) == (1, 1)

    # And the promotional card got its notice, then expired when the demo moved the clock past it
    promo = result.promo_card_id
    assert promo is not None
    soon = [e["detail"] for e in bus if e["detail-type"] == "Credits Expiring Soon"]
    expired = [e["detail"] for e in bus if e["detail-type"] == "Credits Expired"]
    assert [d["cardId"] for d in soon] == [promo]
    assert [(d["cardId"], d["credits"], d["breakage"]["amount"]) for d in expired] == [(promo, "500", "0.00")]
    assert promo not in {c["cardId"] for c in wallet["cards"]}
    expires_at = datetime.fromisoformat(soon[0]["expiresAt"])
    assert datetime.fromisoformat(call(server, "GET", "/_local/clock")[1]["now"]) > expires_at  # it stays moved

    # And the ledger it printed is the wallet's: four purchases (first card, auto-recharge, top-up, promotion), the
    # overage paid off, and the promotion's expiry with its breakage value
    entries = ledger(server, customer, limit="500")["entries"]
    assert f"Ledger — {len(entries)} entries" in text
    kinds = [e["type"] for e in entries if e["type"] != "usage"]
    assert (kinds.count("purchase"), kinds.count("expiry")) == (4, 1)
    assert kinds[:2] == ["expiry", "purchase"]  # newest first: the promotion, then its expiry
    assert "overage_payoff" in kinds
    (expiry,) = [e for e in entries if e["type"] == "expiry"]
    assert (expiry["cardId"], expiry["credits"], expiry["value"]["amount"]) == (promo, "500", "0.00")

    # And its wallet receiver got every alert event of the customer once, and its endpoint receiver every purchase
    # and expiry of the customer once, each request answered 200
    wallet_secret = call(server, "GET", f"/wallets/{customer}/webhook/secret")[1]["secret"]
    endpoint_secret = result.endpoint_secret  # the demo removed its endpoint at the end: the secret went with it
    assert call(server, "GET", f"/webhook-endpoints/{result.endpoint_id}")[0] == 404
    alert_ids = [e["detail"]["eventId"] for e in bus if e["detail-type"] in demo.ALERT_TYPES]
    assert len(alert_ids) == len(set(alert_ids)) >= len(demo.ALERT_TYPES)
    kept = result.webhooks_kept()
    assert sorted(kept) == sorted(alert_ids)
    assert {d.event_type for d in kept.values()} == set(demo.ALERT_TYPES)
    endpoint_ids = [e["detail"]["eventId"] for e in bus if e["detail-type"] in demo.ENDPOINT_TYPES]
    assert len(endpoint_ids) >= 4  # the first card, the top-up, the promotion, its expiry
    endpoint_kept = {i: d for i, d in result.endpoint_kept().items() if d.customer_id == customer}
    assert sorted(endpoint_kept) == sorted(endpoint_ids)
    requests = [*result.webhooks, *result.endpoint_webhooks]
    assert all(d.verified and d.answered == 200 for d in requests)
    # And README's receiver (the standardwebhooks library) verifies every one of them with its own receiver's secret,
    # as it would have when the request arrived on the stack's moved clock, and none with the other's secret
    verify = readme_verifier()
    sides = [
        (wallet_secret, endpoint_secret, result.webhooks),
        (endpoint_secret, wallet_secret, result.endpoint_webhooks),
    ]
    for own, foreign, got in sides:
        for delivery in got:
            with library_clock_at(delivery.received_at):
                assert verify(own, delivery.body, delivery.headers) == delivery.payload()
                assert verify(foreign, delivery.body, delivery.headers) is None
            assert delivery.payload()["id"] == delivery.event_id
    # And the API lists the endpoint's deliveries of those events as delivered, and the demo printed all of it
    assert {d["eventId"]: d["state"] for d in result.endpoint_deliveries} == dict.fromkeys(endpoint_ids, "delivered")
    assert f"{len(alert_ids)} alerts kept once each" in text
    assert f"Every alert on the bus for {customer} ({len(alert_ids)}) arrived, verified ✓" in text
    assert f"Deliveries to endpoint {result.endpoint_id}" in text
    assert "The endpoint's secret verifies none of the wallet's" in text
