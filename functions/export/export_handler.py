"""The daily export for finance: the previous UTC day's ledger entries and revenue figures to the export bucket, as
date-partitioned JSON lines that the template's Glue tables describe. Run again for a day (or invoked with
`{"day": "yyyy-mm-dd"}`), it writes the same keys again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly

logger = Logger()
metrics = Metrics()


def day_of(event: dict[str, Any]) -> date:
    """The day asked for, or the UTC day before the schedule fired."""
    if isinstance(event.get("day"), str):
        return date.fromisoformat(event["day"])
    fired = parse(event=event, model=EventBridgeModel).time
    return (fired.astimezone(UTC) if fired else datetime.now(UTC)).date() - timedelta(days=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    exported = assembly.finance_export().export(day_of(event))
    metrics.add_metric(name="LedgerEntriesExported", unit=MetricUnit.Count, value=exported.entries)
    logger.info("day exported", extra={"day": exported.day.isoformat(), "entries": exported.entries})
    return {"day": exported.day.isoformat(), "keys": list(exported.keys), "entries": exported.entries}
