"""The intake's early look-up of events already drawn is best-effort: what DynamoDB does not answer is left to
the drawdown, never a failed request."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from prepaid.adapters.dynamodb import BATCH_TRIES, DynamoWalletStore

TABLE = "wallets"


class _Client:
    """A BatchGetItem that knows event `a`, and throttles or fails as told."""

    def __init__(self, throttle: bool = False, fail: bool = False) -> None:
        self.throttle, self.fail, self.calls = throttle, fail, 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls += 1
        if self.fail:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "BatchGetItem")
        keys = RequestItems[TABLE]["Keys"]
        if self.throttle:
            return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}
        found = [
            {
                "PK": k["PK"],
                "SK": k["SK"],
                "customerId": {"S": "acme"},
                "meter": {"S": "api_calls"},
                "quantity": {"N": "10"},
            }
            for k in keys
            if k["PK"]["S"] == "E#a"
        ]
        return {"Responses": {TABLE: found}}


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("prepaid.adapters.dynamodb.time.sleep", lambda _: None)


def test_events_drawn_before_are_found_in_chunks_of_100_keys_each_asked_once() -> None:
    # Given 250 ids, "a" among them twice, of which only "a" was drawn
    client = _Client()
    store = DynamoWalletStore(client, TABLE)  # type: ignore[arg-type]
    ids = ["a", *(f"e{n}" for n in range(248)), "a"]
    # When they are looked up
    found = store.recorded_events(ids)
    # Then "a" is found with its content, in 3 requests (249 distinct keys)
    assert list(found) == ["a"] and found["a"].content.quantity == 10
    assert client.calls == 3


@pytest.mark.parametrize(("throttle", "fail", "calls"), [(True, False, BATCH_TRIES), (False, True, 1)])
def test_keys_left_unprocessed_or_a_failed_read_leave_the_events_to_the_drawdown(
    throttle: bool, fail: bool, calls: int
) -> None:
    # Given a table that keeps throttling, or refuses the read
    client = _Client(throttle=throttle, fail=fail)
    store = DynamoWalletStore(client, TABLE)  # type: ignore[arg-type]
    # When ids are looked up
    found = store.recorded_events(["a", "b"])
    # Then nothing is reported found (the drawdown decides), after a bounded number of tries, and nothing is raised
    assert (found, client.calls) == ({}, calls)
