"""Purchases through the API: pricing, idempotency, settings and the events they report."""

from __future__ import annotations

from decimal import Decimal

import pytest

from prepaid import assembly
from prepaid.adapters import dynamodb
from prepaid.application.wallets import PurchaseRequest
from prepaid.domain.money import Money
from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_local.apigateway import Gateway
from prepaid_local.stack import Stack
from support.aws import BusTap
from support.environments import Environment, moto_server, run_environments

BOOK = DEMO_PRICE_BOOK  # the contract's example tiers


def test_quote_then_purchase_at_the_quoted_price(stack: Stack) -> None:
    # Given the contract's price book
    assert stack.api("PUT", "/price-book", BOOK).body["version"] == 1
    # When 25,000 credits are quoted and bought without a price
    quote = stack.api("GET", "/quotes", query="credits=25000").body
    bought = stack.api("POST", "/wallets/acme/purchases", {"credits": "25000"})
    # Then both use the second tier for every credit
    assert quote["price"] == {"amount": "225.00", "currency": "USD"}
    assert quote["tier"] == {"index": 1, "upTo": "99999"}
    assert bought.status == 201
    assert bought.body["card"]["price"] == quote["price"]
    assert bought.body["card"]["costBasis"] == "0.009"
    assert bought.body["balance"] == "25000"


def test_replay_returns_the_first_answer_and_another_body_conflicts(stack: Stack) -> None:
    body = {"credits": "100", "price": {"amount": "1.00", "currency": "USD"}}
    first = stack.api("POST", "/wallets/acme/purchases", body, {"Idempotency-Key": "order-7"})
    # When the same request comes again, with keys in another order
    replay = stack.api(
        "POST", "/wallets/acme/purchases", {"price": {"currency": "USD", "amount": "1.00"}, "credits": "100"},
        {"Idempotency-Key": "order-7"},
    )  # fmt: skip
    # Then it answers exactly the first answer and buys nothing more
    assert replay.status == 201
    assert replay.body == first.body
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert stack.api("GET", "/wallets/acme").body["balance"] == "100"
    # And the same key with another body is a conflict with a clear code
    other = stack.api(
        "POST", "/wallets/acme/purchases", {"credits": "5", "price": body["price"]}, {"Idempotency-Key": "order-7"}
    )
    assert other.status == 409
    assert other.body["error"]["code"] == "idempotency_key_reused"


def _buy_with_key(n: int, gateway: Gateway) -> int:
    body = {"credits": "100", "price": {"amount": "1.00", "currency": "USD"}}
    return gateway.request("POST", "/wallets/acme/purchases", body, {"Idempotency-Key": "same"}).status


def test_concurrent_requests_with_one_key_buy_once() -> None:
    # Given six execution environments sending the same purchase with one idempotency key at once
    with moto_server() as server:
        statuses = run_environments(6, Environment.of(server), _buy_with_key)
        # Then all answer 201 and the wallet holds one card
        assert statuses == [201] * 6
        wallet = server.stack.api("GET", "/wallets/acme").body
        assert (wallet["balance"], len(wallet["cards"])) == ("100", 1)


def test_purchase_lifting_the_balance_over_a_threshold_reports_recovery(stack: Stack, bus: BusTap) -> None:
    # Given a wallet with thresholds, whose balance is below both
    settings = {"thresholds": ["1000", "100"], "webhookUrl": "https://hooks.example.com/credits"}
    assert stack.api("PUT", "/wallets/acme/settings", settings).status == 200
    price = {"amount": "0", "currency": "USD"}
    stack.api("POST", "/wallets/acme/purchases", {"credits": "50", "price": price, "source": "promotion"})
    # When a purchase lifts it to 500
    stack.api("POST", "/wallets/acme/purchases", {"credits": "450", "price": price})
    stack.pump_streams()
    # Then Balance Recovered is reported for the threshold crossed, with the balance
    recovered = bus.of_type("Balance Recovered")
    assert [(e["detail"]["threshold"], e["detail"]["balance"]) for e in recovered] == [("100", "500")]
    assert len(bus.of_type("Credits Purchased")) == 2
    wallet = stack.api("GET", "/wallets/acme").body
    assert wallet["settings"]["thresholds"] == ["100", "1000"]
    assert wallet["settings"]["webhookUrl"] == "https://hooks.example.com/credits"


def test_wallet_read_shows_cards_in_drawdown_order_with_next_expiry(stack: Stack) -> None:
    price = {"amount": "0", "currency": "USD"}
    stack.api("POST", "/wallets/acme/purchases", {"credits": "10", "price": price})
    stack.api("POST", "/wallets/acme/purchases", {"credits": "20", "price": price, "expiresIn": "P30D"})
    stack.api("POST", "/wallets/acme/purchases", {"credits": "30", "price": price, "priority": 10})
    wallet = stack.api("GET", "/wallets/acme").body
    assert [c["credits"] for c in wallet["cards"]] == ["30", "20", "10"]
    assert wallet["nextExpiry"] == wallet["cards"][1]["expiresAt"]
    assert Decimal(wallet["balance"]) == 60


def test_openapi_document_describes_the_routes(stack: Stack) -> None:
    document = stack.api("GET", "/openapi.json").body
    assert document["openapi"].startswith("3.")
    assert {"/wallets/{customerId}/purchases", "/quotes", "/price-book", "/wallets/{customerId}"} <= set(
        document["paths"]
    )
    credits = document["components"]["schemas"]["PurchaseBody"]["properties"]["credits"]
    assert credits["type"] == "string"


