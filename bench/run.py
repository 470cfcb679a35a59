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
import contextlib
import dataclasses
import io
import itertools
import json
import math
import os
import random
import sys
import threading
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
from costs import AwsMeter, AwsTally, Bill, bill
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from prepaid.adapters import items
from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore, item_bytes
from prepaid.adapters.sqs import Queue, pack
from prepaid.application.drawdown import DrawdownService
from prepaid.application.ingest import RateCards, UsageIntake
from prepaid.domain.card import Card, CardSource
from prepaid.domain.money import Money
from prepaid.domain.rate_card import RateCard
from prepaid.domain.wallet import RatedUsage, Wallet
from prepaid_local.clock import Clock
from prepaid_local.moto_serial import serialize_moto
from prepaid_local.offline import MOTO_ENV
from prepaid_local.stack import STANDARD_QUEUE_POLLERS, Stack

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

TARGET_BURST_WRU = 1.2
TARGET_BURST_REQUESTS = 0.1
TARGET_STEADY_WRU = 2.5
TARGET_BURST_USD = 1.00
TARGET_STEADY_USD = 2.00
# Lambda's pollers of a standard queue: five at first, as the local stack runs them, and "as few as 2 concurrent
# batches" when traffic is low (Lambda's SQS scaling documentation); a receive takes up to 10 messages
LAMBDA_POLLERS = STANDARD_QUEUE_POLLERS
LAMBDA_POLLERS_LOW = 2
MESSAGES_PER_RECEIVE = 10
TARGET_LIVE_CARD_GROWTH = 1.5
TARGET_DOMAIN_RATE = 100_000.0
LIVE_CARDS = (5, 50, 500)
LIVE_CARD_COMMITS = 20

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
    seconds: int = 0  # steady traffic: the events arrive evenly over this many seconds


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


def usage_event(
    rng: random.Random, card: RateCard, rated: dict[str, Decimal], owner: str, meter: str, at: datetime
) -> dict[str, str]:
    """One event with a random quantity, its rated credits added to its owner's in `rated`."""
    amount = quantity(rng, meter)
    rated[owner] += card.rate(owner, meter, Decimal(amount))
    return {
        "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customerId": owner,
        "meter": meter,
        "quantity": amount,
        "timestamp": at.isoformat(timespec="milliseconds"),
    }


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
        at = first + (now - first) * (len(generated) + 1) / events
        generated.append(usage_event(rng, card, rated, owner, meter, at))
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


def make_steady_workload(wallets: int, rate: int, seconds: int, seed: int) -> Workload:
    """`wallets` wallets sending `rate` events per second each for `seconds` seconds, interleaved in arrival
    order; each wallet funded for twice its usage (a free promotion first, then a purchase)."""
    rng = random.Random(seed)
    customers = [f"cust-{i:04d}" for i in range(wallets)]
    card = rate_card()
    rated = dict.fromkeys(customers, Decimal(0))
    now = datetime.now(UTC)
    generated: list[dict[str, str]] = []
    for second in range(seconds):
        for _ in range(rate):
            for owner in rng.sample(customers, len(customers)):
                meter = rng.choices(list(METERS), weights=METER_WEIGHTS)[0]
                generated.append(usage_event(rng, card, rated, owner, meter, now + timedelta(seconds=second)))
    purchases = {
        c: [
            Purchase(Decimal(5), Decimal(0), "promotion", PROMO_DAYS),
            Purchase(
                bought := (rated[c] * 2).to_integral_value(ROUND_CEILING) + 10,
                (bought * USD_PER_CREDIT).quantize(CENT),
                "purchase",
            ),
        ]
        for c in customers
    }
    effective_at = (now - timedelta(days=1)).replace(microsecond=0)
    return Workload(generated, customers, customers[0], purchases, rated, effective_at, card, 0, seconds)


# -- item sizes and capacity units (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
#    CapacityUnitCalculations.html and read-write-operations.html) ----------------------------------------------------


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Sum over attributes of the UTF-8 length of the name plus the size of the value (the adapter's own rule)."""
    return item_bytes(dict(item))


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_KB))


