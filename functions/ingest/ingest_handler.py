"""Ingest: usage queue → screen and rate → drawdown queue (FIFO by customer); refusals to the DLQ with reasons.

Each message is read on its own, and what cannot be sent on fails only the messages it came from: one producer's
bad or oversized message never holds back another customer's usage.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly
from prepaid.adapters.sqs import MalformedUsageMessage, RatedMessage, usage_correlation_id, usage_from_wire
from prepaid.application.ingest import Delivery, UsageIntake

logger = Logger()
metrics = Metrics()


def read(records: list[Any], intake: UsageIntake) -> tuple[Delivery, set[str]]:
    """Each message screened on its own; returns what they yield and the messages that could not be read (a
    storage error while screening: they are delivered again)."""
    delivery, unread = Delivery(), set()
    for record in records:
        try:
            events = usage_from_wire(record.body)
        except MalformedUsageMessage as bad:
            delivery.poison.append((record.message_id, record.body, bad.reason))
            continue
        try:
            followed = usage_correlation_id(record.raw_event.get("messageAttributes"), record.message_id)
            delivery.add(record.message_id, events, intake.screen(events), followed)
        except Exception:
            logger.exception("message not screened", extra={"messageId": record.message_id})
            unread.add(record.message_id)
    return delivery, unread


def send_on(delivery: Delivery) -> set[str]:
    """Rated usage to drawdown, refusals and poison to the dead-letter queue; returns the messages to deliver
    again because a part of them was not sent."""
    chunks = delivery.chunks()
    sent = assembly.drawdown_queue().send_rated([RatedMessage(c, tuple(usages)) for c, usages, _ in chunks])
    retry = {source for i in sent.failed for source in chunks[i][2]}
    # a message delivered again is screened again: its refusals are dead-lettered then, once
    letters = [letter for letter in delivery.refused if letter[0] not in retry]
    refused = assembly.usage_dead_letters().send_refused([(event, reason) for _, event, reason in letters])
    retry |= {letters[i][0] for i in refused.failed}
    poison = assembly.usage_dead_letters().send_poison([(body, reason) for _, body, reason in delivery.poison])
    retry |= {delivery.poison[i][0] for i in poison.failed}
    return retry


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    delivery, unread = read(list(SQSEvent(event).records), assembly.queue_intake())
    retry = unread | send_on(delivery)
    if delivery.refused or delivery.poison:
        reasons = sorted({r for _, _, r in delivery.refused} | {r for _, _, r in delivery.poison})
        logger.info("refused usage", extra={"events": len(delivery.refused), "messages": len(delivery.poison)})
        logger.info("refusal reasons", extra={"reasons": reasons})
    if retry:
        logger.warning("messages to deliver again", extra={"messages": len(retry)})
    metrics.add_metric(name="UsageAccepted", unit=MetricUnit.Count, value=delivery.accepted)
    metrics.add_metric(name="UsageRefused", unit=MetricUnit.Count, value=len(delivery.refused))
    metrics.add_metric(name="UsagePoisonMessages", unit=MetricUnit.Count, value=len(delivery.poison))
    metrics.add_metric(name="UsageDuplicates", unit=MetricUnit.Count, value=delivery.duplicates)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(retry)]}
