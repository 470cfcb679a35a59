"""The customer dashboard through the whole template: links from the IAM API, the page and its data without IAM.

The token is the only credential of `GET /dashboard` and `GET /dashboard/data`: it names one wallet and expires.
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from prepaid.application.signing import Signer
from prepaid_demo.catalog import DEMO_PRICE_BOOK
from prepaid_local.apigateway import ApiAnswer, proxy_event
from prepaid_local.stack import Stack
from support.aws import REGION
from support.usage import RATE_CARD, Queues, usage_event

HOST = {"Host": "127.0.0.1:3000"}  # as the local server passes the client's Host header on


def seal(stack: Stack, payload: dict[str, Any], purpose: str = "dashboard") -> str:
    """A token signed with the stack's own signing secret, as the service would sign it."""
    arn = stack.name("SigningSecret")
    key = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=arn)["SecretString"]
    return Signer(key.encode(), purpose).seal(payload)


def link(stack: Stack, customer: str, body: Any = None) -> dict[str, Any]:
    answer = stack.api("POST", f"/wallets/{customer}/dashboard-links", body, headers=HOST)
    assert answer.status == 201, answer.body
    created: dict[str, Any] = answer.body
    return created


def data(stack: Stack, token: str) -> ApiAnswer:
    return stack.api("GET", "/dashboard/data", headers={"Authorization": f"Bearer {token}"})


def page(stack: Stack) -> ApiAnswer:
    return stack.api("GET", "/dashboard")


