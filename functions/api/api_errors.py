"""The one place where errors become HTTP responses: `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from prepaid.domain import errors as domain
from prepaid.domain.rules import MAX_JSON_DEPTH
from prepaid.edge.json_text import JsonRefused, read_json

_MESSAGES: dict[type[domain.DomainError], tuple[HTTPStatus, Callable[[Any], str]]] = {
    domain.InvalidAmount: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"{e.field} is invalid: {e.reason}"),
    domain.InvalidRequest: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"{e.field} is invalid: {e.reason}"),
    domain.UnsupportedCurrency: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"currency {e.currency} is not supported"),
    domain.CurrencyMismatch: (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        lambda e: f"currency {e.given} does not match the price book's {e.expected}",
    ),
    domain.UnknownMeter: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"meter {e.meter} is not on the rate card"),
    domain.WalletNotFound: (HTTPStatus.NOT_FOUND, lambda e: f"no wallet for customer {e.customer_id}"),
    domain.CardNotFound: (HTTPStatus.NOT_FOUND, lambda e: f"no card {e.card_id} in the wallet of {e.customer_id}"),
    domain.CardNotVoidable: (HTTPStatus.CONFLICT, lambda e: f"card {e.card_id} is {e.status} and cannot be voided"),
    domain.PriceBookMissing: (
        HTTPStatus.CONFLICT,
        lambda e: "no price book is configured: PUT /price-book first, or give an explicit price",
    ),
    domain.RateCardMissing: (HTTPStatus.NOT_FOUND, lambda e: "no rate card is configured: PUT /rate-card first"),
    domain.NoEvents: (HTTPStatus.BAD_REQUEST, lambda e: "the request holds no usage event; send 1 to 1,000"),
    domain.TooManyLiveCards: (
        HTTPStatus.CONFLICT,
        lambda e: f"the wallet of {e.customer_id} holds {e.limit} live cards, the most it may; void or use some first",
    ),
    domain.TooManyEvents: (
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        lambda e: f"{e.count} events in one request; at most {e.limit}",
    ),
    domain.IdempotencyKeyReused: (
        HTTPStatus.CONFLICT,
        lambda e: f"idempotency key {e.key} was already used with a different request",
    ),
    domain.InvalidCursor: (
        HTTPStatus.BAD_REQUEST,
        lambda e: "cursor is not one this API handed out for this query; start again without it",
    ),
    domain.ConcurrentUpdate: (
        HTTPStatus.CONFLICT,
        lambda e: f"the wallet of {e.customer_id} kept changing; retry the request",
    ),
}


def error_response(status: HTTPStatus, code: str, message: str, details: Any = None) -> Response[Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": error}),
    )


def domain_error_response(error: domain.DomainError) -> Response[Any]:
    """Map a domain error by its class; an unmapped one is a bug, so it is a 500 like any other."""
    for cls in type(error).__mro__:
        if cls in _MESSAGES:
            status, message = _MESSAGES[cls]
            return error_response(status, error.code, message(error), error.details())
    return internal_error_response()


def validation_error_response(errors: list[Any]) -> Response[Any]:
    """Powertools' request validation errors: 400 for a body that is not JSON, 422 for the rest."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(HTTPStatus.BAD_REQUEST, "malformed_json", "the request body is not valid JSON")
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("type"), "message": e.get("msg")}
        for e in errors
    ]
    fields = ", ".join(d["field"] for d in details)
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", f"invalid input: {fields}", details)


def unavailable_response() -> Response[Any]:
    """AWS did not take the work (a throttle, an outage): nothing was done that a retry would do twice."""
    return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable", "try again in a moment")


def internal_error_response() -> Response[Any]:
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; it has been logged")


def refuse_unreadable_body(body: str | None, headers: dict[str, str] | None, limit: int) -> dict[str, Any] | None:
    """A proxy answer for a body too large, not declared as JSON, not JSON, or not an object; else None.

    Checked before routing, so that request validation never sees such a body (it would read a form body
    as fields, or take the first element of a JSON list).
    """
    if not body:
        return None
    refusal = None
    content_type = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    if len(body.encode()) > limit:
        refusal = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"the body exceeds {limit} bytes")
    elif not content_type.lower().startswith("application/json"):
        refusal = (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json")
    else:
        try:
            parsed = read_json(body)
        except JsonRefused as refused:
            refusal = _UNREADABLE[refused.reason]
        else:
            if not isinstance(parsed, dict):
                refusal = (
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    "validation_error",
                    "the request body must be a JSON object",
                )
    if refusal is None:
        return None
    status, code, message = refusal
    return {
        "statusCode": status.value,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": {"code": code, "message": message}}),
        "isBase64Encoded": False,
    }


_UNREADABLE = {
    "not_json": (HTTPStatus.BAD_REQUEST, "malformed_json", "the request body is not valid JSON"),
    "too_deep": (
        HTTPStatus.BAD_REQUEST,
        "json_too_deep",
        f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} deep",
    ),
    "duplicate_key": (HTTPStatus.BAD_REQUEST, "duplicate_key", "the request body repeats a key in an object"),
}
