"""Alert deliveries in the wallet table: one item per event id and channel, written conditionally on its version.

| PK             | SK                  | holds                                                                  |
|----------------|---------------------|------------------------------------------------------------------------|
| `D#<eventId>`  | `WEBHOOK` / `TOPIC` | state, owner (queue message id), attempts, leaseUntil, lastFailure, ttl |

Kept 30 days (TTL): longer than a message can live on the alert queue (14 days), so any late duplicate of an event
still finds its delivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid.adapters.items import from_attributes, to_attributes
from prepaid.application.webhooks import DeliveryConflict
from prepaid.domain.alerts import Alert, Delivery, DeliveryState

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

RETENTION = timedelta(days=30)


def delivery_pk(event_id: str) -> str:
    return f"D#{event_id}"


def delivery_item(delivery: Delivery, alert: Alert) -> dict[str, Any]:
    return {
        "PK": delivery_pk(delivery.event_id),
        "SK": delivery.channel.upper(),
        "itemType": "delivery",
        "state": delivery.state.value,
        "owner": delivery.owner,
        "attempts": delivery.attempts,
        "leaseUntil": delivery.lease_until.isoformat(),
        "version": delivery.version,
        "lastFailure": delivery.last_failure,
        "customerId": alert.customer_id,
        "detailType": alert.detail_type,
        "ttl": int((delivery.lease_until + RETENTION).timestamp()),
    }


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

    def save(self, delivery: Delivery, alert: Alert) -> None:
        put: dict[str, Any] = {"TableName": self._table, "Item": to_attributes(delivery_item(delivery, alert))}
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


class WalletWebhooks:
    """Each wallet's webhook URL, read from the wallet itself (so a changed URL applies to the next attempt)."""

    def __init__(self, store: DynamoWalletStore) -> None:
        self._store = store

    def webhook_url(self, customer_id: str) -> str | None:
        wallet = self._store.load(customer_id)
        return wallet.settings.webhook_url if wallet is not None else None
