"""Wallet settings that fit real contracts, through the stack: overage policy, auto-recharge to a target balance
priced by the book under a monthly cap, and thresholds given as a percentage of the last funded balance."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_local.stack import Stack
from support.aws import REGION, BusTap
from support.usage import RATE_CARD, Queues, usage_event, wallet

FREE = {"amount": "0", "currency": "USD"}


def use(stack: Stack, event_id: str, credits: int) -> None:
    """Usage worth `credits` (the rate card's api_calls cost half a credit each), drawn at once."""
    Queues(stack).send_usage({"events": [usage_event(event_id, "acme", str(credits * 2))]})
    stack.pump()


def nothing_dead_lettered(stack: Stack) -> bool:
    sqs = boto3.client("sqs", region_name=REGION)
    return not sqs.receive_message(QueueUrl=stack.name("LifecycleDeadLetterQueue"), MaxNumberOfMessages=10).get(
        "Messages"
    )


def test_overage_policy_is_stored_and_shown_allow_by_default(stack: Stack) -> None:
    # Given a wallet whose settings say nothing of overage
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["10"]}).status == 200
    stack.api("POST", "/wallets/acme/purchases", {"credits": "5", "price": FREE})
    # Then the read shows the default policy
    assert stack.api("GET", "/wallets/acme").body["settings"]["overagePolicy"] == "allow"
    # When the policy is set to block
    assert stack.api("PUT", "/wallets/acme/settings", {"overagePolicy": "block"}).status == 200
    # Then it is kept and shown
    assert stack.api("GET", "/wallets/acme").body["settings"]["overagePolicy"] == "block"
    # And another word is refused with the contract's error body
    refused = stack.api("PUT", "/wallets/acme/settings", {"overagePolicy": "sometimes"})
    assert refused.status == 422
    assert "error" in refused.body


def test_a_target_balance_recharge_buys_up_to_the_target_by_the_book_until_the_monthly_cap(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    assert stack.api("PUT", "/price-book", DEMO_PRICE_BOOK).status == 200
    # Given auto-recharge at 100 to a balance of 12,000, at most 150.00 USD a month
    cap = {"amount": "150.00", "currency": "USD"}
    auto = {"threshold": "100", "targetBalance": "12000", "maxPerDay": 5, "maxSpendPerMonth": cap}
    answer = stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": auto})
    assert answer.status == 200, answer.body
    assert (
        answer.body["settings"]["autoRecharge"] | {"targetBalance": "12000", "credits": None}
        == answer.body["settings"]["autoRecharge"]
    )
    stack.api("POST", "/wallets/acme/purchases", {"credits": "300", "price": FREE})
    # When usage of 400 credits takes the balance to 0 with 100 owed
    use(stack, "u1", 400)
    # Then the recharge bought 12,000 - 0 + 100 credits, priced by the book's second tier (0.009), and the wallet
    # stands at the target with nothing owed
    (bought,) = bus.of_type("Auto Recharge Purchased")
    card = bought["detail"]["card"]
    assert (card["credits"], card["price"]) == ("12100", {"amount": "108.90", "currency": "USD"})
    assert (bought["detail"]["credits"], bought["detail"]["targetBalance"]) == ("12100", "12000")
    read = wallet(stack, "acme")
    assert (read["balance"], read["overage"]) == ("12000", "0")
    # When usage crosses the threshold again (balance 50), the 11,950 credits would cost 107.55: past the cap
    use(stack, "u2", 11950)
    # Then nothing is bought and the skip says why, with the credits and the price
    (skipped,) = bus.of_type("Auto Recharge Skipped")
    detail = skipped["detail"]
    assert (detail["reason"], detail["credits"], detail["price"]) == (
        "monthly_cap",
        "11950",
        {"amount": "107.55", "currency": "USD"},
    )
    assert detail["spentThisMonth"] == {"amount": "108.90", "currency": "USD"}
    assert len(bus.of_type("Auto Recharge Purchased")) == 1
    assert wallet(stack, "acme")["balance"] == "50"


@pytest.mark.parametrize(
    ("auto", "field"),
    [
        ({"threshold": "100", "credits": "500", "targetBalance": "1000"}, "autoRecharge.credits"),
        ({"threshold": "100"}, "autoRecharge.credits"),
        ({"threshold": "100", "targetBalance": "100"}, "autoRecharge.targetBalance"),
        ({"threshold": "100", "targetBalance": "1000", "price": FREE}, "autoRecharge.price"),
    ],
)
def test_auto_recharge_needs_exactly_one_of_credits_and_a_target_above_the_threshold(
    stack: Stack, auto: dict[str, Any], field: str
) -> None:
    answer = stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": {**auto, "maxPerDay": 1}})
    assert answer.status == 422, answer.body
    assert answer.body["error"]["details"][0]["field"] == field


@pytest.mark.parametrize("threshold", ["0%", "100.5%", "-5%", "25 %", "%", "25%%", "1e1%", 25])
def test_a_percentage_threshold_must_be_more_than_0_and_at_most_100(stack: Stack, threshold: Any) -> None:
    answer = stack.api("PUT", "/wallets/acme/settings", {"thresholds": [threshold]})
    assert answer.status == 422, answer.body
    assert "error" in answer.body


def test_a_percentage_threshold_is_crossed_once_against_the_last_funded_balance(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given thresholds of 500 credits and 25%, and auto-recharge at 100 (for another threshold)
    auto = {"threshold": "100", "credits": "10", "maxPerDay": 1, "price": FREE}
    settings = {"thresholds": ["25%", "500", "12.5%"], "autoRecharge": auto}
    answer = stack.api("PUT", "/wallets/acme/settings", settings)
    assert answer.status == 200, answer.body
    assert answer.body["settings"]["thresholds"] == ["500", "12.5%", "25%"]
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["25%", "25.0%"]}).status == 422
    # When the wallet's first card brings it to 1,000
    stack.api("POST", "/wallets/acme/purchases", {"credits": "1000", "price": FREE})
    stack.pump()
    # Then nothing recovered
    assert bus.of_type("Balance Recovered") == []
    # When usage takes it to 200, then to 150
    use(stack, "u1", 800)
    use(stack, "u2", 50)
    # Then the 500 and the 25% (250 credits of 1,000) were crossed once each, the 12.5% (125) not yet
    lows = [(e["detail"]["threshold"], e["detail"].get("thresholdCredits")) for e in bus.of_type("Balance Low")]
    assert lows == [("500", None), ("25%", "250")]
    # And the 25% Balance Low reached the auto-recharge function, which bought nothing and did not fail
    assert bus.of_type("Auto Recharge Purchased") == []
    assert nothing_dead_lettered(stack)
    # When a purchase of 250 lifts it to 400, 25% now means 100: recovered for it, not for 500
    stack.api("POST", "/wallets/acme/purchases", {"credits": "250", "price": FREE})
    stack.pump()
    recovered = [(e["detail"]["threshold"], e["detail"]["thresholdCredits"]) for e in bus.of_type("Balance Recovered")]
    assert recovered == [("25%", "100")]
