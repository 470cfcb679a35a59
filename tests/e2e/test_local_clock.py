"""The local clock control: moving time forward makes a card's expiry schedule fire, seen only through HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from prepaid_local.server import LocalServer
from support.outside import aws, call
from support.waiting import PATIENCE_SECONDS, eventually


def wait_for(server: LocalServer, path: str, done: Any) -> Any:
    def reached() -> Any:
        status, body = call(server, "GET", path)
        return body if status == 200 and done(body) else None

    reached.__doc__ = f"{path} got there"
    return eventually(reached)


def test_moving_the_clock_past_an_expiry_expires_the_card(server: LocalServer) -> None:
    # Given a card that expires in two hours, whose expiry the system has scheduled
    body = {"credits": "100", "price": {"amount": "1.00", "currency": "USD"}, "expiresIn": "PT2H"}
    status, bought = call(server, "POST", "/wallets/clocked/purchases", body)
    assert status == 201, bought
    wait_for(server, "/_local/events?type=Credits%20Expiring%20Soon", lambda b: b["events"])
    status, before = call(server, "GET", "/_local/clock")
    assert status == 200

    # When the clock is moved forward by two hours and a second
    status, moved = call(server, "POST", "/_local/clock", {"advance": "PT2H1S"})

    # Then it says so, and the card's schedule fired: expired, with its event on the bus and the ledger entry
    assert status == 200
    gap = datetime.fromisoformat(moved["now"]) - datetime.fromisoformat(before["now"])
    # (plus however long the request took: bounded generously, a loaded machine is slow, not wrong)
    assert timedelta(hours=2, seconds=1) <= gap < timedelta(hours=2, seconds=PATIENCE_SECONDS)
    events = wait_for(server, "/_local/events?type=Credits%20Expired", lambda b: b["events"])["events"]
    assert [e["detail"]["cardId"] for e in events] == [bought["card"]["cardId"]]
    status, read = call(server, "GET", "/wallets/clocked")
    assert (read["balance"], read["totals"]["expired"]) == ("0", "100")
    status, ledger = call(server, "GET", "/wallets/clocked/ledger?type=expiry")
    assert [e["credits"] for e in ledger["entries"]] == ["100"]


def test_the_clock_refuses_to_go_back_or_take_nonsense(server: LocalServer) -> None:
    assert call(server, "POST", "/_local/clock", {"advance": "-PT1H"})[0] == 422
    assert call(server, "POST", "/_local/clock", {"sideways": "P1D"})[0] == 422
    _, now = call(server, "GET", "/_local/clock")
    status, after = call(server, "POST", "/_local/clock", {"to": "2000-01-01T00:00:00Z"})
    assert status == 200 and after["now"] >= now["now"]


def test_a_failing_function_never_fails_the_clock_route(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given ingest failing on every message (a bug, an outage), and a usage message waiting for it
    import ingest_handler

    def raises(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("ingest is broken")

    monkeypatch.setattr(ingest_handler, "lambda_handler", raises)
    aws(server, "sqs").send_message(QueueUrl=server.stack.name("UsageQueue"), MessageBody='{"eventId": "x"}')
    # When the clock is moved (which runs what came due, ingest among it)
    status, moved = call(server, "POST", "/_local/clock", {"advance": "PT1M"})
    # Then the route answers as always: the failure is the function's, logged and retried as Lambda would
    assert status == 200
    assert datetime.fromisoformat(moved["now"])
