"""Alerting: the alert queue (every prepaid.credits event from the bus) → the alert topic and each wallet's webhook
(alerts), and the account-level webhook endpoints that subscribed to the event's type.

Each message is one EventBridge event (or a resend of one, for one channel: its `resendChannel` attribute).
Delivered (or given up on, into the dead-letter queue): the message is deleted. A failed attempt: the message
stays, invisible for its backoff (ChangeMessageVisibility), and is reported as a batch item failure so Lambda does
not delete it.
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
from prepaid.adapters.alert_queue import resend_channel
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
    needed_ms = int((alerting_settings().timeout_seconds + 5) * 1000)  # one attempt, worst case
    for record in SQSEvent(event).records:
        message_id = record.message_id or uuid.uuid4().hex
        if context.get_remaining_time_in_millis() < needed_ms:  # out of time: back on the queue at once, untried
            _retry_later(record.receipt_handle, timedelta(0), message_id)
            failures.append({"itemIdentifier": message_id})
            continue
        lease = timedelta(milliseconds=context.get_remaining_time_in_millis()) + LEASE_MARGIN
        try:
            only = resend_channel(record.get("messageAttributes") or {})
            outcome = assembly.alerting().handle(
                record.body,
                owner=message_id,
                lease=lease,
                only_channel=only,
                time_left=lambda: timedelta(milliseconds=context.get_remaining_time_in_millis()),
            )
        except Exception:
            logger.exception("alert not handled", extra={"messageId": message_id})
            failures.append({"itemIdentifier": message_id})
            continue
        logger.set_correlation_id(outcome.correlation_id)  # the request's that made the change, when it names one
        logger.info("alert", extra={"messageId": message_id, "eventId": outcome.event_id, "results": outcome.results})
        for channel, result in outcome.results.items():  # e.g. WebhookDelivered, EndpointFailed, TopicDeadLettered
            kind = channel.split(":", 1)[0]  # an endpoint's id is in the log line, not in the metric's name
            name = "".join(w.title() for w in [kind, *result.split(":", 1)[0].split("_")])
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        if outcome.retry_in is not None:
            _retry_later(record.receipt_handle, outcome.retry_in, message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
