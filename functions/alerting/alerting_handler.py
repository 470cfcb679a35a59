"""Alerting: the alert queue (balance and expiry events from the bus) → the alert topic and each wallet's webhook.

Each message is one EventBridge event. Delivered (or given up on, into the dead-letter queue): the message is
deleted. A failed attempt: the message stays, invisible for its backoff (ChangeMessageVisibility), and is reported
as a batch item failure so Lambda does not delete it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse, PartialItemFailures
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly
from prepaid.config import alerting_settings

logger = Logger()
metrics = Metrics()

LEASE_MARGIN = timedelta(seconds=30)


def _retry_later(receipt_handle: str, wait: timedelta, message_id: str) -> None:
    try:
        assembly.alert_queue().retry_in(receipt_handle, wait)
    except Exception:  # the message still comes back, after the queue's own visibility timeout
        logger.exception("could not set the retry delay", extra={"messageId": message_id})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    failures: list[PartialItemFailures] = []
    needed_ms = int((alerting_settings().timeout_seconds * 2 + 5) * 1000)  # a webhook and the topic, worst case
    for record in SQSEvent(event).records:
        message_id = record.message_id or uuid.uuid4().hex
        if context.get_remaining_time_in_millis() < needed_ms:  # out of time: back on the queue at once, untried
            _retry_later(record.receipt_handle, timedelta(0), message_id)
            failures.append({"itemIdentifier": message_id})
            continue
        lease = timedelta(milliseconds=context.get_remaining_time_in_millis()) + LEASE_MARGIN
        try:
            outcome = assembly.alerting().handle(record.body, owner=message_id, lease=lease)
        except Exception:
            logger.exception("alert not handled", extra={"messageId": message_id})
            failures.append({"itemIdentifier": message_id})
            continue
        logger.info("alert", extra={"messageId": message_id, "eventId": outcome.event_id, "results": outcome.results})
        for channel, result in outcome.results.items():  # e.g. WebhookDelivered, WebhookFailed, TopicDeadLettered
            name = "".join(w.title() for w in [channel, *result.split(":", 1)[0].split("_")])
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        if outcome.retry_in is not None:
            _retry_later(record.receipt_handle, outcome.retry_in, message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
