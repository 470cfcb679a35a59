"""The local clock control: moving time forward makes a card's expiry schedule fire, seen only through HTTP."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from prepaid_local.server import LocalServer
from support.outside import call


def wait_for(server: LocalServer, path: str, done: Any, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        status, body = call(server, "GET", path)
        if status == 200 and done(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never got there: {body}")
        time.sleep(0.1)


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
    assert timedelta(hours=2, seconds=1) <= gap < timedelta(hours=2, seconds=30)
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
