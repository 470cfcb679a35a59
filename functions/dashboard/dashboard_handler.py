"""The customer dashboard (API Gateway REST, no IAM): `GET /dashboard` (the page) and `GET /dashboard/data`.

The token from `POST /wallets/{customerId}/dashboard-links` is the only credential: the link carries it in its
fragment, and the page sends it as `Authorization: Bearer <token>` (never in a URL). Every data request opens it
again and reads only the wallet it names; nothing in the request can name another.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Any

import boto3
import dashboard_errors
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from dashboard_page import JSON_POLICY, PAGE, PAGE_POLICY

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.secrets import SecretValue
from prepaid.application.dashboard import Dashboard, DashboardLinks, dashboard_signer
from prepaid.application.forecasting import Forecasts
from prepaid.application.usage_series import UsageSeries
from prepaid.application.wallets import WalletService
from prepaid.config import signing_settings, table_settings
from prepaid.domain.errors import DashboardTokenRefused, DomainError

PAGE_PATH = "/dashboard"

logger = Logger()
tracer = Tracer()
app = APIGatewayRestResolver()


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


@cache
def signing_key() -> SecretValue:
    """The deployment's signing secret (Secrets Manager), cached by Powertools for five minutes."""
    return SecretValue(signing_settings().signing_secret_arn, max_age=300)


@cache
def dashboard() -> Dashboard:
    """Built on first use, so importing the handler needs no environment. Reads only."""
    client = boto3.client("dynamodb")
    table = table_settings().table_name
    store = DynamoWalletStore(client, table)
    wallets = WalletService(store, DynamoCatalogStore(client, table), _now, _new_id)
    links = DashboardLinks(store, lambda: dashboard_signer(signing_key()()), _now)
    return Dashboard(links, wallets, UsageSeries(store, _now), Forecasts(store, wallets.quote, _now))


def _token() -> str | None:
    """The bearer token. Never from the query string: a token in a URL ends up in access logs and histories."""
    authorization = app.current_event.headers.get("Authorization") or ""
    scheme, _, credentials = authorization.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _is_page() -> bool:
    return app.current_event.resource == PAGE_PATH


# -- error mapping ---------------------------------------------------------------------------------------------------


@app.exception_handler(DomainError)
def _domain_error(error: DomainError) -> Response[Any]:
    if isinstance(error, DashboardTokenRefused):
        logger.info("dashboard token refused", extra={"code": error.code})  # never the token itself
    else:
        logger.info("request refused", extra={"code": error.code})
    return dashboard_errors.domain_error_response(error, page=_is_page())


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return dashboard_errors.internal_error_response(page=_is_page())


@app.not_found
def _not_found(error: Exception) -> Response[Any]:
    return dashboard_errors.not_found_response()


# -- routes ----------------------------------------------------------------------------------------------------------


@app.get(PAGE_PATH)
def page() -> Response[str]:
    """The dashboard page: the same static page for everyone (the token is in the link's fragment, which the
    browser keeps to itself); what it shows comes from `dashboard/data`, which the token opens."""
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type="text/html; charset=utf-8",
        body=PAGE,
        headers=dashboard_errors.headers(PAGE_POLICY),
    )


@app.get(f"{PAGE_PATH}/data")
def data() -> Response[Any]:
    """Wallet, usage per meter per day (30 days), forecast (30 days) and recommended purchase of the token's
    wallet."""
    body = dashboard().data(_token())
    logger.append_keys(customer_id=body["customerId"])
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=dashboard_errors.headers(JSON_POLICY),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # the page and the wallet stay out of traces
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
