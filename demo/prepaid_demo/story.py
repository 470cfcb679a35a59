"""`make demo`: a scripted story against the running local stack (`make local ARGS=--seed` in another shell).

A fresh customer gets a quote, buys credits priced by the price book's volume tier, sets a low-balance threshold,
an auto-recharge and a webhook URL (a receiver the demo starts on 127.0.0.1, which verifies each request with the
`standardwebhooks` library and the wallet's own secret, and dedupes on `webhook-id`); an account-level webhook
endpoint for purchases and expiries goes to a second receiver, verified with that endpoint's secret. Then usage
streams in — by HTTP (`POST /usage`) and straight onto the SQS usage
queue — while the wallet is polled and the events that went through the bus are shown as they appear
(`Balance Low`, `Auto Recharge Purchased`, `Balance Depleted`, `Overage Recorded`). A top-up pays the overage off;
a promotional card with a short expiry gets its expiring-soon notice, the local clock is moved past its expiry and
it expires. The wallet, its ledger, the webhooks received, the endpoint's deliveries (as the API lists them) and
which secret verifies which delivery are printed as tables; the endpoint is removed at the end.

Everything goes through the system's public edges only: the HTTP API (webhook secrets included), the SQS usage
queue (boto3 against the embedded moto), and the local-only `GET /_local/events` and `GET/POST /_local/clock`. Amounts
are `Decimal` or decimal strings throughout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prepaid_demo.catalog import DEMO_PRICE_BOOK, DEMO_RATE_CARD  # what `make local ARGS=--seed` loads
from prepaid_demo.webhooks import Delivery, WebhookReceiver

CREDIT_DIGITS = Decimal("0.000000001")  # credits keep 9 fractional digits; rated usage rounds half-even to that
DEMO_METERS = ("api_calls", "tokens")
START_HINT = "make local ARGS=--seed"
# What the template's AlertRule sends to the alert queue, so to each wallet's webhook.
ALERT_TYPES = (
    "Balance Low",
    "Balance Depleted",
    "Balance Recovered",
    "Overage Recorded",
    "Credits Expiring Soon",
    "Credits Expired",
    "Auto Recharge Purchased",
)
# What the demo's account-level endpoint subscribes to (any detail types may be chosen; these are not all alerts).
ENDPOINT_TYPES = ("Credits Purchased", "Credits Expired")
PROMO_EXPIRES_IN = "PT2H"  # the promotional card's lifetime (ISO 8601), short of the 7-day expiring-soon notice
CLOCK_ADVANCE = "PT2H1M"  # how far the demo moves the local clock: just past the promotional card's expiry
# Both servers are on loopback: no proxy, whatever the environment says.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DemoError(Exception):
    """Something the person running the demo must fix; the message says what."""


class RouteMissing(Exception):
    """The server does not serve this route (yet): API Gateway's 403 for an unknown path, or a 404 for it."""


# -- configuration and results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    """What the story does; the defaults take ~20 s against `make local`."""

    url: str = "http://127.0.0.1:3000"
    moto_url: str = "http://127.0.0.1:4566"
    stack_name: str = "local"
    region: str = "us-east-1"
    customer: str | None = None  # a fresh `demo-<random>` when not given
    credits: Decimal = Decimal("10000")  # the first purchase: the contract's second volume tier
    threshold: Decimal = Decimal("2500")
    recharge_at: Decimal = Decimal("1000")  # auto-recharge: when the balance falls to this or below...
    recharge_credits: Decimal = Decimal("2000")  # ... buy this many (0: no auto-recharge), at most once a day,
    recharge_price: Decimal = Decimal("18.00")  # ... at this price (in the price book's currency)
    # About what the usage is worth: the first card and one auto-recharge, and 200 more → overage.
    usage_credits: Decimal = Decimal("12200")
    top_up: Decimal = Decimal("2000")  # bought after the usage; it first pays off the overage
    promo_credits: Decimal = Decimal("500")  # a free promotional card expiring in 2 hours (0: no expiry act)
    events: int = 400
    batch_size: int = 25
    sqs_every: int = 3  # every third batch goes straight onto the SQS usage queue, the others by HTTP
    pace: float = 8.0  # seconds over which the batches are spread, so the balance can be watched falling
    timeout: float = 60.0  # longest wait for the pipeline to draw everything
    seed: int = 7  # the usage pattern is deterministic for a customer id and a seed


@dataclass
class DemoResult:
    """What the story did and saw; `ok` when the end state is the one the rate card predicts."""

    customer: str
    usage: list[dict[str, Any]]
    expected_rated: Decimal
    expected_balance: Decimal
    expected_overage: Decimal
    expected_recharges: int = 0  # Auto Recharge Purchased events: one for the crossing, then maxPerDay stops it
    expected_expired: Decimal = Decimal(0)  # credits of the promotional card that expire unused
    wallet: dict[str, Any] = field(default_factory=dict)
    event_types: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # this customer's bus events, once per event id
    ledger: list[dict[str, Any]] | None = None  # None when the server has no ledger route yet
    promo_card_id: str | None = None
    webhook_url: str = ""
    webhooks: list[Delivery] = field(default_factory=list)  # every request the receiver got, in arrival order
    endpoint_id: str = ""  # the account-level endpoint (removed when the demo ends)
    endpoint_url: str = ""
    endpoint_webhooks: list[Delivery] = field(default_factory=list)  # every request its receiver got
    endpoint_deliveries: list[dict[str, Any]] = field(default_factory=list)  # this customer's, as the API lists them
    wallet_secret: str = field(default="", repr=False)  # GET /wallets/{customerId}/webhook/secret
    endpoint_secret: str = field(default="", repr=False)  # POST /webhook-endpoints's answer
    problems: list[str] = field(default_factory=list)

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        """This customer's bus events of one detail type."""
        return [e for e in self.events if e.get("detail-type") == detail_type]

    def alert_ids(self) -> list[str]:
        """The ids of this customer's alert events (the ones its webhook gets), oldest first."""
        return [str(e["detail"]["eventId"]) for e in self.events if e.get("detail-type") in ALERT_TYPES]

    def endpoint_event_ids(self) -> list[str]:
        """The ids of this customer's events the account-level endpoint subscribed to, oldest first."""
        return [str(e["detail"]["eventId"]) for e in self.events if e.get("detail-type") in ENDPOINT_TYPES]

    def webhooks_kept(self) -> dict[str, Delivery]:
        """What the wallet's receiver, deduping on webhook-id, keeps: the first verified request of each id."""
        return kept_once(self.webhooks)

    def endpoint_kept(self) -> dict[str, Delivery]:
        """What the endpoint's receiver keeps: the first verified request of each id (of any customer)."""
        return kept_once(self.endpoint_webhooks)

    @property
    def ok(self) -> bool:
        return not self.problems


def kept_once(requests: Sequence[Delivery]) -> dict[str, Delivery]:
    """The first verified request of each webhook-id, in arrival order."""
    kept: dict[str, Delivery] = {}
    for delivery in requests:
        if delivery.verified:
            kept.setdefault(delivery.event_id, delivery)
    return kept


# -- HTTP ------------------------------------------------------------------------------------------------------------


