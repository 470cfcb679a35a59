"""Auto-recharge: a `Balance Low` event for a wallet with auto-recharge on that threshold buys its credits, once.

The crossing's event id keys the purchase, so redelivered and concurrent alerts buy once; the wallet decides on a
fresh read whether the balance is still low and today's `maxPerDay` allows it (see `Wallet.auto_recharge`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from prepaid.assembly import credit_lifecycle

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class BalanceLow(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel)
    customer_id: str
    event_id: str  # the crossing's stable id: the purchase's idempotency key
    threshold: Decimal


class BalanceLowEvent(EventBridgeModel):
    detail: BalanceLow


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    low = parse(event=event, model=BalanceLowEvent).detail
    logger.append_keys(customerId=low.customer_id, crossing=low.event_id)
    receipt = credit_lifecycle().auto_recharge(low.customer_id, low.event_id, low.threshold)
    if receipt is None:
        logger.info("no auto-recharge for this crossing")
        return {"bought": False}
    if not receipt.replayed:
        metrics.add_metric(name="AutoRecharges", unit=MetricUnit.Count, value=1)
    logger.info("auto-recharge", extra={"cardId": receipt.body["card"]["cardId"], "replayed": receipt.replayed})
    return {"bought": True, "replayed": receipt.replayed, "cardId": receipt.body["card"]["cardId"]}
