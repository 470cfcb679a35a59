"""Jumps of the local clock by days: what was under way still arrives, and no queue is left blocked.

The server here delivers nothing in the background (`deliver=False`): each test says when things move, so what is
"under way" when the clock jumps is exactly what the test left there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from prepaid_local.server import LocalServer
from support.outside import aws, call, local_server


@pytest.fixture(scope="module")
def held() -> Iterator[LocalServer]:
    with local_server(deliver=False) as running:
        yield running


def test_what_is_under_way_when_the_clock_jumps_still_arrives(held: LocalServer) -> None:
    # Given a server whose background delivery is held (so nothing moves unless the test says), and a card that
    # expires in a day, its purchase event published and waiting in the bus rule's delivery to the expiry function
    body = {"credits": "40", "price": {"amount": "0", "currency": "USD"}, "expiresIn": "P1D"}
    status, bought = call(held, "POST", "/wallets/jumped/purchases", body)
    assert status == 201, bought
    assert held.stack.pump_streams() >= 1
    # When the clock jumps 30 days at once (past any queue's retention: SQS keeps a message 14 days at most)
    assert call(held, "POST", "/_local/clock", {"advance": "P30D"})[0] == 200
    # Then the event was not lost on the way: the expiry job ran (its ledger entry), as it would have had time moved
    # on by the second, and every event went through the bus in order
    status, ledger = call(held, "GET", "/wallets/jumped/ledger?type=expiry")
    assert [e["credits"] for e in ledger["entries"]] == ["40"]
    status, events = call(held, "GET", "/_local/events")
    kinds = [e["detail-type"] for e in events["events"]]
    assert kinds == ["Credits Purchased", "Credits Expiring Soon", "Credits Expired", "Balance Depleted"]
    assert [e["detail"]["credits"] for e in _of(events, bought) if e["detail-type"] == "Credits Expired"] == ["40"]


def test_a_message_older_than_its_queues_retention_is_dropped_and_holds_back_no_other(held: LocalServer) -> None:
    # Given a queue holding a message when the clock jumps past its retention (SQS's default: 4 days)
    sqs = aws(held, "sqs")
    url = sqs.create_queue(QueueName="retained")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="sent before the jump")
    assert call(held, "POST", "/_local/clock", {"advance": "P5D"})[0] == 200
    # When another is sent after it
    sqs.send_message(QueueUrl=url, MessageBody="sent after the jump")
    # Then the old one is gone, as SQS deletes it, and the new one is received (moto alone stops at the old one)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in received] == ["sent after the jump"]


def _of(events: dict[str, Any], bought: dict[str, Any]) -> list[dict[str, Any]]:
    card_id = bought["card"]["cardId"]
    return [
        e for e in events["events"] if e["detail"].get("cardId", e["detail"].get("card", {}).get("cardId")) == card_id
    ]
