"""Drawdown: FIFO queue of rated usage (grouped by customer) → one transaction per wallet chunk, exactly once."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse, PartialItemFailures
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid.adapters.sqs import DeadLetters
from prepaid.application.drawdown import DrawdownService
from prepaid.application.ingest import rated_from_wire, usage_of
from prepaid.assembly import new_id, now
from prepaid.config import table_settings, usage_settings
from prepaid.domain.wallet import RatedUsage

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def drawdown() -> DrawdownService:
    store = DynamoWalletStore(boto3.client("dynamodb"), table_settings().table_name)
    create = usage_settings().unknown_customers == "create"
    return DrawdownService(store, now, new_id, create_unknown_wallets=create)


@cache
def dead_letters() -> DeadLetters:
    return DeadLetters(boto3.client("sqs"), usage_settings().dead_letter_queue_url)


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Merge each customer's messages of the batch (FIFO keeps them in order) and draw them together.

    A customer whose drawdown fails has all its messages of the batch reported as failures, so FIFO redelivers
    them in order; the other customers' messages go on.
    """
    groups: dict[str, tuple[list[str], list[RatedUsage]]] = {}
    for record in SQSEvent(event).records:
        customer_id, usages = rated_from_wire(json.loads(record.body))
        ids, pending = groups.setdefault(customer_id, ([], []))
        ids.append(record.message_id)
        pending.extend(usages)
    failures: list[PartialItemFailures] = []
    for customer_id, (message_ids, usages) in groups.items():
        try:
            report = drawdown().apply(customer_id, usages)
            if report.refused:
                dead_letters().send_refused([(usage_of(customer_id, r.usage), r.reason) for r in report.refused])
        except Exception:
            logger.exception("drawdown failed", extra={"customerId": customer_id, "events": len(usages)})
            failures.extend({"itemIdentifier": m} for m in message_ids)
            continue
        logger.info(
            "drawn",
            extra={
                "customerId": customer_id,
                "drawn": len(report.drawn),
                "duplicates": len(report.duplicates),
                "refused": len(report.refused),
                "commits": report.commits,
            },
        )
        metrics.add_metric(name="UsageDrawn", unit=MetricUnit.Count, value=len(report.drawn))
        metrics.add_metric(name="UsageDuplicates", unit=MetricUnit.Count, value=len(report.duplicates))
    return {"batchItemFailures": failures}
