"""The price book, the rate card, quotes and the revenue report, served by the API function."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from prepaid import assembly
from prepaid.edge import wire
from prepaid.edge.http import json_response
from prepaid.edge.schemas import (
    DecimalText,
    PriceBookBody,
    PriceBookOut,
    QuoteOut,
    RateCardBody,
    RateCardOut,
    RevenueOut,
    answers,
)
from prepaid.edge.translation import price_book_from_body, rate_card_from_body

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated


@router.get(
    "/quotes",
    summary="Price credits from the price book",
    operation_id="quote",
    responses=answers(200, "the quote", 409, 422),
)
def quote(credits: Annotated[DecimalText, Query(description="credits to price")]) -> Response[QuoteOut]:
    return json_response(wire.quote(assembly.wallet_service().priced_quote(credits)))


@router.get(
    "/price-book", summary="Read the price book", operation_id="get_price_book", responses=answers(200, "the book", 409)
)
def get_price_book() -> Response[PriceBookOut]:
    return json_response(wire.price_book(assembly.wallet_service().price_book()))


@router.put(
    "/price-book",
    summary="Replace the price book",
    operation_id="put_price_book",
    responses=answers(200, "the book with its new version", 400, 413, 415, 422),
)
def put_price_book(body: PriceBookBody) -> Response[PriceBookOut]:
    return json_response(wire.price_book(assembly.wallet_service().replace_price_book(price_book_from_body(body))))


@router.get(
    "/rate-card", summary="Read the rate card", operation_id="get_rate_card", responses=answers(200, "the card", 404)
)
def get_rate_card() -> Response[RateCardOut]:
    return json_response(wire.rate_card(assembly.wallet_service().rate_card()))


@router.put(
    "/rate-card",
    summary="Replace the rate card",
    operation_id="put_rate_card",
    responses=answers(200, "the card with its new version", 400, 413, 415, 422),
)
def put_rate_card(body: RateCardBody) -> Response[RateCardOut]:
    stored = assembly.wallet_service().replace_rate_card(rate_card_from_body(body))
    assembly.forget_rate_card()
    return json_response(wire.rate_card(stored))


@router.get(
    "/reports/revenue",
    summary="Deferred, recognised and breakage revenue per currency for UTC days",
    operation_id="revenue_report",
    responses=answers(200, "the report", 422),
)
def revenue_report(
    start: Annotated[date, Query(alias="from", description="first UTC day (YYYY-MM-DD)")],
    end: Annotated[date, Query(alias="to", description="the day after the last one")],
) -> Response[RevenueOut]:
    return json_response(wire.revenue_report(assembly.revenue().report(start, end)))
