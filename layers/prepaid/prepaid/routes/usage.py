"""`POST /usage`, served by the API function: every event screened and rated here, once, and what is accepted sent
straight to drawdown (the FIFO drawdown queue, one group per customer); the answer says what became of each."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from prepaid import assembly
from prepaid.adapters.sqs import RatedMessage
from prepaid.application.ingest import drawdown_chunks
from prepaid.domain.errors import NoEvents, TooManyEvents
from prepaid.domain.rules import MAX_EVENTS_PER_REQUEST
from prepaid.edge import wire
from prepaid.edge.http import correlation_id_of, json_response
from prepaid.edge.schemas import UsageBody, UsageOut, answers

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated
metrics = Metrics()


@router.post(
    "/usage",
    summary="Report usage events (up to 1,000)",
    operation_id="post_usage",
    responses=answers(202, "what became of each event", 400, 413, 415, 422, 503),
)
def post_usage(body: UsageBody) -> Response[UsageOut]:
    if not body.events:
        raise NoEvents()
    if len(body.events) > MAX_EVENTS_PER_REQUEST:
        raise TooManyEvents(count=len(body.events), limit=MAX_EVENTS_PER_REQUEST)
    screening = assembly.usage_intake().screen(body.events)
    grouped = screening.by_customer(correlation_id_of(router.current_event.raw_event))
    messages = [RatedMessage(c, tuple(usages)) for c, usages in drawdown_chunks(grouped.items())]
    # a send that fails answers 503 and the sender posts again: what was drawn already is then a duplicate
    queue = assembly.drawdown_queue()
    queue.send_rated(messages).raise_if_failed(queue.url)
    metrics.add_metric(name="UsageQueued", unit=MetricUnit.Count, value=len(screening.accepted))
    return json_response(wire.screening(screening), HTTPStatus.ACCEPTED)
