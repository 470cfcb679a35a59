from prepaid_local.stack import Stack
from support.aws import BusTap


def test_purchase_then_read(stack: Stack, bus: BusTap) -> None:
    # Given a price book
    book = {"currency": "USD", "tiers": [{"upTo": "9999", "unitPrice": "0.010"}, {"upTo": None, "unitPrice": "0.008"}]}
    assert stack.api("PUT", "/price-book", book).status == 200
    # When a customer buys credits without giving a price
    answer = stack.api("POST", "/wallets/acme/purchases", {"credits": "10000"}, {"Idempotency-Key": "k1"})
    # Then the card is priced from the book and the wallet shows it
    assert answer.status == 201, answer.body
    assert answer.body["card"]["price"] == {"amount": "80.00", "currency": "USD"}
    wallet = stack.api("GET", "/wallets/acme")
    assert wallet.body["balance"] == "10000"
    assert stack.pump_streams() == 2  # the outbox item to the publisher, the ledger entry to the revenue projection
    assert [e["detail"]["customerId"] for e in bus.of_type("Credits Purchased")] == ["acme"]
