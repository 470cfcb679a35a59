"""Daily revenue per currency in the wallet table, added to exactly once per ledger entry.

day sums  PK=REVENUE                 SK=<yyyy-mm-dd>#<currency>   purchased, recognised, breakage, voided (ADD)
marker    PK=R#<ledger entry key>    SK=REVENUE                   written with the sums; TTL 3 days (> the
                                                                  stream's 24 h retention, so a replayed
                                                                  record always finds its marker)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from prepaid.adapters.dynamodb import StorageError, query_pages
from prepaid.adapters.items import to_attributes
from prepaid.domain.ledger import LedgerEntry
from prepaid.domain.revenue import MEASURES, DayRevenue, movements

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

REVENUE_PK = "REVENUE"
MARKER_SK = "REVENUE"
MARKER_RETENTION = timedelta(days=3)
ENTRIES_PER_TRANSACTION = 45  # a marker each, and at most as many day sums: within the 100 items of a transaction


class DynamoRevenueStore:
    def __init__(self, client: DynamoDBClient, table_name: str, clock: Any) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    def add(self, entries: Sequence[tuple[str, LedgerEntry]]) -> int:
        added = 0
        for start in range(0, len(entries), ENTRIES_PER_TRANSACTION):
            added += self._add_chunk(list(entries[start : start + ENTRIES_PER_TRANSACTION]))
        return added

    def _add_chunk(self, chunk: list[tuple[str, LedgerEntry]]) -> int:
        """One transaction: a marker per entry (only if absent) and the day sums; entries seen before (their
        marker exists) are dropped and the rest committed again."""
        while chunk:
            expires = int((self._clock() + MARKER_RETENTION).timestamp())
            markers: list[dict[str, Any]] = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_attributes({"PK": f"R#{key}", "SK": MARKER_SK, "ttl": expires}),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
                for key, _ in chunk
            ]
            sums: list[dict[str, Any]] = [{"Update": self._day_update(day)} for day in movements(e for _, e in chunk)]
            try:
                self._client.transact_write_items(TransactItems=[*markers, *sums])  # type: ignore[list-item]
                return len(chunk)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
                seen = {i for i, code in enumerate(reasons[: len(chunk)]) if code == "ConditionalCheckFailed"}
                if not seen:
                    raise StorageError(reasons) from error
                chunk = [c for i, c in enumerate(chunk) if i not in seen]
        return 0

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
