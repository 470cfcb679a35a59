"""Messages on the usage queue and on the FIFO drawdown queue, valid or hostile: no handler fails, nothing is lost,
and money is never changed by an invalid message.

Property, per message, once `stack.pump_queues()` has delivered it as Lambda's SQS poller would:
- no exception escapes (a handler raising is a failure of the property), and no invocation runs past its
  function's timeout (`InvocationDeadlines`);
- nothing is left on the usage or the drawdown queue, visible or in flight;
- every dead letter carries a `reason` attribute;
- each event of the message is accounted for: a valid one is drawn (its `E#<eventId>` record written), an invalid
  one is not drawn and is dead-lettered (alone, or with its whole message); where the contract leaves it open
  (see `usage_verdict`, `rated_verdict`) it is one or the other, never lost;
- money: every wallet touched conserves its credits (credits = drawn + expired + voided + balance, drawn + overage =
  rated, overage ≥ 0); each wallet's rated usage grows by exactly the credits of its events drawn now (for usage
  events: quantity times the rate card's rate); a message with nothing drawn changes no wallet.

Every edge value in every place of the valid messages is tried first (explicit examples), then what hypothesis
draws. Each failure kind (and each contract rule an invalid event breaks) raises its own exception class, so
hypothesis reports every distinct one. Examples share one stack; each starts from the seeded table and empty
queues again.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from functools import cache
from typing import Any, cast

import boto3
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from prepaid.domain.text import instant
from prepaid_local.queue_messages import take_all
from prepaid_local.stack import Stack
from property.strategies import (
    CONTRACT_DECIMAL,
    CUSTOMER_ID,
    DEEPLY_NESTED,
    DROP,
    EVENT_ID,
    JSON_VALUES,
    RAW_BODIES,
    SETTINGS,
    InvocationDeadlines,
    Json,
    JsonPath,
    TableState,
    changed_keys,
    edge_values,
    field_of,
    json_paths,
    json_text,
    near_valid_bodies,
    raw_bodies,
    raw_variants,
    replaced,
    shorten,
)
from support.aws import REGION
from support.usage import RATE_CARD, fund

EXPLORED_USAGE_MESSAGES = 60  # drawn by hypothesis, after the edge values in every place (about 200 messages)
EXPLORED_DRAWDOWN_MESSAGES = 60  # likewise (about 130 edge messages)

RATES = {meter: Decimal(rate["creditsPerUnit"]) for meter, rate in RATE_CARD["meters"].items()}
NINE_DIGITS = Decimal("0.000000001")
WIDE = Context(prec=200)
MAX_AMOUNT = Decimal(10) ** 12  # the API's documented limit on credits and quantities
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_RECEIVES = 5  # the source queues' redrive policy (template.yaml)
RECENT = datetime.now(UTC) - timedelta(minutes=2)
USAGE_FIELDS = frozenset({"eventId", "customerId", "meter", "quantity", "timestamp", "dimensions"})
RATED_FIELDS = frozenset({"eventId", "meter", "quantity", "credits", "timestamp"})
METER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
SQS_GROUP_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# Ids a producer may get wrong: too long, the longest allowed, not ASCII, with a space or a line break, empty.
ID_EDGES: tuple[Json, ...] = ("e" * 129, "e" * 128, "évent", "ev 1", "ev\n1", "\uff45\uff56", "😀", "", None, 7)


def usage_event(event_id: str, customer: str = "acme", meter: str = "api_calls", quantity: str = "10") -> Json:
    return {
        "eventId": event_id,
        "customerId": customer,
        "meter": meter,
        "quantity": quantity,
        "timestamp": RECENT.isoformat(),
    }


def rated_event(event_id: str, meter: str = "api_calls", quantity: str = "10", credits: str = "5") -> Json:
    return {"eventId": event_id, "meter": meter, "quantity": quantity, "credits": credits, "timestamp": instant(RECENT)}


# What producers send (tests/support/usage.py `Queues.send_usage`): one event, or `{"events": [...]}`; the second
# customer has no wallet (the template's default policy creates it, the usage becoming overage).
VALID_USAGE: list[Json] = [
    usage_event("ev-1"),
    {
        "events": [
            usage_event("ev-1"),
            {**usage_event("ev-2", meter="storage_gb", quantity="2.5"), "dimensions": {"region": "eu"}},
        ]
    },
    usage_event("ev-3", customer="globex", quantity="4"),
]
# What ingest sends (`rated_to_wire`, `DrawdownQueue.send_rated`): one customer's rated events.
VALID_RATED: list[Json] = [
    {"customerId": "acme", "events": [rated_event("dd-1")]},
    {"customerId": "acme", "events": [rated_event("dd-1"), rated_event("dd-2", "storage_gb", "1.25", "2.5")]},
    {"customerId": "globex", "events": [rated_event("dd-3", quantity="300", credits="150")]},
]


# -- verdicts: what the contract says of a message -----------------------------------------------------------------

VALID, INVALID, EITHER = "valid", "invalid", "either"


@dataclass(frozen=True)
class Verdict:
    kind: str  # VALID, INVALID, or EITHER (the contract leaves it open: drawn or dead-lettered, never lost)
    rule: str = ""  # the contract rule an invalid (or open) event meets


OK = Verdict(VALID)


class NotStrictJson(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise NotStrictJson("a key written twice")
    return dict(pairs)


def _no_constants(token: str) -> Any:
    raise NotStrictJson(token)


def strict_json(text: str) -> Json:
    """JSON as the contract means it: no `NaN`/`Infinity`, no key written twice (`NotStrictJson` otherwise)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        raise NotStrictJson(str(error)[:80]) from None


