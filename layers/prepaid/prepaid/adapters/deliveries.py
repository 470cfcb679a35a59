"""Deliveries in the wallet table: one item per event id and channel, written conditionally on its version.

| PK            | SK                                            | holds                                         |
|---------------|-----------------------------------------------|-----------------------------------------------|
| `D#<eventId>` | `WEBHOOK` / `TOPIC` / `ENDPOINT:<ENDPOINTID>` | state, owner (queue message id), attempts,    |
|               |                                               | leaseUntil, lastFailure, the message, ttl     |

A webhook's delivery also carries `deliveryEndpoint` (an endpoint id, or `wallet:<customerId>`) and `deliverySort`
(`<event time>#<eventId>`): the keys of the sparse `DeliveryIndex`, which lists an endpoint's deliveries newest
first. The topic's deliveries are not listed.

Kept 30 days (TTL): longer than a message can live on the alert queue (14 days), so any late duplicate of an event
still finds its delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid.adapters.items import from_attributes, to_attributes
from prepaid.application.webhook_endpoints import DeliveryView, StoredDelivery, addressed_from, view_of
from prepaid.application.webhooks import Addressed, DeliveryConflict
from prepaid.domain.alerts import Delivery, DeliveryState

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

RETENTION = timedelta(days=30)
DELIVERY_INDEX = "DeliveryIndex"


def delivery_pk(event_id: str) -> str:
    return f"D#{event_id}"


def delivery_item(delivery: Delivery, addressed: Addressed) -> dict[str, Any]:
    alert = addressed.alert
    item: dict[str, Any] = {
        "PK": delivery_pk(delivery.event_id),
        "SK": delivery.channel.upper(),
        "itemType": "delivery",
        "state": delivery.state.value,
        "owner": delivery.owner,
        "attempts": delivery.attempts,
        "leaseUntil": delivery.lease_until.isoformat(),
        "version": delivery.version,
        "lastFailure": delivery.last_failure,
        "since": delivery.since.isoformat() if delivery.since else None,
        "customerId": alert.customer_id,
        "detailType": alert.detail_type,
        "message": addressed.message,
        "ttl": int((delivery.lease_until + RETENTION).timestamp()),
    }
    if addressed.endpoint is not None:
        item["deliveryEndpoint"] = addressed.endpoint
        item["deliverySort"] = delivery_sort(alert.happened_at, delivery.since, alert.event_id)
    return item


def delivery_sort(happened_at: datetime, since: datetime | None, event_id: str) -> str:
    """Newest first when read backwards: the event's instant (EventBridge gives whole seconds), then when its first
    delivery began (events of one second in the order they were first sent), then its id."""
    first = since or happened_at
    return f"{_fixed(happened_at)}#{_fixed(first)}#{event_id}"


def _fixed(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delivery_from_item(item: dict[str, Any]) -> Delivery:
    return Delivery(
        event_id=str(item["PK"]).removeprefix("D#"),
        channel=str(item["SK"]).lower(),
        state=DeliveryState(item["state"]),
        owner=str(item["owner"]),
        attempts=int(item["attempts"]),
        lease_until=datetime.fromisoformat(item["leaseUntil"]),
        version=int(item["version"]),
        last_failure=item.get("lastFailure"),
        since=datetime.fromisoformat(item["since"]) if item.get("since") else None,
    )


class DynamoDeliveryLog:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, event_id: str, channel: str) -> Delivery | None:
        found = self._client.get_item(
            TableName=self._table,
            Key={"PK": {"S": delivery_pk(event_id)}, "SK": {"S": channel.upper()}},
            ConsistentRead=True,
        ).get("Item")
        return delivery_from_item(from_attributes(found)) if found else None

    def save(self, delivery: Delivery, addressed: Addressed) -> None:
        put: dict[str, Any] = {"TableName": self._table, "Item": to_attributes(delivery_item(delivery, addressed))}
        if delivery.version == 1:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "version = :read"
            put["ExpressionAttributeValues"] = {":read": {"N": str(delivery.version - 1)}}
        try:
            self._client.put_item(**put)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise DeliveryConflict(delivery.event_id) from error
            raise

    def stored(self, event_id: str, channel: str) -> StoredDelivery | None:
        found = self._client.get_item(
            TableName=self._table,
            Key={"PK": {"S": delivery_pk(event_id)}, "SK": {"S": channel.upper()}},
            ConsistentRead=True,
        ).get("Item")
        if not found or "message" not in found:  # (kept from before deliveries held their message: not resendable)
            return None
        item = from_attributes(found)
        return StoredDelivery(delivery_from_item(item), addressed_from(item["message"], item.get("deliveryEndpoint")))

    def page(self, endpoint: str, limit: int, after: str | None) -> tuple[list[DeliveryView], str | None]:
        """From `DeliveryIndex` (eventually consistent: a delivery a moment old may be missing)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DELIVERY_INDEX,
            "KeyConditionExpression": "deliveryEndpoint = :endpoint",
            "ExpressionAttributeValues": {":endpoint": {"S": endpoint}},
            "ScanIndexForward": False,
            "Limit": limit + 1,  # one more tells whether there is a next page
        }
        if after is not None:
            query["KeyConditionExpression"] += " AND deliverySort < :after"
            query["ExpressionAttributeValues"][":after"] = {"S": after}
        found: list[dict[str, Any]] = []
        for page in self._client.get_paginator("query").paginate(**query):
            found += [from_attributes(i) for i in page.get("Items", [])]
            if len(found) > limit:
                break
        shown = found[:limit]
        views = [view_of(delivery_from_item(i), addressed_from(i["message"], i["deliveryEndpoint"])) for i in shown]
        return views, (shown[-1]["deliverySort"] if len(found) > limit else None)


class WalletWebhooks:
    """Each wallet's webhook URL, read from the wallet itself (so a changed URL applies to the next attempt)."""

    def __init__(self, store: DynamoWalletStore) -> None:
        self._store = store

    def webhook_url(self, customer_id: str) -> str | None:
        wallet = self._store.load(customer_id)
        return wallet.settings.webhook_url if wallet is not None else None
