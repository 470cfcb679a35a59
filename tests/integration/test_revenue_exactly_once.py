"""The revenue projection adds each wallet version's entries once, however the stream batches and replays them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prepaid.adapters.revenue import DynamoRevenueStore
from prepaid.application.revenue import VersionEntries
from prepaid.domain.ledger import EntryType, LedgerEntry
from prepaid.domain.money import Money
from prepaid_local.stack import Stack
from support.aws import REGION
from support.revenue import replayed_slices, revenue_report

PRICED = {"credits": "500", "price": {"amount": "5.00", "currency": "USD"}}
DAY = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _report(stack: Stack) -> dict[str, Any]:
    today = stack.clock.now().date()
    return revenue_report(stack, today - timedelta(days=1), today + timedelta(days=1))


def test_a_batch_the_stream_delivers_again_adds_nothing_twice(stack: Stack) -> None:
    # Given two customers' purchases and usage, projected once, with the revenue batch kept as it was delivered
    delivered: list[dict[str, Any]] = []
    stack.observers.append(lambda function, event: delivered.append(event) if function == "RevenueFunction" else None)
    assert stack.api("PUT", "/rate-card", {"meters": {"api_calls": {"creditsPerUnit": "10"}}}).status == 200
    for customer in ("acme", "globex"):
        assert stack.api("POST", f"/wallets/{customer}/purchases", PRICED).status == 201
        usage = {"eventId": f"{customer}-1", "customerId": customer, "meter": "api_calls", "quantity": "3"}
        assert (
            stack.api("POST", "/usage", {"events": [{**usage, "timestamp": stack.clock.now().isoformat()}]}).status
            == 202
        )
    stack.pump()
    stack.observers.clear()
    before = _report(stack)
    assert delivered
    # When the function crashed after its transaction and Lambda delivers every batch again, then all at once
    for batch in delivered:
        assert stack.invoke("RevenueFunction", batch) == {"added": 0}
    everything = {"Records": [r for batch in delivered for r in batch["Records"]]}
    assert stack.invoke("RevenueFunction", everything) == {"added": 0}
    # Then the report is what it was: each purchase and each drawdown counted once
    assert _report(stack) == before
    usd = next(c for c in before["currencies"] if c["currency"] == "USD")
    assert Decimal(usd["purchased"]) == Decimal("10.00")
    assert Decimal(usd["recognised"]) == Decimal("0.60")


@st.composite
def streams_and_deliveries(draw: st.DrawFn) -> tuple[list[VersionEntries], list[tuple[int, int]]]:
    """Some customers' wallet versions as one shard holds them (each customer's oldest first, customers
    interleaved), each with purchases of whole cents; and the slices Lambda delivers: each starts at or before
    where the last finished (a replay, after a crash or a failure) and the last reaches the end."""
    customers = [f"c{i}-{uuid.uuid4().hex[:8]}" for i in range(draw(st.integers(1, 4)))]
    order = draw(st.lists(st.sampled_from(customers), min_size=1, max_size=30))
    versions: dict[str, int] = {}
    stream = []
    for customer in order:
        versions[customer] = versions.get(customer, 0) + draw(st.integers(1, 3))  # some versions move no money
        cents = draw(st.lists(st.integers(0, 10_000), max_size=2))
        entries = tuple(
            LedgerEntry(EntryType.PURCHASE, Decimal(1), DAY, Decimal(1), value=Money(Decimal(c) / 100, "XTS"))
            for c in cents
        )
        stream.append(VersionEntries(customer, versions[customer], entries))
    return stream, replayed_slices(draw, len(stream))


def _purchased(store: DynamoRevenueStore) -> Decimal:
    return sum(
        (d.amounts.get("purchased", Decimal(0)) for d in store.days_before(date(2027, 1, 1)) if d.currency == "XTS"),
        Decimal(0),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=streams_and_deliveries())
def test_any_replays_of_a_shard_add_each_version_exactly_once(
    stack: Stack, case: tuple[list[VersionEntries], list[tuple[int, int]]]
) -> None:
    # Given a shard of wallet versions (new customers each example: their guards start empty)
    stream, deliveries = case
    store = DynamoRevenueStore(boto3.client("dynamodb", region_name=REGION), stack.name("WalletTable"), stack.clock.now)
    before = _purchased(store)
    # When Lambda delivers it in slices that overlap (replays), each slice as one batch
    for start, end in deliveries:
        store.add(stream[start:end])
    # Then the sums grew by every entry exactly once
    expected = sum((e.value.amount for v in stream for e in v.entries if e.value is not None), Decimal(0))
    assert _purchased(store) - before == expected
