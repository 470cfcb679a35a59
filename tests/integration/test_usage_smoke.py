import time
from datetime import UTC, datetime
from typing import Any

from prepaid_local.stack import Stack
from support.aws import BusTap
from support.usage import Queues, fund, wallet

RATE_CARD: dict[str, Any] = {
    "meters": {"api_calls": {"creditsPerUnit": "0.5"}},
    "overrides": {"vip": {"api_calls": {"creditsPerUnit": "0.25"}}},
}
PRICE = {"amount": "10.00", "currency": "USD"}


def event(n: int, customer: str = "acme", quantity: str = "10") -> dict[str, object]:
    return {
        "eventId": f"e-{customer}-{n}",
        "customerId": customer,
        "meter": "api_calls",
        "quantity": quantity,
        "timestamp": datetime.now(UTC).isoformat(),
    }


def test_usage_flows_from_http_to_the_wallet(stack: Stack, bus: BusTap) -> None:
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["50"]})
    stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE})
    answer = stack.api("POST", "/usage", {"events": [event(n) for n in range(24)] + [{"eventId": "bad"}]})
    assert answer.status == 202, answer.body
    assert len(answer.body["accepted"]) == 24
    assert answer.body["rejected"][0]["reason"] == "missing_field"
    assert stack.pump_queues() >= 1  # POST /usage rates and sends straight to the drawdown queue
    wallet = stack.api("GET", "/wallets/acme").body
    assert wallet["balance"] == "0"
    assert wallet["overage"] == "20"
    stack.pump_streams()
    kinds = [e["detail-type"] for e in bus.drain()]
    assert "Balance Low" in kinds and "Balance Depleted" in kinds and "Overage Recorded" in kinds


def test_a_meter_added_to_the_rate_card_is_known_before_the_cached_card_expires(stack: Stack) -> None:
    # Given a rate card without "tokens", already read and cached by the API and the ingest function
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "1000")
    assert stack.api("POST", "/usage", {"events": [event(1)]}).body["accepted"] == ["e-acme-1"]
    stack.pump_queues()
    # When "tokens" is added (the ingest function's cached card, good for 30 s, does not have it) and, a second
    # later, usage of it arrives
    with_tokens = {"meters": {**RATE_CARD["meters"], "tokens": {"creditsPerUnit": "0.002"}}}
    assert stack.api("PUT", "/rate-card", with_tokens).status == 200
    time.sleep(1.05)  # the card is read again at most once a second when a meter is missing from it
    tokens = {**event(2), "meter": "tokens", "quantity": "1000"}
    answer = stack.api("POST", "/usage", {"events": [tokens]})
    stack.pump_queues()
    # Then it is accepted and drawn (2 credits), not refused as an unknown meter by the stale card
    assert answer.body["accepted"] == ["e-acme-2"]
    assert Queues(stack).dead_letters() == []
    assert wallet(stack, "acme")["balance"] == str(1000 - 5 - 2)