def kind_of(key: Mapping[str, Mapping[str, str]]) -> str:
    """The item kind of the single-table design (docs/data-model.md), from its key."""
    pk, sk = key["PK"]["S"], key["SK"]["S"]
    if pk.startswith("W#"):
        if sk == "WALLET":
            return "wallet"
        return {"L#": "ledger entry", "C#": "retired card"}.get(sk[:2], "wallet other")
    if pk == "REVENUE":
        return "revenue day"
    return {
        "E#": "usage record",
        "A#": "hourly usage",
        "O#": "outbox event",
        "I#": "idempotency",
        "R#": "revenue guard",
    }.get(pk[:2], pk)


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
    item: Mapping[str, Any] | None = None  # what a Put writes


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
    commits: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (customer, version) -> event ids
    hook_seconds: float = 0.0

    @property
    def batches(self) -> list[tuple[str, list[str]]]:
        """(customer, event ids) per commit that drew usage, in the order they were written."""
        return [(customer, ids) for (customer, _), ids in self.commits.items()]

    @property
    def events_by_customer(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (owner, _), ids in self.commits.items():
            counts[owner] += len(ids)
        return counts

    @property
    def events(self) -> int:
        return sum(len(ids) for ids in self.commits.values())

    def wru_of(self, *kinds: str, excluding: bool = False) -> int:
        return sum(n for k, n in self.wru_by_kind.items() if (k in kinds) != excluding)

    @property
    def request_count(self) -> int:
        return sum(self.requests.values()) + self.retries


class DynamoMeter:
    """Counts every DynamoDB request of every client built from boto3's default session while active."""

    def __init__(self) -> None:
        self.active = False
        self.tally = Tally()
        self._lock = threading.RLock()  # the store sends a commit's batch requests side by side

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
            return Write(table, key, action, before, item_size(op["Item"]), transactional, op["Item"])
        key = dict(op["Key"])
        return Write(table, key, action, self._stored_size(table, key), None, transactional)

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.active:
            return
        cpu = time.thread_time()
        with self._lock:
            self._sized(params, model, context)
        # before the SDK's own timing starts: the function's bill leaves it out by this (bench/costs.py)
        context["bench_hook_cpu"] = time.thread_time() - cpu

    def _sized(self, params: dict[str, Any], model: Any, context: dict[str, Any]) -> None:
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
        elif operation == "BatchGetItem":
            context["bench_reads"] = [
                (bool(request.get("ConsistentRead", False)), len(request["Keys"]))
                for request in params["RequestItems"].values()
            ]
        else:
            raise NotImplementedError(f"the bench does not size {operation}; extend DynamoMeter")
        self.tally.hook_seconds += time.perf_counter() - started

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.active:
            return
        with self._lock:
            self._counted(http_response, parsed, model, context)

    def _counted(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any]) -> None:
        started = time.perf_counter()
        operation = model.name
        self.tally.retries += int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if http_response.status_code >= 300:
            self.tally.failed[operation] += 1  # counted as requests; their capacity is not modelled (none expected)
        elif operation == "GetItem":
            units = math.ceil(max(1, item_size(parsed.get("Item", {}))) / READ_KB)
            self.tally.rru += units if context.get("bench_consistent") else units / 2
        elif operation == "BatchGetItem":
            # each key read costs at least one unit (half, eventually consistent), found or not; found items by size
            found = [item for items in parsed.get("Responses", {}).values() for item in items]
            unprocessed = sum(len(r["Keys"]) for r in parsed.get("UnprocessedKeys", {}).values())
            for consistent, keys in context.get("bench_reads", []):
                sized = [math.ceil(max(1, item_size(i)) / READ_KB) for i in found[:keys]]
                found = found[keys:]
                units = sum(sized) + max(0, keys - len(sized) - unprocessed)
                self.tally.rru += units if consistent else units / 2
        elif operation == "Query":
            units = max(1, math.ceil(sum(item_size(i) for i in parsed.get("Items", [])) / READ_KB))
            self.tally.rru += units if context.get("bench_consistent") else units / 2
        else:
            self._charge(context.get("bench_writes", []))
        self.tally.hook_seconds += time.perf_counter() - started

    def _charge(self, writes: list[Write]) -> None:
        for write in writes:
            after = write.put_size if write.put_size is not None else 0
            if write.action == "Update":
                after = self._stored_size(write.table, write.key)  # the item after the update, as stored
            size = max(write.before, after)  # Put/Update: the larger of before and after; Delete/Check: before
            charged = write_units(size) * (2 if write.transactional else 1)
            kind = kind_of(write.key)
            self.tally.wru += charged
            self.tally.wru_by_kind[kind] += charged
            self.tally.items_by_kind[kind] += 1
            self.tally.bytes_by_kind[kind] += size
            self.tally.max_bytes_by_kind[kind] = max(self.tally.max_bytes_by_kind[kind], size)
            owner = owner_of(write)
            self.tally.wru_by_customer[owner] += charged
            if kind == "usage record" and write.item is not None:
                commit = (owner, write.item["version"]["N"])
                self.tally.commits.setdefault(commit, []).append(write.key["PK"]["S"].removeprefix("E#"))


