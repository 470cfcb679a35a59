"""Stripe's webhook under events Stripe could sign (any type, any object, metadata naming our cards or not, hostile
values anywhere) with payments on: never a 5xx, and money moves only as the contract says.

Property, per delivery of one signed event: the answer is 200 (`{"received", "applied"}`) or a 4xx with the
contract's error body (400 for a body that is no Stripe event, 422 for JSON that is no object); no card but the
pending one ever changes; the pending card is either still pending, or active with its credits in the balance once
(a paid notice for it), or voided with nothing granted (a failed or abandoned one); and the paid card is never taken
back. Examples share one stack and start from the seeded table again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from prepaid_local.server import STRIPE_WEBHOOK_PATH, connect_stripe
from prepaid_local.stack import Stack
from prepaid_local.stripe_standin import StripeStandIn
from property.strategies import JSON_VALUES, SETTINGS, TableState

EXPLORED_EVENTS = 120
TYPES = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "customer.created",
]
PRICE = {"amount": "1.00", "currency": "USD"}


@pytest.fixture
def seeded(stack: Stack) -> Iterator[tuple[Stack, StripeStandIn, dict[str, str]]]:
    """Payments on through the stand-in; acme holds a paid card (100 credits) and a pending one (invoiced, 50)."""
    standin = StripeStandIn(deliver=False).start()
    connect_stripe(stack, standin)
    stack.cold_start()
    paid = stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": PRICE}).body["card"]["cardId"]
    body = {"credits": "50", "price": PRICE, "payment": {"collect": "manual"}}
    pending = stack.api("POST", "/wallets/acme/purchases", body).body["card"]["cardId"]
    yield stack, standin, {"paid": paid, "pending": pending}
    standin.stop()
    os.environ.pop("STRIPE_API_BASE", None)


def metadata(cards: dict[str, str]) -> st.SearchStrategy[Any]:
    customers = st.sampled_from(["acme", "globex", "", "a" * 200, "acme\u0000"]) | JSON_VALUES
    card_ids = st.sampled_from([*cards.values(), "nope", ""]) | JSON_VALUES
    named = st.fixed_dictionaries({"customerId": customers, "cardId": card_ids})
    return named | JSON_VALUES


def stripe_objects(cards: dict[str, str]) -> st.SearchStrategy[Any]:
    obj = st.fixed_dictionaries(
        {"id": st.text(max_size=30) | JSON_VALUES, "metadata": metadata(cards)},
        optional={
            "object": st.sampled_from(["payment_intent", "checkout.session"]) | JSON_VALUES,
            "payment_status": st.sampled_from(["paid", "unpaid"]) | JSON_VALUES,
            "payment_intent": st.text(max_size=30) | JSON_VALUES,
        },
    )
    return obj | JSON_VALUES


def stripe_events(cards: dict[str, str]) -> st.SearchStrategy[Any]:
    data = st.fixed_dictionaries({"object": stripe_objects(cards)}) | JSON_VALUES
    return (
        st.fixed_dictionaries(
            {"id": st.text(max_size=40), "object": st.just("event"), "type": st.sampled_from(TYPES) | JSON_VALUES},
            optional={"data": data, "livemode": JSON_VALUES},
        )
        | JSON_VALUES
    )


def test_a_signed_stripe_event_never_fails_and_moves_only_the_pending_card(
    seeded: tuple[Stack, StripeStandIn, dict[str, str]],
) -> None:
    stack, standin, cards = seeded
    table = TableState(stack)
    start = table.items()

    @settings(SETTINGS, max_examples=EXPLORED_EVENTS)
    @given(signed=stripe_events(cards))
    def each(signed: Any) -> None:
        table.restore(start)
        payload, signature = standin.signed(signed)
        # When Stripe delivers it, signed with the endpoint's secret
        answer = stack.api("POST", STRIPE_WEBHOOK_PATH, payload, {"Stripe-Signature": signature})
        event(f"{answer.status} applied={answer.body.get('applied') if answer.status == 200 else '-'}")
        # Then it is acknowledged, or refused with the contract's body; never a 5xx
        assert answer.status == 200 or 400 <= answer.status < 500, answer.body
        if answer.status != 200:
            assert set(answer.body) == {"error"} and {"code", "message"} <= set(answer.body["error"])
        else:
            assert set(answer.body) == {"received", "applied"}
        # And the paid card keeps its credits, and the pending one is pending, paid once, or voided
        wallet = stack.api("GET", "/wallets/acme").body
        states = {c["cardId"]: c["status"] for c in wallet["cards"]}
        assert states.get(cards["paid"]) == "active"
        pending = states.get(cards["pending"], "voided")
        expected = {"pending": "100", "active": "150", "voided": "100"}[pending]
        assert wallet["balance"] == expected, (pending, wallet["balance"])
        assert Decimal(wallet["totals"]["credits"]) == Decimal(150)

    each()
