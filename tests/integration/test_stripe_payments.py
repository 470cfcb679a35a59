"""Purchases that Stripe collects, through the stripe library against the local stand-in, and Stripe's webhook
deliveries (signed by the stand-in as Stripe signs, verified by the stripe library in the webhook function)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prepaid_demo.catalog import DEMO_PRICE_BOOK as BOOK
from prepaid_local.apigateway import ApiAnswer, Gateway
from prepaid_local.server import STRIPE_WEBHOOK_PATH, connect_stripe
from prepaid_local.stack import Stack
from prepaid_local.stripe_standin import StripeStandIn
from support.aws import BusTap
from support.environments import Environment, moto_server, run_environments
from support.usage import RATE_CARD, Queues, usage_event, wallet

PRICE = {"amount": "12.50", "currency": "USD"}


def standin_for(stack: Stack) -> Iterator[StripeStandIn]:
    """The stand-in, its keys in the payments secret; its events kept for the test to deliver (or not)."""
    standin = StripeStandIn(deliver=False).start()
    connect_stripe(stack, standin)
    stack.cold_start()
    yield standin
    standin.stop()
    os.environ.pop("STRIPE_API_BASE", None)


@pytest.fixture
def stripe_standin(stack: Stack) -> Iterator[StripeStandIn]:
    yield from standin_for(stack)


@pytest.fixture
def timed_standin(timed_stack: Stack) -> Iterator[StripeStandIn]:
    yield from standin_for(timed_stack)


def deliver(stack: Stack, standin: StripeStandIn, event: dict[str, Any], secret: str | None = None) -> ApiAnswer:
    payload, signature = standin.signed(event, secret)
    return stack.api("POST", STRIPE_WEBHOOK_PATH, payload, {"Stripe-Signature": signature})


def buy(stack: Stack, customer: str, key: str | None = None, credits: str = "1000") -> ApiAnswer:
    body = {"credits": credits, "price": PRICE, "payment": {"collect": "stripe", "stripeCustomer": customer}}
    return stack.api("POST", "/wallets/acme/purchases", body, {"Idempotency-Key": key} if key else None)


def charges(standin: StripeStandIn) -> list[dict[str, Any]]:
    return [r for r in standin.requests if r["method"] == "POST" and r["path"] == "/v1/payment_intents"]


def test_a_stripe_purchase_is_charged_once_and_granted_once_however_often_it_is_sent(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a customer whose saved card pays
    # When the same purchase is sent four times at once, then again
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: buy(stack, "cus_demo", key="order-1"), range(4)))
    again = buy(stack, "cus_demo", key="order-1")
    # Then one card was made and paid: active, in the balance once, with its PaymentIntent
    assert {a.status for a in [*answers, again]} == {201}
    cards = {a.body["card"]["cardId"] for a in [*answers, again]}
    assert len(cards) == 1
    intents = list(stripe_standin.payment_intents.values())
    assert len(intents) == 1
    assert (intents[0]["amount"], intents[0]["currency"], intents[0]["customer"]) == (1250, "usd", "cus_demo")
    assert intents[0]["payment_method"] == "pm_card_visa"  # the customer's default, looked up
    assert again.body["card"]["status"] == "active"
    assert again.body["card"]["payment"] == {
        "collect": "stripe",
        "stripeCustomer": "cus_demo",
        "reference": intents[0]["id"],
    }
    # And every charge request carried the card's idempotency key
    assert {c["idempotencyKey"] for c in charges(stripe_standin)} == {f"prepaid-charge-{cards.pop()}"}
    wallet = stack.api("GET", "/wallets/acme").body
    assert (wallet["balance"], wallet["totals"]["credits"]) == ("1000", "1000")


def test_stripes_succeeded_event_delivered_twice_and_at_once_grants_nothing_more(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a purchase charged and paid at once, and the event Stripe sends for it
    card = buy(stack, "cus_demo").body["card"]
    [succeeded] = [e for e in stripe_standin.events if e["type"] == "payment_intent.succeeded"]
    # When the event is delivered three times, two of them together
    first = deliver(stack, stripe_standin, succeeded)
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: deliver(stack, stripe_standin, succeeded), range(2)))
    # Then each delivery is acknowledged, and the card was granted once
    assert [a.status for a in [first, *both]] == [200, 200, 200]
    assert first.body == {"received": True, "applied": True}
    wallet = stack.api("GET", "/wallets/acme").body
    assert wallet["balance"] == "1000"
    entries = stack.api("GET", "/wallets/acme/ledger").body["entries"]
    assert [e["type"] for e in entries] == ["purchase", "pending"]
    assert [c["status"] for c in wallet["cards"]] == ["active"]
    assert card["cardId"] == wallet["cards"][0]["cardId"]


def test_a_declined_charge_grants_nothing_and_raises_payment_failed(
    stack: Stack, stripe_standin: StripeStandIn, bus: BusTap
) -> None:
    # Given a customer whose saved card is declined
    # When a purchase is charged to it, and Stripe's failure event arrives as well
    answer = buy(stack, "cus_declined", key="order-2")
    [failed] = [e for e in stripe_standin.events if e["type"] == "payment_intent.payment_failed"]
    redelivered = deliver(stack, stripe_standin, failed)
    replayed = buy(stack, "cus_declined", key="order-2")
    # Then the purchase is a 402 naming the decline, its card is voided and nothing was granted
    assert (answer.status, answer.body["error"]["code"]) == (402, "payment_declined")
    [detail] = answer.body["error"]["details"]
    assert (detail["reason"], detail["declineCode"], sorted(detail)) == (
        "payment_declined",
        "generic_decline",
        ["cardId", "declineCode", "reason"],
    )
    assert (replayed.status, replayed.body["error"]["code"]) == (402, "payment_declined")
    assert redelivered.status == 200
    assert len(stripe_standin.payment_intents) == 1
    wallet = stack.api("GET", "/wallets/acme").body
    assert (wallet["balance"], wallet["cards"], wallet["totals"]["voided"]) == ("0", [], "1000")
    stack.pump_streams()
    kinds = [e["detail-type"] for e in bus.drain()]
    assert kinds.count("Payment Failed") == 1
    assert "Credits Purchased" not in kinds


def test_an_unknown_stripe_customer_is_refused_and_nothing_is_granted(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # When a purchase names a customer Stripe does not know
    answer = buy(stack, "cus_nobody")
    # Then it is refused with Stripe's reason, and the wallet holds nothing
    assert (answer.status, answer.body["error"]["code"]) == (402, "payment_declined")
    assert answer.body["error"]["details"][0]["declineCode"] == "resource_missing"
    assert stack.api("GET", "/wallets/acme").body["balance"] == "0"


def test_only_deliveries_signed_with_the_endpoints_secret_are_read(stack: Stack, stripe_standin: StripeStandIn) -> None:
    # Given a pending card (invoiced) and an event that would say it was paid
    body = {"credits": "10", "price": PRICE, "payment": {"collect": "manual"}}
    card_id = stack.api("POST", "/wallets/acme/purchases", body).body["card"]["cardId"]
    event = {
        "id": "evt_forged",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {"id": "pi_x", "object": "payment_intent", "metadata": {"customerId": "acme", "cardId": card_id}}
        },
    }
    payload, signature = stripe_standin.signed(event)
    # When it arrives signed with another secret, unsigned, with its body changed after signing, or not as JSON
    answers = [
        deliver(stack, stripe_standin, event, secret="whsec_someone_else"),
        stack.api("POST", STRIPE_WEBHOOK_PATH, payload),
        stack.api("POST", STRIPE_WEBHOOK_PATH, payload.replace("pi_x", "pi_y"), {"Stripe-Signature": signature}),
        stack.api("POST", STRIPE_WEBHOOK_PATH, "not json", {"Stripe-Signature": signature}),
    ]
    # Then each is a 400 with the reason, and the card still waits for its payment
    refusals = [(a.status, a.body["error"]["code"], a.body["error"].get("details")) for a in answers]
    assert refusals == [
        (400, "webhook_refused", [{"reason": "signature_invalid"}]),
        (400, "webhook_refused", [{"reason": "signature_missing"}]),
        (400, "webhook_refused", [{"reason": "signature_invalid"}]),
        (400, "malformed_json", None),
    ]
    assert [c["status"] for c in stack.api("GET", "/wallets/acme").body["cards"]] == ["pending"]


def test_events_for_cards_that_are_not_ours_are_acknowledged_and_change_nothing(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a paid wallet
    stack.api("POST", "/wallets/acme/purchases", {"credits": "5", "price": PRICE})
    base = {"object": "event", "type": "payment_intent.succeeded"}
    others = [
        {**base, "id": "evt_1", "data": {"object": {"id": "pi_1", "metadata": {}}}},
        {
            **base,
            "id": "evt_2",
            "data": {"object": {"id": "pi_2", "metadata": {"customerId": "acme", "cardId": "nope"}}},
        },
        {
            **base,
            "id": "evt_3",
            "data": {"object": {"id": "pi_3", "metadata": {"customerId": "ghost", "cardId": "c1"}}},
        },
        {**base, "id": "evt_4", "type": "customer.created", "data": {"object": {"id": "cus_1"}}},
    ]
    # When Stripe sends events about other things
    answers = [deliver(stack, stripe_standin, e) for e in others]
    # Then each is acknowledged (Stripe stops retrying), applied to nothing
    assert [(a.status, a.body["applied"]) for a in answers] == [(200, False)] * 4
    assert stack.api("GET", "/wallets/acme").body["balance"] == "5"


def test_payment_failed_for_a_card_already_paid_never_takes_its_credits(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a card paid by Stripe
    card_id = buy(stack, "cus_demo").body["card"]["cardId"]
    late = {
        "id": "evt_late",
        "object": "event",
        "type": "payment_intent.payment_failed",
        "data": {"object": {"id": "pi_z", "metadata": {"customerId": "acme", "cardId": card_id}}},
    }
    # When a failure notice for it arrives late
    answer = deliver(stack, stripe_standin, late)
    # Then it is acknowledged and the card keeps its credits
    assert answer.status == 200
    assert stack.api("GET", "/wallets/acme").body["balance"] == "1000"


def checkout_on_the_dashboard(stack: Stack, credits: str) -> tuple[dict[str, Any], ApiAnswer]:
    """A dashboard link's customer asks to buy `credits`: (its token header, the checkout's answer)."""
    link = stack.api("POST", "/wallets/acme/dashboard-links", {"ttlSeconds": 600}).body
    bearer = {"Authorization": f"Bearer {link['token']}"}
    return bearer, stack.api("POST", "/dashboard/checkout", {"credits": credits}, bearer)


def press(standin: StripeStandIn, url: str, button: str) -> str:
    """A customer's click on the stand-in's hosted page: where the browser is sent next."""
    request = urllib.request.Request(f"{url}/{button}", data=b"", method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        opener.open(request, timeout=30)
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 303
        return str(redirect.headers["Location"])
    raise AssertionError("the page did not send the browser back")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any) -> None:
        return None


def test_a_customer_buys_on_the_checkout_page_and_the_card_waits_until_paid(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a customer with a wallet, a price book, and a dashboard link
    stack.api(
        "PUT", "/price-book", {"currency": "USD", "mode": "volume", "tiers": [{"upTo": None, "unitPrice": "0.01"}]}
    )
    stack.api("POST", "/wallets/acme/purchases", {"credits": "5", "price": PRICE})
    # When the dashboard quotes 2,500 credits and the customer checks out
    bearer, answer = checkout_on_the_dashboard(stack, "2500")
    quote = stack.api("GET", "/dashboard/quote", headers=bearer, query="credits=2500")
    # Then the quote and the checkout's card agree, and the card waits for the payment
    assert (quote.status, quote.body["price"]) == (200, {"amount": "25.00", "currency": "USD"})
    assert answer.status == 201, answer.body
    card = answer.body["card"]
    assert (card["status"], card["price"], answer.body["balance"]) == ("pending", quote.body["price"], "5")
    [session] = stripe_standin.sessions.values()
    assert (session["amount_total"], session["currency"], session["metadata"]["cardId"]) == (
        2500,
        "usd",
        card["cardId"],
    )
    assert session["success_url"].endswith("/dashboard#checkout=success")
    # When the customer pays, and Stripe's events arrive (twice)
    back = press(stripe_standin, answer.body["checkoutUrl"], "pay")
    for event in stripe_standin.events * 2:
        assert deliver(stack, stripe_standin, event).status == 200
    # Then the browser goes back to the dashboard, and the card is active, counted once
    assert back == session["success_url"]
    wallet = stack.api("GET", "/wallets/acme").body
    assert wallet["balance"] == "2505"
    paid = next(c for c in wallet["cards"] if c["cardId"] == card["cardId"])
    assert (paid["status"], paid["payment"]["reference"]) == ("active", session["payment_intent"])


def test_a_checkout_left_unpaid_grants_nothing(stack: Stack, stripe_standin: StripeStandIn) -> None:
    # Given a checkout under way
    stack.api("POST", "/wallets/acme/purchases", {"credits": "5", "price": PRICE})
    stack.api(
        "PUT", "/price-book", {"currency": "USD", "mode": "volume", "tiers": [{"upTo": None, "unitPrice": "0.01"}]}
    )
    _, answer = checkout_on_the_dashboard(stack, "1000")
    # When the customer cancels on the page, and the session's expiry is delivered
    press(stripe_standin, answer.body["checkoutUrl"], "cancel")
    assert [e["type"] for e in stripe_standin.events] == ["checkout.session.expired"]
    assert deliver(stack, stripe_standin, stripe_standin.events[0]).status == 200
    # Then the card is voided and the balance is what it was
    wallet = stack.api("GET", "/wallets/acme").body
    assert (wallet["balance"], [c["status"] for c in wallet["cards"]], wallet["totals"]["voided"]) == (
        "5",
        ["active"],
        "1000",
    )


def test_the_dashboards_buying_routes_need_the_token(stack: Stack, stripe_standin: StripeStandIn) -> None:
    # When the quote and the checkout are asked for without a token, with a forged one, or with bad credits
    stack.api("POST", "/wallets/acme/purchases", {"credits": "5", "price": PRICE})
    bearer, _ = checkout_on_the_dashboard(stack, "1")
    answers = [
        stack.api("POST", "/dashboard/checkout", {"credits": "10"}),
        stack.api("POST", "/dashboard/checkout", {"credits": "10"}, {"Authorization": "Bearer x.y"}),
        stack.api("GET", "/dashboard/quote", query="credits=10"),
        stack.api("POST", "/dashboard/checkout", {"credits": "-1"}, bearer),
        stack.api("POST", "/dashboard/checkout", {"credits": "10", "customerId": "globex"}, bearer),
    ]
    # Then each is refused, and nothing was sold
    assert [a.status for a in answers] == [401, 403, 401, 422, 422]
    assert stripe_standin.sessions == {}


# -- at once, from separate execution environments (processes), as Lambda scales ------------------------------------


def _buy_through_stripe(n: int, gateway: Gateway) -> int:
    body = {"credits": "100", "price": PRICE, "payment": {"collect": "stripe", "stripeCustomer": "cus_demo"}}
    return gateway.request("POST", "/wallets/acme/purchases", body, {"Idempotency-Key": "order-9"}).status


def _deliver_twice(n: int, gateway: Gateway, payload: str, signature: str) -> list[int]:
    return [
        gateway.request("POST", STRIPE_WEBHOOK_PATH, payload, {"Stripe-Signature": signature}).status for _ in range(2)
    ]


def test_six_environments_sending_one_purchase_and_one_stripe_event_at_once_charge_and_grant_once() -> None:
    with moto_server() as server:
        standin = server.stripe
        # When six environments send the same Stripe purchase at once
        statuses = run_environments(6, Environment.of(server), _buy_through_stripe)
        # Then all answer 201, and Stripe was charged once for one card
        assert statuses == [201] * 6
        assert len(standin.payment_intents) == 1
        wallet = server.stack.api("GET", "/wallets/acme").body
        assert (wallet["balance"], len(wallet["cards"])) == ("100", 1)
        # And given a checkout paid on the page
        server.stack.api("PUT", "/price-book", BOOK)
        link = server.stack.api("POST", "/wallets/acme/dashboard-links", {"ttlSeconds": 600}).body
        bearer = {"Authorization": f"Bearer {link['token']}"}
        checkout = server.stack.api("POST", "/dashboard/checkout", {"credits": "300"}, bearer).body
        standin.hold_events()
        press(standin, checkout["checkoutUrl"], "pay")
        (completed,) = [e for e in standin.events if e["type"] == "checkout.session.completed"]
        payload, signature = standin.signed(completed)
        # When six environments each receive its event twice, at once
        answers = run_environments(6, Environment.of(server), _deliver_twice, payload, signature)
        # Then every delivery is acknowledged and the card was granted once
        assert answers == [[200, 200]] * 6
        wallet = server.stack.api("GET", "/wallets/acme").body
        assert wallet["balance"] == "400"
        entries = server.stack.api("GET", "/wallets/acme/ledger", query="type=purchase").body["entries"]
        assert len(entries) == 2


# -- auto-recharge charged to the saved payment method -------------------------------------------------------------


def recharge_on_crossing(stack: Stack, customer: str) -> None:
    """acme with auto-recharge at 100 (500 credits for 4.00 USD, Stripe charging `customer`), funded with 300
    credits, then usage that takes its balance to 50."""
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    payment = {"collect": "stripe", "stripeCustomer": customer}
    auto = {"threshold": "100", "credits": "500", "maxPerDay": 3, "price": {"amount": "4.00", "currency": "USD"}}
    settings = stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": {**auto, "payment": payment}})
    assert settings.status == 200, settings.body
    assert settings.body["settings"]["autoRecharge"]["payment"] == payment
    stack.api("POST", "/wallets/acme/purchases", {"credits": "300", "price": PRICE})
    Queues(stack).send_usage({"events": [usage_event("u1", "acme", "500")]})
    stack.pump()


def test_an_auto_recharge_is_charged_once_however_often_its_crossing_arrives(
    stack: Stack, stripe_standin: StripeStandIn, bus: BusTap
) -> None:
    # Given a crossing that auto-recharge answered, charging the saved card
    recharge_on_crossing(stack, "cus_demo")
    (tapped,) = bus.of_type("Balance Low")
    low = {**tapped, "account": stack.resolver.account}  # as EventBridge delivers it (moto's tap leaves it out)
    # When the same Balance Low arrives three more times, two of them together
    stack.invoke("AutoRechargeFunction", low)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: stack.invoke("AutoRechargeFunction", low), range(2)))
    stack.pump()
    # Then Stripe charged the recharge's price once, and its credits were granted once
    (intent,) = stripe_standin.payment_intents.values()
    assert (intent["amount"], intent["currency"], intent["metadata"]["customerId"]) == (400, "usd", "acme")
    assert wallet(stack, "acme")["balance"] == "550"
    (bought,) = bus.of_type("Auto Recharge Purchased")
    assert bought["detail"]["card"]["source"] == "auto_recharge"
    cards = wallet(stack, "acme")["cards"]
    assert [(c["source"], c["status"]) for c in cards if c["source"] == "auto_recharge"] == [
        ("auto_recharge", "active")
    ]


def test_a_declined_auto_recharge_grants_nothing_and_says_why(
    stack: Stack, stripe_standin: StripeStandIn, bus: BusTap
) -> None:
    # When auto-recharge answers a crossing with a card that is declined
    recharge_on_crossing(stack, "cus_declined")
    # Then nothing was granted, and Payment Failed and Auto Recharge Skipped say why
    read = wallet(stack, "acme")
    assert (read["balance"], read["totals"]["voided"]) == ("50", "500")
    (failed,) = bus.of_type("Payment Failed")
    (skipped,) = bus.of_type("Auto Recharge Skipped")
    assert skipped["detail"]["reason"] == "payment_failed"
    assert failed["detail"]["cardId"] == skipped["detail"]["cardId"]
    assert len(stripe_standin.payment_intents) == 1


# -- voids, partial, with refunds ------------------------------------------------------------------------------------


def test_a_partial_void_with_refund_returns_its_value_once_and_the_revenue_report_shows_it(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a card of 1,000 credits paid 12.50 USD through Stripe (0.0125 per credit)
    card = buy(stack, "cus_demo").body["card"]
    void = f"/wallets/acme/cards/{card['cardId']}/void"
    # When 400 of its credits are voided with a refund, and the same request is sent again
    body = {"credits": "400", "reason": "requested_by_customer", "refund": True}
    first = stack.api("POST", void, body, {"Idempotency-Key": "refund-1"})
    again = stack.api("POST", void, body, {"Idempotency-Key": "refund-1"})
    # Then 400 credits were voided once, the card keeps 600, and 5.00 USD went back once, to its PaymentIntent
    assert first.status == again.status == 200, first.body
    assert (first.body["card"]["remaining"], first.body["card"]["status"]) == ("600", "active")
    assert first.body["refund"] == again.body["refund"] == {"amount": "5.00", "currency": "USD"}
    (refund,) = stripe_standin.refunds.values()
    assert (refund["amount"], refund["currency"], refund["payment_intent"]) == (
        500,
        "usd",
        card["payment"]["reference"],
    )
    assert {r["idempotencyKey"] for r in stripe_standin.requests if r["path"] == "/v1/refunds"} == {
        f"prepaid-refund-{card['cardId']}-400"
    }
    assert wallet(stack, "acme")["balance"] == "600"
    # And the ledger records the void and the refund, and the revenue report shows what was refunded
    entries = stack.api("GET", "/wallets/acme/ledger", query="limit=10").body["entries"]
    assert [(e["type"], e["credits"]) for e in entries[:2]] == [("refund", "400"), ("void", "400")]
    stack.pump_streams()
    today = datetime.now(UTC).date()
    query = f"from={today.isoformat()}&to={(today + timedelta(days=1)).isoformat()}"
    (usd,) = stack.api("GET", "/reports/revenue", query=query).body["currencies"]
    assert (usd["purchased"], usd["voided"], usd["refunded"], usd["deferred"]) == ("12.5", "5", "5", "7.5")


def test_refunds_are_refused_where_no_money_can_go_back(stack: Stack, stripe_standin: StripeStandIn) -> None:
    # Given a card the SaaS was paid for itself, and one paid through Stripe
    own = stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).body["card"]
    paid = buy(stack, "cus_demo").body["card"]
    key = {"Idempotency-Key": "r"}
    # When a refund is asked for the first, one without an idempotency key, and more credits than remain
    answers = [
        stack.api("POST", f"/wallets/acme/cards/{own['cardId']}/void", {"refund": True}, key),
        stack.api("POST", f"/wallets/acme/cards/{paid['cardId']}/void", {"refund": True}),
        stack.api("POST", f"/wallets/acme/cards/{paid['cardId']}/void", {"credits": "1001", "refund": True}, key),
    ]
    # Then each is refused with its reason, and nothing was voided or refunded
    assert [(a.status, a.body["error"]["code"]) for a in answers] == [
        (409, "card_not_refundable"),
        (422, "invalid_request"),
        (422, "invalid_request"),
    ]
    assert stripe_standin.refunds == {}
    assert wallet(stack, "acme")["balance"] == "1100"


def _answer_the_crossing(n: int, gateway: Gateway, low: dict[str, Any]) -> Any:
    return gateway.invoke("AutoRechargeFunction", low)


def test_six_environments_answering_one_crossing_at_once_charge_and_grant_once() -> None:
    with moto_server() as server:
        stack = server.stack
        # Given a crossing of the auto-recharge threshold, its Balance Low committed but not yet answered
        bus = BusTap(stack)
        assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
        auto = {"threshold": "100", "credits": "500", "maxPerDay": 3, "price": {"amount": "4.00", "currency": "USD"}}
        payment = {"collect": "stripe", "stripeCustomer": "cus_demo"}
        assert stack.api("PUT", "/wallets/acme/settings", {"autoRecharge": auto | {"payment": payment}}).status == 200
        stack.api("POST", "/wallets/acme/purchases", {"credits": "300", "price": PRICE})
        assert stack.api("POST", "/usage", {"events": [usage_event("u1", "acme", "500")]}).status == 202
        stack.pump_queues()
        stack.pump_streams()  # the outbox to the bus, not the bus to auto-recharge
        (tapped,) = bus.of_type("Balance Low")
        low = {**tapped, "account": stack.resolver.account}
        # When six environments receive it at once
        answers = run_environments(6, Environment.of(server), _answer_the_crossing, low)
        # Then all say it was bought, Stripe charged once, and the credits were granted once
        assert all(a["bought"] for a in answers), answers
        assert len(server.stripe.payment_intents) == 1
        read = stack.api("GET", "/wallets/acme").body
        assert read["balance"] == "550"
        assert [c["status"] for c in read["cards"] if c["source"] == "auto_recharge"] == ["active"]


# -- recurring grants charged to the saved payment method ----------------------------------------------------------


@pytest.mark.parametrize(("customer", "granted"), [("cus_demo", True), ("cus_declined", False)])
def test_a_monthly_grant_that_stripe_charges_is_granted_only_when_paid(
    timed_stack: Stack, timed_standin: StripeStandIn, customer: str, granted: bool
) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    # Given a monthly grant of 1,000 credits for 12.50 USD, charged to the customer's saved card, due tomorrow
    tomorrow = (stack.clock.now() + timedelta(days=1)).replace(hour=0, minute=5, second=30, microsecond=0)
    payment = {"collect": "stripe", "stripeCustomer": customer}
    grant = {"credits": "1000", "dayOfMonth": tomorrow.day, "price": PRICE, "payment": payment}
    assert stack.api("PUT", "/wallets/acme/settings", {"recurring": grant}).status == 200
    # When the daily job runs tomorrow and the day after
    stack.set_time(tomorrow)
    stack.pump()
    stack.set_time(tomorrow + timedelta(days=1))
    stack.pump()
    # Then Stripe was asked once, and the credits are in the balance only if it paid
    (intent,) = timed_standin.payment_intents.values()
    assert (intent["amount"], intent["currency"]) == (1250, "usd")
    read = stack.api("GET", "/wallets/acme").body
    assert read["balance"] == ("1000" if granted else "0")
    assert len(bus.of_type("Payment Failed")) == (0 if granted else 1)
    assert len(bus.of_type("Credits Purchased")) == (1 if granted else 0)


def test_a_payment_that_comes_after_its_card_was_voided_goes_back_whole_once(
    stack: Stack, stripe_standin: StripeStandIn
) -> None:
    # Given a checkout left unpaid, its card voided when the session expired
    stack.api("PUT", "/price-book", BOOK)
    stack.api("POST", "/wallets/acme/purchases", {"credits": "5", "price": PRICE})
    _, answer = checkout_on_the_dashboard(stack, "1000")
    press(stripe_standin, answer.body["checkoutUrl"], "cancel")
    assert deliver(stack, stripe_standin, stripe_standin.events[0]).status == 200
    (session,) = stripe_standin.sessions.values()
    # When a payment for it is reported after all (an asynchronous method that cleared late), twice
    stripe_standin.payment_intents["pi_late"] = {
        "id": "pi_late",
        "amount": 1000,
        "currency": "usd",
        "status": "succeeded",
    }
    late = {
        "id": "evt_late_paid",
        "object": "event",
        "type": "checkout.session.async_payment_succeeded",
        "data": {"object": {**session, "status": "complete", "payment_status": "paid", "payment_intent": "pi_late"}},
    }
    answers = [deliver(stack, stripe_standin, late) for _ in range(2)]
    # Then nothing is granted, and the whole price went back to that payment once
    assert [(a.status, a.body["applied"]) for a in answers] == [(200, False), (200, False)]
    (refund,) = stripe_standin.refunds.values()
    assert (refund["payment_intent"], refund["amount"], refund["currency"]) == ("pi_late", 1000, "usd")
    assert stack.api("GET", "/wallets/acme").body["balance"] == "5"


def test_a_large_stripe_event_is_read(stack: Stack, stripe_standin: StripeStandIn) -> None:
    # Given a card paid through Stripe, and its succeeded event grown past 64 KiB (a large object)
    buy(stack, "cus_demo")
    (succeeded,) = [e for e in stripe_standin.events if e["type"] == "payment_intent.succeeded"]
    large = {**succeeded, "data": {"object": {**succeeded["data"]["object"], "description": "x" * 200_000}}}
    # When it is delivered, then one over a mebibyte
    answer = deliver(stack, stripe_standin, large)
    huge = {**large, "data": {"object": {**large["data"]["object"], "description": "x" * 1_100_000}}}
    refused = deliver(stack, stripe_standin, huge)
    # Then the first is read (and changes nothing: the card was paid), the second refused as too large
    assert (answer.status, answer.body) == (200, {"received": True, "applied": True})
    assert (refused.status, refused.body["error"]["code"]) == (413, "payload_too_large")
