"""The one HTTP edge of every HTTP function (API, purchase, dashboard): the resolver they share, the body check
before routing, the contract's error body and which status each error is, and the headers of every answer.

Errors: `{"error": {"code", "message", "details"?}}`, `details` always a list of objects, each with a `reason`, the
`field` at fault when there is one, and the error's other facts in camelCase (`detail_list`); 400/422 bad input,
401/403 a refused dashboard token, 404 unknown wallet or card, 409 a conflict, 413 too large, 415 not JSON, 503 AWS
did not take the work, 500 never carries internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from prepaid.application.ports import QueueUnavailable
from prepaid.domain import errors as domain
from prepaid.domain.rules import MAX_JSON_DEPTH, correlation_id
from prepaid.edge.json_text import JsonRefused, read_json

logger = Logger()

MAX_BODY_BYTES = 64 * 1024
MAX_USAGE_BODY_BYTES = 2 * 1024 * 1024  # POST /usage: 1,000 events of up to ~2 KiB each
USAGE_RESOURCE = "/usage"
STRIPE_WEBHOOK_RESOURCE = "/payments/stripe/webhook"
# Routes whose bodies may be larger: usage batches, and Stripe's events (a Checkout Session with many line items
# can pass 64 KiB; refusing one would have Stripe retry it for days, then disable the endpoint)
BODY_LIMITS = {USAGE_RESOURCE: MAX_USAGE_BODY_BYTES, STRIPE_WEBHOOK_RESOURCE: 1024 * 1024}

# Every answer: never cached or framed, no referrer sent on, no content sniffing; JSON needs no other source.
COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
# The id one request is followed by, through its drawdown, events and webhooks: the caller's, or API Gateway's.
CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION = CORRELATION_HEADER.lower()


def _currency_refusal(error: domain.UnsupportedCurrency) -> str:
    if error.reason == "no_minor_unit":
        return f"currency {error.currency} has no minor unit in ISO 4217, so no price can be in it"
    return f"currency {error.currency} is not an ISO 4217 currency code"


_STATUS_AND_MESSAGE: dict[type[domain.DomainError], tuple[HTTPStatus, Callable[[Any], str]]] = {
    domain.InvalidAmount: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"{e.field} is invalid: {e.reason}"),
    domain.InvalidRequest: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"{e.field} is invalid: {e.reason}"),
    domain.UnsupportedCurrency: (HTTPStatus.UNPROCESSABLE_ENTITY, _currency_refusal),
    domain.CurrencyMismatch: (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        lambda e: f"currency {e.given} does not match the price book's {e.expected}",
    ),
    domain.UnknownMeter: (HTTPStatus.UNPROCESSABLE_ENTITY, lambda e: f"meter {e.meter} is not on the rate card"),
    domain.WalletNotFound: (HTTPStatus.NOT_FOUND, lambda e: f"no wallet for customer {e.customer_id}"),
    domain.CardNotFound: (HTTPStatus.NOT_FOUND, lambda e: f"no card {e.card_id} in the wallet of {e.customer_id}"),
    domain.CardNotVoidable: (HTTPStatus.CONFLICT, lambda e: f"card {e.card_id} is {e.status} and cannot be voided"),
    domain.CardNotChangeable: (HTTPStatus.CONFLICT, lambda e: f"card {e.card_id} is {e.status} and cannot be changed"),
    domain.InsufficientCredits: (
        HTTPStatus.CONFLICT,
        lambda e: f"the cards hold {e.available} credits, less than the {e.requested} asked for",
    ),
    domain.CardNotActivatable: (
        HTTPStatus.CONFLICT,
        lambda e: f"card {e.card_id} is {e.status}: only a pending card can be activated",
    ),
    domain.PaymentsUnavailable: (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        lambda e: f"payment collect {e.collect} is not configured in this deployment",
    ),
    domain.CardNotRefundable: (
        HTTPStatus.CONFLICT,
        lambda e: f"card {e.card_id} cannot be refunded: {e.reason}",
    ),
    domain.PaymentDeclined: (
        HTTPStatus.PAYMENT_REQUIRED,
        lambda e: f"the payment was declined ({e.decline_code}): card {e.card_id} was voided, nothing was granted",
    ),
    domain.PaymentProviderUnavailable: (
        HTTPStatus.SERVICE_UNAVAILABLE,
        lambda e: f"{e.provider} did not answer: nothing was charged; send the same request again",
    ),
    domain.WebhookRefused: (HTTPStatus.BAD_REQUEST, lambda e: f"the delivery was refused: {e.reason}"),
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
    domain.TokenMissing: (HTTPStatus.UNAUTHORIZED, lambda e: "a dashboard token is needed (Authorization: Bearer)"),
    domain.TokenExpired: (HTTPStatus.UNAUTHORIZED, lambda e: f"the dashboard link expired at {e.expired_at}"),
    domain.InvalidToken: (HTTPStatus.FORBIDDEN, lambda e: "the dashboard token is not valid"),
    domain.EndpointNotFound: (HTTPStatus.NOT_FOUND, lambda e: f"no webhook endpoint {e.endpoint_id}"),
    domain.EndpointBusy: (
        HTTPStatus.CONFLICT,
        lambda e: f"webhook endpoint {e.endpoint_id} kept changing; retry the request",
    ),
    domain.TooManyEndpoints: (
        HTTPStatus.CONFLICT,
        lambda e: f"this deployment has {e.limit} webhook endpoints, the most it may; delete one first",
    ),
    domain.DeliveryNotFound: (HTTPStatus.NOT_FOUND, lambda e: f"no delivery of event {e.event_id} to this endpoint"),
    domain.NotResendable: (
        HTTPStatus.CONFLICT,
        lambda e: f"event {e.event_id} would not be sent there now ({e.reason})",
    ),
    domain.EventNoLongerKept: (
        HTTPStatus.CONFLICT,
        lambda e: f"event {e.event_id} is older than the 15 days its record is kept: it can no longer be resent",
    ),
    domain.DeliveryInProgress: (
        HTTPStatus.CONFLICT,
        lambda e: f"the delivery of event {e.event_id} is still being tried; resend it once it is delivered or dead",
    ),
}


_NOT_JSON = (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json")
_UNREADABLE = {
    "not_json": (HTTPStatus.BAD_REQUEST, "malformed_json", "the request body is not valid JSON"),
    "too_deep": (
        HTTPStatus.BAD_REQUEST,
        "json_too_deep",
        f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} deep",
    ),
    "duplicate_key": (HTTPStatus.BAD_REQUEST, "duplicate_key", "the request body repeats a key in an object"),
}


def headers(policy: str = JSON_POLICY, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**COMMON_HEADERS, "Content-Security-Policy": policy, **(extra or {})}


def json_response(body: Any, status: HTTPStatus = HTTPStatus.OK, extra: dict[str, str] | None = None) -> Response[Any]:
    return Response(status.value, content_types.APPLICATION_JSON, body, headers(extra=extra))


def error_response(
    status: HTTPStatus, code: str, message: str, details: Any = None, extra: dict[str, str] | None = None
) -> Response[Any]:
    return json_response(error_body(code, message, details), status, extra)


def error_body(code: str, message: str, details: Any = None) -> str:
    """The one error body of every HTTP answer: `{"error": {"code", "message", "details"?}}`, as compact JSON."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}, separators=(",", ":"))


