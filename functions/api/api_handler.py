"""HTTP API: wallets, purchases, cards, settings, quotes, price book, rate card, usage (API Gateway REST, AWS_IAM)."""

from __future__ import annotations

import warnings
from datetime import date
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

import api_errors
import api_links
import boto3
from api_schemas import (
    DashboardLinkBody,
    DashboardLinkOut,
    DecimalText,
    ForecastOut,
    Instant,
    LedgerOut,
    MeterName,
    PriceBookBody,
    PriceBookOut,
    PurchaseBody,
    PurchaseOut,
    QuoteOut,
    RateCardBody,
    RateCardOut,
    RevenueOut,
    SettingsBody,
    UsageBody,
    UsageOut,
    UsageSeriesOut,
    WalletOut,
)
from api_translation import (
    price_book_from_body,
    price_book_to_wire,
    purchase_request,
    rate_card_from_body,
    rate_card_to_wire,
    wallet_settings,
)
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.revenue import DynamoRevenueStore
from prepaid.adapters.secrets import SecretValue
from prepaid.adapters.sqs import QueueUnavailable, UsageQueue
from prepaid.application.dashboard import DashboardLinks, dashboard_signer
from prepaid.application.forecasting import MAX_HORIZON_DAYS, Forecasts
from prepaid.application.ingest import RateCards, UsageIntake, wallet_required
from prepaid.application.ledger import DEFAULT_PAGE, MAX_PAGE, Ledger, LedgerQuery
from prepaid.application.revenue import Revenue
from prepaid.application.signing import Signer
from prepaid.application.usage_series import Granularity, SeriesQuery, UsageSeries
from prepaid.application.wallets import WalletService
from prepaid.assembly import new_id, now
from prepaid.config import signing_settings, table_settings, usage_settings
from prepaid.domain.errors import DomainError, NoEvents, TooManyEvents
from prepaid.domain.ledger import EntryType
from prepaid.domain.rules import (
    CARD_ID_PATTERN,
    CUSTOMER_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_EVENTS_PER_REQUEST,
)

MAX_BODY_BYTES = 64 * 1024
MAX_USAGE_BODY_BYTES = 2 * 1024 * 1024  # 1,000 events of up to ~2 KiB each

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Reads and settings publish no metric, by design; Powertools' documented way to keep that out of the logs.
warnings.filterwarnings("ignore", "No application metrics to publish*")
app = APIGatewayRestResolver(enable_validation=True)

CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID_PATTERN, description="The SaaS's customer id")]
CardId = Annotated[str, Path(pattern=CARD_ID_PATTERN)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)]


@cache
def usage_intake() -> UsageIntake:
    client = boto3.client("dynamodb")
    table, usage = table_settings().table_name, usage_settings()
    wallets = DynamoWalletStore(client, table)
    known = wallet_required(wallets, usage.unknown_customers)
    rate_cards = RateCards(DynamoCatalogStore(client, table), ttl=usage.rate_card_ttl_seconds)
    return UsageIntake(rate_cards, now, known, records=wallets)


@cache
def usage_queue() -> UsageQueue:
    return UsageQueue(boto3.client("sqs"), usage_settings().usage_queue_url)


@cache
def wallet_service() -> WalletService:
    """Built on first use, so importing the handler needs no environment."""
    client = boto3.client("dynamodb")
    table = table_settings().table_name
    return WalletService(DynamoWalletStore(client, table), DynamoCatalogStore(client, table), now, new_id)


@cache
def ledger() -> Ledger:
    store = DynamoWalletStore(boto3.client("dynamodb"), table_settings().table_name)
    return Ledger(store, lambda: Signer(signing_key(), "ledger-cursor"))


@cache
def revenue() -> Revenue:
    return Revenue(DynamoRevenueStore(boto3.client("dynamodb"), table_settings().table_name, now))


@cache
def forecasts() -> Forecasts:
    store = DynamoWalletStore(boto3.client("dynamodb"), table_settings().table_name)
    return Forecasts(store, wallet_service().quote, now)


