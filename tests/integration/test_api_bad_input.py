"""Bad input gets the right 4xx, a clear message in the contract's error body, and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from prepaid import assembly
from prepaid_local.stack import Stack
from support.aws import REGION

PAST = "2020-01-01T00:00:00Z"
LONG_ID = "a" * 129


def _items(stack: Stack) -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.name("WalletTable"))["Items"]


@pytest.fixture
def funded(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A wallet `acme` with one card, on a stack that refuses plain-http webhooks to this machine as the deployed
    template does (the local stack and the other tests allow them, for their receivers on 127.0.0.1)."""
    monkeypatch.setenv("WEBHOOK_ALLOW_LOCAL_HTTP", "0")
    stack.cold_start()
    answer = stack.api(
        "POST", "/wallets/acme/purchases", {"credits": "100", "price": {"amount": "1", "currency": "USD"}}
    )
    assert answer.status == 201
    return stack


def purchase(body: Any, **kw: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/wallets/acme/purchases", "body": body, **kw}


def settings_with(url: str) -> dict[str, Any]:
    return {"method": "PUT", "path": "/wallets/acme/settings", "body": {"webhookUrl": url}}


CASES: dict[str, tuple[dict[str, Any], int, str]] = {
    "negative credits": (purchase({"credits": "-5"}), 422, "invalid_amount"),
    "zero credits": (purchase({"credits": "0"}), 422, "invalid_amount"),
    "huge credits": (purchase({"credits": "10000000000000"}), 422, "invalid_amount"),
    "NaN credits": (purchase({"credits": "NaN"}), 422, "validation_error"),
    "infinite credits": (purchase({"credits": "Infinity"}), 422, "validation_error"),
    "float-typed credits": (purchase({"credits": 10.5}), 422, "validation_error"),
    "boolean credits": (purchase({"credits": True}), 422, "validation_error"),
    "credits finer than 1e-9": (purchase({"credits": "0.0000000001"}), 422, "invalid_amount"),
    "credits not a number": (purchase({"credits": "lots"}), 422, "validation_error"),
    "missing credits": (purchase({}), 422, "validation_error"),
    "body is a list": (purchase([{"credits": "1"}]), 422, "validation_error"),
    "lowercase currency": (purchase({"credits": "1", "price": {"amount": "1", "currency": "usd"}}), 422, "validation_error"),
    "unsupported currency": (purchase({"credits": "1", "price": {"amount": "1", "currency": "XYZ"}}), 422, "unsupported_currency"),
    "negative price": (purchase({"credits": "1", "price": {"amount": "-1", "currency": "USD"}}), 422, "invalid_amount"),
    "price finer than a cent": (purchase({"credits": "1", "price": {"amount": "1.001", "currency": "USD"}}), 422, "invalid_amount"),
    "expiry not a date": (purchase({"credits": "1", "expiresAt": "tomorrow"}), 422, "validation_error"),
    "expiry without zone": (purchase({"credits": "1", "expiresAt": "2030-01-01T00:00:00"}), 422, "validation_error"),
    "expiry as epoch number": (purchase({"credits": "1", "expiresAt": 1900000000}), 422, "validation_error"),
    "expiry in the past": (purchase({"credits": "1", "expiresAt": PAST}), 422, "invalid_request"),
    "negative duration": (purchase({"credits": "1", "expiresIn": "-P1D"}), 422, "validation_error"),
    "both expiry forms": (purchase({"credits": "1", "expiresAt": "2099-01-01T00:00:00Z", "expiresIn": "P1D"}), 422, "invalid_request"),
    "expiry before effective": (purchase({"credits": "1", "effectiveAt": "2099-02-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z"}), 422, "invalid_request"),
    "unknown field": (purchase({"credits": "1", "bonus": "5"}), 422, "validation_error"),
    "priority as text": (purchase({"credits": "1", "priority": "high"}), 422, "validation_error"),
    "priority above 100": (purchase({"credits": "1", "priority": 101}), 422, "validation_error"),
    "unknown source": (purchase({"credits": "1", "source": "gift"}), 422, "validation_error"),
    "malformed JSON": (purchase('{"credits": "1"'), 400, "malformed_json"),
    "form body": (purchase("credits=1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type"),
    "no body, typed */*": (purchase(None, headers={"Content-Type": "*/*"}), 415, "unsupported_media_type"),
    "no body, typed text/plain": (purchase(None, headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
    "oversize body": (purchase({"credits": "1", "pad": "x" * 70_000}), 413, "payload_too_large"),
    "customer id starting with a dash": ({"method": "POST", "path": "/wallets/-acme/purchases", "body": {"credits": "1"}}, 422, "validation_error"),
    "customer id too long": ({"method": "POST", "path": f"/wallets/{LONG_ID}/purchases", "body": {"credits": "1"}}, 422, "validation_error"),
    "no price and no price book": (purchase({"credits": "1"}), 409, "price_book_missing"),
    "unknown wallet": ({"method": "GET", "path": "/wallets/nobody"}, 404, "wallet_not_found"),
    "unknown card": ({"method": "POST", "path": "/wallets/acme/cards/nope/void"}, 404, "card_not_found"),
    "void in unknown wallet": ({"method": "POST", "path": "/wallets/nobody/cards/nope/void"}, 404, "wallet_not_found"),
    "quote not a number": ({"method": "GET", "path": "/quotes", "query": "credits=abc"}, 422, "validation_error"),
    "quote without book": ({"method": "GET", "path": "/quotes", "query": "credits=10"}, 409, "price_book_missing"),
    "negative threshold": ({"method": "PUT", "path": "/wallets/acme/settings", "body": {"thresholds": ["-1"]}}, 422, "invalid_amount"),
    "plain-http webhook": ({"method": "PUT", "path": "/wallets/acme/settings", "body": {"webhookUrl": "http://example.com/h"}}, 422, "invalid_request"),
    "day of month 32": ({"method": "PUT", "path": "/wallets/acme/settings", "body": {"recurring": {"credits": "1", "dayOfMonth": 32}}}, 422, "validation_error"),
    "fullwidth digits": (purchase({"credits": "\uff11\uff10"}), 422, "validation_error"),
    "digits with an underscore": (purchase({"credits": "1_000"}), 422, "validation_error"),
    "digits with spaces": (purchase({"credits": " 5 "}), 422, "validation_error"),
    "an exponent": (purchase({"credits": "1e3"}), 422, "validation_error"),
    "credits as a JSON integer": (purchase({"credits": 10}), 422, "validation_error"),
    "41 digits": (purchase({"credits": "1" * 41}), 422, "validation_error"),
    "a duplicated key": (purchase('{"credits": "10", "credits": "20"}'), 400, "duplicate_key"),
    "a NaN literal": (purchase('{"credits": NaN}'), 400, "malformed_json"),
    "30,000 levels of nesting": (purchase('{"credits": ' + "[" * 30_000 + "]" * 30_000 + "}"), 400, "json_too_deep"),
    "effective in year 9999 with a duration": (purchase({"credits": "1", "effectiveAt": "9999-12-31T00:00:00Z", "expiresIn": "P1D"}), 422, "validation_error"),
    "expiring in a thousand years": (purchase({"credits": "1", "expiresIn": "P365000D"}), 422, "validation_error"),
    "expiry before 1970": (purchase({"credits": "1", "effectiveAt": "1969-01-01T00:00:00Z"}), 422, "validation_error"),
    "price of 41 digits": (purchase({"credits": "1", "price": {"amount": "9" * 41, "currency": "USD"}}), 422, "validation_error"),
    "threshold with an exponent": ({"method": "PUT", "path": "/wallets/acme/settings", "body": {"thresholds": ["1e3"]}}, 422, "validation_error"),
    "a 41-digit rate": ({"method": "PUT", "path": "/rate-card", "body": {"meters": {"m": {"creditsPerUnit": "1" * 41}}}}, 422, "validation_error"),
    "a rate above 10^12": ({"method": "PUT", "path": "/rate-card", "body": {"meters": {"m": {"creditsPerUnit": "1" + "0" * 13}}}}, 422, "invalid_amount"),
    "a rate of 19 fractional digits": ({"method": "PUT", "path": "/rate-card", "body": {"meters": {"m": {"creditsPerUnit": "0." + "0" * 18 + "1"}}}}, 422, "invalid_amount"),
    "a unit price of 10^7": ({"method": "PUT", "path": "/price-book", "body": {"currency": "USD", "tiers": [{"upTo": None, "unitPrice": "10000000"}]}}, 422, "invalid_request"),
    "webhook to the metadata service": (settings_with("https://169.254.169.254/latest/meta-data/"), 422, "invalid_request"),
    "webhook to a private address": (settings_with("https://10.0.0.5:8443/"), 422, "invalid_request"),
    "webhook to a home router": (settings_with("https://192.168.1.1/"), 422, "invalid_request"),
    "webhook to a mapped address": (settings_with("https://[::ffff:169.254.169.254]/"), 422, "invalid_request"),
    "webhook to an internal name": (settings_with("https://metadata.google.internal/"), 422, "invalid_request"),
    "webhook to the Lambda runtime API": (settings_with("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next"), 422, "invalid_request"),
    "webhook to ssh on localhost": (settings_with("http://localhost:22/"), 422, "invalid_request"),
    "webhook with credentials": (settings_with("https://user:pass@example.com/"), 422, "invalid_request"),
    "webhook to a decimal IP": (settings_with("https://2130706433/"), 422, "invalid_request"),
    "tiers not ascending": ({"method": "PUT", "path": "/price-book", "body": {"currency": "USD", "tiers": [{"upTo": "10", "unitPrice": "1"}, {"upTo": "5", "unitPrice": "1"}, {"upTo": None, "unitPrice": "1"}]}}, 422, "invalid_request"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_refused_and_writes_nothing(funded: Stack, case: str) -> None:
    request, status, code = CASES[case]
    # Given the state before the request
    before = _items(funded)
    # When the bad request is sent
    answer = funded.api(
        request["method"], request["path"], request.get("body"), request.get("headers"), request.get("query", "")
    )
    # Then the status and the error code are the contract's, with a message a person can act on
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    assert len(answer.body["error"]["message"]) > 10
    # And nothing was written
    assert _items(funded) == before


def test_a_json_media_type_in_capitals_is_json(stack: Stack) -> None:
    # Given a purchase declared as APPLICATION/JSON (media types are case-insensitive)
    headers = {"Content-Type": "APPLICATION/JSON; charset=UTF-8"}
    # When it is sent, then it buys the card, as in lower case
    body = {"credits": "5", "price": {"amount": "0.05", "currency": "USD"}}
    answer = stack.api("POST", "/wallets/acme/purchases", body, headers)
    assert answer.status == 201, answer.body


def test_validation_errors_name_the_field(stack: Stack) -> None:
    answer = stack.api("POST", "/wallets/acme/purchases", {"credits": 10.5})
    assert answer.body["error"]["details"][0]["field"] == "body.credits"
    assert "credits" in answer.body["error"]["message"]


def test_unexpected_failure_is_a_500_without_internals(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a storage fault the domain knows nothing about
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret table name leaked?")

    monkeypatch.setattr(assembly.wallet_service(), "wallet", broken)
    # When a wallet is read
    answer = stack.api("GET", "/wallets/acme")
    # Then the answer is a 500 that carries no internals
    assert answer.status == 500
    assert answer.body == {"error": {"code": "internal_error", "message": "internal error; it has been logged"}}
    assert "secret" not in json.dumps(answer.body)
