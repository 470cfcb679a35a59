from datetime import UTC, datetime

from prepaid_local.stack import Stack
from support.aws import BusTap

RATE_CARD = {
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
    assert stack.pump_queues() >= 2
    wallet = stack.api("GET", "/wallets/acme").body
    assert wallet["balance"] == "0"
    assert wallet["overage"] == "20"
    stack.pump_streams()
    kinds = [e["detail-type"] for e in bus.drain()]
    assert "Balance Low" in kinds and "Balance Depleted" in kinds and "Overage Recorded" in kinds
