"""The Python client (client/prepaid_client) without a server: SigV4, retries, typed errors, exact decimals, files
of usage events. A fake sender stands where botocore's HTTP session would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.credentials import Credentials

from prepaid_client import ApiError, Invalid, PrepaidClient, ServerError, Throttled, TooLarge
from prepaid_client.usage_file import UsageFileError, batches, read_events

API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"
CARD = {
    "cardId": "c1",
    "credits": "0.1",
    "remaining": "0.1",
    "price": {"amount": "0", "currency": "USD"},
    "costBasis": "0",
    "source": "purchase",
    "priority": 50,
    "effectiveAt": "2026-12-07T15:00:00Z",
    "expiresAt": None,
    "status": "active",
}


@dataclass
class Answer:
    status_code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode()


@dataclass
class FakeSender:
    """Answers in turn what it was given, and keeps every request it was sent."""

    answers: Iterator[Answer]
    sent: list[AWSPreparedRequest] = field(default_factory=list)

    def send(self, request: AWSPreparedRequest) -> Answer:
        self.sent.append(request)
        return next(self.answers)


def client_over(*answers: Answer, credentials: Credentials | None = None, sleeps: list[float] | None = None) -> tuple[
    PrepaidClient, FakeSender
]:  # fmt: skip
    sender = FakeSender(iter(answers))
    slept = sleeps if sleeps is not None else []
    unsigned = credentials is None
    made = PrepaidClient(API_URL, unsigned=unsigned, credentials=credentials, sender=sender, sleep=slept.append)
    return made, sender


def test_requests_are_signed_for_execute_api_in_the_urls_region() -> None:
    # Given credentials and an API URL in eu-west-1
    client, sender = client_over(Answer(201, {"card": CARD, "balance": "0.1"}), credentials=Credentials("AKID", "s"))
    # When a purchase is sent
    client.buy("acme", "0.1", price=("0", "USD"))
    # Then it is SigV4-signed for execute-api in that region, on the stage's path
    (request,) = sender.sent
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert request.url == f"{API_URL}/wallets/acme/purchases"


def test_unsigned_requests_carry_no_signature() -> None:
    client, sender = client_over(Answer(200, {"entries": [], "nextCursor": None}))
    client.ledger_page("acme", limit=2)
    (request,) = sender.sent
    assert "Authorization" not in request.headers
    assert request.url == f"{API_URL}/wallets/acme/ledger?limit=2"


def test_throttling_and_503_are_retried_with_the_same_idempotency_key() -> None:
    # Given a server that throttles (Retry-After: 1), then is unavailable, then answers
    sleeps: list[float] = []
    client, sender = client_over(
        Answer(429, {"error": {"code": "throttled", "message": "slow down"}}, {"Retry-After": "1"}),
        Answer(503, {"error": {"code": "payment_provider_unavailable", "message": "again"}}),
        Answer(201, {"card": CARD, "balance": "0.1"}, {"Idempotent-Replayed": "true"}),
        sleeps=sleeps,
    )
    # When a purchase is made
    purchase = client.buy("acme", Decimal("0.1"), price=(Decimal(0), "USD"))
    # Then it was sent three times under one generated key, waiting as told first
    keys = {request.headers["Idempotency-Key"] for request in sender.sent}
    assert len(sender.sent) == 3 and len(keys) == 1
    assert purchase.idempotency_key is not None and keys == {purchase.idempotency_key}
    assert purchase.replayed is True
    assert sleeps[0] == 1.0 and len(sleeps) == 2
    # And the body carried the amounts as decimal strings
    body = sender.sent[0].body
    assert isinstance(body, bytes)
    assert json.loads(body) == {"credits": "0.1", "price": {"amount": "0", "currency": "USD"}}


def test_retries_end_in_a_typed_error() -> None:
    throttled = Answer(429, {"error": {"code": "throttled", "message": "slow down"}})
    client, sender = client_over(*[throttled] * 4)
    with pytest.raises(Throttled) as raised:
        client.wallet("acme")
    assert len(sender.sent) == 4 and raised.value.code == "throttled"


@pytest.mark.parametrize(
    ("status", "kind"), [(400, Invalid), (413, TooLarge), (422, Invalid), (500, ServerError), (402, ApiError)]
)
def test_error_answers_are_typed_by_status(status: int, kind: type[ApiError]) -> None:
    body = {"error": {"code": "some_code", "message": "why", "details": [{"field": "credits"}]}}
    client, sender = client_over(Answer(status, body))
    with pytest.raises(kind) as raised:
        client.wallet("acme")
    assert (raised.value.status, raised.value.code, raised.value.message) == (status, "some_code", "why")
    assert raised.value.details == [{"field": "credits"}]
    assert len(sender.sent) == 1  # only 429 and 503 are retried


def test_an_answer_without_the_contracts_body_is_still_typed() -> None:
    client, _ = client_over(Answer(502, "Bad Gateway"))
    with pytest.raises(ServerError) as raised:
        client.wallet("acme")
    assert raised.value.code == "http_502"


def test_amounts_are_exact_decimals_and_floats_are_refused() -> None:
    client, _ = client_over(Answer(200, {"entries": [], "nextCursor": None}))
    with pytest.raises(TypeError):
        client.buy("acme", 0.1)  # type: ignore[arg-type]
    page = client.ledger_page("acme")
    assert page.entries == []
    purchase_client, _ = client_over(Answer(201, {"card": CARD, "balance": "0.1"}))
    purchase = purchase_client.buy("acme", "0.1", price=("0", "USD"))
    assert purchase.balance == Decimal("0.1") and type(purchase.card.credits) is Decimal


def test_a_json_array_keeps_each_event_as_written(tmp_path: Path) -> None:
    # Given a JSON array whose quantities are numbers and strings
    path = tmp_path / "events.json"
    path.write_text('[{"eventId": "a", "quantity": 0.10000000000000000001},\n {"eventId": "b", "quantity": "2"}]')
    # When it is read; Then each event is its own text, the number not rounded through a float
    assert read_events(path) == [
        '{"eventId": "a", "quantity": 0.10000000000000000001}',
        '{"eventId": "b", "quantity": "2"}',
    ]


@pytest.mark.parametrize("text", ['[{"a": 1}, 2]', '[{"a": 1} {"b": 2}]', '[{"a": 1},]', '{"a": 1}\nnot json'])
def test_a_file_that_is_not_events_is_refused_with_where(tmp_path: Path, text: str) -> None:
    path = tmp_path / "events.json"
    path.write_text(text)
    with pytest.raises(UsageFileError):
        read_events(path)


def test_batches_hold_at_most_the_size_asked() -> None:
    events = [f'{{"eventId": "{n}"}}' for n in range(2_500)]
    assert [len(batch) for batch in batches(events)] == [1_000, 1_000, 500]
    assert [len(batch) for batch in batches(events[:5], 2)] == [2, 2, 1]
    with pytest.raises(ValueError, match="1 to 1000"):
        list(batches(events, 1_001))
