"""GET /wallets/{customerId}/usage: usage and credits per meter in hour or day buckets, late events included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prepaid_local.stack import Stack
from support.usage import RATE_CARD, Queues, fund, usage_event

HOUR = timedelta(hours=1)


def z(instant: datetime) -> str:
    """ISO 8601 with a `Z`: a `+` in a query string would read as a space."""
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(hour: datetime, minutes: int) -> str:
    return z(hour + timedelta(minutes=minutes))


def series(stack: Stack, customer: str, query: str) -> dict[str, Any]:
    answer = stack.api("GET", f"/wallets/{customer}/usage", query=query)
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def draw(stack: Stack, events: list[dict[str, Any]]) -> None:
    Queues(stack).send_usage({"events": events})
    stack.pump_queues()


def test_hour_buckets_count_every_event_once_including_late_ones(stack: Stack) -> None:
    # Given a funded wallet and three hours ago as the first hour
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "1000")
    h0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR

    # When usage arrives for h0, then h0+1 (closing h0), then h0+2, then late usage for h0 and h0+1
    draw(stack, [usage_event("a", "acme", "2", at=at(h0, 5)), usage_event("b", "acme", "1", "storage_gb", at(h0, 50))])
    draw(stack, [usage_event("c", "acme", "4", at=at(h0 + HOUR, 1))])
    draw(stack, [usage_event("d", "acme", "6", at=at(h0 + 2 * HOUR, 30))])
    draw(stack, [usage_event("e", "acme", "8", at=at(h0, 59)), usage_event("f", "acme", "10", at=at(h0 + HOUR, 2))])
    # (and a replay of one of them changes nothing)
    draw(stack, [usage_event("e", "acme", "8", at=at(h0, 59))])

    # Then each hour holds exactly its events, whether it was open, closed, or added to late
    body = series(stack, "acme", f"from={z(h0)}&to={z(h0 + 4 * HOUR)}")
    calls = next(m for m in body["meters"] if m["meter"] == "api_calls")
    assert [(b["quantity"], b["credits"], b["events"]) for b in calls["buckets"]] == [
        ("10", "5", 2),
        ("14", "7", 2),
        ("6", "3", 1),
        ("0", "0", 0),
    ]
    assert (calls["quantity"], calls["credits"], calls["events"]) == ("30", "15", 5)
    storage = next(m for m in body["meters"] if m["meter"] == "storage_gb")
    assert [b["credits"] for b in storage["buckets"]] == ["2", "0", "0", "0"]
    # And the credits agree with what the wallet says was rated
    wallet = stack.api("GET", "/wallets/acme").body
    assert Decimal(wallet["totals"]["rated"]) == Decimal(calls["credits"]) + Decimal(storage["credits"])


def test_day_buckets_meter_filter_and_defaults(stack: Stack) -> None:
    # Given usage in the current hour
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    fund(stack, "acme", "1000")
    draw(stack, [usage_event("a", "acme", "2"), usage_event("b", "acme", "3", "storage_gb")])

    # When read by day for one meter, and with no parameters at all
    by_day = series(stack, "acme", "granularity=day&meter=storage_gb")
    default = series(stack, "acme", "")

    # Then the day series has 30 buckets ending with today's, for that meter only
    assert by_day["granularity"] == "day" and [m["meter"] for m in by_day["meters"]] == ["storage_gb"]
    assert len(by_day["meters"][0]["buckets"]) == 30
    assert by_day["meters"][0]["buckets"][-1]["credits"] == "6"
    assert by_day["from"].endswith("T00:00:00Z") and by_day["to"].endswith("T00:00:00Z")
    # And the default is the last 24 hours by hour, both meters, this hour last
    assert default["granularity"] == "hour" and len(default["meters"][0]["buckets"]) == 24
    assert {m["meter"]: m["buckets"][-1]["credits"] for m in default["meters"]} == {"api_calls": "1", "storage_gb": "6"}


def test_bad_queries_and_unknown_wallets(stack: Stack) -> None:
    fund(stack, "acme", "10")
    answers = {
        "granularity": stack.api("GET", "/wallets/acme/usage", query="granularity=week"),
        "window": stack.api("GET", "/wallets/acme/usage", query="from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
        "too long": stack.api("GET", "/wallets/acme/usage", query="from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"),
        "meter": stack.api("GET", "/wallets/acme/usage", query="meter=%20bad"),
        "unknown": stack.api("GET", "/wallets/nobody/usage"),
    }
    assert {k: (a.status, a.body["error"]["code"]) for k, a in answers.items()} == {
        "granularity": (422, "validation_error"),
        "window": (422, "invalid_request"),
        "too long": (422, "invalid_request"),
        "meter": (422, "validation_error"),
        "unknown": (404, "wallet_not_found"),
    }