@cache
def usage_series() -> UsageSeries:
    return UsageSeries(DynamoWalletStore(boto3.client("dynamodb"), table_settings().table_name), now)


@cache
def dashboard_links() -> DashboardLinks:
    store = DynamoWalletStore(boto3.client("dynamodb"), table_settings().table_name)
    return DashboardLinks(store, lambda: dashboard_signer(signing_key()), now)


@cache
def _signing_secret() -> SecretValue:
    # a provider of this module's own (not Powertools' process-wide one), forgotten with the other wiring
    return SecretValue(signing_settings().signing_secret_arn, max_age=300)


def signing_key() -> bytes:
    """The deployment's signing secret (Secrets Manager), cached by Powertools for five minutes."""
    return _signing_secret()()


def _json(body: Any, status: HTTPStatus = HTTPStatus.OK, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status.value, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


# -- guards and error mapping ----------------------------------------------------------------------------------------


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[Any]:
    return api_errors.validation_error_response(list(error.errors()))


@app.exception_handler(DomainError)
def _domain_error(error: DomainError) -> Response[Any]:
    logger.info("request refused", extra={"code": error.code, "details": error.details()})
    return api_errors.domain_error_response(error)


@app.exception_handler(QueueUnavailable)
def _queue_unavailable(error: QueueUnavailable) -> Response[Any]:
    logger.warning("usage queue did not take every message", extra={"failed": error.failed})
    return api_errors.unavailable_response()


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return api_errors.internal_error_response()


@app.not_found
def _not_found(error: Exception) -> Response[Any]:
    return api_errors.error_response(HTTPStatus.NOT_FOUND, "route_not_found", "no such route")


# -- routes ----------------------------------------------------------------------------------------------------------


@app.post("/wallets/<customerId>/purchases", summary="Buy or grant credits", responses={201: {"description": "card"}})
def purchase(
    customerId: CustomerId, body: PurchaseBody, idempotency_key: IdempotencyKey = None
) -> Response[PurchaseOut]:
    receipt = wallet_service().purchase(customerId, purchase_request(body), idempotency_key)
    if not receipt.replayed:
        metrics.add_metric(name="CreditsPurchased", unit=MetricUnit.Count, value=1)
    headers = {"Idempotent-Replayed": "true"} if receipt.replayed else None
    return _json(receipt.body, HTTPStatus.CREATED, headers)


@app.get("/wallets/<customerId>", summary="Read a wallet")
def read_wallet(customerId: CustomerId) -> Response[WalletOut]:
    return _json(wallet_service().wallet(customerId))


@app.post("/wallets/<customerId>/cards/<cardId>/void", summary="Void what remains of a card")
def void_card(customerId: CustomerId, cardId: CardId) -> Response[PurchaseOut]:
    return _json(wallet_service().void(customerId, cardId))


@app.get("/wallets/<customerId>/ledger", summary="Read a wallet's ledger, newest first, a page at a time")
def read_ledger(
    customerId: CustomerId,
    entry_type: Annotated[EntryType | None, Query(alias="type", description="only entries of this type")] = None,
    start: Annotated[Instant | None, Query(alias="from", description="entries at or after this instant")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="entries before this instant")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="nextCursor of the page before")
    ] = None,
) -> Response[LedgerOut]:
    return _json(ledger().page(customerId, LedgerQuery(entry_type, start, end), limit, cursor))


