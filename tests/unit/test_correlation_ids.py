"""Correlation ids: which are kept, how a drawdown message's attribute is read, and what a drawdown commit names."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from prepaid.adapters.sqs import rated_correlation_ids, usage_correlation_id
from prepaid.application.drawdown import DrawdownService
from prepaid.domain.events import BALANCE_LOW
from prepaid.domain.rules import correlation_ids
from prepaid.domain.wallet import RatedUsage
from support.domain_builders import T0, card, wallet
from support.memory_store import MemoryStore

NOW = T0 + timedelta(hours=1)


def attribute(value: str, data_type: str = "String") -> dict[str, dict[str, str]]:
    return {"correlationIds": {"dataType": data_type, "stringValue": value}}


def test_the_distinct_valid_ids_are_kept_in_order_and_at_most_ten() -> None:
    # Given ids with repeats, invalid ones and more than ten distinct
    given = ["b", "a", "b", "not valid", "", "x" * 129, *(f"id-{n}" for n in range(12))]
    # When they are kept
    kept = correlation_ids(given)
    # Then each valid one is kept once, in order of first appearance, ten at most
    assert kept == ("b", "a", *(f"id-{n}" for n in range(8)))


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (None, ((), None)),
        ({}, ((), None)),
        (attribute("req-1,req-2,req-1"), (("req-1", "req-2"), None)),
        (attribute(",".join(f"r{n}" for n in range(11))), ((), "correlation_ids_invalid")),
        (attribute("req-1,not valid"), ((), "correlation_ids_invalid")),
        (attribute(""), ((), "correlation_ids_invalid")),
        (attribute("1", "Number"), ((), "correlation_ids_not_text")),
        (attribute("a" * 5000), ((), "correlation_ids_not_text")),
        ({"correlationIds": "req-1"}, ((), "correlation_ids_not_text")),
    ],
)
def test_a_drawdown_messages_attribute_is_read_as_untrusted(
    attributes: object, expected: tuple[tuple[str, ...], str | None]
) -> None:
    # When the attribute of a drawdown message is read
    # Then valid ids are kept; anything else names none, with the reason (absent: no reason)
    assert rated_correlation_ids(attributes) == expected


def test_a_usage_message_is_followed_by_the_producers_id_or_its_own() -> None:
    # Given a producer's attribute, valid or not, or none
    valid = {"correlationId": {"dataType": "String", "stringValue": "producer-7"}}
    invalid = {"correlationId": {"dataType": "String", "stringValue": "no spaces allowed"}}
    # Then the valid one is used, else the SQS message id
    assert usage_correlation_id(valid, "m-1") == "producer-7"
    assert usage_correlation_id(invalid, "m-1") == "m-1"
    assert usage_correlation_id(None, "m-1") == "m-1"


def test_a_drawdown_commit_names_the_ids_of_the_usage_it_drew() -> None:
    # Given a wallet of 100 credits with a threshold at 50
    store = MemoryStore()
    store.wallets["acme"] = wallet(card("c1", "100"), thresholds=("50",))
    ids = iter(f"commit-{n}" for n in range(100))
    drawdown = DrawdownService(store, lambda: NOW, lambda: next(ids))
    # When usage of two requests (one of them twice) is drawn in one commit
    usages = [
        RatedUsage(f"e{n}", "api_calls", Decimal(20), Decimal(20), NOW, correlation_ids=(req,))
        for n, req in enumerate(["req-1", "req-2", "req-1"])
    ]
    report = drawdown.apply("acme", usages)
    # Then one commit drew them, and its Balance Low names both requests once, in order
    assert report.commits == 1
    (low,) = store.of_type(BALANCE_LOW)
    assert low.detail["correlationIds"] == ["req-1", "req-2"]
