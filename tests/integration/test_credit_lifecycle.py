"""The credit lifecycle through the stack: rules, schedules and handlers, with the clock moved forward."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3

from prepaid_local.stack import Stack
from support.aws import REGION, BusTap
from support.usage import PRICE, RATE_CARD, Queues, usage_event, wallet

SCHEDULE_GROUP = "local-card-expiry"


def buy(stack: Stack, credits: str, **body: Any) -> dict[str, Any]:
    answer = stack.api("POST", "/wallets/acme/purchases", {"credits": credits, "price": PRICE, **body})
    assert answer.status == 201, answer.body
    card: dict[str, Any] = answer.body["card"]
    return card


def schedules() -> list[str]:
    client = boto3.client("scheduler", region_name=REGION)
    return sorted(s["Name"] for s in client.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"])


def z(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_card_expires_on_time_through_its_schedule(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given a card of 100 credits expiring in an hour, drawn first, and one without expiry
    expiring = buy(stack, "100", expiresIn="PT1H", priority=10)
    buy(stack, "50")
    stack.pump()
    # Then its Credits Purchased reached the expiry function, which scheduled the expiry (the notice is due at once:
    # less than 7 days are left)
    assert schedules() == [f"expire-{expiring['cardId']}"]
    assert [e["detail"]["cardId"] for e in bus.of_type("Credits Expiring Soon")] == [expiring["cardId"]]

    # When 30 credits are used, then the clock passes the expiry
    Queues(stack).send_usage({"events": [usage_event("u1", "acme", "60")]})
    stack.pump()
    expires_at = datetime.fromisoformat(expiring["expiresAt"])
    stack.set_time(expires_at + timedelta(seconds=2))
    stack.pump()

    # Then the schedule ran and is gone, the card expired with its breakage, and the event went out once
    assert schedules() == []
    (expired,) = bus.of_type("Credits Expired")
    assert (expired["detail"]["cardId"], expired["detail"]["credits"]) == (expiring["cardId"], "70")
    assert expired["detail"]["breakage"] == {"amount": "7.00", "currency": "USD"}
    read = wallet(stack, "acme")
    assert (read["balance"], read["totals"]["expired"]) == ("50", "70")
    entries = stack.api("GET", "/wallets/acme/ledger", query="type=expiry").body["entries"]
    assert [(e["credits"], e["value"]) for e in entries] == [("70", {"amount": "7.00", "currency": "USD"})]

    # And usage stamped one second after the expiry draws the other card, however it arrives
    late = usage_event("u2", "acme", "4", at=z(expires_at + timedelta(seconds=1)))
    Queues(stack).send_usage({"events": [late]})
    stack.pump()
    assert wallet(stack, "acme")["balance"] == "48"


def test_auto_recharge_buys_once_per_crossing(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    auto = {"threshold": "100", "credits": "500", "maxPerDay": 3, "price": {"amount": "4.00", "currency": "USD"}}
    assert stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": auto}).status == 200
    buy(stack, "300")

    # When usage takes the balance from 300 to 50
    Queues(stack).send_usage({"events": [usage_event("u1", "acme", "500")]})
    stack.pump()

    # Then Balance Low reached auto-recharge, which bought 500 credits at the set price
    (low,) = bus.of_type("Balance Low")
    (bought,) = bus.of_type("Auto Recharge Purchased")
    assert bought["detail"]["balance"] == "550" and bought["detail"]["card"]["source"] == "auto_recharge"
    assert wallet(stack, "acme")["balance"] == "550"

    # And when the same Balance Low arrives again (a duplicate delivery), nothing more is bought
    events = boto3.client("events", region_name=REGION)
    events.put_events(
        Entries=[
            {
                "Source": low["source"],
                "DetailType": low["detail-type"],
                "Detail": json.dumps(low["detail"]),
                "EventBusName": stack.name("EventBus"),
            }
        ]
    )
    stack.pump()
    assert len(bus.of_type("Auto Recharge Purchased")) == 1
    assert wallet(stack, "acme")["balance"] == "550"


def test_the_monthly_grant_comes_on_its_day_once(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    now = stack.clock.now()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=5, second=30, microsecond=0)
    grant = {"credits": "1000", "dayOfMonth": tomorrow.day, "price": PRICE, "expiresIn": "P40D"}
    assert stack.api("PUT", "/wallets/acme/settings", {"recurring": grant}).status == 200

    # When the daily job's time comes tomorrow, and the day after
    stack.pump()
    assert bus.of_type("Credits Purchased") == []
    stack.set_time(tomorrow)
    stack.pump()
    stack.set_time(tomorrow + timedelta(days=1))
    stack.pump()

    # Then one grant was made, from the recurring source, with its expiry 40 days on
    (granted,) = bus.of_type("Credits Purchased")
    card = granted["detail"]["card"]
    assert (card["source"], card["credits"]) == ("recurring", "1000")
    assert datetime.fromisoformat(card["expiresAt"]) - datetime.fromisoformat(card["effectiveAt"]) == timedelta(days=40)
    assert Decimal(wallet(stack, "acme")["balance"]) == Decimal(1000)


def test_auto_recharge_stops_at_its_monthly_spend_cap_and_says_so_once(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given auto-recharge of 500 credits for 4.00 USD at 100, at most 6.00 USD a month
    price, cap = {"amount": "4.00", "currency": "USD"}, {"amount": "6.00", "currency": "USD"}
    auto = {"threshold": "100", "credits": "500", "maxPerDay": 5, "price": price, "maxSpendPerMonth": cap}
    answer = stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": auto})
    assert answer.body["settings"]["autoRecharge"]["maxSpendPerMonth"] == cap
    buy(stack, "300")
    # When usage crosses the threshold twice
    Queues(stack).send_usage({"events": [usage_event("u1", "acme", "500")]})
    stack.pump()
    Queues(stack).send_usage({"events": [usage_event("u2", "acme", "1000")]})
    stack.pump()
    # Then the first crossing bought 500 credits (4.00 USD), and the second, which would spend 8.00, bought nothing
    assert len(bus.of_type("Auto Recharge Purchased")) == 1
    (skipped,) = bus.of_type("Auto Recharge Skipped")
    assert skipped["detail"]["reason"] == "monthly_cap"
    assert (skipped["detail"]["spentThisMonth"], skipped["detail"]["maxSpendPerMonth"]) == (price, cap)
    assert wallet(stack, "acme")["balance"] == "50"
    # And when that crossing's Balance Low arrives again, it is not answered (or reported) twice
    low = bus.of_type("Balance Low")[-1]
    events = boto3.client("events", region_name=REGION)
    bus_name, detail = stack.name("EventBus"), json.dumps(low["detail"])
    events.put_events(
        Entries=[
            {"Source": low["source"], "DetailType": low["detail-type"], "Detail": detail, "EventBusName": bus_name}
        ]
    )
    stack.pump()
    assert len(bus.of_type("Auto Recharge Skipped")) == 1
    assert wallet(stack, "acme")["balance"] == "50"


def test_a_card_whose_expiry_is_brought_forward_expires_at_the_new_instant(timed_stack: Stack) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    # Given a card expiring in 30 days, its schedules made
    card = buy(stack, "100", expiresIn="P30D")
    stack.pump()
    assert schedules() == [f"expire-{card['cardId']}", f"warn-{card['cardId']}"]
    # When a card change brings its expiry forward to an hour from now
    sooner = datetime.fromisoformat(card["expiresAt"]) - timedelta(days=30) + timedelta(hours=1)
    change = {"expiresAt": z(sooner), "reason": "contract ends early"}
    assert stack.api("PATCH", f"/wallets/acme/cards/{card['cardId']}", change).status == 200
    stack.pump()
    # Then the move has schedules of its own (its notice was due at once) and the card expires at the new instant
    moved = f"expire-{card['cardId']}-{int(datetime.fromisoformat(z(sooner)).timestamp())}"
    assert moved in schedules()
    stack.set_time(sooner + timedelta(seconds=2))
    stack.pump()
    (expired,) = bus.of_type("Credits Expired")
    assert (expired["detail"]["cardId"], expired["detail"]["credits"]) == (card["cardId"], "100")
    assert wallet(stack, "acme")["totals"]["expired"] == "100"
    # And when the first schedules' time comes, they find nothing more to do
    stack.set_time(datetime.fromisoformat(card["expiresAt"]) + timedelta(seconds=2))
    stack.pump()
    assert len(bus.of_type("Credits Expired")) == 1 and len(bus.of_type("Credits Expiring Soon")) == 1
