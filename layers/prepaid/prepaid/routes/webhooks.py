"""Webhook endpoints (account-level, each with its own secret), a wallet's webhook secret, the deliveries of either
and resending one: served by the webhooks function."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from prepaid import assembly
from prepaid.application import webhook_endpoints
from prepaid.application.webhook_endpoints import KEEP
from prepaid.edge import wire
from prepaid.edge.http import json_response
from prepaid.edge.schemas import (
    Cursor,
    CustomerId,
    DeliveryListOut,
    DeliveryOut,
    EndpointId,
    EventId,
    WebhookEndpointBody,
    WebhookEndpointCreatedOut,
    WebhookEndpointListOut,
    WebhookEndpointOut,
    WebhookEndpointPatchBody,
    WebhookSecretOut,
    answers,
)

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated
PageSize = Annotated[int, Query(ge=1, le=webhook_endpoints.MAX_PAGE)]


@router.post(
    "/webhook-endpoints",
    summary="Add a webhook endpoint: it gets the events of the types it names (all when none), signed with its own "
    "secret",
    operation_id="create_webhook_endpoint",
    responses=answers(201, "the endpoint, with its secret", 400, 409, 413, 415, 422),
)
def create_endpoint(body: WebhookEndpointBody) -> Response[WebhookEndpointCreatedOut]:
    endpoint, secret = assembly.webhook_endpoints().create(body.url, body.event_types, body.description)
    return json_response({**wire.webhook_endpoint(endpoint), "secret": secret}, HTTPStatus.CREATED)


@router.get(
    "/webhook-endpoints",
    summary="List the webhook endpoints, oldest first",
    operation_id="list_webhook_endpoints",
    responses=answers(200, "every endpoint"),
)
def list_endpoints() -> Response[WebhookEndpointListOut]:
    endpoints = assembly.webhook_endpoints().endpoints()
    return json_response({"endpoints": [wire.webhook_endpoint(e) for e in endpoints]})


@router.get(
    "/webhook-endpoints/<endpointId>",
    summary="Read a webhook endpoint",
    operation_id="read_webhook_endpoint",
    responses=answers(200, "the endpoint", 404, 422),
)
def read_endpoint(endpointId: EndpointId) -> Response[WebhookEndpointOut]:
    return json_response(wire.webhook_endpoint(assembly.webhook_endpoints().endpoint(endpointId)))


@router.patch(
    "/webhook-endpoints/<endpointId>",
    summary="Change a webhook endpoint (a JSON merge patch: url, eventTypes, description, disabled)",
    operation_id="update_webhook_endpoint",
    responses=answers(200, "the endpoint as changed", 400, 404, 409, 413, 415, 422),
)
def update_endpoint(endpointId: EndpointId, body: WebhookEndpointPatchBody) -> Response[WebhookEndpointOut]:
    given = body.model_fields_set
    changed = assembly.webhook_endpoints().update(
        endpointId,
        url=body.url,
        event_types=body.event_types if "event_types" in given else KEEP,
        description=body.description,
        disabled=body.disabled,
    )
    return json_response(wire.webhook_endpoint(changed))


@router.delete(
    "/webhook-endpoints/<endpointId>",
    summary="Remove a webhook endpoint: it gets nothing more, and its secret is deleted",
    operation_id="delete_webhook_endpoint",
    responses=answers(204, "removed", 404, 422),
)
def delete_endpoint(endpointId: EndpointId) -> Response[None]:
    assembly.webhook_endpoints().delete(endpointId)
    return Response(HTTPStatus.NO_CONTENT.value, None, None)


@router.get(
    "/webhook-endpoints/<endpointId>/secret",
    summary="The endpoint's Standard Webhooks secret (whsec_…)",
    operation_id="read_webhook_endpoint_secret",
    responses=answers(200, "its secret", 404, 422),
)
def endpoint_secret(endpointId: EndpointId) -> Response[WebhookSecretOut]:
    return json_response({"secret": assembly.webhook_endpoints().secret(endpointId)})


@router.get(
    "/webhook-endpoints/<endpointId>/deliveries",
    summary="The endpoint's deliveries, newest event first, a page at a time",
    operation_id="list_webhook_endpoint_deliveries",
    responses=answers(200, "a page of deliveries", 400, 404, 422),
)
def endpoint_deliveries(
    endpointId: EndpointId, limit: PageSize = webhook_endpoints.DEFAULT_PAGE, cursor: Cursor = None
) -> Response[DeliveryListOut]:
    return json_response(wire.delivery_page(assembly.webhook_endpoints().deliveries(endpointId, limit, cursor)))


@router.post(
    "/webhook-endpoints/<endpointId>/deliveries/<eventId>/resend",
    summary="Send one event to the endpoint again (a new round of attempts; a delivered one too)",
    operation_id="resend_webhook_endpoint_delivery",
    responses=answers(202, "queued", 404, 409, 422),
)
def resend_endpoint_delivery(endpointId: EndpointId, eventId: EventId) -> Response[DeliveryOut]:
    queued = assembly.webhook_endpoints().resend(endpointId, eventId)
    return json_response(wire.delivery(queued), HTTPStatus.ACCEPTED)


@router.get(
    "/wallets/<customerId>/webhook/secret",
    summary="The wallet's own webhook secret (whsec_…), for the receiver at its webhookUrl",
    operation_id="read_wallet_webhook_secret",
    responses=answers(200, "its secret", 404, 422),
)
def wallet_secret(customerId: CustomerId) -> Response[WebhookSecretOut]:
    return json_response({"secret": assembly.webhook_endpoints().wallet_secret(customerId)})


@router.get(
    "/wallets/<customerId>/webhook/deliveries",
    summary="The deliveries to the wallet's webhookUrl, newest event first, a page at a time",
    operation_id="list_wallet_webhook_deliveries",
    responses=answers(200, "a page of deliveries", 400, 404, 422),
)
def wallet_deliveries(
    customerId: CustomerId, limit: PageSize = webhook_endpoints.DEFAULT_PAGE, cursor: Cursor = None
) -> Response[DeliveryListOut]:
    page = assembly.webhook_endpoints().wallet_deliveries(customerId, limit, cursor)
    return json_response(wire.delivery_page(page))


@router.post(
    "/wallets/<customerId>/webhook/deliveries/<eventId>/resend",
    summary="Send one event to the wallet's webhookUrl again (a new round of attempts)",
    operation_id="resend_wallet_webhook_delivery",
    responses=answers(202, "queued", 404, 409, 422),
)
def resend_wallet_delivery(customerId: CustomerId, eventId: EventId) -> Response[DeliveryOut]:
    queued = assembly.webhook_endpoints().wallet_resend(customerId, eventId)
    return json_response(wire.delivery(queued), HTTPStatus.ACCEPTED)
