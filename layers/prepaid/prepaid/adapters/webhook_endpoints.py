"""Account-level webhook endpoints: their items in the wallet table and their secrets in Secrets Manager.

| PK             | SK             | holds                                                              |
|----------------|----------------|--------------------------------------------------------------------|
| `WH#ENDPOINTS` | `<endpointId>` | url, eventTypes (absent: every type), description, createdAt, disabled, version |

One partition: a deployment has at most `MAX_ENDPOINTS`, and the alerting function reads them all for each event
(one Query, consistent). Each endpoint's secret is the Secrets Manager secret `<prefix><endpointId>` (the prefix is
the stack's, so the functions' policies name only this stack's endpoint secrets).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import ClientError

from prepaid.adapters.items import from_attributes, to_attributes
from prepaid.adapters.secrets import SecretValue
from prepaid.application.webhook_endpoints import EndpointChanged
from prepaid.domain.webhook_endpoints import WebhookEndpoint

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_secretsmanager import SecretsManagerClient

ENDPOINTS_PK = "WH#ENDPOINTS"
SECRET_CACHE_SECONDS = 300
RECOVERY_DAYS = 7  # Secrets Manager's shortest window: a deleted endpoint's secret can be restored for a week


def endpoint_item(endpoint: WebhookEndpoint) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": ENDPOINTS_PK,
        "SK": endpoint.endpoint_id,
        "itemType": "webhookEndpoint",
        "url": endpoint.url,
        "description": endpoint.description,
        "createdAt": endpoint.created_at.isoformat(),
        "disabled": endpoint.disabled,
        "version": endpoint.version,
    }
    if endpoint.event_types is not None:
        item["eventTypes"] = sorted(endpoint.event_types)
    return item


def endpoint_from_item(item: dict[str, Any]) -> WebhookEndpoint:
    types = item.get("eventTypes")
    return WebhookEndpoint(
        endpoint_id=str(item["SK"]),
        url=str(item["url"]),
        event_types=frozenset(str(t) for t in types) if types is not None else None,
        description=str(item.get("description", "")),
        created_at=datetime.fromisoformat(item["createdAt"]),
        disabled=bool(item.get("disabled", False)),
        version=int(item["version"]),
    )


class DynamoEndpointStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def endpoints(self) -> list[WebhookEndpoint]:
        found = self._client.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": ENDPOINTS_PK}},
            ConsistentRead=True,
        )
        return [endpoint_from_item(from_attributes(i)) for i in found.get("Items", [])]

    def get(self, endpoint_id: str) -> WebhookEndpoint | None:
        found = self._client.get_item(
            TableName=self._table, Key={"PK": {"S": ENDPOINTS_PK}, "SK": {"S": endpoint_id}}, ConsistentRead=True
        ).get("Item")
        return endpoint_from_item(from_attributes(found)) if found else None

    def add(self, endpoint: WebhookEndpoint) -> None:
        self._put(endpoint, ConditionExpression="attribute_not_exists(PK)")

    def replace(self, endpoint: WebhookEndpoint) -> None:
        self._put(
            endpoint,
            ConditionExpression="version = :read",
            ExpressionAttributeValues={":read": {"N": str(endpoint.version - 1)}},
        )

    def delete(self, endpoint_id: str) -> None:
        self._client.delete_item(TableName=self._table, Key={"PK": {"S": ENDPOINTS_PK}, "SK": {"S": endpoint_id}})

    def _put(self, endpoint: WebhookEndpoint, **condition: Any) -> None:
        try:
            self._client.put_item(TableName=self._table, Item=to_attributes(endpoint_item(endpoint)), **condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise EndpointChanged(endpoint.endpoint_id) from error
            raise


class SecretsManagerEndpointSecrets:
    """Each endpoint's `whsec_` secret as a Secrets Manager secret named `<prefix><endpointId>`; read through
    Powertools' cache (five minutes), never logged."""

    def __init__(self, client: SecretsManagerClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._provider = SecretsProvider(boto3_client=client)

    def create(self, endpoint_id: str, secret: str) -> None:
        self._client.create_secret(
            Name=self._prefix + endpoint_id,
            SecretString=secret,
            Description="Standard Webhooks secret of one prepaid-credits webhook endpoint",
        )

    def get(self, endpoint_id: str) -> str:
        return SecretValue(self._prefix + endpoint_id, SECRET_CACHE_SECONDS, self._provider)().decode()

    def delete(self, endpoint_id: str) -> None:
        try:
            self._client.delete_secret(SecretId=self._prefix + endpoint_id, RecoveryWindowInDays=RECOVERY_DAYS)
        except ClientError as error:
            # gone already, or already scheduled for deletion (a second DELETE of the endpoint): done either way
            if error.response.get("Error", {}).get("Code") not in (
                "ResourceNotFoundException",
                "InvalidRequestException",
            ):
                raise


class EndpointDirectory:
    """What the alerting function reads: every endpoint now, and an endpoint's secret."""

    def __init__(self, store: DynamoEndpointStore, secrets: SecretsManagerEndpointSecrets) -> None:
        self._store = store
        self._secrets = secrets

    def endpoints(self) -> list[WebhookEndpoint]:
        return self._store.endpoints()

    def secret(self, endpoint_id: str) -> str:
        return self._secrets.get(endpoint_id)
