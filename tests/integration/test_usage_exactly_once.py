"""Usage is drawn exactly once per eventId: through duplicated messages, crashes at every step boundary, and
replays of an eventId with other content (refused with a reason, in the usage dead-letter queue)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import drawdown_handler
import ingest_handler
from prepaid import assembly
from prepaid.adapters import dynamodb
from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid_local.stack import Stack, StreamBatchFailed
from support.aws import BusTap
from support.usage import (
    RATE_CARD,
    Crash,
    Queues,
    Table,
    fund,
    now_iso,
    rated,
    usage_event,
    wallet,
)

Hook = Callable[[str, dict[str, Any]], None]


@pytest.fixture(autouse=True)
def rate_card(stack: Stack) -> None:
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200


def crash_once(function: str, fired: list[str]) -> Hook:
    """A delivery hook that kills `function` once, before it runs."""

    def crash(logical: str, batch: dict[str, Any]) -> None:
        if logical == function and not fired:
            fired.append(logical)
            raise Crash(f"{logical} died before it ran")

    return crash


def crash_always(function: str) -> Hook:
    def crash(logical: str, batch: dict[str, Any]) -> None:
        if logical == function:
            raise Crash(f"{logical} is failing")

    return crash


def commit_then_crash_once(monkeypatch: pytest.MonkeyPatch, fired: list[str]) -> None:
    """The drawdown transaction commits, then the function dies before it can report success (once)."""
    commit = DynamoWalletStore.commit

    def dies_after_commit(self: DynamoWalletStore, change: Any) -> None:
        commit(self, change)
        if not fired:
            fired.append("commit")
            raise Crash("died after the transaction committed")

    monkeypatch.setattr(DynamoWalletStore, "commit", dies_after_commit)


def run_then_crash_once(monkeypatch: pytest.MonkeyPatch, module: Any, fired: list[str]) -> None:
    """The handler does all its work (sends, commits), then the invocation dies before the ack (once)."""
    real = module.lambda_handler

    def dies_after_running(event: dict[str, Any], context: Any) -> Any:
        answer = real(event, context)
        if not fired:
            fired.append(module.__name__)
            raise Crash(f"{module.__name__} died after running")
        return answer

    monkeypatch.setattr(module, "lambda_handler", dies_after_running)


def pump_until_quiet(stack: Stack, crash: Hook | None = None) -> list[Exception]:
    """Pump the queues; a crash fails the delivery, and the next pump is its redelivery."""
    try:
        stack.pump_queues(crash=crash)
    except Crash as error:
        return [error]
    return []


# -- a. every message delivered twice ----------------------------------------------------------------------------

PHASE_ONE = {
    "A": ["12", "0.000000003", "7", "3.5", "0.000000001", "11", "9", "10", "20", "13.25"],
    "B": ["3"] * 10,
}
PHASE_TWO = {"C": ["8"] * 10, "D": ["5"], "E": ["2.000000001"]}


def messages(customer: str, phase: dict[str, list[str]], at: str) -> list[Any]:
    """The usage messages of a phase: `{"events": [...]}` for several events, a bare event for one."""
    bodies: list[Any] = []
    for name, quantities in phase.items():
        events = [usage_event(f"{customer}-{name}{n}", customer, q, at=at) for n, q in enumerate(quantities)]
        bodies.append({"events": events} if len(events) > 1 else events[0])
    return bodies


def snapshot(stack: Stack, bus: list[dict[str, Any]], customer: str) -> dict[str, Any]:
    """What a customer's usage left behind, without ids and instants that differ between customers."""
    table = Table(stack)
    read = wallet(stack, customer)
    prefix = f"{customer}-"
    ledger = [
        {k: entry.get(k) for k in ("type", "credits", "balanceAfter", "overage", "value")}
        | {"draws": [d["credits"] for d in entry.get("draws", [])]}
        for entry in table.ledger(customer)
    ]
    records = {
        event_id.removeprefix(prefix): {k: r[k] for k in ("meter", "quantity", "credits", "overage", "version")}
        | {"draws": [d.split("=")[1] for d in r["draws"].split(";") if d]}
        for event_id, r in table.event_records().items()
        if r["customerId"] == customer
    }
    aggregates = [
        {k: a[k] for k in ("hour", "meter", "quantity", "credits", "events")} for a in table.hourly_usage(customer)
    ]
    published = sorted(
        json.dumps(
            {"type": e["detail-type"]}
            # correlation ids name the SQS messages (each customer's its own), so only their presence compares
            | {k: v for k, v in e["detail"].items() if k not in ("eventId", "customerId", "card", "correlationIds")}
            | {"followed": bool(e["detail"].get("correlationIds"))}
            | {"eventIds": [i.removeprefix(prefix) for i in e["detail"].get("eventIds", [])]},
            sort_keys=True,
        )
        for e in bus
        if e["detail"]["customerId"] == customer
    )
    totals = {k: read[k] for k in ("balance", "overage", "totals", "version")}
    return {"wallet": totals, "ledger": ledger, "records": records, "aggregates": aggregates, "published": published}


