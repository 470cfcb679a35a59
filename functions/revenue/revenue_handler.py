"""Revenue projection: the table's stream of new ledger entries → daily revenue sums per currency, exactly once.

Each entry is added with a marker written only if absent, in the same transaction, so a batch the stream delivers
again (after a failure or a crash) adds nothing twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly
from prepaid.adapters.items import ledger_from_item

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    entries = []
    for record in DynamoDBStreamEvent(event).records:
        image = record.dynamodb.new_image if record.dynamodb else None
        if not image or image.get("itemType") != "ledger":
            continue  # the event source filter sends only ledger inserts
        entries.append((f"{image['PK']}#{image['SK']}", ledger_from_item(image)))
    added = assembly.revenue().record(entries)
    metrics.add_metric(name="LedgerEntriesProjected", unit=MetricUnit.Count, value=added)
    logger.info("revenue projected", extra={"entries": len(entries), "added": added})
    return {"added": added}