def owner_of(write: Write) -> str:
    """The customer an item belongs to, from its key or (usage records, outbox events) from its content."""
    pk: str = write.key["PK"]["S"]
    if pk.startswith(("W#", "A#")):
        return pk[2:]
    if write.item is not None and "customerId" in write.item:
        customer: str = write.item["customerId"]["S"]
        return customer
    return "(revenue)" if pk.startswith(("R#", "REVENUE")) else "(other)"


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


def new_stack(clock: Clock | None = None) -> Stack:
    stack = Stack(lambda service: boto3.client(cast(Any, service), region_name=REGION), clock=clock)
    stack.polls_through_api = True  # the pollers' receives and deletes are metered: they stand for Lambda's
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
    aws: AwsTally | None = None  # SQS, EventBridge and Lambda, for the runs through the stack


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


def timed_verification(workload: Workload, phases: dict[str, float]) -> dict[str, WalletState]:
    """`verify_store` now, its time recorded as the run's verification phase."""
    started = time.perf_counter()
    wallets = verify_store(workload, datetime.now(UTC))
    phases["verification"] = time.perf_counter() - started
    return wallets


@contextmanager
def fresh_stack(
    workload: Workload,
    meter: DynamoMeter,
    phases: dict[str, float],
    aws: AwsMeter | None = None,
    clock: Clock | None = None,
) -> Iterator[Stack]:
    """A fresh moto with the template's stack, metered, in the workload's starting state (timed as set-up)."""
    with mock_aws():
        serialize_moto()
        meter.install()
        if aws is not None:
            aws.hook_session()
        started = time.perf_counter()
        stack = new_stack(clock)
        if aws is not None:
            aws.wrap(stack)
        set_up(stack, workload)
        phases["set-up (stack, rate card, purchases)"] = time.perf_counter() - started
        yield stack


def assert_queues_empty(stack: Stack) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for queue in ("UsageQueue", "DrawdownQueue", "UsageDeadLetterQueue"):
        url = stack.name(queue)
        left = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if any(int(v) for v in left.values()):
            raise AssertionError(f"{url} is not empty after the run: {left}")


def run_batched(workload: Workload, meter: DynamoMeter, aws: AwsMeter, name: str = "batched") -> RunResult:
    """Our design: producers' messages through ingest and drawdown, then the streams (outbox, revenue)."""
    phases: dict[str, float] = {}
    with fresh_stack(workload, meter, phases, aws) as stack:
        sqs = boto3.client("sqs", region_name=REGION)
        with meter.measuring() as tally, aws.measuring() as aws_tally:
            started = time.perf_counter()
            # as a producer sends straight onto the usage queue: events packed into messages of up to 100
            Queue(sqs, stack.name("UsageQueue")).send([{"MessageBody": b} for b in pack(workload.events)])
            phases["producers' sends (not timed)"] = sent = time.perf_counter() - started
            stack.pump_queues()
            stack.pump_streams()
            wall = time.perf_counter() - started - sent
        phases["pump queues and streams (timed, with hooks)"] = wall
        assert_queues_empty(stack)
        wallets = timed_verification(workload, phases)
    return RunResult(name, wall - tally.hook_seconds, tally, wallets, phases, aws_tally)


