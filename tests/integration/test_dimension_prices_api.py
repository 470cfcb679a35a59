"""Prices by dimension value through the HTTP API: set on PUT /rate-card (and refused with reasons), used by ingest
and the drawdown, and shown split by the priced value in GET /wallets/{customerId}/usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prepaid_local.stack import Stack
from support.usage import Queues, fund, usage_event

HOUR = timedelta(hours=1)
RATE_CARD = {
    "meters": {
        "tokens": {"creditsPerUnit": "0.002", "dimension": "model", "prices": {"gpt-4": "0.03", "small": "0.001"}},
        "api_calls": {"creditsPerUnit": "0.5"},
    },
    "overrides": {"vip": {"tokens": {"creditsPerUnit": "0.001", "dimension": "model", "prices": {"gpt-4": "0.02"}}}},
}


def tokens(event_id: str, customer: str, quantity: str, model: str | None, at: datetime) -> dict[str, Any]:
    event = usage_event(event_id, customer, quantity, "tokens", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return event | ({"dimensions": {"model": model, "region": "eu"}} if model else {})


def z(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_events_pay_their_models_price_and_the_series_shows_the_split(stack: Stack) -> None:
    # Given a rate card pricing tokens by model, and two funded wallets (vip with its own override)
    put = stack.api("PUT", "/rate-card", RATE_CARD)
    assert put.status == 200, put.body
    assert {k: put.body[k] for k in ("meters", "overrides")} == RATE_CARD
    assert stack.api("GET", "/rate-card").body["meters"] == RATE_CARD["meters"]
    fund(stack, "acme", "1000")
    fund(stack, "vip", "1000")
    h0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 2 * HOUR

    # When tokens arrive with gpt-4, small, an unlisted model and none, over two hours (the first closed by the
    # second, then a late gpt-4 event for the first), and vip uses gpt-4 and small
    queues = Queues(stack)
    queues.send_usage(
        {
            "events": [
                tokens("a1", "acme", "100", "gpt-4", h0 + timedelta(minutes=5)),
                tokens("a2", "acme", "1000", "small", h0 + timedelta(minutes=6)),
                tokens("a3", "acme", "500", "gpt-5", h0 + timedelta(minutes=7)),
                tokens("v1", "vip", "100", "gpt-4", h0 + timedelta(minutes=8)),
                tokens("v2", "vip", "100", "small", h0 + timedelta(minutes=9)),
            ]
        }
    )
    stack.pump_queues()
    queues.send_usage({"events": [tokens("a4", "acme", "50", None, h0 + HOUR + timedelta(minutes=1))]})
    stack.pump_queues()
    queues.send_usage({"events": [tokens("a5", "acme", "10", "gpt-4", h0 + timedelta(minutes=59))]})
    stack.pump_queues()

    # Then each event paid its model's price, anything else the base rate: 3 + 1 + 1 + 0.1 + 0.3 for acme
    assert Decimal(stack.api("GET", "/wallets/acme").body["totals"]["rated"]) == Decimal("5.4")
    # And vip paid its override's gpt-4 price and its own base rate for small (2 + 0.1)
    assert Decimal(stack.api("GET", "/wallets/vip").body["totals"]["rated"]) == Decimal("2.1")

    # And the usage series splits tokens by the priced model, the base rate's part last, adding up to the total
    answer = stack.api("GET", "/wallets/acme/usage", query=f"from={z(h0)}&to={z(h0 + 2 * HOUR)}")
    assert answer.status == 200, answer.body
    series = next(m for m in answer.body["meters"] if m["meter"] == "tokens")
    assert (series["quantity"], series["credits"], series["events"]) == ("1660", "5.4", 5)
    assert [(p["dimension"], p["value"], p["quantity"], p["credits"], p["events"]) for p in series["byDimension"]] == [
        ("model", "gpt-4", "110", "3.3", 2),
        ("model", "small", "1000", "1", 1),
        (None, None, "550", "1.1", 2),
    ]
    # And per hour buckets are as before: the first hour (closed, then added to late) and the second
    assert [b["credits"] for b in series["buckets"]] == ["5.3", "0.1"]


def test_bad_prices_by_dimension_are_refused_with_reasons(stack: Stack) -> None:
    def put(rate: dict[str, Any]) -> tuple[int, str, Any]:
        answer = stack.api("PUT", "/rate-card", {"meters": {"tokens": rate}})
        return answer.status, answer.body["error"]["code"], answer.body["error"].get("details")

    base = {"creditsPerUnit": "0.002", "dimension": "model"}
    answers = {
        "no prices": put(base),
        "no dimension": put({"creditsPerUnit": "1", "prices": {"gpt-4": "2"}}),
        "empty prices": put(base | {"prices": {}}),
        "bad dimension": put(base | {"dimension": "mo del", "prices": {"a": "1"}}),
        "bad value": put(base | {"prices": {"gpt 4": "1"}}),
        "too many values": put(base | {"prices": {f"v{i}": "1" for i in range(101)}}),
        "negative price": put(base | {"prices": {"gpt-4": "-1"}}),
        "price above 10^12": put(base | {"prices": {"gpt-4": "1" + "0" * 13}}),
        "price of 19 fractional digits": put(base | {"prices": {"gpt-4": "0." + "0" * 18 + "1"}}),
        "price as a number": put(base | {"prices": {"gpt-4": 1}}),
    }
    assert {k: a[:2] for k, a in answers.items()} == {
        "no prices": (422, "invalid_request"),
        "no dimension": (422, "invalid_request"),
        "empty prices": (422, "validation_error"),
        "bad dimension": (422, "validation_error"),
        "bad value": (422, "validation_error"),
        "too many values": (422, "validation_error"),
        "negative price": (422, "invalid_amount"),
        "price above 10^12": (422, "invalid_amount"),
        "price of 19 fractional digits": (422, "invalid_amount"),
        "price as a number": (422, "validation_error"),
    }
    # And the details name the field
    assert answers["no prices"][2][0]["field"] == "meters.tokens.prices"
    assert answers["negative price"][2][0]["field"] == "meters.tokens.prices.gpt-4"
    assert "prices" in str(answers["bad value"][2])
    # And nothing was stored
    assert stack.api("GET", "/rate-card").status == 404