def test_every_message_delivered_twice_leaves_what_one_delivery_leaves(
    stack: Stack, bus: BusTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two customers with the same wallet (100 credits, thresholds 50 and 10), one per kind of delivery
    for customer in ("once", "twice"):
        fund(stack, customer, "100", thresholds=["50", "10"])
    at = now_iso()  # one instant for every event, so both customers' usage falls in the same hour
    queues = Queues(stack)
    # When customer `once` gets each usage message delivered once, in two phases
    for phase in (PHASE_ONE, PHASE_TWO):
        for body in messages("once", phase, at):
            queues.send_usage(body)
        assert pump_until_quiet(stack) == []
    # And customer `twice` gets phase one's usage messages sent twice, its drawdown committing and then dying
    # before the ack (so the drawdown message comes again), and every drawdown message re-sent afterwards
    fired: list[str] = []
    commit_then_crash_once(monkeypatch, fired)
    drawdown_bodies: list[str] = []
    real_drawdown = drawdown_handler.lambda_handler

    def recording_drawdown(event: dict[str, Any], context: Any) -> Any:
        drawdown_bodies.extend(r["body"] for r in event["Records"])
        return real_drawdown(event, context)

    monkeypatch.setattr(drawdown_handler, "lambda_handler", recording_drawdown)
    first = messages("twice", PHASE_ONE, at)
    for body in first + first:
        queues.send_usage(body)
    assert pump_until_quiet(stack) == []
    assert fired == ["commit"]
    for body in dict.fromkeys(drawdown_bodies):
        queues.send_drawdown(body, "twice")
    assert pump_until_quiet(stack) == []
    # And phase two's messages sent, drawn, and sent again
    second = messages("twice", PHASE_TWO, at)
    for _ in range(2):
        for body in second:
            queues.send_usage(body)
        assert pump_until_quiet(stack) == []
    stack.pump_streams()
    published = bus.drain()
    # Then drawdown did see every event of `twice` more than once (not only SQS deduplicating the copies)
    seen = Counter(e["eventId"] for body in drawdown_bodies for e in json.loads(body)["events"])
    assert len(seen) == 32
    assert min(seen.values()) >= 2, seen
    # And `twice` holds exactly what `once` holds: wallet, ledger, event records, aggregates, published events
    once, twice = snapshot(stack, published, "once"), snapshot(stack, published, "twice")
    for part in ("wallet", "ledger", "records", "aggregates", "published"):
        assert twice[part] == once[part], part
    # And that is what the rate card says: every event rated once, half-even to 9 digits
    quantities = [q for phase in (PHASE_ONE, PHASE_TWO) for qs in phase.values() for q in qs]
    total = sum((rated(q) for q in quantities), Decimal(0))
    assert total == Decimal("101.375000002")
    assert Decimal(once["wallet"]["balance"]) == 0
    assert Decimal(once["wallet"]["overage"]) == total - 100
    assert Decimal(once["wallet"]["totals"]["rated"]) == total
    assert len(once["records"]) == len(quantities)
    assert sum((a["events"] for a in once["aggregates"]), Decimal(0)) == len(quantities)
    assert sum((a["credits"] for a in once["aggregates"]), Decimal(0)) == total
    assert [e["type"] for e in once["ledger"]] == ["purchase", "usage", "usage"]
    assert sum((e["credits"] for e in once["ledger"] if e["type"] == "usage"), Decimal(0)) == total
    # And nothing was refused
    assert queues.dead_letters() == []
    assert queues.depth(queues.drawdown_dead) == 0


# -- b. a crash at each step boundary ----------------------------------------------------------------------------

ACME_EVENTS = 100  # x 2.4 units x 0.5 = 120 credits against 100: two transactions (94 + 6), ending in overage
GLOBEX_EVENTS = 20  # x 6 units x 0.5 = 60 credits against 150


def arm(boundary: str, monkeypatch: pytest.MonkeyPatch, fired: list[str]) -> tuple[Hook | None, Hook | None]:
    """Set up the crash; answer the queue and stream delivery hooks it needs."""
    if boundary == "ingest before it runs":
        return crash_once("IngestFunction", fired), None
    if boundary == "ingest after sending on, before the ack":
        run_then_crash_once(monkeypatch, ingest_handler, fired)
    elif boundary == "drawdown before its transaction":
        return crash_once("DrawdownFunction", fired), None
    elif boundary == "drawdown after its transaction, before the ack":
        commit_then_crash_once(monkeypatch, fired)
    elif boundary == "drawdown invocation dies after its transaction":
        run_then_crash_once(monkeypatch, drawdown_handler, fired)
    elif boundary == "publisher before publishing":
        return None, crash_once("PublisherFunction", fired)
    elif boundary == "publisher after publishing, before the checkpoint":
        publisher = assembly.publisher()
        publish = publisher.publish

        def dies_after_publishing(event: Any) -> None:
            publish(event)
            if not fired:
                fired.append("publisher")
                raise Crash("publisher died after publishing")

        monkeypatch.setattr(publisher, "publish", dies_after_publishing)
    return None, None


BOUNDARIES = [
    "ingest before it runs",
    "ingest after sending on, before the ack",
    "drawdown before its transaction",
    "drawdown after its transaction, before the ack",
    "drawdown invocation dies after its transaction",
    "publisher before publishing",
    "publisher after publishing, before the checkpoint",
]


def send_usage_for_two_wallets(stack: Stack, hours: int = 1) -> list[dict[str, Any]]:
    """Two wallets with thresholds, and usage for both arriving both ways: over HTTP (straight to the drawdown
    queue) and from a producer on the usage queue (through ingest); its timestamps over the last `hours` hours."""
    start = now_iso(-timedelta(hours=hours)) if hours > 1 else None
    fund(stack, "acme", "100", thresholds=["50"], effective_at=start)
    fund(stack, "globex", "150", thresholds=["100"], effective_at=start)

    def at(n: int) -> str | None:
        return now_iso(-timedelta(hours=n % hours, minutes=1)) if hours > 1 else None

    events = [usage_event(f"a-{n}", "acme", "2.4", at=at(n)) for n in range(ACME_EVENTS)]
    events += [usage_event(f"g-{n}", "globex", "6", at=at(n)) for n in range(GLOBEX_EVENTS)]
    posted, produced = events[::2], events[1::2]
    answer = stack.api("POST", "/usage", {"events": posted})
    assert answer.status == 202 and answer.body["rejected"] == []
    Queues(stack).send_usage({"events": produced})
    return events


def assert_each_event_counted_once(stack: Stack, bus: BusTap, events: list[dict[str, Any]]) -> None:
    """Nothing lost and nothing doubled, in the wallets, the records, the hours, the ledger and the events."""
    # balances, overage, rated = drawn + overage
    acme, globex = wallet(stack, "acme"), wallet(stack, "globex")
    assert (acme["balance"], acme["overage"], acme["totals"]["rated"]) == ("0", "20", "120")
    assert (globex["balance"], globex["overage"], globex["totals"]["rated"]) == ("90", "0", "60")
    for read in (acme, globex):
        drawn, rated_total = Decimal(read["totals"]["drawn"]), Decimal(read["totals"]["rated"])
        assert drawn + Decimal(read["overage"]) == rated_total, read
        assert Decimal(read["totals"]["credits"]) == drawn + Decimal(read["balance"])
    # one event record per distinct event, and hourly aggregates counting each event once
    table = Table(stack)
    items = table.scan()
    assert sorted(table.event_records(items)) == sorted(e["eventId"] for e in events)
    assert sum(a["events"] for a in table.hourly_usage("acme")) == ACME_EVENTS
    assert sum(a["events"] for a in table.hourly_usage("globex")) == GLOBEX_EVENTS
    assert sum((a["credits"] for a in table.hourly_usage("acme")), Decimal(0)) == 120
    usage_credits = {
        c: sum((e["credits"] for e in table.ledger(c) if e["type"] == "usage"), Decimal(0)) for c in ("acme", "globex")
    }
    assert usage_credits == {"acme": 120, "globex": 60}
    # every committed change's events were published (duplicates only with the same eventId), nothing else
    published = bus.drain()
    ids = {e["detail"]["eventId"] for e in published}
    assert ids == table.outbox_ids(items)
    unique = {e["detail"]["eventId"]: e for e in published}.values()
    kinds = Counter((e["detail"]["customerId"], e["detail-type"], e["detail"].get("threshold")) for e in unique)
    assert kinds[("acme", "Balance Low", "50")] == 1
    assert kinds[("acme", "Balance Depleted", None)] == 1
    assert kinds[("globex", "Balance Low", "100")] == 1
    assert kinds[("globex", "Balance Depleted", None)] == 0
    overage_added = [
        Decimal(e["detail"]["added"])
        for e in unique
        if e["detail-type"] == "Overage Recorded" and e["detail"]["customerId"] == "acme"
    ]
    assert sum(overage_added, Decimal(0)) == 20
    # nothing was refused or dead-lettered
    queues = Queues(stack)
    assert queues.dead_letters() == []
    assert queues.depth(queues.drawdown_dead) == 0
    assert queues.depth(queues.usage) == queues.depth(queues.drawdown) == 0


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_a_crash_at_a_step_boundary_loses_nothing_and_doubles_nothing(
    stack: Stack, bus: BusTap, monkeypatch: pytest.MonkeyPatch, boundary: str
) -> None:
    # Given usage for two wallets, over HTTP and through the usage queue
    events = send_usage_for_two_wallets(stack)
    # When one step crashes once at its boundary
    fired: list[str] = []
    queue_crash, stream_crash = arm(boundary, monkeypatch, fired)
    try:
        stack.pump_queues(crash=queue_crash)
        stack.pump_streams(crash=stream_crash)
    except (Crash, StreamBatchFailed):
        pass  # the crashed delivery stays on its queue or stream, and the next pump delivers it again
    # Then it did crash
    assert fired, f"the crash at '{boundary}' never happened"
    # When everything is delivered again
    assert pump_until_quiet(stack) == []
    stack.pump_streams()
    stack.pump_streams()
    # Then nothing was lost and nothing doubled
    assert_each_event_counted_once(stack, bus, events)


class ProcessDies(BaseException):
    """The process itself dies (no handler can catch this, as none can catch a timeout or a lost instance)."""


class DiesBeforeWrite:
    """The drawdown's DynamoDB client, dying (once) just before its `n`-th write request: after the wallet write
    (n = 1 is the wallet), then at each of the writes the commit owes (those in flight beside it may land)."""

    WRITES = ("put_item", "batch_write_item", "update_item", "transact_write_items")

    def __init__(self, client: Any, n: int, fired: list[str]) -> None:
        self._client, self._n, self._fired, self.writes = client, n, fired, 0

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)
        if name not in self.WRITES:
            return call

        def write(**kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self._n and not self._fired:
                self._fired.append(f"before write {self._n} ({name})")
                raise ProcessDies(f"died before write {self._n}")
            return call(**kwargs)

        return write


# Every write of two commits, the last included: 6 and 2 writes; 7 and 3 when each commit also stores, ahead of
# its wallet, the page of the entries the version before carried
WRITES = {"carried": range(2, 9), "paged": range(2, 11)}


@pytest.mark.parametrize(("ledger", "write"), [(mode, n) for mode, writes in WRITES.items() for n in writes])
@pytest.mark.parametrize("process", ["dies", "lives"])
def test_a_crash_between_the_wallet_write_and_any_write_it_owes_loses_and_doubles_nothing(
    stack: Stack, bus: BusTap, monkeypatch: pytest.MonkeyPatch, write: int, process: str, ledger: str
) -> None:
    # Given usage for two wallets over three hours (so commits add to hours the wallet no longer holds open)
    events = send_usage_for_two_wallets(stack, hours=3)
    if ledger == "paged":  # and wallets that carry at most one ledger entry: each commit pages the one before
        monkeypatch.setattr(dynamodb, "LEDGER_TAIL_ENTRIES", 1)
    # When the drawdown dies just before its n-th write: the wallet is written, some of what it owes is not
    store = assembly.drawdown_store()
    fired: list[str] = []
    crashing = DiesBeforeWrite(store._client, write, fired)
    monkeypatch.setattr(store, "_client", crashing)
    with pytest.raises(ProcessDies):
        stack.pump_queues()
    assert fired and crashing.writes >= write, fired  # the writes side by side with the lost one may land
    # Then readers already count what the wallet owes: each wallet's ledger agrees with its rated usage
    for customer in ("acme", "globex"):
        rated_total = Decimal(wallet(stack, customer)["totals"]["rated"])
        answer = stack.api("GET", f"/wallets/{customer}/ledger", query="limit=100")
        assert answer.status == 200, answer.body
        entries = answer.body["entries"]
        assert sum(Decimal(e["credits"]) for e in entries if e["type"] == "usage") == rated_total, customer
    # and the redelivery finds a new process (nothing remembered), or the same one
    if process == "dies":
        stack.cold_start()
    # When everything is delivered again
    assert pump_until_quiet(stack) == []
    stack.pump_streams()
    stack.pump_streams()
    # Then nothing was lost and nothing doubled
    assert_each_event_counted_once(stack, bus, events)


# -- c. the same eventId with other content ----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["http", "sqs"])
@pytest.mark.parametrize(
    ("customer", "meter", "quantity"),
    [("acme", "api_calls", "20"), ("acme", "storage_gb", "10"), ("globex", "api_calls", "10")],
    ids=["other quantity", "other meter", "other customer"],
)
def test_an_event_id_reused_with_other_content_is_refused_with_its_reason(
    stack: Stack, customer: str, meter: str, quantity: str, via: str
) -> None:
    # Given event X (10 api calls for acme) drawn
    fund(stack, "acme", "100")
    fund(stack, "globex", "100")
    assert stack.api("POST", "/usage", {"events": [usage_event("X", "acme", "10")]}).status == 202
    stack.pump_queues()
    before = {c: wallet(stack, c) for c in ("acme", "globex")}
    ledger_before = {c: Table(stack).ledger(c) for c in ("acme", "globex")}
    assert before["acme"]["balance"] == "95"
    # When X comes again later with other content, by HTTP or straight onto the usage queue
    reused = usage_event("X", customer, quantity, meter)
    if via == "http":
        answer = stack.api("POST", "/usage", {"events": [reused]})
        # Then the answer refuses it at once with its reason, and nothing is queued
        assert answer.status == 202
        assert answer.body == {
            "accepted": [],
            "duplicates": [],
            "rejected": [
                {"index": 0, "eventId": "X", "reason": "event_id_reused_with_other_content", "field": "eventId"}
            ],
        }
        stack.pump_queues()
        assert Queues(stack).dead_letters() == []
    else:
        Queues(stack).send_usage(reused)
        stack.pump_queues()
        # Then the drawdown refuses it with its reason, in the usage dead-letter queue
        letters = Queues(stack).dead_letters()
        assert [(d.reason, d.refused) for d in letters] == [("event_id_reused_with_other_content", "event")]
        # as the producer sent it (normalized: UTC instant in milliseconds), ready for a redrive
        fields = ("eventId", "customerId", "meter", "quantity")
        assert {k: letters[0].message[k] for k in fields} == {k: reused[k] for k in fields}
        assert set(letters[0].message) == {*fields, "timestamp"}
    # And no wallet changed, and X's record is still the first event's
    for c in ("acme", "globex"):
        assert wallet(stack, c) | {"asOf": None} == before[c] | {"asOf": None}
        assert Table(stack).ledger(c) == ledger_before[c]
    record = Table(stack).event_records()["X"]
    assert (record["customerId"], record["meter"], record["quantity"]) == ("acme", "api_calls", 10)


def test_an_event_id_replayed_with_the_same_content_is_a_duplicate_not_an_error(stack: Stack) -> None:
    # Given event X drawn
    fund(stack, "acme", "100")
    event = usage_event("X", "acme", "10")
    stack.api("POST", "/usage", {"events": [event]})
    stack.pump_queues()
    before = wallet(stack, "acme")
    # When the very same event is posted again, later, beside a new one (and once more in the same request)
    answer = stack.api("POST", "/usage", {"events": [event, usage_event("Y", "acme", "2"), event]})
    stack.pump_queues()
    # Then the answer reports X as a duplicate, once (not an error), Y is drawn, X changes nothing, nothing
    # dead-lettered
    assert answer.status == 202
    assert answer.body == {"accepted": ["Y"], "duplicates": ["X"], "rejected": []}
    assert Decimal(wallet(stack, "acme")["balance"]) == Decimal(before["balance"]) - 1
    assert Queues(stack).dead_letters() == []
    # And the same replay straight onto the usage queue is dropped by the drawdown just as quietly
    Queues(stack).send_usage(event)
    stack.pump_queues()
    assert Decimal(wallet(stack, "acme")["balance"]) == Decimal(before["balance"]) - 1
    assert Queues(stack).dead_letters() == []


def test_an_event_id_twice_in_one_batch_counts_once(stack: Stack) -> None:
    # Given a wallet of 100 credits
    fund(stack, "acme", "100")
    # When one request holds X twice with the same content, and Z twice with different quantities
    events = [usage_event("X", "acme", "4"), usage_event("Z", "acme", "10"), usage_event("X", "acme", "4")]
    answer = stack.api("POST", "/usage", {"events": [*events, usage_event("Z", "acme", "30")]})
    stack.pump_queues()
    # Then the first of each is drawn, the second X is a duplicate and the second Z refused with its reason
    assert answer.status == 202
    assert answer.body == {
        "accepted": ["X", "Z"],
        "duplicates": ["X"],
        "rejected": [{"index": 3, "eventId": "Z", "reason": "event_id_reused_with_other_content", "field": "eventId"}],
    }
    assert wallet(stack, "acme")["balance"] == "93"
    # And the same batch as one message on the usage queue: the second Z is dead-lettered with the reason
    again = [usage_event("X2", "acme", "4"), usage_event("Z2", "acme", "10"), usage_event("Z2", "acme", "30")]
    Queues(stack).send_usage({"events": again})
    stack.pump_queues()
    assert wallet(stack, "acme")["balance"] == "86"
    letters = Queues(stack).dead_letters()
    assert [(d.reason, d.message["eventId"]) for d in letters] == [("event_id_reused_with_other_content", "Z2")]


def test_an_event_id_reused_while_the_first_is_still_queued_is_refused_not_dropped(stack: Stack) -> None:
    # Given event X (10 units) rated and waiting on the drawdown queue (drawdown is failing for now)
    fund(stack, "acme", "100")
    stack.api("POST", "/usage", {"events": [usage_event("X", "acme", "10")]})
    with pytest.raises(Crash):
        stack.pump_queues(crash=crash_always("DrawdownFunction"))
    # When X comes again with another quantity, and drawdown recovers
    stack.api("POST", "/usage", {"events": [usage_event("X", "acme", "30")]})
    with pytest.raises(Crash):
        stack.pump_queues(crash=crash_always("DrawdownFunction"))
    stack.pump_queues()
    # Then the first X is drawn and the second is refused with its reason, not silently dropped
    # (on AWS, SQS drops a FIFO message whose deduplication id it saw in the last 5 minutes, even once the
    # first was consumed; moto only while the first is still queued, which this test arranges)
    assert wallet(stack, "acme")["balance"] == "95"
    letters = Queues(stack).dead_letters()
    assert [(d.reason, d.message["eventId"]) for d in letters] == [("event_id_reused_with_other_content", "X")]


def test_events_whose_ids_join_to_the_same_text_are_all_drawn(stack: Stack) -> None:
    # Given event "x,y" rated and waiting on the drawdown queue (drawdown is failing for now)
    fund(stack, "acme", "100")
    stack.api("POST", "/usage", {"events": [usage_event("x,y", "acme", "10")]})
    with pytest.raises(Crash):
        stack.pump_queues(crash=crash_always("DrawdownFunction"))
    # When the distinct events "x" and "y" come in one request, and drawdown recovers
    stack.api("POST", "/usage", {"events": [usage_event("x", "acme", "10"), usage_event("y", "acme", "10")]})
    with pytest.raises(Crash):
        stack.pump_queues(crash=crash_always("DrawdownFunction"))
    stack.pump_queues()
    # Then all three events are drawn (none dropped as a "duplicate" drawdown message)
    assert sorted(Table(stack).event_records()) == ["x", "x,y", "y"]
    assert wallet(stack, "acme")["balance"] == "85"
