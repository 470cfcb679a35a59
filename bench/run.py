"""Usage pipeline benchmark: batched drawdown (our design) against one conditional transaction per event.

Both runs start from the same state (rate card, two cards per wallet bought through the API) in a fresh in-process
moto built from template.yaml, and draw the same events:

* batched: the events go onto the usage queue as producers send them (100 per message); the timed part is
  `Stack.pump_queues()`: the real ingest handler (screen, rate, FIFO by customer) and the real drawdown handler
  (up to 94 events per transaction);
* naive: the same events, screened and rated first (not timed), drawn through `DrawdownService` with
  `max_events_per_commit=1`, in arrival order: one wallet read and one transaction per event.

DynamoDB alone is measured (SQS is not), by hooks on the event system of boto3's default session, which every
client built afterwards copies: the stack's, the handlers' (`boto3.client("dynamodb")` in cached functions, cleared
before each run) and the baseline's. Write units follow AWS's item size rules; the sizes of items already stored
(replaced wallets, updated aggregates) are read from moto's store directly, outside the client, and the time the
hooks take is left out of the measured wall time.

Both runs must end with the same balance, overage and rated usage in every wallet, and with exactly one usage
record per event, or the benchmark stops with an error.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import itertools
import math
import os
import random
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TextIO, cast

import boto3
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.sqs import Queue, pack
from prepaid.application.drawdown import DrawdownService
from prepaid.application.ingest import RateCards, UsageIntake
from prepaid.domain.card import Card, CardSource
from prepaid.domain.money import Money
from prepaid.domain.rate_card import RateCard
from prepaid.domain.wallet import RatedUsage, Wallet
from prepaid_local.moto_serial import serialize_dynamodb
from prepaid_local.offline import MOTO_ENV
from prepaid_local.stack import Stack

REGION = "us-east-1"
# tests/conftest.py's TEST_ENV, with metrics off and the logs quiet
ENVIRONMENT = {**MOTO_ENV, "POWERTOOLS_METRICS_NAMESPACE": "PrepaidCreditsBench"}
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}

METERS = {"api_calls": "0.5", "tokens": "0.002", "storage_gb_hours": "1.25"}
METER_WEIGHTS = (6, 3, 1)
OVERRIDES = {"cust-0001": {"api_calls": "0.4"}}  # one negotiated price, so overrides are rated too
HOT_FUNDED = Decimal("0.6")  # the hot wallet's cards cover 60% of its usage: the rest becomes overage
PROMO_DAYS = 30
USD_PER_CREDIT = Decimal("0.01")
CENT = Decimal("0.01")

TARGET_WRU_PER_EVENT = 2.1
TARGET_REQUEST_RATIO = 10.0
TARGET_DOMAIN_RATE = 100_000.0

WRITE_KB = 1024
READ_KB = 4096


# -- workload --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purchase:
    credits: Decimal
    price: Decimal
    source: str
    expires_in_days: int | None = None


@dataclass(frozen=True)
class Workload:
    events: list[dict[str, str]]
    customers: list[str]
    hot: str
    purchases: dict[str, list[Purchase]]
    rated: dict[str, Decimal]  # rate card applied to each customer's events, summed
    effective_at: datetime
    rate_card: RateCard
    spread_hours: float


def rate_card() -> RateCard:
    return RateCard(
        meters={m: Decimal(r) for m, r in METERS.items()},
        overrides={c: {m: Decimal(r) for m, r in o.items()} for c, o in OVERRIDES.items()},
    )


def quantity(rng: random.Random, meter: str) -> str:
    if meter == "api_calls":
        return str(rng.randint(1, 50))
    if meter == "tokens":
        return str(rng.randint(50, 8000))
    thousandths = rng.randint(1, 20_000)  # GB-hours with three decimals, as a decimal string
    return f"{thousandths // 1000}.{thousandths % 1000:03d}"


def make_workload(events: int, wallets: int, hot_share: float, seed: int, spread_hours: float = 0) -> Workload:
    """Events skewed over wallets: the hot wallet takes `hot_share`, the rest follow a Zipf (1/k) tail; their
    timestamps all now, or rising evenly over the last `spread_hours` (so hours close as the stream goes on)."""
    rng = random.Random(seed)
    customers = [f"cust-{i:04d}" for i in range(wallets)]
    hot, rest = customers[0], customers[1:]
    hot_count = round(events * hot_share)
    zipf = list(itertools.accumulate(1 / k for k in range(1, len(rest) + 1)))
    owners = [hot] * hot_count + rng.choices(rest, cum_weights=zipf, k=events - hot_count)
    rng.shuffle(owners)
    meters = rng.choices(list(METERS), weights=METER_WEIGHTS, k=events)
    now = datetime.now(UTC)
    first = now - timedelta(hours=spread_hours)
    card = rate_card()
    rated = dict.fromkeys(customers, Decimal(0))
    generated: list[dict[str, str]] = []
    for owner, meter in zip(owners, meters, strict=True):
        amount = quantity(rng, meter)
        rated[owner] += card.rate(owner, meter, Decimal(amount))
        generated.append(
            {
                "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "customerId": owner,
                "meter": meter,
                "quantity": amount,
                "timestamp": (first + (now - first) * (len(generated) + 1) / events).isoformat(timespec="milliseconds"),
            }
        )
    purchases: dict[str, list[Purchase]] = {}
    for customer in customers:
        if customer == hot:
            promo = Decimal(100)
            bought = max(Decimal(1), (rated[customer] * HOT_FUNDED).to_integral_value(ROUND_FLOOR) - promo)
        else:
            promo = Decimal(5)
            bought = (rated[customer] * 2).to_integral_value(ROUND_CEILING) + 10
        purchases[customer] = [
            Purchase(promo, Decimal(0), "promotion", PROMO_DAYS),
            Purchase(bought, (bought * USD_PER_CREDIT).quantize(CENT), "purchase"),
        ]
    effective_at = (now - timedelta(days=1)).replace(microsecond=0)
    return Workload(generated, customers, hot, purchases, rated, effective_at, card, spread_hours)


# -- item sizes and capacity units (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
#    CapacityUnitCalculations.html and read-write-operations.html) ----------------------------------------------------


def number_size(text: str) -> int:
    """AWS: about 1 byte per two significant digits, plus 1 (leading and trailing zeros trimmed)."""
    digits = Decimal(text).normalize().as_tuple().digits
    return math.ceil(len(digits) / 2) + 1


def binary_size(value: Any) -> int:
    return len(value) if isinstance(value, bytes | bytearray) else len(base64.b64decode(value))


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(number_size(n) for n in data)
    if kind == "BS":
        return sum(binary_size(b) for b in data)
    if kind == "L":  # 3 bytes, plus each element and 1 byte per element
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Sum over attributes of the UTF-8 length of the name plus the size of the value."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_KB))


def kind_of(key: Mapping[str, Mapping[str, str]]) -> str:
    """The item kind of the single-table design (docs/data-model.md), from its key."""
    pk, sk = key["PK"]["S"], key["SK"]["S"]
    if pk.startswith("W#"):
        if sk == "WALLET":
            return "wallet"
        return {"L#": "ledger entry", "C#": "retired card"}.get(sk[:2], "wallet other")
    return {"E#": "usage record", "A#": "hourly usage", "O#": "outbox event", "I#": "idempotency"}.get(pk[:2], pk)


# -- the DynamoDB meter ----------------------------------------------------------------------------------------------


@dataclass
class Write:
    """One item a write request touches: what it was before, and (for a Put) what it becomes."""

    table: str
    key: dict[str, Any]
    action: str  # Put | Update | Delete | ConditionCheck
    before: int
    put_size: int | None
    transactional: bool


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    wru: int = 0
    rru: float = 0.0
    wru_by_kind: Counter[str] = field(default_factory=Counter)
    items_by_kind: Counter[str] = field(default_factory=Counter)
    bytes_by_kind: Counter[str] = field(default_factory=Counter)
    max_bytes_by_kind: Counter[str] = field(default_factory=Counter)
    wru_by_customer: Counter[str] = field(default_factory=Counter)
    events_by_customer: Counter[str] = field(default_factory=Counter)
    transactions: int = 0
    batches: list[tuple[str, list[str]]] = field(default_factory=list)  # (customer, event ids) per transaction
    hook_seconds: float = 0.0

    @property
    def request_count(self) -> int:
        return sum(self.requests.values()) + self.retries


class DynamoMeter:
    """Counts every DynamoDB request of every client built from boto3's default session while active."""

    def __init__(self) -> None:
        self.active = False
        self.tally = Tally()

    def install(self) -> None:
        """Hook boto3's default session. moto's `mock_aws` resets that session when it starts, and a client copies
        its session's handlers when it is built: so call this inside `mock_aws`, before any client exists."""
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("provide-client-params.dynamodb", self._before, unique_id="bench-dynamodb-before")
        session.events.register("after-call.dynamodb", self._after, unique_id="bench-dynamodb-after")

    @contextmanager
    def measuring(self) -> Iterator[Tally]:
        self.tally = Tally()
        self.active = True
        try:
            yield self.tally
        finally:
            self.active = False

    @staticmethod
    def backend() -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]

    def _stored_size(self, table: str, key: dict[str, Any]) -> int:
        """The size of the item as stored now, read from moto's store directly (not a metered request)."""
        found = self.backend().get_item(table, key)
        return item_size(found.to_json()["Attributes"]) if found is not None else 0

    def _key(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        found = self.backend().get_table(table)
        names = [found.hash_key_attr] + ([found.range_key_attr] if found.range_key_attr else [])
        return {name: item[name] for name in names}

    def _write(self, action: str, op: Mapping[str, Any], transactional: bool) -> Write:
        table = op["TableName"]
        if action == "Put":
            key = self._key(table, op["Item"])
            # A Put conditioned on absence that succeeds replaced nothing; otherwise the old item counts too.
            fresh = op.get("ConditionExpression") == "attribute_not_exists(PK)"
            before = 0 if fresh else self._stored_size(table, key)
            return Write(table, key, action, before, item_size(op["Item"]), transactional)
        key = dict(op["Key"])
        return Write(table, key, action, self._stored_size(table, key), None, transactional)

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.active:
            return
        started = time.perf_counter()
        operation = model.name
        self.tally.requests[operation] += 1
        if operation == "TransactWriteItems":
            context["bench_writes"] = [
                self._write(action, op, transactional=True)
                for entry in params["TransactItems"]
                for action, op in entry.items()
            ]
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            context["bench_writes"] = [self._write(operation.removesuffix("Item"), params, transactional=False)]
        elif operation == "BatchWriteItem":
            context["bench_writes"] = [
                self._write(action.removesuffix("Request"), {"TableName": table, **op}, transactional=False)
                for table, requests in params["RequestItems"].items()
                for request in requests
                for action, op in request.items()
            ]
        elif operation in ("GetItem", "Query"):
            context["bench_consistent"] = bool(params.get("ConsistentRead", False))
        else:
            raise NotImplementedError(f"the bench does not size {operation}; extend DynamoMeter")
        self.tally.hook_seconds += time.perf_counter() - started

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.active:
            return
        started = time.perf_counter()
        operation = model.name
        self.tally.retries += int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if http_response.status_code >= 300:
            self.tally.failed[operation] += 1  # counted as requests; their capacity is not modelled (none expected)
        elif operation == "GetItem":
            units = math.ceil(max(1, item_size(parsed.get("Item", {}))) / READ_KB)
            self.tally.rru += units if context.get("bench_consistent") else units / 2
        elif operation == "Query":
            units = max(1, math.ceil(sum(item_size(i) for i in parsed.get("Items", [])) / READ_KB))
            self.tally.rru += units if context.get("bench_consistent") else units / 2
        else:
            self._charge(operation, context.get("bench_writes", []))
        self.tally.hook_seconds += time.perf_counter() - started

    def _charge(self, operation: str, writes: list[Write]) -> None:
        customer, events, units = None, [], 0
        for write in writes:
            after = write.put_size if write.put_size is not None else 0
            if write.action == "Update":
                after = self._stored_size(write.table, write.key)  # the item after the update, as stored
            size = max(write.before, after)  # Put/Update: the larger of before and after; Delete/Check: before
            charged = write_units(size) * (2 if write.transactional else 1)
            kind = kind_of(write.key)
            units += charged
            self.tally.wru_by_kind[kind] += charged
            self.tally.items_by_kind[kind] += 1
            self.tally.bytes_by_kind[kind] += size
            self.tally.max_bytes_by_kind[kind] = max(self.tally.max_bytes_by_kind[kind], size)
            if kind == "wallet":
                customer = write.key["PK"]["S"].removeprefix("W#")
            elif kind == "usage record":
                events.append(write.key["PK"]["S"].removeprefix("E#"))
        self.tally.wru += units
        if operation == "TransactWriteItems":
            self.tally.transactions += 1
        owner = customer or "(no wallet item)"
        self.tally.wru_by_customer[owner] += units
        self.tally.events_by_customer[owner] += len(events)
        if events:
            self.tally.batches.append((owner, events))


# -- the stack -------------------------------------------------------------------------------------------------------


def clear_handler_caches() -> None:
    """Handlers build their clients once per process (as on Lambda); each run has a fresh moto, so rebuild them."""
    import api_handler
    import drawdown_handler
    import ingest_handler
    import publisher_handler
    from prepaid import config

    for module in (api_handler, ingest_handler, drawdown_handler, publisher_handler, config):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def new_stack() -> Stack:
    stack = Stack(lambda service: boto3.client(cast(Any, service), region_name=REGION))
    os.environ.update(QUIET)  # the template sets the functions' log level; quiet it before handlers are imported
    clear_handler_caches()
    return stack


def set_up(stack: Stack, workload: Workload) -> None:
    """The rate card, and two cards per wallet (a free promotion first, then a purchase), through the API."""
    body = {
        "meters": {m: {"creditsPerUnit": r} for m, r in METERS.items()},
        "overrides": {c: {m: {"creditsPerUnit": r} for m, r in o.items()} for c, o in OVERRIDES.items()},
    }
    answer = stack.api("PUT", "/rate-card", body)
    if answer.status != 200:
        raise RuntimeError(f"rate card: {answer.status} {answer.body}")
    effective = workload.effective_at.isoformat()
    for customer in workload.customers:
        for purchase in workload.purchases[customer]:
            request: dict[str, Any] = {
                "credits": str(purchase.credits),
                "price": {"amount": str(purchase.price), "currency": "USD"},
                "source": purchase.source,
                "effectiveAt": effective,
            }
            if purchase.expires_in_days is not None:
                request["expiresIn"] = f"P{purchase.expires_in_days}D"
            answer = stack.api("POST", f"/wallets/{customer}/purchases", request)
            if answer.status != 201:
                raise RuntimeError(f"purchase for {customer}: {answer.status} {answer.body}")


@dataclass(frozen=True)
class WalletState:
    balance: Decimal
    overage: Decimal
    rated: Decimal
    drawn: Decimal
    credits: Decimal


@dataclass
class RunResult:
    name: str
    seconds: float  # wall time of the timed part, hooks excluded
    tally: Tally
    wallets: dict[str, WalletState]
    phases: dict[str, float] = field(default_factory=dict)


def state_of(wallet: Wallet | None, at: datetime) -> WalletState:
    assert wallet is not None
    totals = wallet.totals(at)
    return WalletState(totals.balance, totals.overage, totals.rated, totals.drawn, totals.credits)


def usage_records(table: str) -> Iterator[dict[str, Any]]:
    """Every `E#` item of the table, read from moto's store directly: a paginated Scan through moto re-reads the
    whole table for every 1 MB page, which took a minute for this check alone."""
    stored = DynamoMeter.backend().get_table(table)
    for partition in stored.items.values():
        for item in partition.values() if isinstance(partition, dict) else [partition]:
            attributes: dict[str, Any] = item.to_json()["Attributes"]
            if attributes["PK"]["S"].startswith("E#"):
                yield attributes


def verify_store(workload: Workload, at: datetime) -> dict[str, WalletState]:
    """Exactly one usage record per event, none extra; every wallet's rated usage = its records = the rate card."""
    client = boto3.session.Session(region_name=REGION).client("dynamodb")  # not metered
    table = os.environ["TABLE_NAME"]
    store = DynamoWalletStore(client, table)
    wallets = {c: state_of(store.load(c), at) for c in workload.customers}
    records: Counter[str] = Counter()
    credits: dict[str, Decimal] = {}
    for item in usage_records(table):
        records[item["PK"]["S"].removeprefix("E#")] += 1
        owner = item["customerId"]["S"]
        credits[owner] = credits.get(owner, Decimal(0)) + Decimal(item["credits"]["N"])
    expected = {e["eventId"] for e in workload.events}
    missing, extra = expected - set(records), set(records) - expected
    twice = [k for k, n in records.items() if n != 1]
    if missing or extra or twice:
        raise AssertionError(f"usage records: {len(missing)} missing, {len(extra)} unknown, {len(twice)} repeated")
    for customer, state in wallets.items():
        rated = workload.rated[customer]
        if not (state.rated == rated == credits.get(customer, Decimal(0)) and state.drawn + state.overage == rated):
            raise AssertionError(f"{customer}: rated {state.rated}, records {credits.get(customer)}, expected {rated}")
    return wallets


@contextmanager
def fresh_stack(workload: Workload, meter: DynamoMeter, phases: dict[str, float]) -> Iterator[Stack]:
    """A fresh moto with the template's stack, metered, in the workload's starting state (timed as set-up)."""
    with mock_aws():
        serialize_dynamodb()
        meter.install()
        started = time.perf_counter()
        stack = new_stack()
        set_up(stack, workload)
        phases["set-up (stack, rate card, purchases)"] = time.perf_counter() - started
        yield stack


def run_batched(workload: Workload, meter: DynamoMeter) -> RunResult:
    phases: dict[str, float] = {}
    with fresh_stack(workload, meter, phases) as stack:
        started = time.perf_counter()
        sqs = boto3.client("sqs", region_name=REGION)
        # as a producer sends straight onto the usage queue: events packed into messages of up to 100
        Queue(sqs, stack.name("UsageQueue")).send([{"MessageBody": b} for b in pack(workload.events)])
        phases["producers' sends (not timed)"] = time.perf_counter() - started
        with meter.measuring() as tally:
            started = time.perf_counter()
            stack.pump_queues()
            wall = time.perf_counter() - started
        phases["pump_queues (timed, with hooks)"] = wall
        for queue in ("UsageQueue", "DrawdownQueue", "UsageDeadLetterQueue"):
            url = stack.name(queue)
            left = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if any(int(v) for v in left.values()):
                raise AssertionError(f"{url} is not empty after the run: {left}")
        started = time.perf_counter()
        wallets = verify_store(workload, datetime.now(UTC))
        phases["verification"] = time.perf_counter() - started
    return RunResult("batched", wall - tally.hook_seconds, tally, wallets, phases)


def run_naive(workload: Workload, meter: DynamoMeter) -> RunResult:
    phases: dict[str, float] = {}
    with fresh_stack(workload, meter, phases):
        table = os.environ["TABLE_NAME"]
        client = boto3.client("dynamodb", region_name=REGION)  # built after the hooks: metered

        def clock() -> datetime:
            return datetime.now(UTC)

        started = time.perf_counter()
        intake = UsageIntake(RateCards(DynamoCatalogStore(client, table)), clock)
        screening = intake.screen(workload.events)
        if screening.refused:
            raise AssertionError(f"refused: {screening.refused[:3]}")
        rated = {c: iter(usages) for c, usages in screening.by_customer().items()}
        arrivals = [(e.customer_id, next(rated[e.customer_id])) for e in screening.accepted]
        phases["screen and rate (not timed)"] = time.perf_counter() - started
        service = DrawdownService(
            DynamoWalletStore(client, table), clock, lambda: uuid.uuid4().hex, max_events_per_commit=1
        )
        with meter.measuring() as tally:
            started = time.perf_counter()
            for customer, usage in arrivals:
                report = service.apply(customer, [usage])
                if report.drawn != [usage.event_id]:
                    raise AssertionError(f"{usage.event_id} not drawn: {report}")
            wall = time.perf_counter() - started
        phases["one transaction per event (timed, with hooks)"] = wall
        started = time.perf_counter()
        wallets = verify_store(workload, datetime.now(UTC))
        phases["verification"] = time.perf_counter() - started
    return RunResult("naive", wall - tally.hook_seconds, tally, wallets, phases)


# -- the domain core alone -------------------------------------------------------------------------------------------


def domain_wallets(workload: Workload) -> dict[str, Wallet]:
    """The wallets as the set-up leaves them, built in memory (same cards, same order)."""
    wallets = {}
    for customer in workload.customers:
        cards = {}
        for n, purchase in enumerate(workload.purchases[customer]):
            expires = purchase.expires_in_days
            card = Card.issue(
                card_id=f"{customer}-{n}",
                credits=purchase.credits,
                price=Money(purchase.price, "USD"),
                source=CardSource(purchase.source),
                priority=50,
                effective_at=workload.effective_at,
                expires_at=workload.effective_at + timedelta(days=expires) if expires is not None else None,
                created_at=workload.effective_at,
            )
            cards[card.card_id] = card
        wallets[customer] = Wallet(customer_id=customer, created_at=workload.effective_at, version=1, cards=cards)
    return wallets


def run_domain(workload: Workload, pipeline: RunResult, repeats: int = 5) -> tuple[float, int]:
    """Rating (RateCard.rate) and allocation (Wallet.draw_batch) over the batches the pipeline committed, no I/O.

    Returns the best events/s of `repeats` runs and the number of events; the wallets must end as the pipeline's.
    """
    batches = pipeline.tally.batches
    by_id = {
        e["eventId"]: (e["meter"], Decimal(e["quantity"]), datetime.fromisoformat(e["timestamp"]))
        for e in workload.events
    }
    batches_of_events = [(c, [(i, *by_id[i]) for i in ids]) for c, ids in batches]
    card = workload.rate_card
    now = datetime.now(UTC)
    best = math.inf
    wallets: dict[str, Wallet] = {}
    for _ in range(repeats):
        wallets = domain_wallets(workload)
        started = time.perf_counter()
        for customer, events in batches_of_events:
            usages = [RatedUsage(i, m, q, card.rate(customer, m, q), at) for i, m, q, at in events]
            wallets[customer] = wallets[customer].draw_batch(usages, now).wallet
        best = min(best, time.perf_counter() - started)
    count = sum(len(ids) for _, ids in batches)
    for customer, wallet in wallets.items():
        got, expected = state_of(wallet, now), pipeline.wallets[customer]
        if (got.balance, got.overage, got.rated) != (expected.balance, expected.overage, expected.rated):
            raise AssertionError(f"domain run: {customer} ends {got}, the pipeline {expected}")
    return count / best, count


# -- report ----------------------------------------------------------------------------------------------------------


def per_event(value: float, events: int) -> float:
    return value / events if events else math.nan


def split(tally: Tally, hot: str) -> tuple[float, float, float]:
    """WRU/event of the hot wallet, of the rest, and events per transaction of the rest."""
    hot_events = tally.events_by_customer[hot]
    rest_events = sum(n for c, n in tally.events_by_customer.items() if c != hot)
    rest_wru = sum(n for c, n in tally.wru_by_customer.items() if c != hot)
    rest_batches = sum(1 for c, _ in tally.batches if c != hot)
    return (
        per_event(tally.wru_by_customer[hot], hot_events),
        per_event(rest_wru, rest_events),
        per_event(rest_events, rest_batches) if rest_batches else math.nan,
    )


def fmt(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def show(row: Sequence[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([show(header), line, *(show(r) for r in rows)])


def report(
    workload: Workload, batched: RunResult, naive: RunResult, domain_rate: float, domain_events: int, seconds: float
) -> bool:
    n = len(workload.events)
    hot = workload.hot
    b, v = batched.tally, naive.tally
    b_rate, v_rate = n / batched.seconds, n / naive.seconds
    b_req, v_req = per_event(b.request_count, n), per_event(v.request_count, n)
    b_wru, v_wru = per_event(b.wru, n), per_event(v.wru, n)
    b_hot, b_rest, b_rest_size = split(b, hot)
    v_hot, v_rest, _ = split(v, hot)
    hot_events = b.events_by_customer[hot]
    hot_batches = sum(1 for c, _ in b.batches if c == hot)

    def ratio(better: float, worse: float) -> str:
        return f"{worse / better:.1f}x" if better else "-"

    rows = [
        ["events/s (timed part, hooks excluded)", fmt(b_rate, 0), fmt(v_rate, 0), ratio(v_rate, b_rate)],
        ["timed wall seconds", fmt(batched.seconds, 1), fmt(naive.seconds, 1), ratio(batched.seconds, naive.seconds)],
        ["DynamoDB requests/event", fmt(b_req, 4), fmt(v_req, 4), ratio(b_req, v_req)],
        ["  GetItem requests", str(b.requests["GetItem"]), str(v.requests["GetItem"]), ""],
        [
            "  TransactWriteItems requests",
            str(b.requests["TransactWriteItems"]),
            str(v.requests["TransactWriteItems"]),
            "",
        ],
        ["WRU/event", fmt(b_wru), fmt(v_wru), ratio(b_wru, v_wru)],
        [f"  WRU/event, hot wallet ({hot})", fmt(b_hot), fmt(v_hot), ratio(b_hot, v_hot)],
        [
            f"  WRU/event, the other {len(workload.customers) - 1} wallets",
            fmt(b_rest),
            fmt(v_rest),
            ratio(b_rest, v_rest),
        ],
        ["RRU/event (consistent wallet reads)", fmt(per_event(b.rru, n)), fmt(per_event(v.rru, n)), ""],
        ["transactions", str(b.transactions), str(v.transactions), ratio(b.transactions, v.transactions)],
        ["  events/transaction, hot wallet", fmt(per_event(hot_events, hot_batches), 1), "1.0", ""],
        ["  events/transaction, other wallets", fmt(b_rest_size, 1), "1.0", ""],
        ["failed requests", str(sum(b.failed.values())), str(sum(v.failed.values())), ""],
        ["domain core only (rate + draw_batch), events/s", fmt(domain_rate, 0), "", ""],
    ]
    print()
    print(
        f"events {n:,}  wallets {len(workload.customers)}  hot share {b.events_by_customer[hot] / n:.2f}"
        f"  timestamps over {workload.spread_hours:g} h"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min)"
    )
    print(table(rows, ["", "batched", "naive", "ratio"]))
    print("ratio: how many times better batched is than naive (higher is better for batched)")

    kinds = sorted(set(b.wru_by_kind) | set(v.wru_by_kind), key=lambda k: -b.wru_by_kind[k])
    kind_rows = [
        [
            k,
            str(b.items_by_kind[k]),
            f"{per_event(b.bytes_by_kind[k], b.items_by_kind[k]):.0f}",
            str(b.max_bytes_by_kind[k]),
            fmt(per_event(b.wru_by_kind[k], n)),
            str(v.items_by_kind[k]),
            f"{per_event(v.bytes_by_kind[k], v.items_by_kind[k]):.0f}",
            str(v.max_bytes_by_kind[k]),
            fmt(per_event(v.wru_by_kind[k], n)),
        ]
        for k in kinds
    ]
    print()
    print("write units by item kind (in a transaction: 2 WRU per started KB of each item; item sizes in bytes)")
    header = ["item", "batched items", "mean", "max", "WRU/event", "naive items", "mean", "max", "WRU/event"]
    print(table(kind_rows, header))

    targets = [
        (
            f"WRU/event <= {TARGET_WRU_PER_EVENT} (batched)",
            b_wru <= TARGET_WRU_PER_EVENT,
            f"{b_wru:.3f} (hot {b_hot:.3f}, others {b_rest:.3f})",
        ),
        (
            f">= {TARGET_REQUEST_RATIO:.0f}x fewer DynamoDB requests/event than naive",
            v_req / b_req >= TARGET_REQUEST_RATIO,
            f"{v_req / b_req:.1f}x ({b_req:.4f} vs {v_req:.4f})",
        ),
        (
            f"domain core >= {TARGET_DOMAIN_RATE:,.0f} events/s",
            domain_rate >= TARGET_DOMAIN_RATE,
            f"{domain_rate:,.0f} events/s over {domain_events:,} events",
        ),
    ]
    print()
    print("targets")
    print(table([[t, "met" if ok else "NOT met", got] for t, ok, got in targets], ["target", "", "measured"]))

    print()
    print("timings (seconds)")
    timing_rows = [[f"{r.name}: {k}", f"{s:.1f}"] for r in (batched, naive) for k, s in r.phases.items()]
    timing_rows += [
        ["batched: metering hooks (excluded)", f"{b.hook_seconds:.1f}"],
        ["naive: metering hooks (excluded)", f"{v.hook_seconds:.1f}"],
        ["whole benchmark", f"{seconds:.1f}"],
    ]
    print(table(timing_rows, ["phase", "s"]))
    return all(ok for _, ok, _ in targets)


def compare(workload: Workload, batched: RunResult, naive: RunResult) -> None:
    """Same balances, overage and rated usage in every wallet: the two runs did the same work."""
    differ = [c for c in workload.customers if batched.wallets[c] != naive.wallets[c]]
    if differ:
        c = differ[0]
        raise AssertionError(f"{len(differ)} wallets differ, e.g. {c}: {batched.wallets[c]} vs {naive.wallets[c]}")
    hot = batched.wallets[workload.hot]
    if not (hot.overage > 0 and hot.balance == 0):
        raise AssertionError(f"the hot wallet should end in overage: {hot}")
    for run in (batched, naive):
        drawn = sum(len(ids) for _, ids in run.tally.batches)
        if drawn != len(workload.events):
            raise AssertionError(f"{run.name}: {drawn} usage records metered, {len(workload.events)} events")


class WithoutMetrics(io.TextIOBase):
    """stdout without Powertools' metric (EMF) lines. With POWERTOOLS_METRICS_DISABLED, Powertools 3.37 never
    clears its metric set at the end of an invocation, and `add_metric` still prints the set when a metric reaches
    100 values, whatever the setting: those lines would litter the report. Everything else (logs) goes through."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out
        self._line = ""

    def write(self, text: str) -> int:
        self._line += text
        *lines, self._line = self._line.split("\n")
        for line in lines:
            if not line.startswith('{"_aws"'):
                self._out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._out.write(self._line)
        self._line = ""
        self._out.flush()


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="usage events (default 20000)")
    parser.add_argument("--wallets", type=int, default=200, help="wallets (default 200)")
    parser.add_argument("--hot-share", type=float, default=0.5, help="the hot wallet's share of events (default 0.5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--spread-hours",
        type=float,
        default=0,
        help="timestamps rise evenly over the last N hours (default 0: every event at the current instant)",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.spread_hours < 0 or args.wallets < 2 or not 0 <= args.hot_share <= 1:
        parser.error("need --events >= 1, --spread-hours >= 0, --wallets >= 2 and 0 <= --hot-share <= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    os.environ.update(ENVIRONMENT)
    os.environ.update(QUIET)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with contextlib.redirect_stdout(WithoutMetrics(sys.stdout)):
        return benchmark(args)


def benchmark(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    workload = make_workload(args.events, args.wallets, args.hot_share, args.seed, args.spread_hours)
    meter = DynamoMeter()
    print(f"batched run: {args.events:,} events through the usage queue, ingest and drawdown ...", flush=True)
    batched = run_batched(workload, meter)
    print("domain core: rating and allocation in memory ...", flush=True)
    domain_rate, domain_events = run_domain(workload, batched)
    print(f"naive run: {args.events:,} events, one transaction each ...", flush=True)
    naive = run_naive(workload, meter)
    compare(workload, batched, naive)
    print("checks: every event drawn exactly once in both runs; same balance, overage and rated usage per wallet")
    report(workload, batched, naive, domain_rate, domain_events, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
