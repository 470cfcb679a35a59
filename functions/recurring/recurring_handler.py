"""Recurring grants: a daily schedule grants each wallet's credits on its day of the week, month, quarter or year
(the last day of a shorter month for days it lacks), once per customer and period, catching up on runs missed in the
last two days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly

logger = Logger()
metrics = Metrics()


class GrantsFailed(Exception):
    """Some grants failed; the run fails so Lambda retries it (grants already made are not made twice)."""

    def __init__(self, customers: list[str]) -> None:
        super().__init__(f"{len(customers)} recurring grant(s) failed")
        self.customers = customers


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    fired = parse(event=event, model=EventBridgeModel).time
    today: date = fired.astimezone(UTC).date() if fired else datetime.now(UTC).date()
    granted, failed = [], []
    for customer_id in assembly.credit_lifecycle().recurring_due(today):
        try:
            granted_now = assembly.credit_lifecycle().grant_recurring(customer_id, today)
        except Exception:
            logger.exception("recurring grant failed", extra={"customerId": customer_id})
            failed.append(customer_id)
            continue
        if granted_now is not None and not granted_now.replayed:
            granted.append(customer_id)
    metrics.add_metric(name="RecurringGrants", unit=MetricUnit.Count, value=len(granted))
    logger.info("recurring grants", extra={"day": today.isoformat(), "granted": len(granted), "failed": len(failed)})
    if failed:
        raise GrantsFailed(failed)
    return {"day": today.isoformat(), "granted": granted}