class Api:
    """A tiny JSON client of the local API (urllib, no proxy); unsigned, as `make local` serves curl."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON). Raise `DemoError` when nothing answers."""
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={**sent, **(headers or {})})
        try:
            with _HTTP.open(request, timeout=self.timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise DemoError(
                f"Nothing answers at {self.url} ({reason}).\n"
                f"Start the local stack in another shell first:  {START_HINT}\n"
                "(or point the demo elsewhere with --url / --moto-url)"
            ) from error

    def expect(self, method: str, path: str, status: int, body: Any = None, **headers: str) -> Any:
        """Send a request that must answer `status`; return its body, or raise `DemoError` with what came back."""
        got, answer = self.call(method, path, body, headers or None)
        if got != status:
            raise DemoError(f"{method} {path} answered {got}, expected {status}: {json.dumps(answer)}")
        return answer


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return {"raw": raw.decode(errors="replace")}


def error_code(answer: Any) -> str | None:
    """The contract's `error.code` of an answer, if it is an error body."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("code"))
    return None


# -- SQS -------------------------------------------------------------------------------------------------------------


def aws_client(config: DemoConfig, service: str) -> Any:
    """A boto3 client of the embedded moto, configured explicitly so it depends on nothing in the environment."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=config.moto_url,
        region_name=config.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto takes any key; this one is no secret
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}),
    )


def usage_queue(config: DemoConfig) -> tuple[Any, str]:
    """An SQS client of the embedded moto and the usage queue's URL, looked up by its name as a producer would."""
    sqs = aws_client(config, "sqs")
    name = f"{config.stack_name}-UsageQueue"
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except (BotoCoreError, ClientError) as error:
        raise DemoError(
            f"No usage queue {name!r} at {config.moto_url} ({error}).\n"
            f"Is the local stack running with that moto port? Start it with:  {START_HINT}\n"
            "(or pass --moto-url, or --sqs-every 0 to send all usage by HTTP)"
        ) from error
    return sqs, url


def wallet_webhook_secret(api: Api, customer: str) -> str:
    """The wallet's own webhook secret (`whsec_…`), read as the SaaS reads it: `GET /wallets/{customerId}/webhook/
    secret`. Each wallet has its own, so one customer's receiver cannot verify (or forge) another's webhooks."""
    status, answer = api.call("GET", f"/wallets/{customer}/webhook/secret")
    if status != 200 or not isinstance(answer, dict) or not str(answer.get("secret", "")).startswith("whsec_"):
        raise DemoError(f"GET /wallets/{customer}/webhook/secret answered {status}: {json.dumps(answer)}")
    return str(answer["secret"])


@contextmanager
def account_endpoint(api: Api, url: str, event_types: Sequence[str], description: str) -> Iterator[dict[str, Any]]:
    """An account-level webhook endpoint (`POST /webhook-endpoints`), its answer holding its own secret; removed
    (`DELETE`) on the way out, so runs of the demo do not pile up endpoints (a deployment holds at most 20)."""
    body = {"url": url, "eventTypes": list(event_types), "description": description}
    status, created = api.call("POST", "/webhook-endpoints", body)
    if status == 409 and error_code(created) == "too_many_endpoints":
        raise DemoError(
            f"The stack already has the most webhook endpoints it may: {created['error']['message']}.\n"
            "List them with GET /webhook-endpoints and remove one (DELETE /webhook-endpoints/{id}), or restart the "
            "local stack."
        )
    if status != 201:
        raise DemoError(f"POST /webhook-endpoints answered {status}: {json.dumps(created)}")
    try:
        yield dict(created)
    finally:
        api.call("DELETE", f"/webhook-endpoints/{created['id']}")


# -- the local clock -------------------------------------------------------------------------------------------------


class StackClock:
    """The local stack's clock (`GET`/`POST /_local/clock`): real time, plus however far it was moved forward.

    The demo stamps its usage with it, moves it past the promotional card's expiry, and its webhook receivers judge
    `webhook-timestamp` by it (the sender signs with the stack's time, which may be hours ahead of this
    process's own after a demo has run). Without the route (not the local stack), it is this process's clock.
    """

    def __init__(self, api: Api) -> None:
        self.api = api

    def now(self) -> datetime:
        try:
            status, answer = self.api.call("GET", "/_local/clock")
        except DemoError:
            status, answer = 0, None
        if status == 200 and isinstance(answer, dict) and "now" in answer:
            return datetime.fromisoformat(str(answer["now"]))
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, duration: str) -> datetime:
        """Move the stack's clock forward by an ISO 8601 duration; it runs what came due before answering."""
        status, answer = self.api.call("POST", "/_local/clock", {"advance": duration})
        if status != 200:
            raise RouteMissing(f"POST /_local/clock answered {status}: {json.dumps(answer)}")
        return datetime.fromisoformat(str(answer["now"]))


def wire_time(at: datetime) -> str:
    """An instant as the API writes it: UTC, milliseconds, `Z`."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the catalog -----------------------------------------------------------------------------------------------------


def ensure_price_book(api: Api, console: Console) -> dict[str, Any]:
    """The price book in force; the demo's own (the contract's example tiers) is loaded if there is none."""
    status, book = api.call("GET", "/price-book")
    if status == 200:
        return dict(book)
    if error_code(book) != "price_book_missing":
        raise DemoError(f"GET /price-book answered {status}: {json.dumps(book)}")
    console.print("[yellow]No price book yet: loading the demo's volume tiers (PUT /price-book).[/]")
    return dict(api.expect("PUT", "/price-book", 200, DEMO_PRICE_BOOK))


def ensure_rate_card(api: Api, console: Console) -> dict[str, Any]:
    """The rate card in force, with the demo's meters added (PUT) when it has none or lacks them."""
    status, card = api.call("GET", "/rate-card")
    if status == 200:
        missing = [m for m in DEMO_METERS if m not in card.get("meters", {})]
        if not missing:
            return dict(card)
        console.print(
            f"[yellow]The rate card lacks {', '.join(missing)}: adding the demo's meters (PUT /rate-card).[/]"
        )
        demo_meters = cast(dict[str, Any], DEMO_RATE_CARD["meters"])
        meters = {**card["meters"], **{m: demo_meters[m] for m in missing}}
        return dict(api.expect("PUT", "/rate-card", 200, {"meters": meters, "overrides": card.get("overrides", {})}))
    if error_code(card) != "rate_card_missing":
        raise DemoError(f"GET /rate-card answered {status}: {json.dumps(card)}")
    console.print("[yellow]No rate card yet: loading the demo's (PUT /rate-card).[/]")
    return dict(api.expect("PUT", "/rate-card", 200, DEMO_RATE_CARD))


def rates_for(rate_card: dict[str, Any], customer: str) -> dict[str, Decimal]:
    """Credits per unit of each meter for one customer: the card's meters with that customer's overrides."""
    rates = {meter: Decimal(rate["creditsPerUnit"]) for meter, rate in rate_card.get("meters", {}).items()}
    for meter, rate in rate_card.get("overrides", {}).get(customer, {}).items():
        rates[meter] = Decimal(rate["creditsPerUnit"])
    return rates


