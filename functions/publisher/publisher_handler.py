"""Outbox relay: DynamoDB stream of new outbox items → EventBridge bus.

A stream record exists only once the transaction that wrote it committed, and the stream retries until the
handler reports success, so every committed event is published at least once, with its stable `eventId`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid import assembly
from prepaid.adapters.items import outbox_from_item
from prepaid.application.changes import correlation_ids_in

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def publish_record(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    if not image or image.get("itemType") != "outbox":
        return  # the event source filter sends only outbox inserts; anything else is not ours to publish
    event = outbox_from_item(image)
    # this record's logs name the first request its change answered (none for a change no request made)
    logger.set_correlation_id(next(iter(correlation_ids_in(event.detail)), None))
    assembly.publisher().publish(event)
    logger.info("published", extra={"eventId": event.event_id, "detailType": event.detail_type})
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=publish_record, processor=processor, context=context)