def run_steady(workload: Workload, meter: DynamoMeter, aws: AwsMeter, pollers: int) -> RunResult:
    """Our design under steady traffic, as Lambda polls it. The usage queue's `pollers` each gather a batch over
    the template's batching window: each window's one-event messages are shared among them in runs of 10 (one
    `ReceiveMessage` each) in turn, so a customer's events of a window may reach the drawdown queue in several
    messages. Each ingest batch's messages are drawn as soon as they arrive (the drawdown queue is FIFO: Lambda
    polls it with no batching window, a message group's messages together). Then the streams, as their mappings'
    batch sizes and windows say (the stack's clock moves a window at a time; what is left at the end goes when its
    window runs out). Each drawdown invocation starts knowing nothing (`new_environment_per_drawdown`)."""
    phases: dict[str, float] = {}
    # the stack's clock stands still but for the simulated seconds: a second of traffic may take many seconds here,
    # and the streams' batching windows are in simulated time
    clock = Clock(frozen_at=datetime.now(UTC))
    with fresh_stack(workload, meter, phases, aws, clock) as stack:
        sqs = boto3.client("sqs", region_name=REGION)
        usage = Queue(sqs, stack.name("UsageQueue"))
        ingest = source_of(stack, "IngestFunction")
        drawdown = source_of(stack, "DrawdownFunction")
        window = max(1, round(stack.batching_window(ingest[1])))
        windows: dict[int, list[dict[str, str]]] = {}
        for n, event in enumerate(workload.events):
            windows.setdefault(n * workload.seconds // len(workload.events) // window, []).append(event)
        stack.observers.append(new_environment_per_drawdown)
        with meter.measuring() as tally, aws.measuring() as aws_tally:
            started = time.perf_counter()
            for n in sorted(windows):
                messages = [{"MessageBody": json.dumps(e)} for e in windows[n]]
                for poller in range(pollers):
                    usage.send([m for i, m in enumerate(messages) if (i // MESSAGES_PER_RECEIVE) % pollers == poller])
                    stack.pump_source(*ingest)  # this poller's batch
                    while stack.pump_source(*drawdown):
                        pass
                stack.pump_queues()
                stack.pump_streams(batching_windows=True)
                stack.advance(window)
            stack.pump_streams()
            wall = time.perf_counter() - started
        phases[f"{workload.seconds} simulated seconds, sends and pumps (timed, with hooks)"] = wall
        assert_queues_empty(stack)
        wallets = timed_verification(workload, phases)
    return RunResult(f"steady, {pollers} pollers", wall - tally.hook_seconds, tally, wallets, phases, aws_tally)


def source_of(stack: Stack, function: str) -> tuple[str, dict[str, Any]]:
    """A function's SQS event source: (function, the mapping's properties)."""
    return next(source for source in stack.event_sources("SQS") if source[0] == function)


def new_environment_per_drawdown(logical_id: str, event: Any) -> None:
    """The worst case for steady traffic: each drawdown invocation in an environment that did not write the wallet
    version it reads, so it reads back what that version owed."""
    if logical_id == "DrawdownFunction":
        from prepaid import assembly

        assembly.drawdown_store().forget()


def rated_arrivals(workload: Workload, client: Any, table: str) -> list[tuple[str, RatedUsage]]:
    """The workload's events screened and rated as ingest would, in arrival order (not timed)."""
    intake = UsageIntake(RateCards(DynamoCatalogStore(client, table)), lambda: datetime.now(UTC))
    screening = intake.screen(workload.events)
    if screening.refused:
        raise AssertionError(f"refused: {screening.refused[:3]}")
    rated = {c: iter(usages) for c, usages in screening.by_customer().items()}
    return [(e.customer_id, next(rated[e.customer_id])) for e in screening.accepted]


def run_naive(workload: Workload, meter: DynamoMeter) -> RunResult:
    """One consistent wallet read and one transaction (wallet, ledger entry, usage record) per event; then the
    revenue projection of its ledger entries."""
    phases: dict[str, float] = {}
    with fresh_stack(workload, meter, phases) as stack:
        table = os.environ["TABLE_NAME"]
        client = boto3.client("dynamodb", region_name=REGION)  # built after the hooks: metered
        started = time.perf_counter()
        arrivals = rated_arrivals(workload, client, table)
        phases["screen and rate (not timed)"] = time.perf_counter() - started
        store = DynamoWalletStore(client, table, one_transaction=True)
        service = DrawdownService(store, lambda: datetime.now(UTC), lambda: uuid.uuid4().hex, max_events_per_commit=1)
        with meter.measuring() as tally:
            started = time.perf_counter()
            for customer, usage in arrivals:
                report = service.apply(customer, [usage])
                if report.drawn != [usage.event_id]:
                    raise AssertionError(f"{usage.event_id} not drawn: {report}")
            stack.pump_streams()
            wall = time.perf_counter() - started
        phases["one transaction per event, then the streams (timed, with hooks)"] = wall
        wallets = timed_verification(workload, phases)
    return RunResult("naive", wall - tally.hook_seconds, tally, wallets, phases)


def run_lean(workload: Workload, meter: DynamoMeter) -> RunResult:
    """The lean per-event baseline: each wallet kept in memory (read once, before the timed part), and per event
    one transaction of the wallet (version condition) and its usage record (only if absent); no ledger entry, no
    hourly usage, no events."""
    phases: dict[str, float] = {}
    with fresh_stack(workload, meter, phases):
        table = os.environ["TABLE_NAME"]
        client = boto3.client("dynamodb", region_name=REGION)
        started = time.perf_counter()
        arrivals = rated_arrivals(workload, client, table)
        loaded = {c: DynamoWalletStore(client, table).load(c) for c in workload.customers}
        wallets = {c: w for c, w in loaded.items() if w is not None}
        phases["screen, rate and read the wallets (not timed)"] = time.perf_counter() - started
        with meter.measuring() as tally:
            started = time.perf_counter()
            for customer, usage in arrivals:
                before, now = wallets[customer], datetime.now(UTC)
                outcome = before.draw_batch([usage], now)
                after = dataclasses.replace(outcome.wallet, version=before.version + 1)
                record = items.usage_event_item(customer, after.version, outcome.usage[0], now)
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": table,
                                "Item": items.to_attributes(items.wallet_item(after)),
                                "ConditionExpression": "version = :v",
                                "ExpressionAttributeValues": {":v": {"N": str(before.version)}},
                            }
                        },
                        {
                            "Put": {
                                "TableName": table,
                                "Item": items.to_attributes(record),
                                "ConditionExpression": "attribute_not_exists(PK)",
                            }
                        },
                    ]
                )
                wallets[customer] = after
            wall = time.perf_counter() - started
        phases["one lean transaction per event (timed, with hooks)"] = wall
        states = timed_verification(workload, phases)
    return RunResult("lean per-event", wall - tally.hook_seconds, tally, states, phases)


