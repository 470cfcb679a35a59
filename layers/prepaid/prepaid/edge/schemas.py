"""Request and response bodies of the HTTP API, as pydantic models (they also make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)

from prepaid.application.dashboard import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from prepaid.domain.ledger import EntryType
from prepaid.domain.rules import (
    CARD_ID_PATTERN,
    CUSTOMER_ID_PATTERN,
    DECIMAL_TEXT_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    METER_PATTERN,
    REASON_PATTERN,
    STRIPE_ID_PATTERN,
    decimal_from_text,
    duration_in_range,
    instant_in_range,
)


def _decimal_text(value: Any) -> Any:
    """Amounts travel as decimal strings of ASCII digits (the contract's "Numbers"); anything else is refused."""
    number = decimal_from_text(value)
    if number is None:
        raise ValueError('must be a decimal string such as "12.5" (ASCII digits, no exponent)')
    return number


def _text_only(value: Any) -> Any:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("must be a string in ISO 8601 form")
    return value


def _instant_in_range(value: datetime) -> datetime:
    if not instant_in_range(value):
        raise ValueError("must be from 1970-01-01 up to 9000-01-01")
    return value


def _duration_in_range(value: timedelta) -> timedelta:
    if not duration_in_range(value):
        raise ValueError("must be a positive duration of at most 100 years")
    return value


DecimalText = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_TEXT_PATTERN, "examples": ["1000", "12.5"]}),
]
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    AfterValidator(_instant_in_range),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-31T23:59:59Z"]}),
]
Duration = Annotated[
    timedelta,
    BeforeValidator(_text_only),
    AfterValidator(_duration_in_range),
    WithJsonSchema({"type": "string", "format": "duration", "examples": ["P30D", "PT12H"]}),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID_PATTERN, description="The SaaS's customer id")]
CardId = Annotated[str, Path(pattern=CARD_ID_PATTERN)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)]
# Stripe's `t=...,v1=...` header; the stripe library reads it (a few signatures during a secret's rotation)
StripeSignature = Annotated[str | None, Header(alias="Stripe-Signature", max_length=2000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MoneyBody(Body):
    amount: DecimalText
    currency: Currency


class ManualPaymentBody(Body):
    """The SaaS collects the price itself (e.g. by invoice): the card waits until it is activated."""

    collect: Literal["manual"]


StripeId = Annotated[str, Field(pattern=STRIPE_ID_PATTERN)]


class StripePaymentBody(Body):
    """Stripe charges the customer's saved payment method off-session."""

    collect: Literal["stripe"]
    stripe_customer: StripeId = Field(alias="stripeCustomer", examples=["cus_NffrFeUfNV2Hib"])
    payment_method: StripeId | None = Field(default=None, alias="paymentMethod", examples=["pm_1NfU0i2eZvKYlo2C"])


PaymentBody = Annotated[ManualPaymentBody | StripePaymentBody, Field(discriminator="collect")]


class PurchaseBody(Body):
    credits: DecimalText
    price: MoneyBody | None = None
    expires_at: Instant | None = Field(default=None, alias="expiresAt")
    expires_in: Duration | None = Field(default=None, alias="expiresIn")
    priority: Annotated[StrictInt, Field(ge=0, le=100)] = 50
    source: Literal["purchase", "promotion", "auto_recharge", "recurring"] = "purchase"
    effective_at: Instant | None = Field(default=None, alias="effectiveAt")
    payment: PaymentBody | None = Field(
        default=None, description="absent: the price is already collected and the card is active at once"
    )


VoidReason = Annotated[str, Field(pattern=REASON_PATTERN, examples=["payment_failed", "requested_by_customer"])]


class VoidBody(Body):
    """`POST .../void`; the body is optional: without it, what remains is voided."""

    reason: VoidReason | None = None
    credits: DecimalText | None = Field(default=None, description="how many of the remaining credits; all by default")
    refund: StrictBool = Field(
        default=False, description="return their value (credits x cost basis) through the card's Stripe payment"
    )


class AutoRechargeBody(Body):
    threshold: DecimalText
    credits: DecimalText
    price: MoneyBody | None = None
    max_per_day: Annotated[StrictInt, Field(ge=1, le=100)] = Field(alias="maxPerDay")
    payment: PaymentBody | None = Field(
        default=None, description="who collects each recharge's price: absent, the SaaS has it; Stripe charges it"
    )
    max_spend_per_month: MoneyBody | None = Field(
        default=None,
        alias="maxSpendPerMonth",
        description="what recharges may cost in a UTC month; past it a crossing buys nothing (Auto Recharge Skipped)",
    )


class RecurringBody(Body):
    credits: DecimalText
    price: MoneyBody | None = None
    day_of_month: Annotated[StrictInt, Field(ge=1, le=31)] = Field(alias="dayOfMonth")
    expires_in: Duration | None = Field(default=None, alias="expiresIn")
    payment: PaymentBody | None = Field(
        default=None, description="who collects each grant's price: absent, the SaaS has it; Stripe charges it"
    )


class SettingsBody(Body):
    thresholds: Annotated[list[DecimalText], Field(max_length=20)] = Field(default_factory=list)
    auto_recharge: AutoRechargeBody | None = Field(default=None, alias="autoRecharge")
    recurring: RecurringBody | None = None
    webhook_url: Annotated[str, Field(max_length=2048)] | None = Field(default=None, alias="webhookUrl")


class TierBody(Body):
    up_to: DecimalText | None = Field(alias="upTo")
    unit_price: DecimalText = Field(alias="unitPrice")


class PriceBookBody(Body):
    currency: Currency
    mode: Literal["volume", "graduated"] = "volume"
    tiers: Annotated[list[TierBody], Field(min_length=1, max_length=50)]


class UnitRateBody(Body):
    credits_per_unit: DecimalText = Field(alias="creditsPerUnit")


MeterName = Annotated[str, Field(pattern=METER_PATTERN)]
CustomerName = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]


class RateCardBody(Body):
    meters: Annotated[dict[MeterName, UnitRateBody], Field(max_length=500)]
    overrides: Annotated[dict[CustomerName, dict[MeterName, UnitRateBody]], Field(max_length=10_000)] = Field(
        default_factory=dict
    )


class DashboardLinkBody(Body):
    """`POST /wallets/{customerId}/dashboard-links`; the body is optional."""

    ttl_seconds: Annotated[StrictInt, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)] = Field(
        default=DEFAULT_TTL_SECONDS, alias="ttlSeconds", description="how long the link stays valid (60 s to 24 h)"
    )


