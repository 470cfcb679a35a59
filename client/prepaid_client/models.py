"""The API's answers as typed values: snake_case fields over the contract's camelCase names, amounts `Decimal`
(parsed from the decimal strings, never through a float), instants aware `datetime`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator
from pydantic.alias_generators import to_camel


def _decimal(value: object) -> Decimal:
    """A decimal string (or an exact Decimal) → Decimal; a float or anything else is refused."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except InvalidOperation:
            pass
    raise ValueError(f"not a decimal string: {value!r}")


Amount = Annotated[Decimal, PlainValidator(_decimal), PlainSerializer(lambda d: format(d, "f"), return_type=str)]


class Answer(BaseModel):
    """An answer of the API; fields it adds later are ignored, so an older client keeps working."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class Money(Answer):
    amount: Amount
    currency: str


class Card(Answer):
    card_id: str
    credits: Amount
    remaining: Amount
    price: Money
    cost_basis: Amount
    source: str
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    status: str
    payment: dict[str, str] | None = None
    applies_to: dict[str, list[str]] | None = None
    reference: str | None = None
    metadata: dict[str, str] | None = None


class Idempotent(Answer):
    """An answer to a request sent with an `Idempotency-Key`: the key (send it again to retry safely) and whether
    the server answered a replay (nothing changed). Both are set by the client, not read from the body."""

    idempotency_key: str | None = None
    replayed: bool = False


class Purchase(Idempotent):
    card: Card
    balance: Amount


class Void(Purchase):
    refund: Money | None = None


class Draw(Answer):
    card_id: str
    credits: Amount


class AdjustmentEntry(Answer):
    type: str
    credits: Amount
    at: datetime
    balance_after: Amount
    draws: list[Draw] | None = None
    value: Money | None = None
    meter: str | None = None
    reason: str
    reference: str | None = None
    metadata: dict[str, str] | None = None


class Adjustment(Idempotent):
    adjustment: AdjustmentEntry
    card: Card | None
    balance: Amount


class Wallet(Answer):
    customer_id: str
    balance: Amount
    available: Amount
    available_by_meter: dict[str, Amount] = Field(default_factory=dict)
    overage: Amount
    cards: list[Card]
    next_expiry: datetime | None
    settings: dict[str, Any]
    totals: dict[str, Amount]
    version: int
    as_of: datetime


class WalletSummary(Answer):
    customer_id: str
    balance: Amount
    overage: Amount
    live_cards: int
    retired_cards: int
    next_expiry: datetime | None
    version: int
    created_at: datetime


class WalletPage(Answer):
    wallets: list[WalletSummary]
    next_cursor: str | None
    as_of: datetime


class CardPage(Answer):
    cards: list[Card]
    next_cursor: str | None


class LedgerEntry(Answer):
    entry_id: str
    type: str
    credits: Amount
    at: datetime
    balance_after: Amount
    card_id: str | None = None
    draws: list[Draw] | None = None
    overage: Amount | None = None
    value: Money | None = None
    event_id: str | None = None
    meter: str | None = None
    quantity: Amount | None = None
    events: int | None = None
    reason: str | None = None
    reference: str | None = None
    metadata: dict[str, str] | None = None
    terms: dict[str, dict[str, Any]] | None = None


class LedgerPage(Answer):
    entries: list[LedgerEntry]
    next_cursor: str | None


class Rejected(Answer):
    index: int
    event_id: str | None
    reason: str
    field: str | None = None


class UsageResult(Answer):
    accepted: list[str]
    duplicates: list[str]
    rejected: list[Rejected]


class ExpiringCard(Answer):
    card_id: str
    expires_at: datetime
    credits: Amount


class ForecastDay(Answer):
    day: date = Field(alias="date")
    projected_burn: Amount
    projected_balance: Amount


class Forecast(Answer):
    customer_id: str
    as_of: datetime
    horizon_days: int
    method: str
    burn_rate: dict[str, Any]
    balance: Amount
    projected_depletion_at: datetime | None
    runway_days: Amount | None
    projected_usage: Amount
    credits_expiring_unused: Amount
    expiring_unused: list[ExpiringCard]
    recommended_purchase: dict[str, Any] | None
    meters: list[dict[str, str | None]] = Field(default_factory=list)
    days: list[ForecastDay]


class CurrencyRevenue(Answer):
    currency: str
    deferred_at_start: Amount
    purchased: Amount
    recognised: Amount
    breakage: Amount
    voided: Amount
    refunded: Amount
    rolled_over: Amount = Decimal(0)
    deferred: Amount


class Revenue(Answer):
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    currencies: list[CurrencyRevenue]


class WebhookEndpoint(Answer):
    id: str
    url: str
    event_types: list[str] | None  # None: every detail type
    description: str
    disabled: bool
    created_at: datetime


class CreatedWebhookEndpoint(WebhookEndpoint):
    secret: str  # whsec_…: verify its deliveries with it (standardwebhooks)


class Delivery(Answer):
    event_id: str  # the webhook-id header
    event_type: str
    customer_id: str
    event_time: datetime
    state: str  # sending, failed, delivered, dead, queued
    attempts: int
    last_failure: str | None
    next_attempt_at: datetime | None


class DeliveryPage(Answer):
    deliveries: list[Delivery]
    next_cursor: str | None
