"""Daily revenue per currency in the wallet table, added to exactly once per wallet version.

day sums  PK=REVENUE                 SK=<yyyy-mm-dd>#<currency>   purchased, recognised, breakage, voided,
                                                                  refunded (ADD)
guard     PK=R#<customerId>          SK=REVENUE                   `version`: the customer's newest wallet version
                                                                  added; TTL 3 days (> the stream's 24 h retention)
day's customers PK=RC#<yyyy-mm-dd>   SK=<customerId>              `firstVersion`: the customer's oldest wallet version
                                                                  with a ledger entry on that UTC day (the daily export
                                                                  reads each of these customers' ledgers back to it)

The stream delivers a wallet's versions in the order they were written (one item), so one guard per customer and
batch suffices: the sums and the guards move in one transaction, each guard only if it is still below the first
version the batch adds for its customer. A batch delivered again finds its guards moved and adds nothing twice,
whatever it is batched with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from prepaid.adapters.dynamodb import StorageError, query_pages
from prepaid.adapters.items import to_attributes
from prepaid.application.revenue import VersionEntries
from prepaid.domain.revenue import MEASURES, DayRevenue, movements

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

REVENUE_PK = "REVENUE"
GUARD_SK = "REVENUE"
DAY_CUSTOMERS_PREFIX = "RC#"
GUARD_RETENTION = timedelta(days=3)
ITEMS_PER_TRANSACTION = 100  # DynamoDB's limit: the guards, day sums and day's customers of one transaction


@dataclass(frozen=True)
class _Customer:
    """One customer's versions in a batch, oldest first."""

    customer_id: str
    versions: tuple[VersionEntries, ...]

    @property
    def first(self) -> int:
        return self.versions[0].version

    @property
    def last(self) -> int:
        return self.versions[-1].version

    def first_versions(self) -> dict[date, int]:
        """Each UTC day the customer's entries fall on, with the oldest of these versions holding one of them."""
        first: dict[date, int] = {}
        for v in self.versions:
            for entry in v.entries:
                first.setdefault(entry.at.date(), v.version)
        return first

    def after(self, version: int) -> _Customer | None:
        newer = tuple(v for v in self.versions if v.version > version)
        return _Customer(self.customer_id, newer) if newer else None