def domain_error_response(error: domain.DomainError, *, public: bool = False) -> Response[Any]:
    """Map a domain error by its class; an unmapped one is a bug, so it is a 500 like any other. `public` (the
    dashboard, which anyone with a link reaches): the code and message only."""
    for cls in type(error).__mro__:
        if cls in _STATUS_AND_MESSAGE:
            status, message = _STATUS_AND_MESSAGE[cls]
            extra = None
            if status == HTTPStatus.UNAUTHORIZED:  # RFC 6750: no error attribute when no token was given
                detail = (
                    ""
                    if error.code == "token_missing"
                    else f', error="invalid_token", error_description="{error.code}"'
                )
                extra = {"WWW-Authenticate": f'Bearer realm="dashboard"{detail}'}
            return error_response(status, error.code, message(error), None if public else detail_list(error), extra)
    return internal_error_response()


def detail_list(error: domain.DomainError) -> list[dict[str, Any]] | None:
    """A domain error's fields in the one shape of `details` (the shape validation errors have): one object with
    its `reason` (its own, else its code), its `field` when it names one, and its other facts in camelCase; None
    for an error with no fields."""
    facts = error.details()
    if not facts:
        return None
    detail: dict[str, Any] = {"reason": facts.pop("reason", error.code)}
    if "field" in facts:
        detail["field"] = facts.pop("field")
    return [detail | {_camel(name): value for name, value in facts.items()}]


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def validation_error_response(errors: list[Any]) -> Response[Any]:
    """Powertools' request validation errors: 400 for a body that is not JSON, 422 for the rest."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(*_UNREADABLE["not_json"])
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("type"), "message": e.get("msg")}
        for e in errors
    ]
    fields = ", ".join(d["field"] for d in details)
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", f"invalid input: {fields}", details)


def internal_error_response() -> Response[Any]:
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; it has been logged")


def resolver(*, public: bool = False) -> APIGatewayRestResolver:
    """The resolver of an HTTP function, validating requests by their types, every error in the contract's body."""
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[Any]:
        return validation_error_response(list(error.errors()))

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(error: RequestUnsupportedContentType) -> Response[Any]:
        return error_response(*_NOT_JSON)

    @app.exception_handler(domain.DomainError)
    def _refused(error: domain.DomainError) -> Response[Any]:
        # the code, never a token: the details of a token refusal are only its expiry
        logger.info("request refused", extra={"code": error.code, "details": error.details()})
        return domain_error_response(error, public=public)

    @app.exception_handler(QueueUnavailable)
    def _unavailable(error: QueueUnavailable) -> Response[Any]:
        logger.warning("a queue did not take every message", extra={"failed": error.failed})
        message = "try again in a moment: nothing was done that a retry would do twice"
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable", message)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[Any]:
        logger.exception("unexpected error")
        return internal_error_response()

    @app.not_found
    def _not_found(error: Exception) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "no such route")

    return app


