"""PrepaidClient: one method per route of the API, typed answers, iterators over the paginated lists."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from botocore.credentials import Credentials

from prepaid_client.models import (
    Adjustment,
    Card,
    CardPage,
    CreatedWebhookEndpoint,
    Delivery,
    DeliveryPage,
    Forecast,
    LedgerEntry,
    LedgerPage,
    Purchase,
    Revenue,
    UsageResult,
    Void,
    Wallet,
    WalletPage,
    WalletSummary,
    WebhookEndpoint,
)
from prepaid_client.transport import Reply, Sender, Transport, default_credentials, region_for

DEFAULT_URL = "http://127.0.0.1:3000"  # make local
URL_ENV = "PREPAID_URL"
UNSIGNED_ENV = "PREPAID_UNSIGNED"  # "1": send requests unsigned (make local accepts them)

Number = Decimal | int | str  # a float is refused: it cannot carry an exact amount
IdempotentAnswer = TypeVar("IdempotentAnswer", Purchase, Void, Adjustment)
Item = TypeVar("Item")


def amount_text(value: Number) -> str:
    """The contract's decimal string: a Decimal written without exponent, an int, or a string as given."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"an amount is a Decimal, int or decimal string, not {type(value).__name__}")
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def instant_text(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


def _segment(value: str) -> str:
    return quote(value, safe="")


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return amount_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not sent as JSON (amounts are Decimal or strings)")


def encode(body: Mapping[str, Any]) -> bytes:
    """A request body: fields that are None left out; Decimals as decimal strings; floats refused."""
    kept = {name: value for name, value in body.items() if value is not None}
    return json.dumps(kept, default=_json_default, allow_nan=False).encode()


class PrepaidClient:
    """The prepaid-credits API. `url`: the stage URL on AWS (the stack's ApiUrl) or make local's; requests are
    signed with the standard credential chain unless `unsigned` (or PREPAID_UNSIGNED=1), and sent unsigned when the
    chain finds no credentials. Errors raise the typed errors of `prepaid_client.errors`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        region: str | None = None,
        unsigned: bool | None = None,
        credentials: Credentials | None = None,
        max_retries: int = 3,
        timeout: int = 30,  # seconds
        sender: Sender | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        if unsigned is None:
            unsigned = os.environ.get(UNSIGNED_ENV, "") not in ("", "0")
        signing = None if unsigned else (credentials or default_credentials())
        extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
        self.transport = Transport(
            url,
            region=region_for(url, region),
            credentials=signing,
            max_retries=max_retries,
            timeout=timeout,
            sender=sender,
            **extra,
        )

    # -- wallets and cards --------------------------------------------------------------------------------------

    def wallet(self, customer_id: str) -> Wallet:
        return Wallet.model_validate(self._get(f"/wallets/{_segment(customer_id)}").body)

    def wallets_page(self, *, limit: int | None = None, cursor: str | None = None) -> WalletPage:
        return WalletPage.model_validate(self._get("/wallets", limit=limit, cursor=cursor).body)

    def iter_wallets(self, *, page_size: int | None = None) -> Iterator[WalletSummary]:
        """Every wallet in customer id order, following nextCursor."""

        def fetch(cursor: str | None) -> tuple[list[WalletSummary], str | None]:
            page = self.wallets_page(limit=page_size, cursor=cursor)
            return page.wallets, page.next_cursor

        return _follow(fetch)

    def cards_page(
        self, customer_id: str, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> CardPage:
        path = f"/wallets/{_segment(customer_id)}/cards"
        return CardPage.model_validate(self._get(path, status=status, limit=limit, cursor=cursor).body)

    def iter_cards(
        self, customer_id: str, *, status: str | None = None, page_size: int | None = None
    ) -> Iterator[Card]:
        """Every card of the wallet, newest first, following nextCursor."""

        def fetch(cursor: str | None) -> tuple[list[Card], str | None]:
            page = self.cards_page(customer_id, status=status, limit=page_size, cursor=cursor)
            return page.cards, page.next_cursor

        return _follow(fetch)

    # -- cards bought, voided, adjusted ----------------------------------------------------------------------------

    def buy(
        self,
        customer_id: str,
        credits: Number,
        *,
        price: tuple[Number, str] | None = None,
        effective_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        expires_in: str | None = None,
        priority: int | None = None,
        source: str | None = None,
        meters: Sequence[str] | None = None,
        reference: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Purchase:
        """A purchase or grant (`price` (amount, currency); none: priced by the price book). An Idempotency-Key is
        generated unless given; it is on the answer: send the same purchase with it again to retry safely."""
        body = {
            "credits": amount_text(credits),
            "price": None if price is None else {"amount": amount_text(price[0]), "currency": price[1]},
            "effectiveAt": None if effective_at is None else instant_text(effective_at),
            "expiresAt": None if expires_at is None else instant_text(expires_at),
            "expiresIn": expires_in,
            "priority": priority,
            "source": source,
            "appliesTo": None if meters is None else {"meters": list(meters)},
            "reference": reference,
            "metadata": None if metadata is None else dict(metadata),
        }
        return self._idempotent(Purchase, f"/wallets/{_segment(customer_id)}/purchases", body, idempotency_key)

    def void(
        self,
        customer_id: str,
        card_id: str,
        *,
        credits: Number | None = None,
        reason: str | None = None,
        refund: bool | None = None,
        reference: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Void:
        """Void what remains of a card (or `credits` of it); an Idempotency-Key is generated unless given."""
        body = {
            "credits": None if credits is None else amount_text(credits),
            "reason": reason,
            "refund": refund,
            "reference": reference,
            "metadata": None if metadata is None else dict(metadata),
        }
        path = f"/wallets/{_segment(customer_id)}/cards/{_segment(card_id)}/void"
        return self._idempotent(Void, path, body, idempotency_key)

    def adjust(
        self,
        customer_id: str,
        credits: Number,
        reason: str,
        *,
        meter: str | None = None,
        expires_at: datetime | str | None = None,
        expires_in: str | None = None,
        priority: int | None = None,
        meters: Sequence[str] | None = None,
        reference: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Adjustment:
        """Credits added by hand (`"+500"`) or taken in card order (`"-120"`, of `meter`'s cards when given)."""
        body = {
            "credits": amount_text(credits),
            "reason": reason,
            "meter": meter,
            "expiresAt": None if expires_at is None else instant_text(expires_at),
            "expiresIn": expires_in,
            "priority": priority,
            "appliesTo": None if meters is None else {"meters": list(meters)},
            "reference": reference,
            "metadata": None if metadata is None else dict(metadata),
        }
        return self._idempotent(Adjustment, f"/wallets/{_segment(customer_id)}/adjustments", body, idempotency_key)

    # -- settings, usage, ledger, insight ----------------------------------------------------------------------

    def settings(self, customer_id: str) -> dict[str, Any]:
        return self.wallet(customer_id).settings

    def put_settings(self, customer_id: str, settings: Mapping[str, Any]) -> Wallet:
        """Replaces every setting (a field left out is cleared); creates the wallet if needed."""
        path = f"/wallets/{_segment(customer_id)}/settings"
        return Wallet.model_validate(self.transport.request("PUT", path, body=encode(settings)).body)

    def send_usage(self, events: Sequence[Mapping[str, Any]]) -> UsageResult:
        """Up to 1,000 events in one request (Decimal quantities are sent as decimal strings)."""
        raw = [json.dumps(dict(event), default=_json_default, allow_nan=False) for event in events]
        return self.send_usage_raw(raw)

    def send_usage_raw(self, events: Sequence[str]) -> UsageResult:
        """Up to 1,000 events, each already JSON text (sent as written: a file's numbers stay as they were)."""
        body = ('{"events": [' + ",".join(events) + "]}").encode()
        return UsageResult.model_validate(self.transport.request("POST", "/usage", body=body).body)

    def ledger_page(
        self,
        customer_id: str,
        *,
        type: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> LedgerPage:
        query = {
            "type": type,
            "from": None if start is None else instant_text(start),
            "to": None if end is None else instant_text(end),
            "limit": limit,
            "cursor": cursor,
        }
        reply = self.transport.request("GET", f"/wallets/{_segment(customer_id)}/ledger", query=query)
        return LedgerPage.model_validate(reply.body)

    def iter_ledger(
        self,
        customer_id: str,
        *,
        type: str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[LedgerEntry]:
        """Every entry, newest first, following nextCursor (a filtered page may be short, even empty)."""

        def fetch(cursor: str | None) -> tuple[list[LedgerEntry], str | None]:
            page = self.ledger_page(customer_id, type=type, start=start, end=end, limit=page_size, cursor=cursor)
            return page.entries, page.next_cursor

        return _follow(fetch)

    def forecast(self, customer_id: str, *, horizon_days: int | None = None) -> Forecast:
        reply = self._get(f"/wallets/{_segment(customer_id)}/forecast", horizonDays=horizon_days)
        return Forecast.model_validate(reply.body)

    def revenue(self, start: date | str, end: date | str) -> Revenue:
        """Per currency for the UTC days in [start, end)."""
        reply = self.transport.request(
            "GET", "/reports/revenue", query={"from": _day_text(start), "to": _day_text(end)}
        )
        return Revenue.model_validate(reply.body)

    # -- webhooks ----------------------------------------------------------------------------------------------

    def create_webhook_endpoint(
        self, url: str, event_types: Sequence[str] | None = None, description: str = ""
    ) -> CreatedWebhookEndpoint:
        """An account-level endpoint for `event_types` (None: every type), with its secret (shown this once)."""
        body = {"url": url, "eventTypes": list(event_types) if event_types is not None else None}
        reply = self.transport.request("POST", "/webhook-endpoints", body=encode({**body, "description": description}))
        return CreatedWebhookEndpoint.model_validate(reply.body)

    def webhook_endpoints(self) -> list[WebhookEndpoint]:
        reply = self._get("/webhook-endpoints")
        return [WebhookEndpoint.model_validate(e) for e in reply.body["endpoints"]]

    def webhook_endpoint_secret(self, endpoint_id: str) -> str:
        secret: str = self._get(f"/webhook-endpoints/{_segment(endpoint_id)}/secret").body["secret"]
        return secret

    def wallet_webhook_secret(self, customer_id: str) -> str:
        secret: str = self._get(f"/wallets/{_segment(customer_id)}/webhook/secret").body["secret"]
        return secret

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self.transport.request("DELETE", f"/webhook-endpoints/{_segment(endpoint_id)}")

    def iter_deliveries(
        self, endpoint_id: str | None = None, *, customer_id: str | None = None, page_size: int | None = None
    ) -> Iterator[Delivery]:
        """An endpoint's deliveries (or, with `customer_id`, a wallet webhook's), newest event first."""
        path = _deliveries_path(endpoint_id, customer_id)

        def fetch(cursor: str | None) -> tuple[list[Delivery], str | None]:
            page = DeliveryPage.model_validate(self._get(path, limit=page_size, cursor=cursor).body)
            return page.deliveries, page.next_cursor

        return _follow(fetch)

    def resend(self, event_id: str, endpoint_id: str | None = None, *, customer_id: str | None = None) -> Delivery:
        """Send one event to the endpoint (or the wallet's webhook) again, as a new round of attempts."""
        path = f"{_deliveries_path(endpoint_id, customer_id)}/{_segment(event_id)}/resend"
        return Delivery.model_validate(self.transport.request("POST", path).body)

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _get(self, path: str, **query: str | int | None) -> Reply:
        return self.transport.request("GET", path, query=query)

    def _idempotent(
        self, answer: type[IdempotentAnswer], path: str, body: Mapping[str, Any], key: str | None
    ) -> IdempotentAnswer:
        key = key or str(uuid.uuid4())
        reply = self.transport.request("POST", path, body=encode(body), headers={"Idempotency-Key": key})
        parsed = answer.model_validate(reply.body)
        replayed = reply.headers.get("idempotent-replayed", "").lower() == "true"
        return parsed.model_copy(update={"idempotency_key": key, "replayed": replayed})


def _deliveries_path(endpoint_id: str | None, customer_id: str | None) -> str:
    if (endpoint_id is None) == (customer_id is None):
        raise ValueError("name an endpoint or a wallet (customer_id), not both")
    if endpoint_id is not None:
        return f"/webhook-endpoints/{_segment(endpoint_id)}/deliveries"
    return f"/wallets/{_segment(str(customer_id))}/webhook/deliveries"


def _day_text(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def _follow(fetch: Callable[[str | None], tuple[list[Item], str | None]]) -> Iterator[Item]:
    """Pages one after another: the first without a cursor, each next with the last one's nextCursor."""
    cursor: str | None = None
    while True:
        items, cursor = fetch(cursor)
        yield from items
        if cursor is None:
            return
