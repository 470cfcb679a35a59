"""Revenue projection: the table's stream of wallet versions → daily revenue sums per currency, exactly once.

Each wallet version carries the ledger entries it committed. A guard per customer (its newest version added) moves in
the same transaction as the sums, so a batch the stream delivers again (after a failure or a crash) adds nothing
twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly
from prepaid.adapters.items import version_ledger
from prepaid.application.revenue import VersionEntries

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    versions = []
    for record in DynamoDBStreamEvent(event).records:
        image = record.dynamodb.new_image if record.dynamodb else None
        if not image or image.get("itemType") != "wallet":
            continue  # the event source filter sends only wallet versions
        entries = tuple(version_ledger(image))
        versions.append(VersionEntries(image["customerId"], int(image["version"]), entries))
    added = assembly.revenue().record(versions)
    metrics.add_metric(name="WalletVersionsProjected", unit=MetricUnit.Count, value=added)
    logger.info("revenue projected", extra={"versions": len(versions), "added": added})
    return {"added": added}
