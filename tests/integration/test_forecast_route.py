"""GET /wallets/{customerId}/forecast over usage that went through the real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_local.stack import Stack
from support.usage import RATE_CARD, Queues, usage_event


def test_forecast_from_ten_days_of_steady_usage(stack: Stack) -> None:
    # Given a price book, 1,000 credits (no expiry), and 10 days of 20 api calls a day (10 credits a day)
    assert stack.api("PUT", "/price-book", DEMO_PRICE_BOOK).status == 200
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    bought = stack.api("POST", "/wallets/acme/purchases", {"credits": "1000", "effectiveAt": "2026-01-01T00:00:00Z"})
    assert bought.status == 201, bought.body
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = [
        usage_event(
            f"d{ago}", "acme", "20", at=(midnight - timedelta(days=ago, hours=-12)).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        for ago in range(1, 11)
    ]
    Queues(stack).send_usage({"events": events})
    stack.pump_queues()

    # When the forecast for 120 days is read
    answer = stack.api("GET", "/wallets/acme/forecast", query="horizonDays=120")

    # Then the burn rate is 10 credits a day from 10 days of history, the 900 left last 90 days,
    # and the purchase covering the rest of the horizon (30 days: 300 credits) is priced from the book
    assert answer.status == 200, answer.body
    body = answer.body
    assert body["burnRate"] == {"creditsPerDay": "10", "weekdayFactors": None, "daysOfHistory": 10}
    assert body["balance"] == "900"
    assert Decimal(body["runwayDays"]) == Decimal(90)
    assert body["recommendedPurchase"] == {
        "credits": "300",
        "price": {"amount": "3.00", "currency": "USD"},
        "unitPrice": "0.01",
    }
    # And the chart gets one point per calendar day the horizon touches: today (partial) and 120 more
    assert [d["date"] for d in body["days"]][:1] == [midnight.date().isoformat()]
    assert len(body["days"]) == 121


def test_forecast_refuses_bad_horizons_and_unknown_wallets(stack: Stack) -> None:
    assert stack.api("GET", "/wallets/nobody/forecast").status == 404
    stack.api("POST", "/wallets/acme/purchases", {"credits": "1", "price": {"amount": "0", "currency": "USD"}})
    assert stack.api("GET", "/wallets/acme/forecast", query="horizonDays=0").status == 422
    assert stack.api("GET", "/wallets/acme/forecast", query="horizonDays=400").status == 422
