"""The routes that create or change cards (purchases, voids, activations, adjustments, card changes), served by the
purchase function."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit

from prepaid import assembly
from prepaid.edge import wire
from prepaid.edge.http import correlation_id_of, json_response
from prepaid.edge.schemas import (
    AdjustmentBody,
    AdjustmentOut,
    CardChangeBody,
    CardId,
    CustomerId,
    IdempotencyKey,
    PurchaseBody,
    PurchaseOut,
    VoidBody,
    VoidOut,
    answers,
)
from prepaid.edge.translation import adjustment_request, card_change, purchase_request, void_request

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated
metrics = Metrics()


@router.post(
    "/wallets/<customerId>/purchases",
    summary="Buy or grant credits",
    operation_id="purchase",
    responses=answers(201, "the card and the new balance", 400, 402, 409, 413, 415, 422, 503),
)
def purchase(
    customerId: CustomerId, body: PurchaseBody, idempotency_key: IdempotencyKey = None
) -> Response[PurchaseOut]:
    followed = correlation_id_of(router.current_event.raw_event)
    result = assembly.payments().purchase(customerId, purchase_request(body), idempotency_key, followed)
    if not result.replayed:
        metrics.add_metric(name="CreditsPurchased", unit=MetricUnit.Count, value=1)
    replayed = {"Idempotent-Replayed": "true"} if result.replayed else None
    return json_response(wire.card_result(result), HTTPStatus.CREATED, replayed)


@router.post(
    "/wallets/<customerId>/cards/<cardId>/void",
    summary="Void a card's remaining credits, or some",
    operation_id="void_card",
    responses=answers(200, "the voided card and the new balance", 400, 404, 409, 413, 415, 422, 503),
)
def void_card(
    customerId: CustomerId, cardId: CardId, body: VoidBody | None = None, idempotency_key: IdempotencyKey = None
) -> Response[VoidOut]:
    followed = correlation_id_of(router.current_event.raw_event)
    result = assembly.payments().void(customerId, cardId, void_request(body), idempotency_key, followed)
    replayed = {"Idempotent-Replayed": "true"} if result.replayed else None
    return json_response(wire.card_result(result), extra=replayed)


@router.post(
    "/wallets/<customerId>/cards/<cardId>/activate",
    summary="Activate a pending card once it is paid",
    operation_id="activate_card",
    responses=answers(200, "the active card and the new balance", 404, 409, 422),
)
def activate_card(customerId: CustomerId, cardId: CardId) -> Response[PurchaseOut]:
    followed = correlation_id_of(router.current_event.raw_event)
    return json_response(wire.card_result(assembly.wallet_service().activate(customerId, cardId, None, followed)))


@router.post(
    "/wallets/<customerId>/adjustments",
    summary="Add credits by hand (a new card) or take them in card order, with a reason",
    operation_id="adjust",
    responses=answers(201, "the adjustment, its card (an addition) and the new balance", 400, 404, 409, 413, 415, 422),
)
def adjust(
    customerId: CustomerId, body: AdjustmentBody, idempotency_key: IdempotencyKey = None
) -> Response[AdjustmentOut]:
    followed = correlation_id_of(router.current_event.raw_event)
    result = assembly.wallet_service().adjust(customerId, adjustment_request(body), idempotency_key, followed)
    replayed = {"Idempotent-Replayed": "true"} if result.replayed else None
    return json_response(wire.adjustment(result), HTTPStatus.CREATED, replayed)


@router.patch(
    "/wallets/<customerId>/cards/<cardId>",
    summary="Change a card's expiry or priority, with a reason",
    operation_id="change_card",
    responses=answers(200, "the changed card and the balance", 400, 404, 409, 413, 415, 422),
)
def change_card(customerId: CustomerId, cardId: CardId, body: CardChangeBody) -> Response[PurchaseOut]:
    followed = correlation_id_of(router.current_event.raw_event)
    changed = assembly.wallet_service().change_card(customerId, cardId, card_change(body), followed)
    return json_response(wire.card_result(changed))
