"""Dashboard tokens: issued for existing wallets only, for 60 s to 24 h; opened only when genuine and unexpired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prepaid.application.dashboard import DashboardLinks, dashboard_signer
from prepaid.application.signing import Signer
from prepaid.domain.errors import InvalidRequest, InvalidToken, TokenExpired, TokenMissing, WalletNotFound
from prepaid.edge.links import public_base_url

KEY = b"k" * 32
START = datetime(2026, 11, 24, 10, 0, 0, 250_000, tzinfo=UTC)


class Wallets:
    def exists(self, customer_id: str) -> bool:
        return customer_id == "acme"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def links(clock: Clock | None = None, key: bytes = KEY) -> DashboardLinks:
    return DashboardLinks(Wallets(), lambda: dashboard_signer(key), clock or Clock())


def test_a_link_opens_until_its_expiry_and_not_at_it() -> None:
    # Given a link issued for 15 minutes
    clock = Clock()
    issued = links(clock).issue("acme", 900)
    # Then it names the wallet and expires 900 s after the whole second it was issued in
    assert issued.expires_at == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    # And it opens up to the last instant before its expiry
    clock.now = issued.expires_at - timedelta(microseconds=1)
    assert links(clock).open(issued.token).customer_id == "acme"
    # And at its expiry it is refused as expired, saying when
    clock.now = issued.expires_at
    with pytest.raises(TokenExpired) as refused:
        links(clock).open(issued.token)
    assert refused.value.expired_at == "2026-11-24T10:15:00Z"


@pytest.mark.parametrize("ttl", [0, 59, 86_401, -1])
def test_a_lifetime_outside_a_minute_to_a_day_is_refused(ttl: int) -> None:
    with pytest.raises(InvalidRequest):
        links().issue("acme", ttl)


def test_a_link_needs_an_existing_wallet() -> None:
    with pytest.raises(WalletNotFound):
        links().issue("globex")


@pytest.mark.parametrize(
    "payload",
    [
        {"customerId": "acme"},  # no expiry
        {"customerId": "acme", "exp": True},
        {"customerId": "acme", "exp": "1795515300"},
        {"customerId": "../globex", "exp": 1895515300},
        {"customerId": 7, "exp": 1895515300},
        {"exp": 1895515300},
        {"customerId": "acme", "exp": 10**30},
    ],
)
def test_a_signed_payload_of_the_wrong_shape_is_refused(payload: dict[str, Any]) -> None:
    token = dashboard_signer(KEY).seal(payload)
    with pytest.raises(InvalidToken):
        links().open(token)


def test_tokens_of_another_key_or_purpose_are_refused() -> None:
    genuine = {"customerId": "acme", "exp": int((START + timedelta(minutes=5)).timestamp())}
    for token in (
        Signer(b"x" * 32, "dashboard").seal(genuine),
        Signer(KEY, "ledger-cursor").seal(genuine),
        "garbage",
        "a" * 2000,
    ):
        with pytest.raises(InvalidToken):
            links().open(token)


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_refused_as_missing(token: str | None) -> None:
    with pytest.raises(TokenMissing):
        links().open(token)


def event(headers: dict[str, str], path: str = "/wallets/acme/dashboard-links", context_path: str = "") -> Any:
    return {"headers": headers, "path": path, "requestContext": {"path": context_path or f"/v1{path}", "stage": "v1"}}


def test_the_base_url_follows_the_request() -> None:
    # API Gateway's execute-api host: the stage prefix
    aws = event({"host": "abc.execute-api.eu-west-1.amazonaws.com", "x-forwarded-proto": "https"})
    assert public_base_url(aws) == "https://abc.execute-api.eu-west-1.amazonaws.com/v1"
    # the local stand-in (no X-Forwarded-Proto): plain HTTP, routes at the root
    assert public_base_url(event({"Host": "127.0.0.1:3000"})) == "http://127.0.0.1:3000"
    # a Host that is not a host name is refused, not echoed into a link
    with pytest.raises(InvalidRequest):
        public_base_url(event({"Host": "evil.example/phish?x="}))