def decimal_verdict(value: Any, name: str) -> tuple[Decimal | None, Verdict]:
    """A decimal on the wire, and whether it is one: an ASCII decimal string ("Numbers": not a JSON number, not
    an exponent, `_`, spaces or other digits), not negative."""
    if not isinstance(value, str) or not CONTRACT_DECIMAL.fullmatch(value):
        return None, Verdict(INVALID, f"{name}_not_a_contract_decimal_string")
    number = Decimal(value)
    return number, Verdict(INVALID, f"{name}_negative") if number < 0 else OK


def finer_than_credits(amount: Decimal) -> bool:
    """More than the 9 fractional digits credits keep (in a context wide enough for any digits on the wire)."""
    return amount != amount.quantize(NINE_DIGITS, context=WIDE)


def timestamp_verdict(value: Any, now: datetime) -> Verdict:
    """ISO 8601 with a zone; far in the past or the future is left open (the contract sets no window)."""
    if not isinstance(value, str) or "T" not in value:
        return Verdict(INVALID, "timestamp_not_iso_8601_with_zone")
    try:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            return Verdict(INVALID, "timestamp_without_zone")
        at = at.astimezone(UTC)
    except (ValueError, OverflowError):
        return Verdict(INVALID, "timestamp_not_iso_8601_with_zone")
    if at > now + FUTURE_TOLERANCE:
        return Verdict(EITHER, "timestamp_in_the_future")
    if at < now - timedelta(days=30):
        return Verdict(EITHER, "timestamp_long_ago")
    return OK


def _id_verdict(value: Any, name: str, pattern: re.Pattern[str]) -> Verdict:
    if value is None:
        return Verdict(INVALID, f"{name}_missing")
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return Verdict(INVALID, f"{name}_not_as_the_contract_writes_it")
    return OK


def usage_verdict(raw: Any, now: datetime) -> Verdict:
    """One usage event against the contract ("Words": usage event, "Numbers")."""
    if not isinstance(raw, dict):
        return Verdict(INVALID, "event_not_an_object")
    if set(raw) - USAGE_FIELDS:
        return Verdict(INVALID, "event_has_unknown_fields")
    for name, pattern in (("eventId", EVENT_ID), ("customerId", CUSTOMER_ID)):
        if (verdict := _id_verdict(raw.get(name), name, pattern)) is not OK:
            return verdict
    if raw.get("meter") not in RATES:
        return Verdict(INVALID, "meter_not_on_the_rate_card")
    quantity, verdict = decimal_verdict(raw.get("quantity"), "quantity")
    if quantity is None or verdict is not OK:
        return verdict
    if (verdict := timestamp_verdict(raw.get("timestamp"), now)) is not OK:
        return verdict
    dimensions = raw.get("dimensions", {})
    if dimensions is None:
        return Verdict(EITHER, "dimensions_null")
    if not isinstance(dimensions, dict) or not all(isinstance(v, str) for v in dimensions.values()):
        return Verdict(INVALID, "dimensions_not_a_map_of_strings")
    if len(dimensions) > 20 or any(len(k) > 64 or len(v) > 256 for k, v in dimensions.items()):
        return Verdict(EITHER, "dimensions_not_small")
    if quantity > MAX_AMOUNT:
        return Verdict(EITHER, "quantity_over_the_documented_limit")
    if finer_than_credits(quantity):
        return Verdict(EITHER, "quantity_finer_than_credits")
    return OK