def unreadable_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """The proxy answer for a body too large, not declared as JSON, not JSON (or nested too deep, or with a key
    twice), or not an object; else None. Checked before routing, so that request validation never sees such a body
    (it would read a form body as fields, or take the last of two equal keys)."""
    body = event.get("body")
    if not body:
        return None
    limit = BODY_LIMITS.get(str(event.get("resource")), MAX_BODY_BYTES)
    content_type = _content_type(event)
    refusal = None
    if len(body.encode()) > limit:
        refusal = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", f"the body exceeds {limit} bytes")
    elif not _is_json(content_type):
        refusal = _NOT_JSON
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
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **headers()},
        "body": error_body(code, message),
        "isBase64Encoded": False,
    }


def correlation_id_of(event: Mapping[str, Any]) -> str | None:
    """The request's correlation id: the caller's `X-Correlation-Id` when it is a valid one, else API Gateway's
    request id (an invalid header is not an error: the request goes on under the request id)."""
    given = next((v for k, v in (event.get("headers") or {}).items() if str(k).lower() == _CORRELATION), None)
    context = event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    return correlation_id(given) or correlation_id(request_id)


def serve(app: APIGatewayRestResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one proxy event: its body checked first, then routed. Its logs and its answer carry its correlation
    id (`X-Correlation-Id`)."""
    followed = correlation_id_of(event)
    if followed is not None:
        logger.set_correlation_id(followed)
    refused = unreadable_body(event)
    answer = refused if refused is not None else app.resolve(_json_type_in_lower_case(event), context)
    if followed is not None and answer.get("multiValueHeaders"):  # Powertools' answers put their headers here
        answer["multiValueHeaders"] = {**answer["multiValueHeaders"], CORRELATION_HEADER: [followed]}
    elif followed is not None:
        answer["headers"] = {**(answer.get("headers") or {}), CORRELATION_HEADER: followed}
    return answer


def _content_type(event: dict[str, Any]) -> str:
    return next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "content-type"), "") or ""


def _is_json(content_type: str) -> bool:
    return content_type.strip().lower().startswith("application/json")


def _json_type_in_lower_case(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a JSON media type written in lower case: media types are case-insensitive (RFC 9110), but
    Powertools' request validation compares `application/json` exactly and would refuse `APPLICATION/JSON`."""
    declared = _content_type(event)
    if not _is_json(declared) or declared == declared.strip().lower():
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"}
    normal = declared.strip().lower()
    return {
        **event,
        "headers": {**headers, "Content-Type": normal},
        "multiValueHeaders": {**multi, "Content-Type": [normal]},
    }
