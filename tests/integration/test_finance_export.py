"""The daily export for finance, driven by the stack's clock: the schedule writes each day's ledger entries and
revenue figures to the export bucket, and DuckDB over those files gives the revenue report's figures to the cent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prepaid.adapters.revenue import DynamoRevenueStore
from prepaid.application.revenue import VersionEntries
from prepaid.domain.ledger import EntryType, LedgerEntry
from prepaid.domain.money import Money
from prepaid_local.stack import Stack
from support.aws import REGION
from support.revenue import replayed_slices, revenue_report
from support.usage import RATE_CARD, Queues, usage_event

DAYS = [date(2027, 5, 3), date(2027, 5, 4), date(2027, 5, 5)]
FIGURES = ("purchased", "recognised", "breakage", "voided", "refunded", "rolledOver")
REPORTED = ("deferredAtStart", *FIGURES, "deferred")
LEDGER_COLUMNS = {
    "customerId": "VARCHAR",
    "entryId": "VARCHAR",
    "type": "VARCHAR",
    "value": "STRUCT(amount VARCHAR, currency VARCHAR)",
    "draws": "STRUCT(cardId VARCHAR, credits VARCHAR)[]",
}
REVENUE_COLUMNS = {"currency": "VARCHAR", **{f: "VARCHAR" for f in REPORTED}}
# Where each entry's value goes (domain/revenue.py `measure_of`), written as finance would write it in SQL
MEASURE_SQL = """
    CASE
        WHEN type = 'purchase' THEN 'purchased'
        WHEN type IN ('usage', 'overage_payoff') THEN 'recognised'
        WHEN type = 'expiry' THEN 'breakage'
        WHEN type = 'void' THEN 'voided'
        WHEN type = 'refund' THEN 'refunded'
        WHEN type = 'rollover' THEN 'rolledOver'
        WHEN type = 'adjustment' AND len(draws) > 0 THEN 'voided'
        WHEN type = 'adjustment' THEN 'purchased'
    END
