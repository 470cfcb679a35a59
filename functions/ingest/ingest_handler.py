"""Ingest: usage queue → screen and rate → drawdown queue (FIFO by customer); refusals to the DLQ with reasons."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.sqs import DeadLetters, DrawdownQueue
from prepaid.application.drawdown import MAX_EVENTS_PER_COMMIT
from prepaid.application.ingest import RateCards, UsageIntake, rated_to_wire, wallet_required
from prepaid.assembly import now
from prepaid.config import table_settings, usage_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@dataclass(frozen=True)
class Wiring:
    intake: UsageIntake
    drawdown: DrawdownQueue
    dead_letters: DeadLetters


@cache
def wiring() -> Wiring:
    """Built on first use: clients and the cached rate card live as long as the execution environment."""
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    table, usage = table_settings().table_name, usage_settings()
    wallets = DynamoWalletStore(dynamodb, table)
    known = wallet_required(wallets, usage.unknown_customers)
    rate_cards = RateCards(DynamoCatalogStore(dynamodb, table), ttl=usage.rate_card_ttl_seconds)
    return Wiring(
        UsageIntake(rate_cards, now, known),
        DrawdownQueue(sqs, usage.drawdown_queue_url),
        DeadLetters(sqs, usage.dead_letter_queue_url),
    )


@dataclass
class Batch:
    """What the records of one invocation yield, sent on once every record is read."""

    accepted: list[Any] = field(default_factory=list)
    refused: list[tuple[Any, str]] = field(default_factory=list)  # (event, reason)
    poison: list[tuple[str, str]] = field(default_factory=list)  # (message body, reason)
    duplicates: int = 0  # the same event twice in a message: sent on once


def unpack(body: str) -> list[Any] | str:
    """The events of a message (one event, or `{"events": [...]}`), or why the message is poison."""
    try:
        message = json.loads(body)
    except ValueError:
        return "body_not_json"
    if isinstance(message, dict) and "events" in message:
        events = message["events"]
        return events if isinstance(events, list) and len(message) == 1 else "malformed_events_envelope"
    return [message] if isinstance(message, dict) else "not_a_usage_event"


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = Batch()
    intake = wiring().intake

    def read(record: SQSRecord) -> None:
        events = unpack(record.body)
        if isinstance(events, str):
            batch.poison.append((record.body, events))
            return
        screening = intake.screen(events)
        batch.accepted.extend(screening.accepted)
        batch.duplicates += len(screening.duplicates)
        batch.refused.extend((events[r.index], r.reason) for r in screening.refused)

    with processor(records=event["Records"], handler=read, lambda_context=context):
        processor.process()
    # Send on only after every record is read; a failure here fails the whole batch, which SQS delivers again
    # (drawdown's per-event records make the replay harmless).
    rated = intake.rate(batch.accepted)
    wiring().drawdown.send_rated([(c, rated_to_wire(c, usages)) for c, usages in _chunks(rated)])
    if batch.refused or batch.poison:
        wiring().dead_letters.send_refused(batch.refused)
        wiring().dead_letters.send_poison(batch.poison)
        reasons = sorted({r for _, r in batch.refused} | {r for _, r in batch.poison})
        logger.info(
            "refused usage", extra={"events": len(batch.refused), "messages": len(batch.poison), "reasons": reasons}
        )
    metrics.add_metric(name="UsageAccepted", unit=MetricUnit.Count, value=len(batch.accepted))
    metrics.add_metric(name="UsageRefused", unit=MetricUnit.Count, value=len(batch.refused))
    metrics.add_metric(name="UsagePoisonMessages", unit=MetricUnit.Count, value=len(batch.poison))
    metrics.add_metric(name="UsageDuplicates", unit=MetricUnit.Count, value=batch.duplicates)
    return processor.response()


def _chunks(rated: dict[str, list[Any]], size: int = MAX_EVENTS_PER_COMMIT) -> list[tuple[str, list[Any]]]:
    """One drawdown message per customer and up to `size` events (one transaction's worth)."""
    return [(c, usages[i : i + size]) for c, usages in rated.items() for i in range(0, len(usages), size)]
