"""Auto-recharge: a `Balance Low` event for a wallet with auto-recharge on that threshold buys its credits, once.

The crossing's event id keys the purchase, so redelivered and concurrent alerts buy once; the wallet decides on a
fresh read whether the balance is still low and today's `maxPerDay` allows it (see `Wallet.auto_recharge`). An
event that no committed change stands for (its outbox record missing or different) buys nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from prepaid import assembly
from prepaid.application.lifecycle import UncommittedEvent
from prepaid.domain.errors import PaymentDeclined, PaymentsUnavailable
from prepaid.domain.rules import CUSTOMER_ID_PATTERN, EVENT_ID_PATTERN

logger = Logger()
metrics = Metrics()


class BalanceLow(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="allow")
    customer_id: Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]
    event_id: Annotated[str, Field(pattern=EVENT_ID_PATTERN)]  # the crossing's stable id: the purchase's key
    threshold: str


class BalanceLowEvent(EventBridgeModel):
    detail: BalanceLow


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    low = parse(event=event, model=BalanceLowEvent).detail
    logger.append_keys(customerId=low.customer_id, crossing=low.event_id)
    try:
        bought = assembly.credit_lifecycle().auto_recharge(low.customer_id, event["detail"])
    except UncommittedEvent:
        logger.warning("refused: not an event this system committed")
        metrics.add_metric(name="UncommittedEventsRefused", unit=MetricUnit.Count, value=1)
        return {"bought": False, "refused": "not_committed"}
    except (PaymentDeclined, PaymentsUnavailable) as unpaid:  # the card was voided: Auto Recharge Skipped is out
        logger.info("auto-recharge not paid", extra={"code": unpaid.code, **unpaid.details()})
        metrics.add_metric(name="AutoRechargesUnpaid", unit=MetricUnit.Count, value=1)
        return {"bought": False, "refused": unpaid.code}
    if bought is None:
        logger.info("no auto-recharge for this crossing")
        return {"bought": False}
    if not bought.replayed:
        metrics.add_metric(name="AutoRecharges", unit=MetricUnit.Count, value=1)
    logger.info("auto-recharge", extra={"cardId": bought.card.card_id, "replayed": bought.replayed})
    return {"bought": True, "replayed": bought.replayed, "cardId": bought.card.card_id}
