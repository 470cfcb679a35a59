"""Our serialized moto transactions keep DynamoDB's semantics: all or nothing, with per-item reasons."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from prepaid_local.stack import Stack
from support.aws import REGION


def _put(table: str, pk: str, condition: str | None = None) -> Any:
    op: dict[str, Any] = {"TableName": table, "Item": {"PK": {"S": pk}, "SK": {"S": "X"}}}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def test_a_failed_condition_cancels_every_write_with_reasons(stack: Stack) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    table = stack.name("WalletTable")
    client.put_item(TableName=table, Item={"PK": {"S": "taken"}, "SK": {"S": "X"}})
    # When a transaction writes a new item and one whose condition fails
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(
            TransactItems=[_put(table, "fresh"), _put(table, "taken", "attribute_not_exists(PK)")]
        )
    # Then it is cancelled with one reason per item, and nothing was written
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in client.get_item(TableName=table, Key={"PK": {"S": "fresh"}, "SK": {"S": "X"}})


def test_two_operations_on_one_item_are_refused(stack: Stack) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    table = stack.name("WalletTable")
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=[_put(table, "a"), _put(table, "a")])
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_a_successful_transaction_writes_everything(stack: Stack) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    table = stack.name("WalletTable")
    client.transact_write_items(TransactItems=[_put(table, "a"), _put(table, "b", "attribute_not_exists(PK)")])
    assert client.scan(TableName=table)["Count"] == 2
