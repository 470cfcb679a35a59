"""DynamoDB storage: every wallet change is one `TransactWriteItems`."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from prepaid.adapters import items
from prepaid.application.ports import (
    EventsAlreadyRecorded,
    IdempotencyRace,
    IdempotencyRecord,
    RecordedEvent,
    StoredEvent,
    VersionConflict,
    WalletChange,
)
from prepaid.domain.card import Card
from prepaid.domain.ledger import LedgerEntry
from prepaid.domain.price_book import PriceBook
from prepaid.domain.rate_card import RateCard
from prepaid.domain.usage_hours import HourUsage
from prepaid.domain.wallet import Wallet

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attributes(item: items.Item) -> dict[str, Any]:
    """A plain item as DynamoDB attribute values, leaving out `None` so optional fields take no space."""
    return {k: _serializer.serialize(_drop_none(v)) for k, v in item.items() if v is not None}


def from_attributes(attributes: dict[str, Any]) -> items.Item:
    return {k: _deserializer.deserialize(v) for k, v in attributes.items()}


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def query_pages(client: DynamoDBClient, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a Query finds, read a page at a time as the caller goes."""
    while True:
        page = client.query(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


log = logging.getLogger(__name__)

BATCH_GET_KEYS = 100
BATCH_GET_TRIES = 4


class StorageError(Exception):
    """DynamoDB refused a write for a reason that is not a lost race."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


class DynamoWalletStore:
    """Wallets, ledger, outbox and idempotency records in one table.

    `version_condition=False` exists only so a test can show that the concurrency test catches lost updates.
    """

    def __init__(self, client: DynamoDBClient, table_name: str, *, version_condition: bool = True) -> None:
        self._client = client
        self._table = table_name
        self._version_condition = version_condition

    def _get(self, pk: str, sk: str) -> items.Item | None:
        response = self._client.get_item(
            TableName=self._table, Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True
        )
        found = response.get("Item")
        return from_attributes(found) if found else None

    def load(self, customer_id: str) -> Wallet | None:
        item = self._get(items.wallet_pk(customer_id), items.WALLET_SK)
        return items.wallet_from_item(item) if item else None

    def idempotency_record(self, customer_id: str, scope: str, key: str) -> IdempotencyRecord | None:
        item = self._get(items.idempotency_pk(customer_id, scope, key), items.IDEMPOTENCY_SK)
        return items.idempotency_from_item(scope, key, item) if item else None

    def recorded_events(self, event_ids: Collection[str]) -> dict[str, RecordedEvent]:
        """Events already drawn, read 100 keys at a time (BatchGetItem's limit), eventually consistent: this is
        the intake's early answer; the drawdown's conditional write stays the authority. So keys DynamoDB leaves
        unprocessed after a few tries, or a read that fails, leave their events to be sorted out at drawdown
        (logged), rather than failing the request."""
        found: dict[str, RecordedEvent] = {}
        keys = [{"PK": {"S": items.usage_event_pk(i)}, "SK": {"S": items.EVENT_SK}} for i in dict.fromkeys(event_ids)]
        projection = {"ProjectionExpression": "PK, customerId, meter, quantity"}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            request: Any = {self._table: {"Keys": keys[start : start + BATCH_GET_KEYS], **projection}}
            for attempt in range(BATCH_GET_TRIES):
                if attempt:
                    time.sleep(0.01 * 2**attempt)  # throttled: back off as the SDKs do
                try:
                    answer = self._client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as error:
                    log.warning("BatchGetItem failed: %s", error)
                    break
                for item in answer["Responses"].get(self._table, []):
                    recorded = items.recorded_event_from_item(from_attributes(item))
                    found[recorded.event_id] = recorded
                request = answer.get("UnprocessedKeys") or None
                if not request:
                    break
            if request:
                log.warning(
                    "%d event records not read; the drawdown will sort them out", len(request[self._table]["Keys"])
                )
        return found

    def committed_event(self, event_id: str) -> StoredEvent | None:
        item = self._get(items.outbox_pk(event_id), items.OUTBOX_SK)
        return items.outbox_from_item(item) if item else None

    def retired_card(self, customer_id: str, card_id: str) -> Card | None:
        item = self._get(items.wallet_pk(customer_id), f"C#{card_id}")
        return items.retired_card_from_item(item) if item else None

    def commit(self, change: WalletChange) -> None:
        wallet = change.wallet
        customer_id = wallet.customer_id
        put_wallet: dict[str, Any] = {"TableName": self._table, "Item": to_attributes(items.wallet_item(wallet))}
        if change.expected_version == 0:
            put_wallet["ConditionExpression"] = "attribute_not_exists(PK)"
        elif self._version_condition:
            put_wallet["ConditionExpression"] = "version = :expected"
            put_wallet["ExpressionAttributeValues"] = {":expected": {"N": str(change.expected_version)}}
        transaction: list[dict[str, Any]] = [{"Put": put_wallet}]
        for index, entry in enumerate(change.ledger):
            item = items.ledger_item(customer_id, wallet.version, change.commit_id, index, entry)
            transaction.append({"Put": self._new_item(item)})
        for card in change.retired:
            transaction.append({"Put": self._new_item(items.retired_card_item(customer_id, card))})
        for event in change.events:
            transaction.append({"Put": self._new_item(items.outbox_item(customer_id, event))})
        first_usage = len(transaction)
        for drawn in change.usage:
            record = self._new_item(items.usage_event_item(customer_id, wallet.version, drawn, change.at))
            record["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            transaction.append({"Put": record})
        for hour in change.hours:
            transaction.append({"Update": self._hour_update(customer_id, hour)})
        idempotency_index = None
        if change.idempotency is not None:
            idempotency_index = len(transaction)
            item = items.idempotency_item(customer_id, change.idempotency, change.at)
            transaction.append({"Put": self._new_item(item)})
        self._transact(transaction, idempotency_index, range(first_usage, first_usage + len(change.usage)))

    def _hour_update(self, customer_id: str, hour: HourUsage) -> dict[str, Any]:
        # ADD needs no read, and adds up whatever else was added to the hour.
        additions = list(items.hour_additions(hour).items())
        names = {f"#a{i}": name for i, (name, _) in enumerate(additions)}
        values: items.Item = {f":a{i}": value for i, (_, value) in enumerate(additions)}
        return {
            "TableName": self._table,
            "Key": {"PK": {"S": items.hours_pk(customer_id)}, "SK": {"S": items.hour_sk(hour.hour)}},
            "UpdateExpression": f"ADD {', '.join(f'#a{i} :a{i}' for i in range(len(additions)))} SET itemType = :t",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_attributes({**values, ":t": "hour"}),
        }

    def stored_hours(self, customer_id: str, start: datetime, end: datetime) -> list[HourUsage]:
        """The stored hourly usage items from `start` to `end` (the wallet's open hour is not among them)."""
        return [
            items.hour_from_item(item)
            for item in self._query(items.hours_pk(customer_id), items.hour_sk(start), items.hour_sk(end))
        ]

    def _query(
        self, pk: str, low: str, high: str, *, newest_first: bool = False, page_size: int | None = None
    ) -> Iterator[items.Item]:
        """Items of a partition with `low <= SK <= high`, in key order (or reversed), read a page at a time (of
        `page_size` items when given, else as many as fit DynamoDB's 1 MB)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }
        if page_size is not None:
            kwargs["Limit"] = page_size
        yield from (from_attributes(i) for i in self._paged_query(kwargs))

    def _paged_query(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return query_pages(self._client, kwargs)

    def ledger_entries(self, customer_id: str, before: str | None, page_size: int) -> Iterator[tuple[str, LedgerEntry]]:
        """(entry id, entry) newest first; after the entry `before` when given (its id names its sort key); read
        `page_size` items per Query as the caller goes on."""
        low, high = items.LEDGER_PREFIX, items.LEDGER_PREFIX + (before if before is not None else "~")
        pk = items.wallet_pk(customer_id)
        for item in self._query(pk, low, high, newest_first=True, page_size=page_size):
            if item["SK"] != high:
                yield item["entryId"], items.ledger_from_item(item)

    def customers_granted_on(self, day_of_month: int) -> Iterator[str]:
        """Customers whose recurring grant falls on that day (the sparse `RecurringIndex`)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": items.RECURRING_INDEX,
            "KeyConditionExpression": "recurringDay = :day",
            "ExpressionAttributeValues": {":day": {"N": str(day_of_month)}},
        }
        yield from (i["PK"]["S"].removeprefix(items.WALLET_PREFIX) for i in self._paged_query(kwargs))

    def exists(self, customer_id: str) -> bool:
        return self._get(items.wallet_pk(customer_id), items.WALLET_SK) is not None

    def _new_item(self, item: items.Item) -> dict[str, Any]:
        # Immutable records: a write never replaces one.
        return {
            "TableName": self._table,
            "Item": to_attributes(item),
            "ConditionExpression": "attribute_not_exists(PK)",
        }

    def _transact(
        self,
        transaction: list[dict[str, Any]],
        idempotency_index: int | None = None,
        usage_indexes: range = range(0),
    ) -> None:
        try:
            self._client.transact_write_items(TransactItems=transaction)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            cancellations = list(error.response.get("CancellationReasons", []))
            reasons = [r.get("Code", "None") for r in cancellations]
            recorded = [
                items.recorded_event_from_item(from_attributes(cancellations[i]["Item"]))  # type: ignore[arg-type]
                for i in usage_indexes
                if reasons[i] == "ConditionalCheckFailed" and cancellations[i].get("Item")
            ]
            if recorded:
                raise EventsAlreadyRecorded(recorded) from error
            if idempotency_index is not None and reasons[idempotency_index : idempotency_index + 1] == [
                "ConditionalCheckFailed"
            ]:
                raise IdempotencyRace() from error
            if reasons[:1] == ["ConditionalCheckFailed"] or "TransactionConflict" in reasons:
                raise VersionConflict() from error
            raise StorageError(reasons) from error


class DynamoCatalogStore:
    """Price book and rate card, each one versioned item."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _get(self, sk: str) -> items.Item | None:
        response = self._client.get_item(
            TableName=self._table, Key={"PK": {"S": items.CATALOG_PK}, "SK": {"S": sk}}, ConsistentRead=True
        )
        found = response.get("Item")
        return from_attributes(found) if found else None

    def _put_versioned(self, item: items.Item) -> None:
        version = int(item["version"])
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if version == 1
            else {
                "ConditionExpression": "version = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(version - 1)}},
            }
        )
        try:
            self._client.put_item(TableName=self._table, Item=to_attributes(item), **condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise VersionConflict() from error
            raise

    def price_book(self) -> PriceBook | None:
        item = self._get(items.PRICE_BOOK_SK)
        return items.price_book_from_item(item) if item else None

    def save_price_book(self, book: PriceBook) -> None:
        self._put_versioned(items.price_book_item(book))

    def rate_card(self) -> RateCard | None:
        item = self._get(items.RATE_CARD_SK)
        return items.rate_card_from_item(item) if item else None

    def save_rate_card(self, card: RateCard) -> None:
        self._put_versioned(items.rate_card_item(card))