def plain(amount: Decimal) -> str:
    """A decimal as people write it: no exponent, no trailing zeros (`10200.000000000` → `10200`)."""
    text = format(amount.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def rate(quantity: Decimal, credits_per_unit: Decimal) -> Decimal:
    """Credits of one event: quantity times rate, rounded half-even to 9 fractional digits (the contract's rule)."""
    return (quantity * credits_per_unit).quantize(CREDIT_DIGITS, rounding=ROUND_HALF_EVEN)


# -- the story's steps -----------------------------------------------------------------------------------------------


def show_quote(
    api: Api, console: Console, credits: Decimal, price_book: dict[str, Any], with_tiers: bool = True
) -> dict[str, Any]:
    """Ask for a quote and show which tier of the price book prices it (the tiers as a table if `with_tiers`)."""
    quote = dict(api.expect("GET", f"/quotes?credits={credits}", 200))
    tier = quote.get("tier") or {}
    if with_tiers:
        console.print(tiers_table(price_book, tier.get("index")))
    price = quote["price"]
    console.print(
        f"Quote for [bold]{quote['credits']}[/] credits: tier {int(tier.get('index', 0)) + 1} at "
        f"{quote['unitPrice']} → [bold green]{price['amount']} {price['currency']}[/]"
    )
    return quote


def tiers_table(price_book: dict[str, Any], chosen_index: int | None) -> Table:
    """The price book's tiers (bounds inclusive at the top), the chosen one marked."""
    table = Table(title=f"Price book ({price_book.get('mode', 'volume')}, {price_book.get('currency', '')})")
    for column in ("tier", "credits", "unit price"):
        table.add_column(column, justify="right")
    lower: str | None = None
    for index, row in enumerate(price_book.get("tiers", [])):
        upper = row.get("upTo")
        bounds = " and ".join(filter(None, [f"over {lower}" if lower else "", f"up to {upper}" if upper else ""]))
        chosen = index == chosen_index
        style = "bold green" if chosen else None
        table.add_row(f"{index + 1}{' ◀' if chosen else ''}", bounds, row["unitPrice"], style=style)
        lower = upper or lower
    return table


def buy(api: Api, console: Console, customer: str, credits: Decimal, key: str) -> dict[str, Any]:
    """Buy credits without a price (the price book prices them); replay it once to show the idempotency key."""
    body = {"credits": str(credits)}
    bought = dict(api.expect("POST", f"/wallets/{customer}/purchases", 201, body, **{"Idempotency-Key": key}))
    card = bought["card"]
    console.print(
        f"Bought [bold]{card['credits']}[/] credits for {card['price']['amount']} {card['price']['currency']} "
        f"(cost basis {card['costBasis']}/credit), card {card['cardId'][:8]}…, balance [bold]{bought['balance']}[/]"
    )
    replay = api.expect("POST", f"/wallets/{customer}/purchases", 201, body, **{"Idempotency-Key": key})
    same = replay["card"]["cardId"] == card["cardId"]
    outcome = "the same card, nothing bought twice" if same else "[red]a different card![/]"
    console.print(f"  replayed with the same Idempotency-Key {key!r}: {outcome}")
    return bought


def configure_wallet(
    api: Api, console: Console, config: DemoConfig, customer: str, currency: str, webhook_url: str
) -> dict[str, Any]:
    """PUT the wallet's settings: a low-balance threshold, the auto-recharge (unless off), and the webhook URL."""
    body: dict[str, Any] = {"thresholds": [str(config.threshold)], "webhookUrl": webhook_url}
    if config.recharge_credits > 0:
        body["autoRecharge"] = {
            "threshold": str(config.recharge_at),
            "credits": str(config.recharge_credits),
            "price": {"amount": str(config.recharge_price), "currency": currency},
            "maxPerDay": 1,
        }
    settings = api.expect("PUT", f"/wallets/{customer}/settings", 200, body)["settings"]
    at = ", ".join(settings["thresholds"])
    console.print(f"Threshold set: [bold]Balance Low[/] when the balance falls to {at} or below")
    auto = settings.get("autoRecharge")
    if auto:
        price = auto.get("price") or {}
        console.print(
            f"Auto-recharge set: when the balance falls to {auto['threshold']} or below, buy [bold]{auto['credits']}[/]"
            f" credits for {price.get('amount')} {price.get('currency')}, at most {auto['maxPerDay']} a day"
        )
    console.print(f"Webhook URL set: alerts go to [bold]{settings['webhookUrl']}[/] (the demo's receiver)")
    return dict(settings)


def plan_usage(
    customer: str, rates: dict[str, Decimal], count: int, worth: Decimal, seed: int = 7, at: datetime | None = None
) -> list[dict[str, Any]]:
    """`count` usage events of the demo's meters worth about `worth` credits, deterministic for customer and seed.

    Two events in three are `api_calls`, the rest `tokens`; amounts vary around the mean, and the last event takes
    what is left so the total lands close to `worth` (exactly, when the rate divides it). They are stamped `at`
    (the stack's clock; this process's by default).
    """
    if count < 1:
        raise DemoError("--events must be at least 1")
    chance = random.Random(f"{customer}/{seed}")  # not for security: a repeatable usage pattern  # noqa: S311
    mean = worth / count
    now = wire_time(at or datetime.now(UTC))
    events, total = [], Decimal(0)
    for n in range(count):
        meter = "tokens" if n % 3 == 2 else "api_calls"
        if n < count - 1:
            share = Decimal(chance.randint(50, 150)) / 100
            quantity = max(Decimal(1), (mean * share / rates[meter]).quantize(Decimal(1)))
        else:
            quantity = max(Decimal(0), ((worth - total) / rates[meter]).quantize(CREDIT_DIGITS))
        total += rate(quantity, rates[meter])
        events.append(
            {
                "eventId": f"{customer}-{n:05d}",
                "customerId": customer,
                "meter": meter,
                "quantity": str(quantity),
                "timestamp": now,
                "dimensions": {"source": "make-demo"},
            }
        )
    return events


def expected_rated(events: Sequence[dict[str, Any]], rates: dict[str, Decimal]) -> Decimal:
    """What the events are worth in credits by the rate card, each rated and rounded on its own."""
    return sum((rate(Decimal(e["quantity"]), rates[e["meter"]]) for e in events), Decimal(0))


def batches(events: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """The events in batches of `size`, in order."""
    for start in range(0, len(events), size):
        yield list(events[start : start + size])


class Watcher:
    """Polls the wallet and the local events route; prints each of this customer's events once, as it appears."""

    STYLES = {
        "Balance Low": "bold yellow",
        "Balance Depleted": "bold red",
        "Overage Recorded": "red",
        "Balance Recovered": "bold green",
        "Credits Purchased": "green",
        "Auto Recharge Purchased": "bold green",
        "Credits Expiring Soon": "yellow",
        "Credits Expired": "bold red",
    }

    def __init__(self, api: Api, customer: str, say: Callable[[str], None]) -> None:
        self.api = api
        self.customer = customer
        self.say = say
        self.seen: dict[str, dict[str, Any]] = {}  # event id → event, in the order they were first seen
        self.wallet: dict[str, Any] = {}
        self.last_new = time.monotonic()  # when an event was last seen for the first time

    def poll(self) -> dict[str, Any]:
        """Read the wallet and any new events; return the wallet."""
        self.wallet = dict(self.api.expect("GET", f"/wallets/{self.customer}", 200))
        status, answer = self.api.call("GET", "/_local/events?limit=100000")
        if status == 200:
            for event in answer.get("events", []):
                detail = event.get("detail", {})
                key = str(detail.get("eventId") or event.get("id"))
                if detail.get("customerId") == self.customer and key not in self.seen:
                    self.seen[key] = event
                    self.last_new = time.monotonic()
                    self.say(describe_event(event, self.STYLES.get(event.get("detail-type", ""), "cyan")))
        return self.wallet

    def quiet_for(self, seconds: float) -> bool:
        """No new event for this customer in the last `seconds`."""
        return time.monotonic() - self.last_new >= seconds

    def types(self) -> list[str]:
        """Detail types seen so far, oldest first (a redelivered duplicate counted once)."""
        return [e["detail-type"] for e in self.seen.values()]

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        """The events of one detail type seen so far, oldest first."""
        return [e for e in self.seen.values() if e.get("detail-type") == detail_type]

    def ids_of(self, detail_types: Sequence[str]) -> set[str]:
        """The ids of the events of these detail types seen so far."""
        return {key for key, event in self.seen.items() if event.get("detail-type") in detail_types}

    def about_card(self, detail_type: str, card_id: str) -> dict[str, Any] | None:
        """The first event of that type about that card (its `cardId`, or its `card`), if seen."""
        for event in self.of_type(detail_type):
            detail = event.get("detail", {})
            if card_id in (detail.get("cardId"), (detail.get("card") or {}).get("cardId")):
                return event
        return None

    def wait_for(self, detail_types: Sequence[str], seconds: float) -> bool:
        """Poll until every one of `detail_types` has been seen, or `seconds` pass; True if all were seen."""
        return self.wait_until(lambda: set(detail_types) <= set(self.types()), seconds)

    def wait_until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Poll until `done()` holds, or `seconds` pass; True if it held."""
        deadline = time.monotonic() + seconds
        while True:
            self.poll()
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def describe_event(event: dict[str, Any], style: str) -> str:
    """One line about an event from the bus."""
    detail = event.get("detail", {})
    kind = event.get("detail-type", "?")
    extra = ""
    if "threshold" in detail:
        extra = f", threshold {detail['threshold']}"
    if "previousBalance" in detail:
        extra += f", was {detail['previousBalance']}"
    if "added" in detail:
        extra += f", overage +{detail['added']} (now {detail.get('overage')})"
    card = detail.get("card") or {}
    if kind in {"Credits Purchased", "Auto Recharge Purchased"} and card:
        extra += f", +{card.get('credits')} credits ({card.get('source')}, card {str(card.get('cardId'))[:8]}…)"
    if kind == "Credits Expiring Soon":
        extra += f", card {str(detail.get('cardId'))[:8]}…: {detail.get('remaining')} credits expire at "
        extra += str(detail.get("expiresAt"))
    if kind == "Credits Expired":
        breakage = detail.get("breakage") or {}
        extra += f", card {str(detail.get('cardId'))[:8]}…: {detail.get('credits')} credits expired"
        extra += f" (breakage {breakage.get('amount')} {breakage.get('currency')})"
    return f"  [{style}]⚡ {kind}[/] on the bus: balance {detail.get('balance')}{extra}"


def stream_usage(
    api: Api,
    console: Console,
    config: DemoConfig,
    events: Sequence[dict[str, Any]],
    expected: Decimal,
    watcher: Watcher,
) -> dict[str, Any]:
    """Send the usage in batches (by HTTP, every `sqs_every`-th batch onto SQS) and watch it being drawn.

    A progress bar counts the events sent and the share of the expected credits the wallet has drawn so far;
    one SQS batch is sent twice, as a retrying producer would, and is drawn once. Returns the final wallet.
    """
    sqs, queue_url = usage_queue(config) if config.sqs_every > 0 else (None, "")
    chunks = list(batches(events, config.batch_size))
    pause = config.pace / len(chunks) if chunks else 0.0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    sent_by = {"HTTP": 0, "SQS": 0}
    with Progress(*columns, console=console, transient=False) as progress:
        sending = progress.add_task("usage events sent ", total=len(events), note="")
        drawing = progress.add_task("credits drawn (‰) ", total=1000, note="")

        def show(wallet: dict[str, Any]) -> None:
            rated = Decimal(wallet.get("totals", {}).get("rated", "0"))
            per_mille = int(rated * 1000 / expected) if expected > 0 else 1000
            progress.update(
                drawing,
                completed=min(per_mille, 1000),
                note=f"balance [bold]{wallet.get('balance')}[/]  overage {wallet.get('overage')}",
            )

        watcher.say = progress.console.print
        replayed = False
        for index, chunk in enumerate(chunks):
            if sqs is not None and index % config.sqs_every == config.sqs_every - 1:
                sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"events": chunk}))
                if not replayed:  # a producer that did not hear back sends the same batch again
                    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"events": chunk}))
                    progress.console.print(f"  (SQS batch of {len(chunk)} events sent twice: a producer's retry)")
                    replayed = True
                sent_by["SQS"] += len(chunk)
            else:
                answer = api.expect("POST", "/usage", 202, {"events": chunk})
                if answer.get("rejected"):
                    raise DemoError(f"usage refused: {json.dumps(answer['rejected'][:3])}")
                sent_by["HTTP"] += len(chunk)
            progress.update(sending, advance=len(chunk), note=f"HTTP {sent_by['HTTP']}  SQS {sent_by['SQS']}")
            show(watcher.poll())
            time.sleep(pause)
        deadline = time.monotonic() + config.timeout
        while Decimal(watcher.wallet.get("totals", {}).get("rated", "0")) < expected:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
            show(watcher.poll())
    return watcher.wallet


def show_wallet(console: Console, wallet: dict[str, Any]) -> None:
    """The wallet: its live cards as a table, then balance, overage and the conservation totals."""
    cards = Table(title=f"Wallet {wallet['customerId']} — cards")
    for column in ("card", "source", "remaining", "of", "price", "cost basis", "expires", "status"):
        cards.add_column(column, justify="right" if column in {"remaining", "of", "cost basis"} else "left")
    for card in wallet.get("cards", []):
        price = card.get("price") or {}
        cards.add_row(
            card["cardId"][:8],
            card.get("source", ""),
            card["remaining"],
            card["credits"],
            f"{price.get('amount', '')} {price.get('currency', '')}",
            card.get("costBasis", ""),
            card.get("expiresAt") or "never",
            card.get("status", ""),
        )
    console.print(cards)
    totals = wallet.get("totals", {})
    summary = Table(title="Balance and totals", show_header=True)
    for column in ("balance", "overage", "bought", "drawn", "expired", "voided", "rated usage"):
        summary.add_column(column, justify="right")
    summary.add_row(
        wallet.get("balance", ""),
        wallet.get("overage", ""),
        *(totals.get(k, "") for k in ("credits", "drawn", "expired", "voided", "rated")),
    )
    console.print(summary)
    if totals:
        console.print(conservation_line(wallet))


def conservation_line(wallet: dict[str, Any]) -> str:
    """Check the contract's conservation rules on the wallet's totals; one line saying whether they hold."""
    t = {k: Decimal(v) for k, v in wallet["totals"].items() if isinstance(v, str)}
    balance, overage = Decimal(wallet["balance"]), Decimal(wallet["overage"])
    cards_ok = t["credits"] == t["drawn"] + t["expired"] + t["voided"] + balance
    usage_ok = t["drawn"] + overage == t["rated"]
    mark = "[green]✓ holds[/]" if cards_ok and usage_ok else "[red]✗ broken[/]"
    return (
        f"Conservation: bought {t['credits']} = drawn {t['drawn']} + expired {t['expired']} + voided {t['voided']}"
        f" + balance {balance}; drawn + overage {overage} = rated {t['rated']}  {mark}"
    )


def fetch_ledger(api: Api, customer: str, page_size: int = 100, max_pages: int = 20) -> list[dict[str, Any]]:
    """Every ledger entry of a wallet, newest first, following `nextCursor`. Raise `RouteMissing` if not served."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(max_pages):
        query = {"limit": str(page_size), **({"cursor": cursor} if cursor else {})}
        status, page = api.call("GET", f"/wallets/{customer}/ledger?{urllib.parse.urlencode(query)}")
        if status == 403 or (status == 404 and error_code(page) != "wallet_not_found"):
            raise RouteMissing(f"GET /wallets/{{customerId}}/ledger answered {status}: {json.dumps(page)}")
        if status != 200:
            raise DemoError(f"GET /wallets/{customer}/ledger answered {status}: {json.dumps(page)}")
        entries.extend(page.get("entries", []))
        cursor = page.get("nextCursor")
        if not cursor:
            break
    return entries


def show_ledger(console: Console, entries: Sequence[dict[str, Any]], rows: int = 25) -> None:
    """The ledger, newest first, as a table (the oldest rows beyond `rows` are summarised in one line)."""
    table = Table(title=f"Ledger — {len(entries)} entries, newest first")
    for column in ("at", "type", "credits", "balance after", "about"):
        table.add_column(column, justify="right" if column in {"credits", "balance after"} else "left")
    styles = {"purchase": "green", "usage": "yellow", "overage_payoff": "magenta", "void": "red", "expiry": "red"}
    for entry in entries[:rows]:
        table.add_row(
            str(entry.get("at", "")),
            entry.get("type", ""),
            str(entry.get("credits", "")),
            str(entry.get("balanceAfter", "")),
            entry_about(entry),
            style=styles.get(str(entry.get("type"))),
        )
    if len(entries) > rows:
        table.add_row("…", f"{len(entries) - rows} older", "", "", "")
    console.print(table)


def entry_about(entry: dict[str, Any]) -> str:
    """A short description of a ledger entry: its card, events, overage or money value, when it has them."""
    parts = []
    if entry.get("cardId"):
        parts.append(f"card {str(entry['cardId'])[:8]}…")
    if entry.get("events"):
        parts.append(f"{entry['events']} events")
    if entry.get("eventId"):
        parts.append(f"event {entry['eventId']}")
    if entry.get("overage") not in (None, "0", 0):
        parts.append(f"overage {entry['overage']}")
    value = entry.get("value")
    if isinstance(value, dict) and value.get("amount") is not None:
        parts.append(f"{value['amount']} {value.get('currency', '')}")
    return ", ".join(parts)


# -- the credit lifecycle: auto-recharge, expiry -----------------------------------------------------------------------


def show_recharge(console: Console, watcher: Watcher, recharge_at: Decimal) -> None:
    """Say what the auto-recharge did: which crossing it answered, what it bought, and that it bought only once."""
    purchases = watcher.of_type("Auto Recharge Purchased")
    if not purchases:
        console.print("[yellow]No auto-recharge was bought.[/]")
        return
    detail = purchases[0]["detail"]
    card = detail.get("card") or {}
    price = card.get("price") or {}
    console.print(
        f"Auto-recharge answered the crossing of {detail.get('threshold')}: bought [bold]{card.get('credits')}[/] "
        f"credits for {price.get('amount')} {price.get('currency')}, balance back up to [bold]{detail.get('balance')}"
        f"[/] (today {detail.get('todayCount')} of at most {detail.get('maxPerDay')})"
    )
    crossings = [e for e in watcher.of_type("Balance Low") if Decimal(e["detail"]["threshold"]) == recharge_at]
    if len(crossings) > 1:
        console.print(
            f"  the balance crossed {plain(recharge_at)} again later: no second purchase (maxPerDay "
            f"{detail.get('maxPerDay')} reached today)"
        )


def expire_promotion(
    api: Api,
    console: Console,
    clock: StackClock,
    watcher: Watcher,
    customer: str,
    credits: Decimal,
    currency: str,
    webhooks_delivered: Callable[[], bool],
) -> str:
    """Grant a free promotional card expiring in 2 hours, see its expiring-soon notice, move the local clock past
    its expiry, and show it expired (the event, the card leaving the wallet, the ledger's expiry entry).
    Returns the card's id."""
    body = {
        "credits": str(credits),
        "source": "promotion",
        "price": {"amount": "0", "currency": currency},
        "expiresIn": PROMO_EXPIRES_IN,
    }
    bought = api.expect(
        "POST", f"/wallets/{customer}/purchases", 201, body, **{"Idempotency-Key": f"{customer}-promotion"}
    )
    card = bought["card"]
    card_id = str(card["cardId"])
    console.print(
        f"Granted a promotional card of [bold]{card['credits']}[/] free credits (source {card['source']}, "
        f"expiresIn {PROMO_EXPIRES_IN}): card {card_id[:8]}…, expires at {card['expiresAt']}, "
        f"balance [bold]{bought['balance']}[/]"
    )
    watcher.wait_until(lambda: watcher.about_card("Credits Expiring Soon", card_id) is not None, seconds=10)
    # A webhook signed before the move and checked after it would look two hours old to a receiver, refused until
    # the sender's retry 30 s later: the bus settles (a second without a new event) and what it raised arrives first.
    if not watcher.wait_until(lambda: watcher.quiet_for(1.0) and webhooks_delivered(), seconds=15):
        console.print("[yellow]Webhooks are still on their way to the receivers; moving the clock anyway.[/]")
    moved = clock.advance(CLOCK_ADVANCE)
    console.print(
        f'Moved the local clock forward by 2 h 1 min (POST /_local/clock {{"advance": "{CLOCK_ADVANCE}"}}): it '
        f"is now [bold]{wire_time(moved)}[/] for the whole local stack (and stays so), so the card's expiry "
        "schedule fired"
    )
    watcher.wait_until(lambda: watcher.about_card("Credits Expired", card_id) is not None, seconds=15)
    after = watcher.wallet
    live = next((c for c in after.get("cards", []) if c.get("cardId") == card_id), None)
    expired = watcher.about_card("Credits Expired", card_id)
    entries = [e for e in fetch_ledger_of_type(api, customer, "expiry") if e.get("cardId") == card_id]

    table = Table(title=f"Promotional card {card_id[:8]}…")
    for column in ("", "at (local clock)", "status", "remaining", "expires", "wallet balance"):
        table.add_column(column, justify="right" if column in {"remaining", "wallet balance"} else "left")
    table.add_row(
        "granted", card["effectiveAt"], card["status"], card["remaining"], card["expiresAt"], bought["balance"]
    )
    status = live["status"] if live else ("expired" if expired else "not in the wallet")
    left = live["remaining"] if live else "0"
    table.add_row("clock moved", wire_time(moved), status, left, card["expiresAt"], after.get("balance", ""))
    console.print(table)
    if live is None and expired:
        console.print(
            "  the card has left the wallet's live cards; the wallet's expired total is now "
            f"{after.get('totals', {}).get('expired')}"
        )
    for entry in entries:
        value = entry.get("value") or {}
        console.print(
            f"  ledger: [red]expiry[/] at {entry.get('at')}, {entry.get('credits')} credits, breakage value "
            f"{value.get('amount')} {value.get('currency')} (expired credits times cost basis {card['costBasis']})"
        )
    return card_id


def fetch_ledger_of_type(api: Api, customer: str, entry_type: str) -> list[dict[str, Any]]:
    """A wallet's ledger entries of one type, newest first (empty when the route is not served)."""
    status, page = api.call("GET", f"/wallets/{customer}/ledger?{urllib.parse.urlencode({'type': entry_type})}")
    return list(page.get("entries", [])) if status == 200 and isinstance(page, dict) else []


# -- the webhooks ----------------------------------------------------------------------------------------------------


def show_webhooks(console: Console, result: DemoResult) -> None:
    """What the wallet's receiver got: one row per alert kept (first verified request of its id), then refused
    requests."""
    kept = result.webhooks_kept()
    table = Table(title=f"Webhooks received at {result.webhook_url}")
    for column in ("#", "event type", "webhook-id", "attempt", "verified", "copies"):
        table.add_column(column, justify="right" if column in {"#", "attempt", "copies"} else "left")
    for number, delivery in enumerate(kept.values(), start=1):
        table.add_row(
            str(number), delivery.event_type, delivery.event_id, delivery.attempt, "[green]✓[/]", str(delivery.copies)
        )
    for delivery in result.webhooks:
        if not delivery.verified:
            table.add_row("", delivery.event_type, delivery.event_id, delivery.attempt, "[red]✗ refused (401)[/]", "")
    console.print(table)
    wanted = result.alert_ids()
    missing = [i for i in wanted if i not in kept]
    copies = sum(1 for d in result.webhooks if d.verified) - len(kept)
    refused = sum(1 for d in result.webhooks if not d.verified)
    console.print(
        f"{len(result.webhooks)} requests: {len(kept)} alerts kept once each (deduped on webhook-id), "
        f"{copies} copies answered 200 and dropped, {refused} refused (did not verify)"
    )
    console.print(
        f"[green]Every alert on the bus for {result.customer} ({len(wanted)}) arrived, verified ✓[/]"
        if not missing
        else f"[red]{len(missing)} of the {len(wanted)} alerts on the bus for {result.customer} did not arrive[/]"
    )


def endpoint_deliveries(api: Api, result: DemoResult, seconds: float = 5.0) -> list[dict[str, Any]]:
    """This customer's deliveries to the account-level endpoint, newest first, as `GET /webhook-endpoints/{id}/
    deliveries` lists them, once each is recorded delivered (the record is written just after the receiver's 2xx)
    or `seconds` pass."""
    wanted = set(result.endpoint_event_ids())
    deadline = time.monotonic() + seconds
    while True:
        page = api.expect("GET", f"/webhook-endpoints/{result.endpoint_id}/deliveries?limit=100", 200)
        mine = [d for d in page["deliveries"] if d.get("customerId") == result.customer]
        done = {d["eventId"] for d in mine if d.get("state") == "delivered"}
        if wanted <= done or time.monotonic() >= deadline:
            return mine
        time.sleep(0.2)


def show_endpoint_deliveries(console: Console, result: DemoResult) -> None:
    """The endpoint's deliveries of this customer's events as the API lists them, beside what its receiver kept."""
    kept = result.endpoint_kept()
    table = Table(title=f"Deliveries to endpoint {result.endpoint_id} (GET /webhook-endpoints/{{id}}/deliveries)")
    for column in ("event type", "webhook-id", "event time", "state", "attempts", "receiver"):
        table.add_column(column, justify="right" if column == "attempts" else "left")
    for delivery in result.endpoint_deliveries:
        got = "[green]✓ verified[/]" if delivery["eventId"] in kept else "[red]✗ not kept[/]"
        style = "green" if delivery.get("state") == "delivered" else "yellow"
        table.add_row(
            delivery["eventType"],
            delivery["eventId"],
            delivery["eventTime"],
            f"[{style}]{delivery['state']}[/]",
            str(delivery["attempts"]),
            got,
        )
    console.print(table)
    others = len(kept) - sum(1 for d in kept.values() if d.customer_id == result.customer)
    console.print(
        f"The endpoint's receiver kept {len(kept)} events of {', '.join(ENDPOINT_TYPES)}"
        + (f" ({others} about other customers: the endpoint is account-wide)" if others else "")
    )


def show_secrets(console: Console, result: DemoResult) -> None:
    """Each secret verifies its own deliveries only: the first delivery of each receiver checked with both secrets,
    as a receiver would have on its arrival (nothing forged is sent)."""
    secrets = {"the wallet's secret": result.wallet_secret, "the endpoint's secret": result.endpoint_secret}
    table = Table(title="Which secret verifies which delivery (standardwebhooks, at its arrival)")
    for column in ("delivery", "event type", "webhook-id", *secrets):
        table.add_column(column)
    samples = {"to the wallet's webhookUrl": result.webhooks_kept(), "to the endpoint": result.endpoint_kept()}
    for name, kept in samples.items():
        first = next(iter(kept.values()), None)
        if first is not None:
            marks = [
                "[green]✓ verifies[/]" if first.verifies_with(s) else "[red]✗ does not[/]" for s in secrets.values()
            ]
            table.add_row(name, first.event_type, first.event_id, *marks)
    console.print(table)
    crossed = cross_verified(result)
    console.print(
        f"[green]The endpoint's secret verifies none of the wallet's {len(result.webhooks_kept())} deliveries, and the "
        f"wallet's secret none of the endpoint's {len(result.endpoint_kept())} ✓[/]"
        if not crossed
        else f"[red]{len(crossed)} deliveries verify with the other receiver's secret: {crossed[:3]}[/]"
    )


def cross_verified(result: DemoResult) -> list[str]:
    """The ids of kept deliveries that the other receiver's secret verifies too (none, when secrets are apart)."""
    wallet_side = [d.event_id for d in result.webhooks_kept().values() if d.verifies_with(result.endpoint_secret)]
    endpoint_side = [d.event_id for d in result.endpoint_kept().values() if d.verifies_with(result.wallet_secret)]
    return wallet_side + endpoint_side


# -- the whole story -------------------------------------------------------------------------------------------------


def run(config: DemoConfig, console: Console) -> DemoResult:
    """Tell the story against the running system; return what it did and whether the end state is as expected."""
    api = Api(config.url)
    customer = config.customer or f"demo-{uuid.uuid4().hex[:6]}"
    console.rule("[bold]prepaid-credits demo")
    console.print(f"System at {config.url} (moto at {config.moto_url}); customer [bold cyan]{customer}[/]")

    price_book = ensure_price_book(api, console)
    rates = rates_for(ensure_rate_card(api, console), customer)
    if config.sqs_every > 0:
        usage_queue(config)  # fail now, not half-way, if the queue cannot be reached
    clock = StackClock(api)
    with (
        WebhookReceiver(path=f"/webhooks/{customer}", now=clock.timestamp) as receiver,
        WebhookReceiver(path=f"/billing/{customer}", now=clock.timestamp) as billing,
        account_endpoint(api, billing.url, ENDPOINT_TYPES, f"make demo: billing sync for {customer}") as endpoint,
    ):
        billing.secret = str(endpoint["secret"])  # shown once, in the answer (and at GET .../secret)
        console.print(
            f"Webhook receiver started at {receiver.url}: it verifies each request with the standardwebhooks "
            "library and the wallet's own secret (GET /wallets/{customerId}/webhook/secret), and dedupes on webhook-id"
        )
        console.print(
            f"Account-level webhook endpoint {endpoint['id']} (POST /webhook-endpoints) for "
            f"{', '.join(endpoint['eventTypes'])}, to a second receiver at {billing.url}, verified with the "
            "endpoint's own secret"
        )
        return tell(config, console, api, customer, price_book, rates, clock, receiver, (endpoint, billing))


def tell(
    config: DemoConfig,
    console: Console,
    api: Api,
    customer: str,
    price_book: dict[str, Any],
    rates: dict[str, Decimal],
    clock: StackClock,
    receiver: WebhookReceiver,
    account: tuple[dict[str, Any], WebhookReceiver],
) -> DemoResult:
    """The story's acts, with the receivers running: the wallet's (`receiver`), and the account-level endpoint with
    its own (`account`)."""
    endpoint, billing = account
    currency = str(price_book.get("currency", "USD"))
    act = itertools.count(1)  # the acts' numbers (the expiry act is optional)
    console.rule(f"{next(act)}. Buy credits, set alerts and an auto-recharge")
    watcher = Watcher(api, customer, console.print)

    def webhooks_delivered() -> bool:
        """Every alert reached the wallet's receiver, every purchase and expiry the endpoint's (each verified)."""
        return (
            watcher.ids_of(ALERT_TYPES) <= receiver.kept_ids() and watcher.ids_of(ENDPOINT_TYPES) <= billing.kept_ids()
        )

    show_quote(api, console, config.credits, price_book)
    buy(api, console, customer, config.credits, key=f"{customer}-first-purchase")
    watcher.wait_for(["Credits Purchased"], seconds=5)
    receiver.secret = wallet_webhook_secret(api, customer)  # the wallet exists now: it has its own secret
    configure_wallet(api, console, config, customer, currency, receiver.url)

    events = plan_usage(customer, rates, config.events, config.usage_credits, config.seed, at=clock.now())
    result = expect(config, customer, events, rates)
    result.webhook_url, result.wallet_secret = receiver.url, receiver.secret
    result.endpoint_id, result.endpoint_url, result.endpoint_secret = endpoint["id"], billing.url, billing.secret
    expected = result.expected_rated
    rate_text = ", ".join(f"{m} {rates[m]}" for m in DEMO_METERS)
    channels = (
        f"one batch in {config.sqs_every} straight onto the SQS usage queue, the others by HTTP (POST /usage)"
        if config.sqs_every > 0
        else "all by HTTP (POST /usage)"
    )
    console.rule(f"{next(act)}. Stream usage")
    console.print(
        f"{len(events)} events worth [bold]{plain(expected)}[/] credits by the rate card ({rate_text} credits/unit), "
        f"in batches of {config.batch_size}: {channels}"
    )
    wallet = stream_usage(api, console, config, events, expected, watcher)
    if Decimal(wallet["totals"]["rated"]) != expected:
        result.problems.append(f"rated usage {wallet['totals']['rated']} after {config.timeout} s, expected {expected}")
    wanted = ["Balance Low"] + (["Auto Recharge Purchased"] if result.expected_recharges else [])
    if result.expected_overage > 0 or expected > config.credits + config.recharge_credits * result.expected_recharges:
        wanted += ["Balance Depleted", "Overage Recorded"]
    if not watcher.wait_for(wanted, seconds=15):
        result.problems.append(f"not seen on the bus: {sorted(set(wanted) - set(watcher.types()))}")
    if config.recharge_credits > 0:
        show_recharge(console, watcher, config.recharge_at)
    wallet = watcher.wallet

    console.rule(f"{next(act)}. Top up")
    if Decimal(wallet["overage"]) > 0:
        console.print(f"The wallet owes [bold red]{wallet['overage']}[/] credits of overage; a new card pays it first.")
    show_quote(api, console, config.top_up, price_book, with_tiers=False)
    recovers = Decimal(wallet["balance"]) == 0 and config.top_up > Decimal(wallet["overage"])
    recovered_before = len(watcher.of_type("Balance Recovered"))
    top_up = buy(api, console, customer, config.top_up, key=f"{customer}-top-up")
    watcher.wait_until(
        lambda: (
            watcher.about_card("Credits Purchased", top_up["card"]["cardId"]) is not None
            and (not recovers or len(watcher.of_type("Balance Recovered")) > recovered_before)
        ),
        seconds=5,
    )

    if config.promo_credits > 0:
        console.rule(f"{next(act)}. A promotion that expires")
        try:
            result.promo_card_id = expire_promotion(
                api, console, clock, watcher, customer, config.promo_credits, currency, webhooks_delivered
            )
        except RouteMissing as missing:
            result.problems.append(f"the local clock cannot be moved ({missing})")

    console.rule(f"{next(act)}. Wallet and ledger")
    result.wallet = watcher.poll()
    show_wallet(console, result.wallet)
    try:
        result.ledger = fetch_ledger(api, customer)
        show_ledger(console, result.ledger)
    except RouteMissing as missing:
        console.print(f"[yellow]The ledger route is not served by this build yet[/] ({missing}).")

    console.rule(f"{next(act)}. Webhooks received")
    watcher.wait_until(webhooks_delivered, seconds=20)
    result.events = list(watcher.seen.values())
    result.event_types = watcher.types()
    result.webhooks = list(receiver.requests)
    result.endpoint_webhooks = list(billing.requests)
    show_webhooks(console, result)
    result.endpoint_deliveries = endpoint_deliveries(api, result)
    show_endpoint_deliveries(console, result)
    show_secrets(console, result)

    check_end_state(result)
    verdict = "[bold green]as the rate card predicts" if result.ok else "[bold red]" + "; ".join(result.problems)
    expired = result.wallet.get("totals", {}).get("expired")
    console.print(
        Panel(
            f"balance {result.wallet.get('balance')} (expected {plain(result.expected_balance)}), "
            f"overage {result.wallet.get('overage')} (expected {plain(result.expected_overage)}), "
            f"expired {expired} (expected {plain(result.expected_expired)})\n"
            f"auto-recharges {len(result.of_type('Auto Recharge Purchased'))} (expected {result.expected_recharges}), "
            f"webhooks: {len(result.webhooks_kept())} alerts kept of {len(result.webhooks)} requests; "
            f"endpoint: {len(result.endpoint_kept())} events kept of {len(result.endpoint_webhooks)} requests\n"
            f"events seen on the bus: {', '.join(result.event_types)}\n{verdict}",
            title=f"{customer}: end state",
        )
    )
    return result


def expect(config: DemoConfig, customer: str, events: list[dict[str, Any]], rates: dict[str, Decimal]) -> DemoResult:
    """What the story must end with, from the rate card and the configuration alone.

    One auto-recharge when the usage takes the first card's balance to the recharge threshold (`maxPerDay` 1 stops
    a second); the top-up pays any overage first; the promotional card, granted after the usage, pays what overage
    is left and the rest of it expires.
    """
    expected = expected_rated(events, rates)
    recharges = int(
        config.recharge_credits > 0
        and config.credits > config.recharge_at
        and expected >= config.credits - config.recharge_at
    )
    bought = config.credits + config.recharge_credits * recharges + config.top_up
    owed = max(expected - bought, Decimal(0))
    promo_pays = min(config.promo_credits, owed)
    return DemoResult(
        customer=customer,
        usage=events,
        expected_rated=expected,
        expected_balance=max(bought - expected, Decimal(0)),
        expected_overage=owed - promo_pays,
        expected_recharges=recharges,
        expected_expired=config.promo_credits - promo_pays,
    )


def check_end_state(result: DemoResult) -> None:
    """Compare the end state with the expected one; add a problem for each difference.

    The wallet's balance, overage and expired credits to the last digit; Balance Low seen; exactly the expected
    number of auto-recharges; the promotional card's expiring-soon notice and its expiry (event and ledger entry);
    every alert event of this customer on the bus received by the wallet's receiver, and every purchase and expiry by
    the endpoint's, each kept once, verified, with no request refused and neither secret verifying the other's.
    """
    wallet = result.wallet
    if Decimal(wallet.get("balance", "-1")) != result.expected_balance:
        result.problems.append(f"balance {wallet.get('balance')}, expected {result.expected_balance}")
    if Decimal(wallet.get("overage", "-1")) != result.expected_overage:
        result.problems.append(f"overage {wallet.get('overage')}, expected {result.expected_overage}")
    expired_total = Decimal(wallet.get("totals", {}).get("expired", "-1"))
    if expired_total != result.expected_expired:
        result.problems.append(f"expired {plain(expired_total)}, expected {plain(result.expected_expired)}")
    if "Balance Low" not in result.event_types:
        result.problems.append("no Balance Low on the bus")
    recharges = len(result.of_type("Auto Recharge Purchased"))
    if recharges != result.expected_recharges:
        result.problems.append(f"{recharges} Auto Recharge Purchased, expected {result.expected_recharges}")
    if result.promo_card_id is not None:
        check_promotion(result, result.promo_card_id)
    check_webhooks(result)


def check_promotion(result: DemoResult, card_id: str) -> None:
    """The promotional card got its expiring-soon notice, then expired with the expected credits, in the ledger."""

    def about(event: dict[str, Any]) -> bool:
        return card_id in (event["detail"].get("cardId"), (event["detail"].get("card") or {}).get("cardId"))

    if not any(about(e) for e in result.of_type("Credits Expiring Soon")):
        result.problems.append("no Credits Expiring Soon for the promotional card")
    expired = [e for e in result.of_type("Credits Expired") if about(e)]
    if result.expected_expired > 0:
        if len(expired) != 1 or Decimal(expired[0]["detail"].get("credits", "-1")) != result.expected_expired:
            result.problems.append(f"Credits Expired for the promotional card: {[e['detail'] for e in expired]}")
        entries = [e for e in result.ledger or [] if e.get("type") == "expiry" and e.get("cardId") == card_id]
        if result.ledger is not None and len(entries) != 1:
            result.problems.append(f"{len(entries)} ledger expiry entries for the promotional card, expected 1")


def check_webhooks(result: DemoResult) -> None:
    """Every alert of this customer on the bus reached the wallet's receiver, and every purchase and expiry the
    endpoint's, kept once and verified with its own secret; neither secret verifies the other's deliveries."""
    wanted = result.alert_ids()
    kept = result.webhooks_kept()
    if not wanted:
        result.problems.append("no alert events on the bus to be delivered")
    missing = [i for i in wanted if i not in kept]
    if missing:
        result.problems.append(f"{len(missing)} alerts not received by the webhook: {missing[:3]}")
    strangers = [d.event_id for d in kept.values() if d.customer_id != result.customer]
    if strangers:
        result.problems.append(f"webhooks about another customer: {strangers[:3]}")
    for_endpoint = result.endpoint_event_ids()
    missing = [i for i in for_endpoint if i not in result.endpoint_kept()]
    if not for_endpoint or missing:
        result.problems.append(f"{len(missing)} of {len(for_endpoint)} events not received by the endpoint")
    refused = [d.event_id for d in (*result.webhooks, *result.endpoint_webhooks) if not d.verified]
    if refused:
        result.problems.append(f"{len(refused)} webhook requests did not verify: {refused[:3]}")
    listed = {d["eventId"]: d.get("state") for d in result.endpoint_deliveries}
    undelivered = [i for i in for_endpoint if listed.get(i) != "delivered"]
    if undelivered:
        result.problems.append(f"endpoint deliveries not listed as delivered: {undelivered[:3]}")
    crossed = cross_verified(result)
    if crossed:
        result.problems.append(f"{len(crossed)} deliveries verify with the other receiver's secret: {crossed[:3]}")


# -- command line ----------------------------------------------------------------------------------------------------


def credits_arg(text: str) -> Decimal:
    """A non-negative decimal from the command line (argparse shows the message on a bad one)."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not a decimal: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not a non-negative amount: {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> DemoConfig:
    """The command line as a `DemoConfig`."""
    d = DemoConfig()
    parser = argparse.ArgumentParser(prog="make demo ARGS=...", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=d.url, help=f"the local API (default {d.url})")
    parser.add_argument(
        "--moto-url", default=d.moto_url, help=f"the embedded moto, for SQS and the secret (default {d.moto_url})"
    )
    parser.add_argument("--stack-name", default=d.stack_name, help="the local stack's name prefix (default local)")
    parser.add_argument("--customer", default=None, help="customer id (default: a fresh demo-<random>)")
    parser.add_argument("--credits", type=credits_arg, default=d.credits, help=f"first purchase (default {d.credits})")
    parser.add_argument(
        "--threshold", type=credits_arg, default=d.threshold, help=f"Balance Low at (default {d.threshold})"
    )
    parser.add_argument(
        "--recharge-at", type=credits_arg, default=d.recharge_at, help=f"auto-recharge at (default {d.recharge_at})"
    )
    parser.add_argument(
        "--recharge-credits",
        type=credits_arg,
        default=d.recharge_credits,
        help=f"auto-recharge buys (default {d.recharge_credits}; 0: no auto-recharge)",
    )
    parser.add_argument(
        "--recharge-price", type=credits_arg, default=d.recharge_price, help=f"its price (default {d.recharge_price})"
    )
    parser.add_argument(
        "--usage-credits",
        type=credits_arg,
        default=d.usage_credits,
        help=f"usage worth (default {d.usage_credits})",
    )
    parser.add_argument("--top-up", type=credits_arg, default=d.top_up, help=f"bought at the end (default {d.top_up})")
    parser.add_argument(
        "--promo-credits",
        type=credits_arg,
        default=d.promo_credits,
        help=f"promotional card that expires (default {d.promo_credits}; 0: skip the expiry)",
    )
    parser.add_argument("--events", type=int, default=d.events, help=f"usage events (default {d.events})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="events per batch (max 1000)")
    parser.add_argument("--sqs-every", type=int, default=d.sqs_every, help="every Nth batch by SQS (0: none)")
    parser.add_argument("--pace", type=float, default=d.pace, help="seconds to spread the sending over")
    parser.add_argument("--timeout", type=float, default=d.timeout, help="longest wait for the drawdown (s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="usage pattern seed")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1 to 1000 (POST /usage takes up to 1,000 events)")
    if args.events < 1 or args.sqs_every < 0:
        parser.error("--events must be at least 1, and --sqs-every 0 or more")
    return DemoConfig(
        url=args.url,
        moto_url=args.moto_url,
        stack_name=args.stack_name,
        customer=args.customer,
        credits=args.credits,
        threshold=args.threshold,
        recharge_at=args.recharge_at,
        recharge_credits=args.recharge_credits,
        recharge_price=args.recharge_price,
        usage_credits=args.usage_credits,
        top_up=args.top_up,
        promo_credits=args.promo_credits,
        events=args.events,
        batch_size=args.batch_size,
        sqs_every=args.sqs_every,
        pace=args.pace,
        timeout=args.timeout,
        seed=args.seed,
    )


def play(argv: Sequence[str] | None = None, console: Console | None = None) -> tuple[int, DemoResult | None]:
    """Run the demo; its exit code (see `main`) and what it did (None when the system could not be reached)."""
    config = parse_args(argv)
    console = console or Console()
    try:
        result = run(config, console)
    except DemoError as error:
        console.print(f"[bold red]demo:[/] {error}")
        return 2, None
    return (0 if result.ok else 1), result


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the demo; 0 when the end state is the expected one, 1 when it is not, 2 when the system is not there."""
    return play(argv, console)[0]


if __name__ == "__main__":
    sys.exit(main())