"""


def at(stack: Stack, when: datetime) -> None:
    stack.set_time(when)
    stack.pump()


def use(stack: Stack, event_id: str, customer: str, units: str) -> None:
    Queues(stack).send_usage({"events": [usage_event(event_id, customer, units)]})  # 0.5 credits a unit
    stack.pump()


def buy(stack: Stack, customer: str, credits: str, amount: str, currency: str, **body: Any) -> dict[str, Any]:
    price = {"amount": amount, "currency": currency}
    answer = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": price, **body})
    assert answer.status == 201, answer.body
    card: dict[str, Any] = answer.body["card"]
    return card


def download(stack: Stack, into: Path) -> dict[str, bytes]:
    """Every object of the export bucket, as files under `into` (same keys), and their bytes by key."""
    s3 = boto3.client("s3", region_name=REGION)
    bucket = stack.resolver.physical["ExportBucket"]
    found = {}
    for listed in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read()
        (into / listed["Key"]).parent.mkdir(parents=True, exist_ok=True)
        (into / listed["Key"]).write_bytes(body)
        found[listed["Key"]] = body
    return found


def report(stack: Stack, start: date, end: date) -> dict[str, dict[str, Decimal]]:
    currencies = revenue_report(stack, start, end)["currencies"]
    return {c["currency"]: {f: Decimal(c[f]) for f in REPORTED} for c in currencies}


def read_json(root: Path, prefix: str, columns: dict[str, str]) -> str:
    """DuckDB's reader over one table's partitions (`date` from the `date=` folders)."""
    return (
        f"read_json('{root}/{prefix}/date=*/*.jsonl', format = 'newline_delimited', hive_partitioning = true, "
        f"columns = {columns})"
    )


def test_duckdb_over_the_daily_export_gives_the_revenue_report_to_the_cent(timed_stack: Stack, tmp_path: Path) -> None:
    stack = timed_stack
    at(stack, datetime(2027, 5, 3, 9, tzinfo=UTC))
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given, on the first day, acme buys 100 credits for 10.00 USD expiring the next evening (drawn first) and 200
    # for 30.00 USD; globex buys 50 for 7.50 EUR; both use credits
    expiring = buy(stack, "acme", "100", "10.00", "USD", expiresAt="2027-05-04T18:00:00Z", priority=10)
    buy(stack, "acme", "200", "30.00", "USD")
    buy(stack, "globex", "50", "7.50", "EUR")
    use(stack, "acme-1", "acme", "60")  # 30 credits: 3.00 USD recognised
    use(stack, "globex-1", "globex", "10")  # 5 credits: 0.75 EUR
    # And on the second day acme uses 10 more, globex gives 3 credits back, and acme's first card expires with 60
    at(stack, datetime(2027, 5, 4, 10, tzinfo=UTC))
    use(stack, "acme-2", "acme", "20")  # 10 credits: 1.00 USD
    taken = stack.api("POST", "/wallets/globex/adjustments", {"credits": "-3", "reason": "correction"})
    assert taken.status == 201, taken.body  # 0.45 EUR voided
    at(stack, datetime.fromisoformat(expiring["expiresAt"]) + timedelta(seconds=2))  # 6.00 USD breakage
    # And on the third day acme uses 3.5 credits of the 0.15 USD card: 0.525, recorded as 0.52 (half-even)
    at(stack, datetime(2027, 5, 5, 10, tzinfo=UTC))
    use(stack, "acme-3", "acme", "7")

    # When the daily schedule runs at 01:00 after each day
    at(stack, datetime(2027, 5, 6, 1, 30, tzinfo=UTC))
    exported = download(stack, tmp_path)

    # Then each day has its ledger and revenue file under its date partition
    for day in DAYS:
        assert f"ledger/date={day}/part-0000.jsonl" in exported
        assert f"revenue/date={day}/part-0000.jsonl" in exported
    con = duckdb.connect()
    revenue_days = read_json(tmp_path, "revenue", REVENUE_COLUMNS)
    ledger = read_json(tmp_path, "ledger", LEDGER_COLUMNS)

    # And DuckDB over the revenue files gives GET /reports/revenue of each day, every figure to the cent
    for day in DAYS:
        rows = con.sql(f"SELECT * EXCLUDE (date) FROM {revenue_days} WHERE date = DATE '{day}'").fetchall()
        queried = {r[0]: {f: Decimal(v) for f, v in zip(REPORTED, r[1:], strict=True)} for r in rows}
        assert queried == report(stack, day, day + timedelta(days=1))

    # And DuckDB over the ledger files, each entry's value summed where it goes, gives the report of the three days
    whole = report(stack, DAYS[0], DAYS[-1] + timedelta(days=1))
    sums = con.sql(
        "SELECT currency, measure, sum(amount) FROM ("
        f"  SELECT value.currency AS currency, {MEASURE_SQL} AS measure,"
        "   CAST(value.amount AS DECIMAL(38, 9)) AS amount"
        f"  FROM {ledger} WHERE value IS NOT NULL AND date BETWEEN DATE '{DAYS[0]}' AND DATE '{DAYS[-1]}'"
        ") WHERE measure IS NOT NULL GROUP BY ALL"  # a pending card's entry moves no money until it is paid
    ).fetchall()
    from_ledger = {c: {f: Decimal(0) for f in FIGURES} for c in whole}
    for currency, measure, amount in sums:
        from_ledger[currency][measure] += amount
    assert from_ledger == {c: {f: figures[f] for f in FIGURES} for c, figures in whole.items()}
    # And the figures are the ones the story makes
    story = {
        "EUR": {"purchased": "7.50", "recognised": "0.75", "voided": "0.45", "deferred": "6.30"},
        "USD": {"purchased": "40.00", "recognised": "4.52", "breakage": "6.00", "deferred": "29.48"},
    }
    assert {c: {f: v for f, v in figures.items() if v} for c, figures in whole.items()} == {
        c: {f: Decimal(v) for f, v in figures.items()} for c, figures in story.items()
    }
    # And summed over the days, the revenue files agree with the ledger files
    daily = con.sql(
        f"SELECT currency, {', '.join(f'sum(CAST({f} AS DECIMAL(38, 9)))' for f in FIGURES)}"
        f" FROM {revenue_days} GROUP BY currency"
    ).fetchall()
    assert {r[0]: dict(zip(FIGURES, r[1:], strict=True)) for r in daily} == from_ledger

    # And the ledger files hold exactly each wallet's ledger as the ledger route shows it, each entry once
    for customer in ("acme", "globex"):
        answer = stack.api("GET", f"/wallets/{customer}/ledger", query="limit=500").body["entries"]
        shown = [{k: v for k, v in e.items() if v is not None} for e in answer]  # the export leaves out what is null
        lines = [
            json.loads(line)
            for key, body in sorted(exported.items())
            if key.startswith("ledger/")
            for line in body.decode().splitlines()
        ]
        mine = [{k: v for k, v in e.items() if k != "customerId"} for e in lines if e["customerId"] == customer]
        assert sorted(mine, key=lambda e: e["entryId"]) == sorted(shown, key=lambda e: e["entryId"])


def test_exporting_a_day_again_writes_the_same_keys_with_the_same_content(timed_stack: Stack, tmp_path: Path) -> None:
    stack = timed_stack
    at(stack, datetime(2027, 5, 3, 9, tzinfo=UTC))
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given a day with a purchase and usage, exported by the schedule the next morning
    buy(stack, "acme", "100", "10.00", "USD")
    use(stack, "acme-1", "acme", "60")
    at(stack, datetime(2027, 5, 4, 1, 30, tzinfo=UTC))
    first = download(stack, tmp_path / "first")

    # When, after usage on the next day, the export runs for that day again (asked for the day, as an operator would)
    at(stack, datetime(2027, 5, 4, 2, tzinfo=UTC))
    use(stack, "acme-2", "acme", "20")
    again = stack.invoke("ExportFunction", {"day": "2027-05-03"})

    # Then it wrote the same two keys, and the bucket holds the same objects, byte for byte
    assert sorted(again["keys"]) == [
        "ledger/date=2027-05-03/part-0000.jsonl",
        "revenue/date=2027-05-03/part-0000.jsonl",
    ]
    assert again["entries"] == 2
    assert download(stack, tmp_path / "again") == first


# -- the day's customers, noted by the revenue projection -------------------------------------------------------------

FIRST_DAY = datetime(2027, 6, 1, 12, tzinfo=UTC)


def _entry(on: datetime, cents: int) -> LedgerEntry:
    return LedgerEntry(EntryType.PURCHASE, Decimal(1), on, Decimal(1), value=Money(Decimal(cents) / 100, "XTS"))


@st.composite
def shards(draw: st.DrawFn) -> tuple[list[VersionEntries], list[tuple[int, int]]]:
    """Customers' wallet versions as one shard holds them (each customer's oldest first), with entries on one of
    two days or none; and overlapping slices Lambda delivers (replays), the last reaching the end."""
    customers = [f"c{i}-{uuid.uuid4().hex[:8]}" for i in range(draw(st.integers(1, 4)))]
    versions: dict[str, int] = {}
    stream = []
    for customer in draw(st.lists(st.sampled_from(customers), min_size=1, max_size=20)):
        versions[customer] = versions.get(customer, 0) + draw(st.integers(1, 3))
        days = draw(st.lists(st.sampled_from([0, 1]), max_size=2))
        entries = tuple(_entry(FIRST_DAY + timedelta(days=d), 100) for d in days)
        stream.append(VersionEntries(customer, versions[customer], entries))
    return stream, replayed_slices(draw, len(stream))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=shards())
def test_each_days_customers_are_noted_with_their_oldest_version_of_that_day_however_the_shard_is_replayed(
    stack: Stack, case: tuple[list[VersionEntries], list[tuple[int, int]]]
) -> None:
    # Given a shard of wallet versions (new customers each example)
    stream, deliveries = case
    store = DynamoRevenueStore(boto3.client("dynamodb", region_name=REGION), stack.name("WalletTable"), stack.clock.now)
    # When Lambda delivers it in slices that overlap
    for start, end in deliveries:
        store.add(stream[start:end])
    # Then each day lists exactly the customers with an entry on it, each with its oldest version holding one
    ours = {v.customer_id for v in stream}
    for day in (FIRST_DAY.date(), FIRST_DAY.date() + timedelta(days=1)):
        expected: dict[str, str] = {}
        for v in stream:
            if any(e.at.date() == day for e in v.entries):
                expected.setdefault(v.customer_id, f"{v.version:012d}")
        assert {c: since for c, since in store.customers_on(day) if c in ours} == expected


def test_many_customers_on_two_days_are_noted_in_transactions_of_at_most_100_items(stack: Stack) -> None:
    # Given 70 customers each with entries on two days in one batch: 70 guards and 140 day notes, 2 day sums
    store = DynamoRevenueStore(boto3.client("dynamodb", region_name=REGION), stack.name("WalletTable"), stack.clock.now)
    batch = [
        VersionEntries(f"many-{i:02d}", 1, (_entry(FIRST_DAY, i), _entry(FIRST_DAY + timedelta(days=1), 1)))
        for i in range(70)
    ]
    # When the projection adds it (DynamoDB refuses a transaction of more than 100 items)
    assert store.add(batch) == 70
    # Then both days list all 70, and the first day's sum holds every entry of it
    for day in (FIRST_DAY.date(), FIRST_DAY.date() + timedelta(days=1)):
        assert [c for c, _ in store.customers_on(day)] == [f"many-{i:02d}" for i in range(70)]
    (first,) = [d for d in store.days_before(FIRST_DAY.date() + timedelta(days=1)) if d.currency == "XTS"]
    assert first.get("purchased") == sum(Decimal(i) / 100 for i in range(70))
