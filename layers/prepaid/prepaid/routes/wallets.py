"""A wallet's reads, settings and dashboard links, served by the API function."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from prepaid import assembly
from prepaid.application import listings
from prepaid.application.forecasting import MAX_HORIZON_DAYS
from prepaid.application.ledger import DEFAULT_PAGE, MAX_PAGE, LedgerQuery
from prepaid.application.usage_series import Granularity, SeriesQuery
from prepaid.domain.card import CardStatus
from prepaid.domain.ledger import EntryType
from prepaid.edge import wire
from prepaid.edge.http import correlation_id_of, json_response
from prepaid.edge.links import dashboard_url
from prepaid.edge.merge_patch import patched_settings
from prepaid.edge.schemas import (
    AuthorizeBody,
    AuthorizeOut,
    CardListOut,
    Cursor,
    CustomerId,
    DashboardLinkBody,
    DashboardLinkOut,
    ForecastOut,
    Instant,
    LedgerOut,
    MeterName,
    SettingsBody,
    SettingsPatchBody,
    UsageSeriesOut,
    WalletListOut,
    WalletOut,
    answers,
)
from prepaid.edge.translation import authorize_request, wallet_settings

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated


@router.get(
    "/wallets/<customerId>",
    summary="Read a wallet",
    operation_id="read_wallet",
    responses=answers(200, "the wallet", 404, 422),
)
def read_wallet(customerId: CustomerId) -> Response[WalletOut]:
    return json_response(wire.wallet(assembly.wallet_service().wallet(customerId)))


@router.post(
    "/wallets/<customerId>/authorize",
    summary="May this usage go ahead? Its cost and what it would leave, from the rate card and one wallet read",
    operation_id="authorize",
    responses=answers(200, "whether it may, and what it costs", 400, 404, 413, 415, 422),
)
def authorize(customerId: CustomerId, body: AuthorizeBody) -> Response[AuthorizeOut]:
    return json_response(wire.authorization(assembly.wallet_service().authorize(customerId, authorize_request(body))))


@router.get(
    "/wallets",
    summary="List the wallets, in customer id order, a page at a time",
    operation_id="list_wallets",
    responses=answers(200, "a page of wallets", 400, 422),
)
def list_wallets(
    limit: Annotated[int, Query(ge=1, le=listings.MAX_PAGE)] = listings.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response[WalletListOut]:
    return json_response(wire.wallet_page(assembly.listings().wallets(limit, cursor)))


@router.get(
    "/wallets/<customerId>/cards",
    summary="List every card of a wallet, retired ones included, newest first, a page at a time",
    operation_id="list_cards",
    responses=answers(200, "a page of cards", 400, 404, 422),
)
def list_cards(
    customerId: CustomerId,
    status: Annotated[CardStatus | None, Query(description="only cards the API shows with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=listings.MAX_PAGE)] = listings.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response[CardListOut]:
    return json_response(wire.card_page(assembly.listings().cards(customerId, status, limit, cursor)))


@router.put(
    "/wallets/<customerId>/settings",
    summary="Replace a wallet's settings",
    operation_id="put_settings",
    responses=answers(200, "the wallet with its new settings", 400, 409, 413, 415, 422),
)
def put_settings(customerId: CustomerId, body: SettingsBody) -> Response[WalletOut]:
    followed = correlation_id_of(router.current_event.raw_event)
    return json_response(wire.wallet(assembly.wallet_service().configure(customerId, wallet_settings(body), followed)))


@router.patch(
    "/wallets/<customerId>/settings",
    summary="Change some of a wallet's settings (a JSON merge patch: absent keeps, null clears)",
    operation_id="patch_settings",
    responses=answers(200, "the wallet with its changed settings", 400, 409, 413, 415, 422),
)
def patch_settings(customerId: CustomerId, body: SettingsPatchBody) -> Response[WalletOut]:
    patch = body.merge_patch()
    followed = correlation_id_of(router.current_event.raw_event)
    view = assembly.wallet_service().reconfigure(customerId, lambda current: patched_settings(current, patch), followed)
    return json_response(wire.wallet(view))


@router.get(
    "/wallets/<customerId>/ledger",
    summary="Read a wallet's ledger, newest first, a page at a time",
    operation_id="read_ledger",
    responses=answers(200, "a page of ledger entries", 400, 404, 422),
)
def read_ledger(
    customerId: CustomerId,
    entry_type: Annotated[EntryType | None, Query(alias="type", description="only entries of this type")] = None,
    start: Annotated[Instant | None, Query(alias="from", description="entries at or after this instant")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="entries before this instant")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response[LedgerOut]:
    page = assembly.ledger().page(customerId, LedgerQuery(entry_type, start, end), limit, cursor)
    return json_response(wire.ledger_page(page))


@router.get(
    "/wallets/<customerId>/usage",
    summary="Usage and credits per meter, in hour or day buckets",
    operation_id="read_usage",
    responses=answers(200, "the usage series", 404, 422),
)
def read_usage(
    customerId: CustomerId,
    meter: Annotated[MeterName | None, Query(description="only this meter")] = None,
    start: Annotated[Instant | None, Query(alias="from", description="default: 24 hours or 30 days before to")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    granularity: Annotated[Granularity, Query()] = Granularity.HOUR,
) -> Response[UsageSeriesOut]:
    series = assembly.usage_series().read(customerId, SeriesQuery(granularity, start, end, meter))
    return json_response(wire.usage_series(series))


@router.get(
    "/wallets/<customerId>/forecast",
    summary="Burn rate, runway, expiring credits and what to buy",
    operation_id="read_forecast",
    responses=answers(200, "the forecast", 404, 422),
)
def read_forecast(
    customerId: CustomerId,
    horizon_days: Annotated[int, Query(alias="horizonDays", ge=1, le=MAX_HORIZON_DAYS)] = 30,
) -> Response[ForecastOut]:
    return json_response(wire.forecast(assembly.forecasts().forecast(customerId, horizon_days)))


@router.post(
    "/wallets/<customerId>/dashboard-links",
    summary="A short-lived signed link to the customer's own dashboard page",
    operation_id="create_dashboard_link",
    responses=answers(201, "the link", 400, 404, 413, 415, 422),
)
def create_dashboard_link(customerId: CustomerId, body: DashboardLinkBody | None = None) -> Response[DashboardLinkOut]:
    link = assembly.dashboard_links().issue(customerId, (body or DashboardLinkBody()).ttl_seconds)
    url = dashboard_url(router.current_event.raw_event, link.token)
    return json_response(wire.dashboard_link(link, url), HTTPStatus.CREATED)
