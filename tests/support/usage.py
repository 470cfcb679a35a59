"""Helpers for the usage pipeline tests: fresh wiring, events, the usage queues, and what the table holds."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from prepaid.adapters.dynamodb import DynamoWalletStore, query_pages
from prepaid.adapters.items import ledger_entries_of, unstored_ledger
from prepaid.application.usage_series import hourly_usage
from prepaid_local.queue_messages import take_all
from prepaid_local.stack import Stack
from support.aws import REGION

RATE = Decimal("0.5")
RATE_CARD = {"meters": {"api_calls": {"creditsPerUnit": str(RATE)}, "storage_gb": {"creditsPerUnit": "2"}}}
PRICE = {"amount": "10.00", "currency": "USD"}
NINE_DIGITS = Decimal("0.000000001")


class Crash(Exception):
    """A function dying mid-flight (timeout, out of memory, instance lost)."""


def now_iso(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).isoformat()


def usage_event(
    event_id: str, customer: str = "acme", quantity: Any = "10", meter: str = "api_calls", at: str | None = None
) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "customerId": customer,
        "meter": meter,
        "quantity": quantity,
        "timestamp": at or now_iso(),
    }


def rated(quantity: str, rate: Decimal = RATE) -> Decimal:
    """Credits for a quantity, as the contract says: rounded half-even to 9 fractional digits."""
    return (Decimal(quantity) * rate).quantize(NINE_DIGITS, rounding=ROUND_HALF_EVEN)


def fund(
    stack: Stack, customer: str, credits: str, thresholds: list[str] | None = None, effective_at: str | None = None
) -> None:
    """A wallet with one paid card (and thresholds, set first), in force now or from `effective_at`."""
    if thresholds is not None:
        assert stack.api("PUT", f"/wallets/{customer}/settings", {"thresholds": thresholds}).status == 200
    body = {"credits": credits, "price": PRICE} | ({"effectiveAt": effective_at} if effective_at else {})
    answer = stack.api("POST", f"/wallets/{customer}/purchases", body)
    assert answer.status == 201, answer.body


def wallet(stack: Stack, customer: str) -> dict[str, Any]:
    answer = stack.api("GET", f"/wallets/{customer}")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


@dataclass(frozen=True)
class DeadLetter:
    reason: str | None  # the `reason` attribute
    refused: str | None  # the `refused` attribute: "event" or "message"
    message: Any  # the event refused (parsed), or the message body refused whole
    body: str  # as it sits in the queue: what a redrive sends back


class Queues:
    """The usage pipeline's queues, by their template names."""

    def __init__(self, stack: Stack) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.usage = stack.name("UsageQueue")
        self.drawdown = stack.name("DrawdownQueue")
        self.dead = stack.name("UsageDeadLetterQueue")
        self.drawdown_dead = stack.name("DrawdownDeadLetterQueue")
        self._letters: list[DeadLetter] = []

    def send_usage(self, body: Any) -> None:
        """One message on the usage queue, as a producer sends it (a dict or list is sent as JSON)."""
        text = body if isinstance(body, str) else json.dumps(body)
        self.sqs.send_message(QueueUrl=self.usage, MessageBody=text)

    def redrive(self, letters: list[DeadLetter]) -> None:
        """What a DLQ redrive (`aws sqs start-message-move-task`, which moto lacks) does: each dead letter's body,
        unchanged, back onto the usage queue."""
        for letter in letters:
            self.sqs.send_message(QueueUrl=self.usage, MessageBody=letter.body)

    def send_drawdown(self, body: str, customer: str) -> None:
        """A drawdown message sent again (a fresh deduplication id, so SQS does not drop it)."""
        self.sqs.send_message(
            QueueUrl=self.drawdown, MessageBody=body, MessageGroupId=customer, MessageDeduplicationId=uuid.uuid4().hex
        )

    def queued_usage(self) -> list[dict[str, Any]]:
        """The events waiting on the usage queue (read and deleted), in the order the messages hold them."""
        events: list[dict[str, Any]] = []
        for message in take_all(self.sqs, self.usage):
            body = json.loads(message["Body"])
            events.extend(body["events"] if isinstance(body, dict) and "events" in body else [body])
        return events

    def queued_rated(self) -> list[dict[str, Any]]:
        """The rated events waiting on the drawdown queue (read and deleted): what `POST /usage` and ingest sent."""
        events: list[dict[str, Any]] = []
        for message in take_all(self.sqs, self.drawdown):
            events.extend(json.loads(message["Body"])["events"])
        return events

    def dead_letters(self) -> list[DeadLetter]:
        """Every message the usage dead-letter queue received so far (read and deleted)."""
        for message in take_all(self.sqs, self.dead, with_attributes=True):
            attributes = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
            # an event refused on its own is its JSON; a message refused whole (or moved here by the redrive
            # policy after too many receives, with no reason attached) is its body as it came
            body = json.loads(message["Body"]) if attributes.get("refused") == "event" else message["Body"]
            self._letters.append(DeadLetter(attributes.get("reason"), attributes.get("refused"), body, message["Body"]))
        return list(self._letters)

    def depth(self, url: str) -> int:
        """Messages in a queue, visible or in flight."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


class Table:
    """What the wallet table holds, as plain Python (numbers as Decimal)."""

    def __init__(self, stack: Stack) -> None:
        self.client = boto3.client("dynamodb", region_name=REGION)
        self.name = stack.name("WalletTable")
        self._deserialize = TypeDeserializer().deserialize

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._deserialize(v) for k, v in item.items()}

    def scan(self) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("scan").paginate(TableName=self.name)
        return [self._plain(i) for page in pages for i in page["Items"]]

    def query(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        """Items of one partition whose sort key begins with a prefix, in key order."""
        values = {":pk": {"S": pk}} | ({":sk": {"S": sk_prefix}} if sk_prefix else {})
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "PK = :pk" + (" AND begins_with(SK, :sk)" if sk_prefix else ""),
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        return [self._plain(i) for i in query_pages(self.client, kwargs)]

    def ledger(self, customer: str) -> list[dict[str, Any]]:
        """A customer's ledger entries in key order: those stored (on their own or in pages) and those the wallet
        carries or still owes."""
        stored = [e for item in self.query(f"W#{customer}", "L#") for e in ledger_entries_of(item)]
        wallet = self.query(f"W#{customer}", "WALLET")
        unstored = unstored_ledger(wallet[0]) if wallet else []
        entries = {e["SK"]: e for e in [*stored, *unstored]}
        return [entries[k] for k in sorted(entries)]

    def hourly_usage(self, customer: str) -> list[dict[str, Any]]:
        """Usage per hour and meter as the store reads it (stored hours and the wallet's open hour)."""
        store = DynamoWalletStore(self.client, self.name)
        wallet = store.load(customer)
        assert wallet is not None, customer
        start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        return [
            {"hour": hour.hour, "meter": meter, "quantity": u.quantity, "credits": u.credits, "events": u.events}
            for hour in hourly_usage(store, wallet, start, end)
            for meter, u in sorted(hour.meters.items())
        ]

    def event_records(self, items: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """The `E#<eventId>` items, by event id (of `items` when given, else of a fresh scan)."""
        return {i["PK"].removeprefix("E#"): i for i in items or self.scan() if i["PK"].startswith("E#")}

    def outbox_ids(self, items: list[dict[str, Any]] | None = None) -> set[str]:
        """The ids of the outbox events (of `items` when given, else of a fresh scan)."""
        return {i["PK"].removeprefix("O#") for i in items or self.scan() if i["PK"].startswith("O#")}