def live_card_costs(counts: Sequence[int] = LIVE_CARDS, commits: int = LIVE_CARD_COMMITS) -> dict[int, float]:
    """Mean write units of a one-event drawdown commit on wallets with 5, 50 and 500 live cards, over `commits`
    commits after two that bring the wallet to its steady shape. A mean, because one commit's cost depends on
    where its item's size falls against a KB boundary (single commits measured 2 to 5 WRU from run to run)."""
    meter = DynamoMeter()
    costs: dict[int, float] = {}
    workload = make_workload(10, 2, 0.5, 1)
    with fresh_stack(workload, meter, {}) as stack:
        table = os.environ["TABLE_NAME"]
        client = boto3.client("dynamodb", region_name=REGION)
        service = DrawdownService(DynamoWalletStore(client, table), lambda: datetime.now(UTC), lambda: uuid.uuid4().hex)
        for count in counts:
            customer = f"cards-{count}"
            for n in range(count):
                body = {"credits": "1000", "price": {"amount": "10.00", "currency": "USD"}, "priority": n % 100}
                answer = stack.api("POST", f"/wallets/{customer}/purchases", body)
                if answer.status != 201:
                    raise RuntimeError(f"purchase {n} for {customer}: {answer.status} {answer.body}")
            at = datetime.now(UTC)
            units = []
            for n in range(2 + commits):
                usage = RatedUsage(f"{customer}-{n}", "api_calls", Decimal(1), Decimal("0.5"), at)
                with meter.measuring() as tally:
                    service.apply(customer, [usage])
                units.append(tally.wru)
            costs[count] = sum(units[2:]) / commits
    return costs


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

REVENUE_KINDS = ("revenue guard", "revenue day")


def per_event(value: float, events: int) -> float:
    return value / events if events else math.nan


