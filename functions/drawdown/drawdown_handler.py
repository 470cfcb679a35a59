"""Drawdown: FIFO queue of rated usage (grouped by customer) → one transaction per wallet chunk, exactly once.

Only screening (ingest, and the API's `POST /usage`) may send to the queue (its policy), and every message is
still checked as untrusted: one that is not what screening writes (negative, non-finite or over-precise credits,
unknown fields, a customer other than its message group) goes to the drawdown dead-letter queue with the reason,
and changes no wallet.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse, PartialItemFailures
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly, parallel
from prepaid.adapters.sqs import DeadLetters, MalformedRatedMessage, rated_correlation_ids, rated_from_wire, usage_of
from prepaid.application.drawdown import DrawdownReport, DrawdownService
from prepaid.domain.wallet import RatedUsage

logger = Logger()
metrics = Metrics()


def group(records: list[Any]) -> tuple[dict[str, tuple[list[str], list[RatedUsage]]], list[tuple[str, str, str]]]:
    """Each customer's messages of the batch merged, in order (FIFO keeps them in order), and the poison ones as
    (message id, body, reason)."""
    groups: dict[str, tuple[list[str], list[RatedUsage]]] = {}
    poison: list[tuple[str, str, str]] = []
    for record in records:
        try:
            message = rated_from_wire(record.body, assembly.now(), record.attributes.message_group_id)
        except MalformedRatedMessage as bad:
            poison.append((record.message_id, record.body, bad.reason))
            continue
        followed, unread = rated_correlation_ids(record.raw_event.get("messageAttributes"))
        if unread is not None:  # only the trail is lost: the usage is drawn all the same
            logger.warning("correlation ids not read", extra={"messageId": record.message_id, "reason": unread})
        ids, pending = groups.setdefault(message.customer_id, ([], []))
        ids.append(record.message_id)
        pending.extend([replace(u, correlation_ids=followed) for u in message.usages] if followed else message.usages)
    return groups, poison


def draw(
    service: DrawdownService, dead: DeadLetters, customer: tuple[str, tuple[list[str], list[RatedUsage]]]
) -> DrawdownReport | None:
    """One customer's usage of the batch drawn, its refusals dead-lettered; None when that failed (logged). Its logs
    name the first request it draws (in this customer's thread only: customers are drawn side by side)."""
    _, (_, usages) = customer
    logger.thread_safe_append_keys(correlation_id=next((i for u in usages for i in u.correlation_ids), None))
    try:
        return _draw(service, dead, customer)
    finally:
        logger.thread_safe_remove_keys(["correlation_id"])


def _draw(
    service: DrawdownService, dead: DeadLetters, customer: tuple[str, tuple[list[str], list[RatedUsage]]]
) -> DrawdownReport | None:
    customer_id, (_, usages) = customer
    try:
        report = service.apply(customer_id, usages)
        if report.refused:
            letters = [(usage_of(customer_id, r.usage), r.reason) for r in report.refused]
            dead.send_refused(letters).raise_if_failed(dead.url)
    except Exception:
        logger.exception("drawdown failed", extra={"customerId": customer_id, "events": len(usages)})
        return None
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
    return report


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Draw each customer's usage of the batch together. A customer whose drawdown fails has all its messages of
    the batch reported as failures, so FIFO redelivers them in order; the other customers' messages go on. The
    customers commit side by side."""
    groups, poison = group(list(SQSEvent(event).records))
    failures: list[PartialItemFailures] = []
    if poison:
        logger.warning("poison drawdown messages", extra={"reasons": sorted({reason for _, _, reason in poison})})
        sent = assembly.drawdown_dead_letters().send_poison([(body, reason) for _, body, reason in poison])
        failures.extend({"itemIdentifier": poison[i][0]} for i in sent.failed)
        metrics.add_metric(name="DrawdownPoisonMessages", unit=MetricUnit.Count, value=len(poison))
    # customers commit side by side: a batch's wall time (and bill) is its slowest customer's, not their sum; what
    # they share is built here first (building boto3 clients is not thread-safe)
    work = functools.partial(draw, assembly.drawdown_service(), assembly.usage_dead_letters())
    drawn = parallel.side_by_side(work, list(groups.items()), parallel.PARALLEL_CUSTOMERS)
    for (_, (message_ids, _)), report in zip(groups.items(), drawn, strict=True):
        if report is None:
            failures.extend({"itemIdentifier": m} for m in message_ids)
            continue
        metrics.add_metric(name="UsageDrawn", unit=MetricUnit.Count, value=len(report.drawn))
        metrics.add_metric(name="UsageDuplicates", unit=MetricUnit.Count, value=len(report.duplicates))
    return {"batchItemFailures": failures}