@app.get("/wallets/<customerId>/usage", summary="Usage and credits per meter, in hour or day buckets")
def read_usage(
    customerId: CustomerId,
    meter: Annotated[MeterName | None, Query(description="only this meter")] = None,
    start: Annotated[Instant | None, Query(alias="from", description="default: 24 hours or 30 days before to")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    granularity: Annotated[Granularity, Query()] = Granularity.HOUR,
) -> Response[UsageSeriesOut]:
    return _json(usage_series().read(customerId, SeriesQuery(granularity, start, end, meter)))


@app.get("/reports/revenue", summary="Deferred, recognised and breakage revenue per currency for UTC days")
def revenue_report(
    start: Annotated[date, Query(alias="from", description="first UTC day (YYYY-MM-DD)")],
    end: Annotated[date, Query(alias="to", description="the day after the last one")],
) -> Response[RevenueOut]:
    return _json(revenue().report(start, end))


@app.get("/wallets/<customerId>/forecast", summary="Burn rate, runway, expiring credits and what to buy")
def read_forecast(
    customerId: CustomerId,
    horizon_days: Annotated[int, Query(alias="horizonDays", ge=1, le=MAX_HORIZON_DAYS)] = 30,
) -> Response[ForecastOut]:
    return _json(forecasts().forecast(customerId, horizon_days))


@app.post(
    "/wallets/<customerId>/dashboard-links",
    summary="A short-lived signed link to the customer's own dashboard page",
    responses={201: {"description": "link"}},
)
def create_dashboard_link(customerId: CustomerId, body: DashboardLinkBody | None = None) -> Response[DashboardLinkOut]:
    link = dashboard_links().issue(customerId, (body or DashboardLinkBody()).ttl_seconds)
    url = api_links.dashboard_url(app.current_event.raw_event, link.token)
    return _json(link.to_wire(url), HTTPStatus.CREATED)


@app.put("/wallets/<customerId>/settings", summary="Replace a wallet's settings")
def put_settings(customerId: CustomerId, body: SettingsBody) -> Response[WalletOut]:
    return _json(wallet_service().configure(customerId, wallet_settings(body)))


@app.get("/quotes", summary="Price credits from the price book")
def quote(credits: Annotated[DecimalText, Query(description="credits to price")]) -> Response[QuoteOut]:
    return _json(wallet_service().quote_to_wire(credits))


@app.get("/price-book", summary="Read the price book")
def get_price_book() -> Response[PriceBookOut]:
    return _json(price_book_to_wire(wallet_service().price_book()))


@app.put("/price-book", summary="Replace the price book")
def put_price_book(body: PriceBookBody) -> Response[PriceBookOut]:
    return _json(price_book_to_wire(wallet_service().replace_price_book(price_book_from_body(body))))


@app.get("/rate-card", summary="Read the rate card")
def get_rate_card() -> Response[RateCardOut]:
    return _json(rate_card_to_wire(wallet_service().rate_card()))


@app.put("/rate-card", summary="Replace the rate card")
def put_rate_card(body: RateCardBody) -> Response[RateCardOut]:
    stored = wallet_service().replace_rate_card(rate_card_from_body(body))
    usage_intake.cache_clear()  # this environment screens with the new card at once; others within their TTL
    return _json(rate_card_to_wire(stored))


@app.post("/usage", summary="Report usage events (up to 1,000)", responses={202: {"description": "queued"}})
def post_usage(body: UsageBody) -> Response[UsageOut]:
    if not body.events:
        raise NoEvents()
    if len(body.events) > MAX_EVENTS_PER_REQUEST:
        raise TooManyEvents(count=len(body.events), limit=MAX_EVENTS_PER_REQUEST)
    screening = usage_intake().screen(body.events)
    usage_queue().send_events(screening.accepted)
    metrics.add_metric(name="UsageQueued", unit=MetricUnit.Count, value=len(screening.accepted))
    answer = {
        "accepted": [e.event_id for e in screening.accepted],
        "duplicates": screening.duplicates,
        "rejected": [r.to_wire() for r in screening.refused],
    }
    return _json(answer, HTTPStatus.ACCEPTED)


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[Any]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=app.get_openapi_json_schema(title="prepaid-credits", version="0.1.0"),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    limit = MAX_USAGE_BODY_BYTES if event.get("resource") == "/usage" else MAX_BODY_BYTES
    refused = api_errors.refuse_unreadable_body(event.get("body"), event.get("headers"), limit)
    return refused if refused is not None else app.resolve(event, context)