@dataclass(frozen=True)
class Figures:
    """One run's figures per event."""

    name: str
    events: int
    events_per_commit: float
    wru_pipeline: float  # ingest and drawdown
    wru_revenue: float  # the revenue projection (stream consumer)
    rru: float
    requests: float
    events_per_second: float
    bill: Bill | None  # all-in dollars per million events, for runs through the stack

    @property
    def wru(self) -> float:
        return self.wru_pipeline + self.wru_revenue

    def summary(self) -> dict[str, float | None]:
        return {
            "wru_per_event": round(self.wru, 4),
            "rru_per_event": round(self.rru, 4),
            "ddb_requests_per_event": round(self.requests, 4),
            "usd_per_million": round(self.bill.total, 4) if self.bill else None,
            "events_per_commit": round(self.events_per_commit, 2),
        }


def figures(run: RunResult, events: int) -> Figures:
    tally = run.tally
    revenue = tally.wru_of(*REVENUE_KINDS)
    commits = len(tally.commits)
    return Figures(
        run.name,
        events,
        per_event(tally.events, commits),
        per_event(tally.wru - revenue, events),
        per_event(revenue, events),
        per_event(tally.rru, events),
        per_event(tally.request_count, events),
        events / run.seconds,
        bill(events, tally.wru, tally.rru, run.aws) if run.aws is not None else None,
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


def comparison(title: str, columns: Sequence[Figures]) -> None:
    rows = [
        ["events per commit", *(fmt(f.events_per_commit, 1) for f in columns)],
        ["WRU/event, ingest + drawdown", *(fmt(f.wru_pipeline) for f in columns)],
        ["  + revenue projection (stream)", *(fmt(f.wru_revenue) for f in columns)],
        ["WRU/event, all-in", *(fmt(f.wru) for f in columns)],
        ["RRU/event", *(fmt(f.rru) for f in columns)],
        ["DynamoDB requests/event", *(fmt(f.requests, 4) for f in columns)],
        ["events/s on moto (hooks excluded)", *(fmt(f.events_per_second, 0) for f in columns)],
        ["all-in $ per million events", *(fmt(f.bill.total) if f.bill else "-" for f in columns)],
    ]
    print()
    print(title)
    print(table(rows, ["", *(f.name for f in columns)]))


def print_bill(title: str, figures_: Figures, aws: AwsTally) -> None:
    assert figures_.bill is not None
    rows = [[line, fmt(usd, 4)] for line, usd in figures_.bill.lines.items()]
    rows.append(["total", fmt(figures_.bill.total, 4)])
    invocations = ", ".join(f"{k.removesuffix('Function')} {n}" for k, n in sorted(aws.invocations.items()))
    print()
    print(f"{title}: $ per million events at list prices (bench/costs.py)")
    print(table(rows, ["", "$/M events"]))
    print(
        f"  invocations: {invocations}; function CPU {aws.function_cpu_s:.1f} s (moto's time taken out) + modelled "
        f"AWS waits {aws.modelled_latency_s:.1f} s; SQS requests {dict(aws.sqs_requests)}; "
        f"EventBridge events {aws.eventbridge_events}"
    )


def by_kind(run: RunResult, events: int) -> None:
    tally = run.tally
    rows = [
        [
            k,
            str(tally.items_by_kind[k]),
            f"{per_event(tally.bytes_by_kind[k], tally.items_by_kind[k]):.0f}",
            str(tally.max_bytes_by_kind[k]),
            fmt(per_event(tally.wru_by_kind[k], events)),
        ]
        for k in sorted(tally.wru_by_kind, key=lambda k: -tally.wru_by_kind[k])
    ]
    print()
    print(f"{run.name}: write units by item kind (item sizes in bytes; in a transaction 2 WRU per started KB)")
    print(table(rows, ["item", "items", "mean", "max", "WRU/event"]))
    print(f"  requests: {dict(tally.requests)}")


def report(
    burst: Sequence[RunResult],
    steady: Sequence[RunResult],
    workloads: tuple[Workload, Workload],
    live_cards: dict[int, float],
    sweep: Sequence[Figures],
    domain_rate: float,
    seconds: float,
) -> dict[str, Any]:
    burst_workload, steady_workload = workloads
    b = [figures(r, len(burst_workload.events)) for r in burst]
    st = [figures(r, len(steady_workload.events)) for r in steady]
    n = len(burst_workload.events)
    hot = burst_workload.hot
    print()
    print(
        f"machine: {os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min)"
    )
    comparison(
        f"burst: {n:,} events, {len(burst_workload.customers)} wallets, hot share "
        f"{burst[0].tally.events_by_customer[hot] / n:.2f}, 100 events per message",
        b,
    )
    comparison(
        f"steady: {len(steady_workload.customers)} wallets x "
        f"{len(steady_workload.events) // len(steady_workload.customers) // steady_workload.seconds} events/s for "
        f"{steady_workload.seconds} s ({len(steady_workload.events):,} events), one event per message",
        st,
    )
    assert burst[0].aws is not None and steady[0].aws is not None and steady[1].aws is not None
    print_bill("burst, our design", b[0], burst[0].aws)
    print_bill(f"steady, our design, {LAMBDA_POLLERS} pollers", st[0], steady[0].aws)
    print_bill(f"steady, our design, {LAMBDA_POLLERS_LOW} pollers", st[1], steady[1].aws)
    by_kind(burst[0], n)
    by_kind(steady[0], len(steady_workload.events))
    print()
    print(f"one-event drawdown commits on a wallet with N live cards (mean of {LIVE_CARD_COMMITS})")
    print(table([[str(k), fmt(v, 2)] for k, v in live_cards.items()], ["live cards", "WRU (mean)"]))
    print()
    print("our design, burst at other sizes (same wallets and hot share)")
    print(
        table(
            [[f"{f.events:,}", fmt(f.wru), fmt(f.requests, 4), fmt(f.events_per_commit, 1)] for f in sweep],
            ["events", "WRU/event all-in", "requests/event", "events/commit"],
        )
    )
    growth = live_cards[max(live_cards)] / live_cards[min(live_cards)]
    ours_b, ours_s, low = b[0], st[0], st[1]
    assert ours_b.bill is not None and ours_s.bill is not None and low.bill is not None
    targets = [
        (f"burst: WRU/event <= {TARGET_BURST_WRU} (all-in)", ours_b.wru <= TARGET_BURST_WRU, fmt(ours_b.wru)),
        (
            f"burst: DynamoDB requests/event <= {TARGET_BURST_REQUESTS}",
            ours_b.requests <= TARGET_BURST_REQUESTS,
            fmt(ours_b.requests, 4),
        ),
        (
            f"burst: <= ${TARGET_BURST_USD:.2f} per million",
            ours_b.bill.total <= TARGET_BURST_USD,
            fmt(ours_b.bill.total),
        ),
    ]
    for steady_run in (ours_s, low):
        name = steady_run.name
        targets.append(
            (
                f"{name}: WRU/event <= {TARGET_STEADY_WRU} (all-in)",
                steady_run.wru <= TARGET_STEADY_WRU,
                fmt(steady_run.wru),
            )
        )
        total = steady_run.bill.total if steady_run.bill else math.inf
        targets.append((f"{name}: <= ${TARGET_STEADY_USD:.2f} per million", total <= TARGET_STEADY_USD, fmt(total)))
    targets += [
        (
            f"live cards: write cost 500 / 5 <= {TARGET_LIVE_CARD_GROWTH}x",
            growth <= TARGET_LIVE_CARD_GROWTH,
            f"{growth:.1f}x",
        ),
        (
            "sizes: WRU/event flat or falling",
            all(later.wru <= earlier.wru * 1.02 for earlier, later in itertools.pairwise(sweep)),
            " / ".join(fmt(f.wru) for f in sweep),
        ),
        (f"domain core >= {TARGET_DOMAIN_RATE:,.0f} events/s", domain_rate >= TARGET_DOMAIN_RATE, fmt(domain_rate, 0)),
    ]
    print()
    print("targets")
    print(table([[t, "met" if ok else "NOT met", got] for t, ok, got in targets], ["target", "", "measured"]))
    print()
    print("timings (seconds)")
    timing_rows = [[f"{r.name}: {k}", f"{v:.1f}"] for r in (*burst, *steady) for k, v in r.phases.items()]
    timing_rows.append(["whole benchmark", f"{seconds:.1f}"])
    print(table(timing_rows, ["phase", "s"]))
    return {"burst": ours_b.summary(), "steady": ours_s.summary()}


def compare(workload: Workload, runs: Sequence[RunResult], *, hot_in_overage: bool = True) -> None:
    """Same balances, overage and rated usage in every wallet: the runs did the same work."""
    first = runs[0]
    for other in runs[1:]:
        differ = [c for c in workload.customers if first.wallets[c] != other.wallets[c]]
        if differ:
            c = differ[0]
            raise AssertionError(
                f"{first.name} and {other.name}: {len(differ)} wallets differ, e.g. {c}: {first.wallets[c]} vs "
                f"{other.wallets[c]}"
            )
    hot = first.wallets[workload.hot]
    if hot_in_overage and not (hot.overage > 0 and hot.balance == 0):
        raise AssertionError(f"the hot wallet should end in overage: {hot}")
    for run in runs:
        if run.tally.events != len(workload.events):
            raise AssertionError(f"{run.name}: {run.tally.events} usage records metered, {len(workload.events)} events")


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
    parser.add_argument("--events", type=int, default=20_000, help="burst: usage events (default 20000)")
    parser.add_argument("--wallets", type=int, default=200, help="burst: wallets (default 200)")
    parser.add_argument("--hot-share", type=float, default=0.5, help="burst: the hot wallet's share (default 0.5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--spread-hours",
        type=float,
        default=0,
        help="burst: timestamps rise evenly over the last N hours (default 0: every event at the current instant)",
    )
    parser.add_argument("--steady-wallets", type=int, default=100, help="steady: wallets (default 100)")
    parser.add_argument("--steady-rate", type=int, default=2, help="steady: events/s per wallet (default 2)")
    parser.add_argument("--steady-seconds", type=int, default=30, help="steady: seconds of traffic (default 30)")
    parser.add_argument(
        "--sizes", default="2000,60000", help="burst: other sizes our design also runs at (default 2000,60000)"
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
    out = sys.stdout
    with contextlib.redirect_stdout(WithoutMetrics(sys.stdout)):
        summary = benchmark(args)
    out.write(json.dumps(summary) + "\n")  # the last line: the figures, for machines
    return 0


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    burst_workload = make_workload(args.events, args.wallets, args.hot_share, args.seed, args.spread_hours)
    steady_workload = make_steady_workload(args.steady_wallets, args.steady_rate, args.steady_seconds, args.seed)
    meter, aws = DynamoMeter(), AwsMeter()
    print(f"burst: {args.events:,} events through the usage queue, ingest, drawdown and the streams ...", flush=True)
    burst = [run_batched(burst_workload, meter, aws)]
    print("domain core: rating and allocation in memory ...", flush=True)
    domain_rate, _ = run_domain(burst_workload, burst[0])
    print(f"burst, naive: {args.events:,} events, one transaction each ...", flush=True)
    burst.append(run_naive(burst_workload, meter))
    print(f"burst, lean per-event: {args.events:,} events ...", flush=True)
    burst.append(run_lean(burst_workload, meter))
    compare(burst_workload, burst)
    print(
        f"steady: {len(steady_workload.events):,} events over {args.steady_seconds} simulated seconds ...", flush=True
    )
    steady = [run_steady(steady_workload, meter, aws, pollers) for pollers in (LAMBDA_POLLERS, LAMBDA_POLLERS_LOW)]
    steady += [run_naive(steady_workload, meter), run_lean(steady_workload, meter)]
    compare(steady_workload, steady, hot_in_overage=False)
    print("checks: every event drawn exactly once in every run; the same balance, overage and rated usage per wallet")
    print("live cards: one-event commits on wallets with 5, 50 and 500 cards ...", flush=True)
    live_cards = live_card_costs()
    sweep = []
    for size in sorted({int(s) for s in args.sizes.split(",") if s} | {args.events}):
        if size == args.events:
            sweep.append(figures(burst[0], size))
            continue
        print(f"our design at {size:,} events ...", flush=True)
        workload = make_workload(size, args.wallets, args.hot_share, args.seed, args.spread_hours)
        sweep.append(figures(run_batched(workload, meter, aws, name=f"batched {size}"), size))
    workloads = (burst_workload, steady_workload)
    return report(burst, steady, workloads, live_cards, sweep, domain_rate, time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())