def rated_verdict(raw: Any, now: datetime) -> Verdict:
    """One rated event of a drawdown message ("Trust boundaries": negative, non-finite or over-precise credits are
    dead-lettered with a reason, never drawn)."""
    if not isinstance(raw, dict):
        return Verdict(INVALID, "event_not_an_object")
    if RATED_FIELDS - set(raw):
        return Verdict(INVALID, "rated_event_field_missing")
    if (verdict := _id_verdict(raw["eventId"], "eventId", EVENT_ID)) is not OK:
        return verdict
    if not isinstance(raw["meter"], str):
        return Verdict(INVALID, "meter_not_a_string")
    credits, verdict = decimal_verdict(raw["credits"], "credits")
    if credits is None or verdict is not OK:
        return verdict
    if finer_than_credits(credits):
        return Verdict(INVALID, "credits_more_precise_than_9_digits")
    quantity, verdict = decimal_verdict(raw["quantity"], "quantity")
    if quantity is None or verdict is not OK:
        return verdict
    if (verdict := timestamp_verdict(raw["timestamp"], now)) is not OK:
        return verdict
    if set(raw) - RATED_FIELDS:
        return Verdict(EITHER, "rated_event_has_unknown_fields")
    if not METER.fullmatch(raw["meter"]):
        return Verdict(EITHER, "meter_not_as_the_rate_card_writes_it")
    if max(credits, quantity) > MAX_AMOUNT or finer_than_credits(quantity):
        return Verdict(EITHER, "amount_over_the_documented_limits")
    return OK


# -- failures: one class per kind, so that hypothesis reports each distinct one ------------------------------------


@cache
def failure(kind: str, rule: str = "") -> type[AssertionError]:
    """The exception class of one kind of failure (and, for an invalid event drawn, of the rule it breaks)."""
    name = "".join(part.title() for part in re.split(r"[^A-Za-z0-9]+", f"{kind} {rule}") if part)
    return type(name, (AssertionError,), {"__module__": __name__})


def fail_if(condition: bool, kind: str, message: str, rule: str = "") -> None:
    if condition:
        raise failure(kind, rule)(message)


# -- the pipeline ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A message body as it sits on a queue."""

    text: str

    def __repr__(self) -> str:
        return f"Message({shorten(self.text, 400)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis reports an example
        printer.text(repr(self))


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    reason: str | None
    refused: str | None
    body: str

    def parsed(self) -> Json:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


@dataclass(frozen=True)
class Outcome:
    """What became of a message: records drawn now, dead letters, what is still on the queues, the wallets."""

    drawn: dict[str, dict[str, Any]]  # new `E#<eventId>` records, by event id
    letters: list[DeadLetter]
    left: dict[str, int]  # messages still on a source queue (visible or in flight), by queue
    changed: list[tuple[str, str]]  # table keys written
    wallets: dict[str, dict[str, Any] | None]  # `GET /wallets/{id}` bodies after (None: no wallet)