def test_voiding_twice_answers_the_same_and_the_card_leaves_the_wallet(stack: Stack) -> None:
    # Given a wallet with two cards
    price = {"amount": "3.00", "currency": "USD"}
    card = stack.api("POST", "/wallets/acme/purchases", {"credits": "300", "price": price}).body["card"]["cardId"]
    stack.api("POST", "/wallets/acme/purchases", {"credits": "100", "price": price})
    # When one is voided twice
    first = stack.api("POST", f"/wallets/acme/cards/{card}/void")
    again = stack.api("POST", f"/wallets/acme/cards/{card}/void")
    # Then both answers show it voided with its 300 credits, and the balance is the other card's
    assert first.status == again.status == 200
    assert first.body == again.body
    assert first.body["card"]["status"] == "voided"
    assert first.body["card"]["remaining"] == "0"
    assert first.body["balance"] == "100"
    # And the wallet lists only the live card, while its totals still account for the voided one
    wallet = stack.api("GET", "/wallets/acme").body
    assert [c["credits"] for c in wallet["cards"]] == ["100"]
    totals = {
        "credits": "400",
        "drawn": "0",
        "expired": "0",
        "voided": "300",
        "pending": "0",
        "rolledOver": "0",
        "rated": "0",
    }
    assert wallet["totals"] == totals


def test_an_invoiced_card_waits_until_activated_and_counts_once(stack: Stack) -> None:
    # Given a card bought to be invoiced by the SaaS
    body = {"credits": "100", "price": {"amount": "1.00", "currency": "USD"}, "payment": {"collect": "manual"}}
    bought = stack.api("POST", "/wallets/acme/purchases", body)
    card = bought.body["card"]
    # Then it is pending: shown in the wallet, outside the balance
    assert (bought.status, card["status"], card["payment"], bought.body["balance"]) == (
        201,
        "pending",
        body["payment"],
        "0",
    )
    wallet = stack.api("GET", "/wallets/acme").body
    assert [c["status"] for c in wallet["cards"]] == ["pending"]
    assert (wallet["balance"], wallet["totals"]["pending"]) == ("0", "100")
    # When it is activated twice
    first = stack.api("POST", f"/wallets/acme/cards/{card['cardId']}/activate")
    again = stack.api("POST", f"/wallets/acme/cards/{card['cardId']}/activate")
    # Then both answers show it active, and its credits count once
    assert first.status == again.status == 200
    assert first.body == again.body
    assert (first.body["card"]["status"], first.body["balance"]) == ("active", "100")
    entries = stack.api("GET", "/wallets/acme/ledger").body["entries"]
    assert [e["type"] for e in entries] == ["purchase", "pending"]


def test_payment_and_void_inputs_are_refused_clearly(stack: Stack) -> None:
    # Given a wallet with one paid card
    card = stack.api("POST", "/wallets/acme/purchases", {"credits": "10", "price": {"amount": "0", "currency": "USD"}})
    card_id = card.body["card"]["cardId"]
    # When Stripe is asked for in a deployment without its keys, an unknown collect, a malformed void reason,
    # and an unknown card is activated
    stripe = {"credits": "10", "payment": {"collect": "stripe", "stripeCustomer": "cus_123"}}
    answers = [
        stack.api("POST", "/wallets/acme/purchases", {**stripe, "price": {"amount": "1.00", "currency": "USD"}}),
        stack.api("POST", "/wallets/acme/purchases", {"credits": "10", "payment": {"collect": "cash"}}),
        stack.api("POST", f"/wallets/acme/cards/{card_id}/void", {"reason": "Not A Code"}),
        stack.api("POST", "/wallets/acme/cards/nope/activate"),
    ]
    # Then each is a clear 4xx and nothing changed
    assert [(a.status, a.body["error"]["code"]) for a in answers] == [
        (422, "payments_unavailable"),
        (422, "validation_error"),
        (422, "validation_error"),
        (404, "card_not_found"),
    ]
    assert stack.api("GET", "/wallets/acme").body["balance"] == "10"


class _WalletPutLost(Exception):
    """The wallet put of a commit written wallet first never happened (its page, written ahead, did)."""


class _LosesWalletPut:
    """A DynamoDB client whose `put_item` (the wallet put of a commit written wallet first) never lands."""

    def __init__(self, client: object) -> None:
        self._client = client

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    def put_item(self, **_: object) -> None:
        raise _WalletPutLost


def test_a_page_written_ahead_by_a_commit_that_died_does_not_block_the_next_transaction(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a wallet carrying one ledger entry at most, so each commit stores the one before as a page first
    monkeypatch.setattr(dynamodb, "LEDGER_TAIL_ENTRIES", 1)
    price = {"amount": "1.00", "currency": "USD"}
    for credits in ("10", "20"):
        assert stack.api("POST", "/wallets/acme/purchases", {"credits": credits, "price": price}).status == 201
    # and a purchase that stores that page, then dies before its wallet put
    store = assembly.wallet_store()
    client = store._client
    monkeypatch.setattr(store, "_client", _LosesWalletPut(client))
    with pytest.raises(_WalletPutLost):
        assembly.wallet_service().purchase("acme", PurchaseRequest(Decimal("30"), Money(Decimal("1.00"), "USD")))
    monkeypatch.setattr(store, "_client", client)
    # When a purchase with an idempotency key (one transaction, writing the same page) follows
    answer = stack.api("POST", "/wallets/acme/purchases", {"credits": "40", "price": price}, {"Idempotency-Key": "k1"})
    # Then it is bought, and the ledger lists each purchase once
    assert answer.status == 201, answer.body
    entries = stack.api("GET", "/wallets/acme/ledger").body["entries"]
    assert [e["credits"] for e in entries] == ["40", "20", "10"]