class UsageBody(Body):
    """Up to 1,000 events; each is checked on its own, so one bad event never refuses the others."""

    events: list[Any]


# -- answers (documentation of the shapes the routes return) ---------------------------------------------------------


class MoneyOut(BaseModel):
    amount: str
    currency: str


# Instants in answers are the domain's own ISO 8601 strings; typing them `datetime` would make pydantic re-print
# them in another form.
InstantText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class CardOut(BaseModel):
    cardId: str
    credits: str
    remaining: str
    price: MoneyOut
    costBasis: str
    source: str
    priority: int
    effectiveAt: InstantText
    expiresAt: InstantText | None
    status: Literal["pending", "active", "depleted", "expired", "voided"]
    payment: dict[str, str] | None = Field(
        default=None,
        description='who collects the price and, once paid, the payment at the provider: {"collect": "manual"}, '
        '{"collect": "stripe", "stripeCustomer": "cus_...", "reference": "pi_..."}',
    )


class PurchaseOut(BaseModel):
    card: CardOut
    balance: str


class VoidOut(PurchaseOut):
    refund: MoneyOut | None = Field(default=None, description="with refund: what goes back to the customer")


class WalletOut(BaseModel):
    customerId: str
    balance: str
    available: str
    overage: str
    cards: list[CardOut]
    nextExpiry: InstantText | None
    settings: dict[str, Any]
    totals: dict[str, str]
    version: int
    asOf: InstantText


class QuoteOut(BaseModel):
    credits: str
    price: MoneyOut
    unitPrice: str
    mode: str
    tier: dict[str, Any]
    priceBookVersion: int
    quotedAt: InstantText


class PriceBookOut(BaseModel):
    currency: str
    mode: str
    tiers: list[dict[str, str | None]]
    version: int


class RejectedOut(BaseModel):
    index: int
    eventId: str | None
    reason: str
    field: str | None = None


class UsageOut(BaseModel):
    accepted: list[str]
    duplicates: list[str]  # event ids already seen with the same content: nothing queued, not an error
    rejected: list[RejectedOut]


class RateCardOut(BaseModel):
    meters: dict[str, dict[str, str]]
    overrides: dict[str, dict[str, dict[str, str]]]
    version: int


class DrawOut(BaseModel):
    cardId: str
    credits: str


class LedgerEntryOut(BaseModel):
    entryId: str
    type: EntryType
    credits: str
    at: InstantText
    balanceAfter: str
    cardId: str | None = None
    draws: list[DrawOut] | None = None
    overage: str | None = None
    value: MoneyOut | None = None
    eventId: str | None = None
    meter: str | None = None
    quantity: str | None = None
    events: int | None = None
    reason: str | None = None


class LedgerOut(BaseModel):
    entries: list[LedgerEntryOut]
    nextCursor: str | None


class UsageBucketOut(BaseModel):
    start: InstantText
    quantity: str
    credits: str
    events: int


class MeterSeriesOut(BaseModel):
    meter: str
    quantity: str
    credits: str
    events: int
    buckets: list[UsageBucketOut]


class UsageSeriesOut(BaseModel):
    customerId: str
    granularity: Literal["hour", "day"]
    # `from` is a Python keyword: the field is named by alias
    start: InstantText = Field(alias="from")
    to: InstantText
    meters: list[MeterSeriesOut]


class ForecastOut(BaseModel):
    customerId: str
    asOf: InstantText
    horizonDays: int
    method: str
    burnRate: dict[str, Any]
    balance: str
    projectedDepletionAt: InstantText | None
    runwayDays: str | None
    projectedUsage: str
    creditsExpiringUnused: str
    expiringUnused: list[dict[str, str]]
    recommendedPurchase: dict[str, Any] | None
    days: list[dict[str, str]]


class DashboardLinkOut(BaseModel):
    url: str
    token: str
    expiresAt: InstantText


class CurrencyRevenueOut(BaseModel):
    currency: str
    deferredAtStart: str
    purchased: str
    recognised: str
    breakage: str
    voided: str
    refunded: str = Field(description="money returned for voided credits (part of voided, not more)")
    deferred: str


class RevenueOut(BaseModel):
    start: str = Field(alias="from")
    to: str
    currencies: list[CurrencyRevenueOut]


class CheckoutBody(Body):
    """What a customer buys on the dashboard: credits at the price book's price."""

    credits: DecimalText


class ReceivedOut(BaseModel):
    received: bool
    applied: bool = Field(description="whether the event changed a card of this deployment (or found it changed)")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