class Pipeline:
    """The stack with a rate card and `acme` funded with 100 credits; sends one message and sees what became of it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.usage, self.drawdown = stack.name("UsageQueue"), stack.name("DrawdownQueue")
        self.dead = {"usage": stack.name("UsageDeadLetterQueue"), "drawdown": stack.name("DrawdownDeadLetterQueue")}
        self.table = TableState(stack)
        self.deadlines = InvocationDeadlines(stack)
        self.seeded = self.table.items()
        self.wallets_before = {"acme": self.wallet("acme")}

    def wallet(self, customer_id: str) -> dict[str, Any] | None:
        answer = self.stack.api("GET", f"/wallets/{customer_id}")
        fail_if(answer.status not in (200, 404), "wallet unreadable", f"GET /wallets/{customer_id}: {answer.body}")
        return cast(dict[str, Any], answer.body) if answer.status == 200 else None

    def send_usage(self, message: Message) -> None:
        self.sqs.send_message(QueueUrl=self.usage, MessageBody=message.text)

    def send_rated(self, message: Message, group: str) -> None:
        self.sqs.send_message(
            QueueUrl=self.drawdown,
            MessageBody=message.text,
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
        )

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def letters(self) -> list[DeadLetter]:
        found = []
        for queue, url in self.dead.items():
            for message in take_all(self.sqs, url, with_attributes=True):
                attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
                found.append(DeadLetter(queue, attributes.get("reason"), attributes.get("refused"), message["Body"]))
        return found

    def outcome(self, customers: set[str]) -> Outcome:
        items = self.table.items()
        drawn = {
            pk.removeprefix("E#"): {k: next(iter(v.values())) for k, v in item.items()}
            for (pk, sk), item in items.items()
            if pk.startswith("E#") and (pk, sk) not in self.seeded
        }
        customers = customers | {"acme"} | {str(r.get("customerId")) for r in drawn.values()}
        return Outcome(
            drawn=drawn,
            letters=self.letters(),
            left={"usage": self.depth(self.usage), "drawdown": self.depth(self.drawdown)},
            changed=changed_keys(self.seeded, items),
            wallets={c: self.wallet(c) for c in sorted(customers) if CUSTOMER_ID.fullmatch(c)},
        )

    def reset(self) -> None:
        """Empty queues and the seeded table again. A message a handler failed on is still in flight: it is
        delivered again until SQS's redrive policy moves it to its dead-letter queue, as on AWS (SQS allows one
        purge a minute), and the dead-letter queues are emptied."""
        for _ in range(2 * MAX_RECEIVES):
            if not self.depth(self.usage) and not self.depth(self.drawdown):
                break
            with contextlib.suppress(Exception), self.deadlines:
                self.stack.pump_queues()
        self.letters()
        self.table.restore(self.seeded)


@pytest.fixture
def quick_stack(aws: None) -> Iterator[Stack]:
    """The conftest's `stack`, with one client per service for its pollers (the conftest's makes one per call, some
    sixty per `pump_queues`, which made each message cost three times as long)."""
    built = Stack(cache(lambda service: boto3.client(cast(Any, service), region_name=REGION)))
    built.cold_start()
    yield built
    built.cold_start()


@pytest.fixture
def pipeline(quick_stack: Stack) -> Pipeline:
    assert quick_stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(quick_stack, "acme", "100")
    return Pipeline(quick_stack)


# -- checks ----------------------------------------------------------------------------------------------------------


def _canonical(value: Json) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_delivery(outcome: Outcome) -> None:
    """Nothing left in flight; every dead letter says why."""
    fail_if(any(outcome.left.values()), "left on a queue", f"still on the queues: {outcome.left}")
    for letter in outcome.letters:
        fail_if(
            not letter.reason,
            f"dead letter without a reason on the {letter.queue} dead letter queue",
            f"{letter.queue} dead letter without a reason attribute: {shorten(letter.body)}",
        )


def check_events(
    message: Message,
    events: Sequence[Json],
    verdicts: Sequence[Verdict],
    outcome: Outcome,
    customer_of: Any,
    *,
    refused_whole_is_enough: bool,
) -> None:
    """Each event drawn or dead-lettered as its verdict says; a message refused whole explains them all. Where
    `refused_whole_is_enough` (the drawdown queue: a rated message with a bad event is dead-lettered as a whole,
    "Trust boundaries"), a valid event may go with its message; on the usage queue it is drawn all the same."""
    whole = [letter for letter in outcome.letters if letter.body == message.text]
    for index, (raw, verdict) in enumerate(zip(events, verdicts, strict=True)):
        event_id = raw.get("eventId") if isinstance(raw, dict) else None
        # the record's key is the id as text, whatever the id was (`E#None` for a null one)
        record = outcome.drawn.get(str(event_id)) if isinstance(raw, dict) and "eventId" in raw else None
        drawn = record is not None and record.get("customerId") == customer_of(raw)
        lettered = bool(whole) or any(
            _canonical(parsed) == _canonical(raw)
            or (isinstance(event_id, str) and isinstance(parsed, dict) and parsed.get("eventId") == event_id)
            for parsed in (letter.parsed() for letter in outcome.letters)
        )
        where = f"event {index} ({shorten(_canonical(raw), 200)})"
        if verdict.kind == VALID and whole and refused_whole_is_enough:
            continue
        if verdict.kind == VALID:
            fail_if(not drawn and lettered, "valid event dead lettered", f"{where} is valid but was dead-lettered")
            fail_if(not drawn, "valid event lost", f"{where} is valid but was neither drawn nor dead-lettered")
        elif verdict.kind == INVALID:
            fail_if(drawn, "invalid event drawn", f"{where} was drawn: {verdict.rule}", verdict.rule)
            fail_if(not lettered, "invalid event lost", f"{where} was not dead-lettered: {verdict.rule}", verdict.rule)
        else:
            fail_if(not drawn and not lettered, "event lost", f"{where} neither drawn nor dead-lettered")


def _negative(amount: Decimal) -> bool:
    """Below zero, or not a number at all (a NaN compares with nothing)."""
    return amount.is_nan() or amount < 0


def check_money(pipeline: Pipeline, outcome: Outcome, expected_credits: Callable[[dict[str, Any]], Decimal]) -> None:
    """Conservation in every wallet touched; rated usage grows by what was drawn now, and nothing else moves."""
    for customer, wallet in outcome.wallets.items():
        records = [r for r in outcome.drawn.values() if r.get("customerId") == customer]
        if wallet is None:
            fail_if(bool(records), "drawn without a wallet", f"{customer}: drawn, but it has no wallet")
            continue
        totals = {k: Decimal(v) for k, v in wallet["totals"].items()}
        balance, overage = Decimal(wallet["balance"]), Decimal(wallet["overage"])
        spent = totals["drawn"] + totals["expired"] + totals["voided"] + balance
        fail_if(totals["credits"] != spent, "credits not conserved", f"{customer}: {wallet['totals']}, {balance}")
        fail_if(_negative(overage), "negative overage", f"{customer}: overage {overage}")
        fail_if(_negative(balance), "negative balance", f"{customer}: balance {balance}")
        fail_if(
            totals["drawn"] + overage != totals["rated"],
            "drawn and overage do not add up to rated",
            f"{customer}: drawn {totals['drawn']} + overage {overage} != rated {totals['rated']}",
        )
        before = pipeline.wallets_before.get(customer)
        rated_before = Decimal(before["totals"]["rated"]) if before else Decimal(0)
        drawn_now = sum((Decimal(str(r["credits"])) for r in records), Decimal(0))
        fail_if(
            totals["rated"] - rated_before != drawn_now,
            "rated usage moved by other than what was drawn",
            f"{customer}: rated {rated_before} -> {totals['rated']}, drawn now {drawn_now}",
        )
        for record in records:
            expected = expected_credits(record)
            fail_if(
                Decimal(str(record["credits"])) != expected,
                "event drawn for other credits than it is worth",
                f"{customer}: {record} drew {record['credits']}, worth {expected}",
            )
    if not outcome.drawn:
        wallets_written = [k for k in outcome.changed if k[0].startswith(("W#", "A#"))]
        fail_if(bool(wallets_written), "wallet changed with nothing drawn", f"written: {wallets_written}")


def deliver(pipeline: Pipeline, send: Callable[[], None], customers: set[str]) -> Outcome:
    """Send, pump as Lambda would (a handler's exception escapes: a failure; each invocation bounded by its
    function's timeout), and see what became of it."""
    with pipeline.deadlines:
        send()
        pipeline.stack.pump_queues()
    late = sorted(set(pipeline.deadlines.late))
    fail_if(bool(late), "function ran past its timeout", f"{late} ran past their timeout")
    return pipeline.outcome(customers)


# -- messages --------------------------------------------------------------------------------------------------------


def sqs_text(text: str) -> str:
    """A body SQS takes: its allowed characters only (others become U+FFFD), not empty, at most 256 KiB."""
    allowed = "".join(
        c if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000" else "\ufffd"
        for c in text
    )
    return (allowed or " ")[: 250 * 1024 // 4]


def edge_messages(valid: Sequence[Json]) -> list[Message]:
    """Every edge value in every place of the valid messages, one at a time (a place of the same shape once): each
    edge value of its kind (ids: `ID_EDGES`), dropped, its key written twice; then deep nesting and raw bodies."""
    found: list[str] = []
    tried: set[JsonPath] = set()
    for message in valid:
        for place in list(json_paths(message))[1:]:
            shape = tuple(0 if isinstance(p, int) else p for p in place)
            if shape in tried:
                continue
            tried.add(shape)
            field = field_of(place)
            values = ID_EDGES if field in ("eventId", "customerId", "meter") else edge_values(field)
            for value in (*values, DROP):
                found.append(json.dumps(replaced(message, place, value)))
            if isinstance(place[-1], str):
                found.append(json_text(message, place, twice=json.dumps(values[0])))
    found += [*DEEPLY_NESTED, *RAW_BODIES]
    return [Message(sqs_text(text)) for text in dict.fromkeys(found)]


def messages(valid: Sequence[Json]) -> st.SearchStrategy[Message]:
    """Near-valid messages (half of them), raw variants of the valid ones, arbitrary JSON, raw bodies."""
    mutated = near_valid_bodies(valid).map(json.dumps)
    variants = st.one_of([raw_variants(v) for v in valid])
    texts = st.one_of(mutated, mutated, mutated, variants, JSON_VALUES.map(json.dumps), raw_bodies())
    return texts.map(lambda text: Message(sqs_text(text)))


# -- judging a message ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """What the contract says of one message: refused whole (`events` None, and why), or each event's verdict."""

    shape: Verdict
    events: list[Json] | None
    verdicts: list[Verdict]
    customers: set[str]  # whose wallets it may touch
    customer_of: Callable[[Json], Any]  # an event's customer
    worth: Callable[[dict[str, Any]], Decimal]  # what a drawn event's record should have drawn


def twin_aware(events: Sequence[Json], verdict: Callable[[Json], Verdict]) -> list[Verdict]:
    """Verdicts, the events whose id another event of the message has too being left open (the first drawn and the
    rest duplicates or conflicts, whichever comes first: their records cannot tell them apart)."""
    # as the drawdown keys its records: `E#<the id as text>`
    ids = [str(raw["eventId"]) if isinstance(raw, dict) and "eventId" in raw else None for raw in events]
    counts = Counter(i for i in ids if i is not None)
    return [
        Verdict(EITHER, "event_id_repeated") if i is not None and counts[i] > 1 else verdict(raw)
        for raw, i in zip(events, ids, strict=True)
    ]


def rated_by_the_card(record: dict[str, Any]) -> Decimal:
    """Quantity times the rate card's rate, half-even to 9 digits (what a usage event is worth)."""
    try:
        rate = RATES[str(record.get("meter"))]
        return (Decimal(str(record["quantity"])) * rate).quantize(NINE_DIGITS, rounding=ROUND_HALF_EVEN)
    except (KeyError, InvalidOperation):
        return Decimal("NaN")


def judge_usage(message: Message, now: datetime) -> Judgement:
    """A usage message: one event, or exactly `{"events": [...]}` (SQS in PRODUCT.md)."""
    shape, body = parse_message(message.text, "usage_message")
    events = None
    if shape is OK and isinstance(body, dict) and "events" in body:
        events = body["events"] if isinstance(body["events"], list) and len(body) == 1 else None
    elif shape is OK and isinstance(body, dict):
        events = [body]
    if shape is OK and events is None:
        shape = Verdict(INVALID, "usage_message_not_an_event_nor_an_events_envelope")
    customers = {e["customerId"] for e in events or [] if isinstance(e, dict) and isinstance(e.get("customerId"), str)}
    return Judgement(
        shape,
        events,
        twin_aware(events or [], lambda raw: usage_verdict(raw, now)),
        customers,
        lambda raw: raw.get("customerId") if isinstance(raw, dict) else None,
        rated_by_the_card,
    )


def judge_rated(message: Message, now: datetime) -> Judgement:
    """A drawdown message: `{"customerId", "events": [rated event, ...]}` (`rated_to_wire`)."""
    shape, body = parse_message(message.text, "drawdown_message")
    customer = body.get("customerId") if isinstance(body, dict) else None
    events = body.get("events") if shape is OK and isinstance(body, dict) else None
    if shape is OK and (
        not isinstance(customer, str) or not CUSTOMER_ID.fullmatch(customer) or not isinstance(events, list)
    ):
        shape, events = Verdict(INVALID, "drawdown_message_not_one_customers_rated_events"), None
    credits_of = {str(e["eventId"]): e.get("credits") for e in events or [] if isinstance(e, dict) and "eventId" in e}

    def worth(record: dict[str, Any]) -> Decimal:
        sent = credits_of.get(record["PK"].removeprefix("E#"))
        return Decimal(str(sent)) if isinstance(sent, str | int) else Decimal("NaN")

    return Judgement(
        shape,
        events,
        twin_aware(events or [], lambda raw: rated_verdict(raw, now)),
        {customer} if isinstance(customer, str) else set(),
        lambda raw: customer,
        worth,
    )


def parse_message(text: str, what: str) -> tuple[Verdict, Json]:
    """A message's JSON, and `OK` if it is strict JSON; else why not (the JSON as Python reads it, if it does)."""
    try:
        return OK, strict_json(text)
    except NotStrictJson:
        try:
            return Verdict(INVALID, f"{what}_not_strict_json"), json.loads(text)
        except (ValueError, RecursionError):
            return Verdict(INVALID, f"{what}_not_strict_json"), None


# -- tests -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["usage", "drawdown"])
def test_a_queue_message_is_drawn_or_dead_lettered_and_never_breaks_a_wallet(pipeline: Pipeline, queue: str) -> None:
    """The usage queue (what producers send) and the drawdown queue (what ingest sends), one message at a time."""
    valid, judge = (VALID_USAGE, judge_usage) if queue == "usage" else (VALID_RATED, judge_rated)

    def send(message: Message, judgement: Judgement) -> Callable[[], None]:
        if queue == "usage":
            return lambda: pipeline.send_usage(message)
        group = next(iter(judgement.customers), "hostile")
        return lambda: pipeline.send_rated(message, group if SQS_GROUP_ID.fullmatch(group) else "hostile")

    @settings(SETTINGS, max_examples=EXPLORED_USAGE_MESSAGES if queue == "usage" else EXPLORED_DRAWDOWN_MESSAGES)
    @given(message=messages(valid))
    def each(message: Message) -> None:
        judgement = judge(message, datetime.now(UTC))
        try:
            # When the message is put on the queue and delivered as Lambda would (a handler raising fails here)
            outcome = deliver(pipeline, send(message, judgement), judgement.customers)
            event(f"{len(outcome.drawn)} drawn, {len(outcome.letters)} dead letters")
            # Then nothing is left in flight, and every dead letter says why
            check_delivery(outcome)
            if judgement.events is None:
                # And a message refused whole draws nothing, and is dead-lettered
                rule = judgement.shape.rule
                fail_if(bool(outcome.drawn), "invalid message drawn", f"{rule}: drew {sorted(outcome.drawn)}", rule)
                fail_if(not outcome.letters, "invalid message lost", f"{rule}: not dead-lettered", rule)
            else:
                # And each event is drawn or dead-lettered as the contract says
                check_events(
                    message,
                    judgement.events,
                    judgement.verdicts,
                    outcome,
                    judgement.customer_of,
                    refused_whole_is_enough=queue == "drawdown",
                )
            # And the money adds up
            check_money(pipeline, outcome, judgement.worth)
        finally:
            pipeline.reset()

    # Given the stack with a rate card and `acme` funded; the edge values in every place first, then what
    # hypothesis draws
    for message in reversed(edge_messages(valid)):
        each = example(message=message)(each)
    each()