class DynamoRevenueStore:
    def __init__(self, client: DynamoDBClient, table_name: str, clock: Any) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    def add(self, versions: Sequence[VersionEntries]) -> int:
        by_customer: dict[str, dict[int, VersionEntries]] = {}
        for entries in versions:
            if entries.entries:  # a version without entries (settings, say) moves no revenue
                by_customer.setdefault(entries.customer_id, {})[entries.version] = entries
        customers = [_Customer(c, tuple(v[k] for k in sorted(v))) for c, v in by_customer.items()]
        return sum(self._add_chunk(chunk) for chunk in _chunks(customers))

    def _add_chunk(self, chunk: list[_Customer]) -> int:
        """One transaction: each customer's guard (only if below the chunk's first version for it) and the day sums;
        customers whose guard has moved keep only their newer versions, and the rest is committed again."""
        while chunk:
            expires = int((self._clock() + GUARD_RETENTION).timestamp())
            guards: list[dict[str, Any]] = [{"Update": self._guard_update(c, expires)} for c in chunk]
            entries = (e for c in chunk for v in c.versions for e in v.entries)
            sums: list[dict[str, Any]] = [{"Update": self._day_update(day)} for day in movements(entries)]
            customers: list[dict[str, Any]] = [
                {"Update": self._day_customer_update(c.customer_id, day, version)}
                for c in chunk
                for day, version in c.first_versions().items()
            ]
            try:
                self._client.transact_write_items(TransactItems=[*guards, *sums, *customers])  # type: ignore[list-item]
                return sum(len(c.versions) for c in chunk)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
                moved = [c for c, code in zip(chunk, reasons, strict=False) if code == "ConditionalCheckFailed"]
                if not moved:
                    raise StorageError(reasons) from error
                stored = {c.customer_id: self._guard(c.customer_id) for c in moved}
                kept = (c.after(stored[c.customer_id]) if c.customer_id in stored else c for c in chunk)
                chunk = [c for c in kept if c is not None]
        return 0

    def _guard_update(self, customer: _Customer, expires: int) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Key": {"PK": {"S": f"R#{customer.customer_id}"}, "SK": {"S": GUARD_SK}},
            "UpdateExpression": "SET version = :last, itemType = :t, #ttl = :ttl",
            "ConditionExpression": "attribute_not_exists(version) OR version < :first",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "ExpressionAttributeValues": to_attributes(
                {":last": customer.last, ":first": customer.first, ":t": "revenue guard", ":ttl": expires}
            ),
        }

    def _guard(self, customer_id: str) -> int:
        response = self._client.get_item(
            TableName=self._table,
            Key={"PK": {"S": f"R#{customer_id}"}, "SK": {"S": GUARD_SK}},
            ProjectionExpression="version",
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get("version", {}).get("N", "0"))

    def _day_update(self, day: DayRevenue) -> dict[str, Any]:
        measures = [m for m in MEASURES if m in day.amounts]
        return {
            "TableName": self._table,
            "Key": {"PK": {"S": REVENUE_PK}, "SK": {"S": f"{day.day.isoformat()}#{day.currency}"}},
            "UpdateExpression": "ADD " + ", ".join(f"#{m} :{m}" for m in measures) + " SET itemType = :t",
            "ExpressionAttributeNames": {f"#{m}": m for m in measures},
            "ExpressionAttributeValues": to_attributes(
                {**{f":{m}": day.amounts[m] for m in measures}, ":t": "revenue"}
            ),
        }

    def _day_customer_update(self, customer_id: str, day: date, version: int) -> dict[str, Any]:
        # Versions come oldest first, each once: the first one written for a day is the oldest.
        return {
            "TableName": self._table,
            "Key": {"PK": {"S": f"{DAY_CUSTOMERS_PREFIX}{day.isoformat()}"}, "SK": {"S": customer_id}},
            "UpdateExpression": "SET itemType = :t, firstVersion = if_not_exists(firstVersion, :v)",
            "ExpressionAttributeValues": to_attributes({":t": "day customer", ":v": version}),
        }

    def customers_on(self, day: date) -> Iterator[tuple[str, str]]:
        """Each customer with a ledger entry on `day` (projected so far), and the first entry id of its oldest
        version holding one (entry ids begin with their version, `items.ledger_sk`)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{DAY_CUSTOMERS_PREFIX}{day.isoformat()}"}},
            "ConsistentRead": True,
        }
        for item in query_pages(self._client, kwargs):
            yield item["SK"]["S"], f"{int(item['firstVersion']['N']):012d}"

    def days_before(self, end: date) -> Iterator[DayRevenue]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK < :end",
            "ExpressionAttributeValues": {":pk": {"S": REVENUE_PK}, ":end": {"S": end.isoformat()}},
            "ConsistentRead": True,
        }
        for item in query_pages(self._client, kwargs):
            day, currency = item["SK"]["S"].split("#", 1)
            amounts = {m: Decimal(item[m]["N"]) for m in MEASURES if m in item}
            yield DayRevenue(date.fromisoformat(day), currency, amounts)


def _chunks(customers: list[_Customer]) -> Iterator[list[_Customer]]:
    """Customers in transactions of at most 100 items: a guard each and one per day its entries fall on, and a day
    sum per day and currency moved."""
    chunk: list[_Customer] = []
    days: set[tuple[date, str]] = set()
    own = 0  # the chunk's guards and day customers
    for customer in customers:
        moved = {(d.day, d.currency) for d in movements(e for v in customer.versions for e in v.entries)}
        needs = 1 + len(customer.first_versions())
        if chunk and own + needs + len(days | moved) > ITEMS_PER_TRANSACTION:
            yield chunk
            chunk, days, own = [], set(), 0
        chunk.append(customer)
        days |= moved
        own += needs
    if chunk:
        yield chunk
