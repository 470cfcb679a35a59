"""Expiry: schedules each new card's expiry (on `Credits Purchased`), and runs the schedules when they fire.

Two kinds of event reach it: a `Credits Purchased` event from the bus (a card with `expiresAt` gets a one-time
EventBridge Scheduler schedule at that instant, and one for its expiring-soon notice), and a schedule's payload
(`{"action": "expire" | "warn", "customerId", "cardId", "expiresAt"}`). Every step is idempotent, so Lambda's
retries and duplicate deliveries are harmless.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from prepaid import assembly
from prepaid.application.changes import correlation_ids_in
from prepaid.application.lifecycle import EXPIRE, UncommittedEvent
from prepaid.domain.rules import CARD_ID_PATTERN, CUSTOMER_ID_PATTERN

logger = Logger()
metrics = Metrics()


class ScheduledStep(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel)
    action: Literal["expire", "warn"]
    customer_id: Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]
    card_id: Annotated[str, Field(pattern=CARD_ID_PATTERN)]
    expires_at: AwareDatetime


class CardBought(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="allow")
    customer_id: Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]
    card: dict[str, Any] | None = None  # a Credits Adjusted that took credits names no card: nothing to schedule


class CardEvent(EventBridgeModel):
    """`Credits Purchased`, or `Credits Adjusted` (a card added, or its expiry moved)."""

    detail_type: str = Field(alias="detail-type")  # checked against the outbox with the rest of the event
    detail: CardBought


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedules target this function itself: its own ARN is the one the context was invoked as.
    service = assembly.credit_lifecycle(schedule_target_arn=context.invoked_function_arn)
    if "detail-type" in event:
        card_event = parse(event=event, model=CardEvent)
        purchased = card_event.detail
        try:
            done = service.schedule_expiry(purchased.customer_id, event["detail"], card_event.detail_type)
        except UncommittedEvent:
            logger.warning("refused: not an event this system committed", extra={"customerId": purchased.customer_id})
            metrics.add_metric(name="UncommittedEventsRefused", unit=MetricUnit.Count, value=1)
            return {"scheduled": [], "refused": "not_committed"}
        logger.info("card lifecycle scheduled", extra={"cardId": (purchased.card or {}).get("cardId"), "done": done})
        return {"scheduled": done}
    step = parse(event=event, model=ScheduledStep)
    followed = correlation_ids_in(event)  # the purchase's request, when it had one (read as untrusted)
    logger.append_keys(customerId=step.customer_id, cardId=step.card_id)
    logger.set_correlation_id(next(iter(followed), None))
    if step.action == EXPIRE:
        expired = service.expire(step.customer_id, step.card_id, step.expires_at, followed)
        metrics.add_metric(name="CardsExpired", unit=MetricUnit.Count, value=expired)
        return {"expired": expired}
    warned = service.warn_expiring(step.customer_id, step.card_id, step.expires_at, followed)
    metrics.add_metric(name="ExpiryWarnings", unit=MetricUnit.Count, value=int(warned))
    return {"warned": warned}
