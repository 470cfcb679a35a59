"""Payment providers' webhooks: Stripe's events, verified by the stripe library and applied to their cards."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from prepaid import assembly
from prepaid.application.payments import NoticeOutcome
from prepaid.edge.http import STRIPE_WEBHOOK_RESOURCE, correlation_id_of, json_response
from prepaid.edge.schemas import ReceivedOut, StripeSignature, answers

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated
logger = Logger()
metrics = Metrics()


@router.post(
    STRIPE_WEBHOOK_RESOURCE,
    summary="Stripe's events (no IAM: Stripe signs them)",
    operation_id="stripe_webhook",
    responses=answers(200, "received", 400, 413, 415, 422, signed=False),
    # no SigV4 here: Powertools leaves an empty `security` out, so it is written as an extension field would be
    openapi_extensions={"security": []},
)
def stripe_webhook(stripe_signature: StripeSignature = None) -> Response[ReceivedOut]:
    payload = router.current_event.decoded_body or ""
    notice = assembly.stripe_events().read(payload, stripe_signature)
    if notice is None:
        return json_response({"received": True, "applied": False})
    outcome = assembly.payments().apply(notice, correlation_id_of(router.current_event.raw_event))
    if outcome is NoticeOutcome.REFUNDED_LATE_PAYMENT:
        # money taken for a card voided before it was paid: nothing granted, the payment refunded whole
        logger.warning(
            "payment for a voided card refunded", extra={"notice": notice.notice_id, "cardId": notice.card_id}
        )
        metrics.add_metric(name="PaymentsForVoidedCardsRefunded", unit=MetricUnit.Count, value=1)
    else:
        logger.info("payment notice", extra={"notice": notice.notice_id, "kind": notice.kind, "outcome": outcome})
    return json_response({"received": True, "applied": outcome is NoticeOutcome.APPLIED})