def z(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def with_usage(stack: Stack) -> None:
    """acme and globex, each with a card expiring in 20 days and 10 days of usage behind them."""
    assert stack.api("PUT", "/price-book", DEMO_PRICE_BOOK).status == 200
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    price = {"amount": "10.00", "currency": "USD"}
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lifetime = {"effectiveAt": z(midnight - timedelta(days=30)), "expiresAt": z(midnight + timedelta(days=20))}
    for customer, credits in (("acme", "1000"), ("globex", "777")):
        bought = stack.api("POST", f"/wallets/{customer}/purchases", {"credits": credits, "price": price, **lifetime})
        assert bought.status == 201, bought.body
    events = []
    for ago in range(1, 11):
        at = z(midnight - timedelta(days=ago) + timedelta(hours=12))
        events.append(usage_event(f"acme-{ago}", "acme", "20", at=at))
        events.append(usage_event(f"acme-gb-{ago}", "acme", "1", "storage_gb", at))
        events.append(usage_event(f"globex-{ago}", "globex", "3", at=at))
    Queues(stack).send_usage({"events": events})
    stack.pump_queues()


def test_a_link_opens_its_wallets_page_and_data(stack: Stack) -> None:
    # Given two customers with cards and usage
    with_usage(stack)

    # When the SaaS backend asks for a link to acme's dashboard
    created = link(stack, "acme")

    # Then it gets a URL on the API's own host, carrying a token valid for 15 minutes
    token = created["token"]
    assert created["url"] == f"http://127.0.0.1:3000/dashboard#token={token}"  # a fragment: never sent, never logged
    expires = datetime.fromisoformat(created["expiresAt"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - 900) < 5

    # And the page opens without IAM (and without the token, which stays in the browser): self-contained HTML,
    # not cached, no referrer, scripts only by hash
    opened = page(stack)
    assert opened.status == 200
    assert opened.headers["Content-Type"].startswith("text/html")
    assert opened.headers["Cache-Control"] == "no-store"
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    policy = opened.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", policy)
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    # nothing comes from anywhere else: the only absolute URL in the page is the SVG namespace
    assert set(re.findall(r"https?://[^\s\"')]+", opened.body)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", opened.body)

    # And its data is acme's wallet, usage and forecast, as the IAM API shows them
    answer = data(stack, token)
    assert answer.status == 200, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.body
    wallet = stack.api("GET", "/wallets/acme").body
    assert body["customerId"] == "acme"
    assert body["linkExpiresAt"] == created["expiresAt"]
    assert {k: v for k, v in body["wallet"].items() if k != "asOf"} == {
        k: wallet[k]
        for k in ("customerId", "balance", "available", "availableByMeter", "overage", "cards", "nextExpiry", "totals")
    }
    assert "settings" not in body["wallet"]  # the SaaS's webhook URL and recharge policy are not the customer's
    usage = stack.api("GET", "/wallets/acme/usage", query="granularity=day").body
    assert body["usage"] == usage
    assert [m["meter"] for m in body["usage"]["meters"]] == ["api_calls", "storage_gb"]
    assert len(body["usage"]["meters"][0]["buckets"]) == 30  # the last 30 days, today included
    forecast = stack.api("GET", "/wallets/acme/forecast", query="horizonDays=30").body
    assert (
        body["forecast"]["burnRate"]
        == forecast["burnRate"]
        == {
            "creditsPerDay": "12",
            "weekdayFactors": None,
            "daysOfHistory": 10,
        }
    )
    assert body["forecast"]["balance"] == wallet["balance"] == "880"
    assert len(body["forecast"]["days"]) == 31
    # the card expires in 20 days with credits left: the purchase covers the last 10 days, priced from the book
    recommended = body["forecast"]["recommendedPurchase"]
    assert recommended is not None
    quote = stack.api("GET", "/quotes", query=f"credits={recommended['credits']}").body
    assert recommended["price"] == quote["price"]

    # And the token is taken from the Authorization header only, never from a URL (access logs, histories)
    in_the_url = stack.api("GET", "/dashboard/data", query=f"token={token}")
    assert (in_the_url.status, in_the_url.body["error"]["code"]) == (401, "token_missing")


def test_a_token_for_acme_never_shows_globex(stack: Stack) -> None:
    # Given both customers, and a link for acme
    with_usage(stack)
    token = link(stack, "acme")["token"]
    globex_card = stack.api("GET", "/wallets/globex").body["cards"][0]["cardId"]

    # When the page's routes are asked, in every way a request could name another customer
    attempts = [
        stack.api("GET", "/dashboard/data", headers={"Authorization": f"Bearer {token}"}, query="customerId=globex"),
        stack.api("GET", "/dashboard/data", headers={"Authorization": f"Bearer {token}", "X-Customer-Id": "globex"}),
        stack.api(
            "GET",
            "/dashboard/data",
            headers={"Authorization": f"Bearer {token}"},
            query="customerId=globex&customer=globex&token=x",
        ),
    ]
    # Then each answer is acme's, with nothing of globex in it
    for answer in attempts:
        assert answer.status == 200, answer.body
        assert answer.body["customerId"] == answer.body["wallet"]["customerId"] == "acme"
        text = json.dumps(answer.body)
        assert "globex" not in text
        assert globex_card not in text
    # And there is no route that takes a customer: anything else under the dashboard is not served
    assert stack.api("GET", "/dashboard/globex", headers={"Authorization": f"Bearer {token}"}).status == 404

    # And acme's token with its customer rewritten to globex (signature kept) is refused as forged
    body, _, mac = token.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["customerId"] = "globex"
    forged_body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    forged = data(stack, f"{forged_body}.{mac}")
    assert (forged.status, forged.body["error"]["code"]) == (403, "invalid_token")


def altered(token: str) -> str:
    """One character of the token's body (the signed payload) changed."""
    body, _, mac = token.partition(".")
    index = len(body) // 2
    swapped = "A" if body[index] != "A" else "B"
    return f"{body[:index]}{swapped}{body[index + 1 :]}.{mac}"


def test_an_altered_or_forged_token_is_refused_with_403(stack: Stack) -> None:
    # Given a wallet and a genuine link
    with_usage(stack)
    token = link(stack, "acme")["token"]
    assert data(stack, token).status == 200
    # When the token is altered, signed with another key, or signed by us for another purpose
    other_key = Signer(b"k" * 64, "dashboard").seal({"customerId": "acme", "exp": int(time.time()) + 600})
    cursor = seal(stack, {"customerId": "acme", "exp": int(time.time()) + 600}, purpose="ledger-cursor")
    for bad in (altered(token), other_key, cursor, "not-a-token", token + "x", "a" * 5000):
        # Then the data is refused as 403 invalid_token, with nothing of the wallet
        answer = data(stack, bad)
        assert (answer.status, answer.body) == (
            403,
            {"error": {"code": "invalid_token", "message": "the dashboard token is not valid"}},
        ), bad


def test_an_expired_token_is_refused_with_401(stack: Stack) -> None:
    # Given a wallet, and a token that the service signed but whose expiry has passed
    with_usage(stack)
    expired_at = int(time.time()) - 1
    token = seal(stack, {"customerId": "acme", "exp": expired_at})
    # When it is used
    answer = data(stack, token)
    # Then it is refused as expired, with a Bearer challenge
    assert answer.status == 401
    assert answer.body["error"]["code"] == "token_expired"
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="dashboard"')
    # And an altered expired token is forged, not expired: the signature is checked first
    assert data(stack, altered(token)).status == 403


def test_a_missing_token_is_refused_with_401(stack: Stack) -> None:
    missing = stack.api("GET", "/dashboard/data")
    assert (missing.status, missing.body["error"]["code"]) == (401, "token_missing")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="dashboard"'
    assert stack.api("GET", "/dashboard/data", headers={"Authorization": "Basic YWNtZTo="}).status == 401


def test_links_need_an_existing_wallet_and_a_sane_lifetime(stack: Stack) -> None:
    # Given a wallet
    price = {"amount": "0", "currency": "USD"}
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "1", "price": price}).status == 201
    # Then a link for a customer without a wallet is 404
    unknown = stack.api("POST", "/wallets/nobody/dashboard-links", headers=HOST)
    assert (unknown.status, unknown.body["error"]["code"]) == (404, "wallet_not_found")
    # And a lifetime outside 60 s .. 24 h, or not an integer, is 422
    for ttl in (0, 59, 86_401, "900", 900.5, True, None):
        answer = stack.api("POST", "/wallets/acme/dashboard-links", {"ttlSeconds": ttl}, headers=HOST)
        assert (answer.status, answer.body["error"]["code"]) == (422, "validation_error"), ttl
    assert stack.api("POST", "/wallets/acme/dashboard-links", {"ttl": 60}, headers=HOST).status == 422
    # And the bounds themselves are accepted, the expiry following the lifetime
    for ttl in (60, 86_400):
        created = link(stack, "acme", {"ttlSeconds": ttl})
        left = (datetime.fromisoformat(created["expiresAt"]) - datetime.now(UTC)).total_seconds()
        assert ttl - 5 < left <= ttl
        assert data(stack, created["token"]).status == 200


@pytest.mark.parametrize(
    ("headers", "context_path", "expected"),
    [
        # the execute-api host: the stage is in front of the route
        (
            {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "X-Forwarded-Proto": "https"},
            "/v1/wallets/acme/dashboard-links",
            "https://abc123.execute-api.us-east-1.amazonaws.com/v1/dashboard#token=",
        ),
        # a custom domain with a base path mapping
        (
            {"Host": "credits.example.com", "X-Forwarded-Proto": "https"},
            "/billing/wallets/acme/dashboard-links",
            "https://credits.example.com/billing/dashboard#token=",
        ),
        # a custom domain mapped at its root
        (
            {"Host": "credits.example.com", "X-Forwarded-Proto": "https"},
            "/wallets/acme/dashboard-links",
            "https://credits.example.com/dashboard#token=",
        ),
    ],
)
def test_the_link_is_on_the_host_and_prefix_the_request_came_through(
    stack: Stack, headers: dict[str, str], context_path: str, expected: str
) -> None:
    # Given a wallet, and a request as API Gateway passes it on from that host
    price = {"amount": "0", "currency": "USD"}
    assert stack.api("POST", "/wallets/acme/purchases", {"credits": "1", "price": price}).status == 201
    route = stack.gateway.route("POST", "/wallets/acme/dashboard-links")
    assert route is not None
    event = proxy_event("POST", route[0], "/wallets/acme/dashboard-links", route[1], headers=headers)
    event["requestContext"]["path"] = context_path
    # When the link is made
    answer = stack.invoke("ApiFunction", event)
    # Then its URL is where the customer's browser reaches the same API
    assert answer["statusCode"] == 201, answer
    assert json.loads(answer["body"])["url"].startswith(expected)
