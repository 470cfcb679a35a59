"""The customer dashboard (API Gateway REST, no IAM): `GET /dashboard` (the page), `GET /dashboard/data` and the
other routes the page reads.

The token from `POST /wallets/{customerId}/dashboard-links` is the only credential: the link carries it in its
fragment, and the page sends it as `Authorization: Bearer <token>` (never in a URL). Every data request opens it
again and reads only the wallet it names; nothing in the request can name another.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from dashboard_page import PAGE, PAGE_POLICY

from prepaid import assembly
from prepaid.config import payments_settings
from prepaid.edge import wire
from prepaid.edge.http import correlation_id_of, headers, json_response, resolver, serve
from prepaid.edge.links import public_base_url
from prepaid.edge.schemas import CheckoutBody, DecimalText

logger = Logger()
app = resolver(public=True)  # anyone with a link reaches it: refusals say their code, nothing more


def _token() -> str | None:
    """The bearer token. Never from the query string: a token in a URL ends up in access logs and histories."""
    authorization = app.current_event.headers.get("Authorization") or ""
    scheme, _, credentials = authorization.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


@app.get("/dashboard", include_in_schema=False)
def page() -> Response[str]:
    """The dashboard page: the same static page for everyone (the token is in the link's fragment, which the
    browser keeps to itself); what it shows comes from `dashboard/data`, which the token opens."""
    return Response(HTTPStatus.OK.value, "text/html; charset=utf-8", PAGE, headers(PAGE_POLICY))


@app.get("/dashboard/data", include_in_schema=False)
def data() -> Response[Any]:
    """Wallet, usage per meter per day (30 days), forecast (30 days) and recommended purchase of the token's
    wallet."""
    shown = assembly.dashboard().data(_token())
    logger.append_keys(customer_id=shown.link.customer_id)
    return json_response(wire.dashboard_data(shown))


@app.get("/dashboard/cards", include_in_schema=False)
def cards(
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="nextCursor of the page before")
    ] = None,
) -> Response[Any]:
    """Every card of the token's wallet, retired ones included, newest first, a page at a time ("All cards")."""
    return json_response(wire.card_page(assembly.dashboard().cards(_token(), cursor)))


@app.get("/dashboard/quote", include_in_schema=False)
def quote(credits: Annotated[DecimalText, Query(description="credits to price")]) -> Response[Any]:
    """The price of `credits` from the price book, as the page's "Buy credits" shows it while the customer types."""
    return json_response(wire.quote(assembly.dashboard().quote(_token(), credits)))


@app.post("/dashboard/checkout", include_in_schema=False)
def checkout(body: CheckoutBody) -> Response[Any]:
    """A pending card for the token's customer and the payment provider's page to pay it on; the customer comes
    back to the dashboard (or to the deployment's own pages, when its settings name them)."""
    settings, page = payments_settings(), f"{public_base_url(app.current_event.raw_event)}/dashboard"
    success = settings.checkout_success_url or f"{page}#checkout=success"
    cancel = settings.checkout_cancel_url or f"{page}#checkout=cancel"
    followed = correlation_id_of(app.current_event.raw_event)
    result, hosted = assembly.dashboard().checkout(_token(), body.credits, success, cancel, followed)
    logger.append_keys(card_id=result.card.card_id)
    return json_response(wire.checkout(result, hosted), HTTPStatus.CREATED)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return serve(app, event, context)
