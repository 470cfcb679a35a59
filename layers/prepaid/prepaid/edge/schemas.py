"""Request and response bodies of the HTTP API, as pydantic models (they also make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import isodate  # type: ignore[import-untyped]  # no type information shipped
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)

from prepaid.application.dashboard import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from prepaid.domain.events import DETAIL_TYPES
from prepaid.domain.ledger import EntryType
from prepaid.domain.rules import (
    CARD_ID_PATTERN,
    CUSTOMER_ID_PATTERN,
    DECIMAL_TEXT_PATTERN,
    DIMENSION_PATTERN,
    DIMENSION_VALUE_PATTERN,
    EVENT_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_APPLIES_TO_METERS,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MAX_NOTE_TEXT,
    MAX_PRICED_VALUES,
    METER_PATTERN,
    PERCENT_TEXT_PATTERN,
    REASON_PATTERN,
    REFERENCE_PATTERN,
    STRIPE_ID_PATTERN,
    decimal_from_text,
    duration_in_range,
    instant_in_range,
    percent_from_text,
)
from prepaid.domain.spans import CalendarSpan, Span
from prepaid.domain.webhook_endpoints import ENDPOINT_ID_PATTERN, MAX_DESCRIPTION


def _decimal_text(value: Any) -> Any:
    """Amounts travel as decimal strings of ASCII digits (the contract's "Numbers"); anything else is refused."""
    number = decimal_from_text(value)
    if number is None:
        raise ValueError('must be a decimal string such as "12.5" (ASCII digits, no exponent)')
    return number


def _threshold_text(value: Any) -> Any:
    if decimal_from_text(value) is None and percent_from_text(value) is None:
        raise ValueError('must be credits such as "500" or a percentage such as "25%" (more than 0, at most 100)')
    return value


def _text_only(value: Any) -> Any:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("must be a string in ISO 8601 form")
    return value


def _instant_in_range(value: datetime) -> datetime:
    if not instant_in_range(value):
        raise ValueError("must be from 1970-01-01 up to 9000-01-01")
    return value


def _duration(value: Any) -> Span:
    """An ISO 8601 duration as isodate reads it: years and months are calendar ones (`P1M` from 31 January ends on
    the last day of February), weeks, days, hours, minutes and seconds exact."""
    try:
        parsed = isodate.parse_duration(_text_only(value))
    except (isodate.ISO8601Error, ArithmeticError, ValueError):
        raise ValueError("must be an ISO 8601 duration such as P30D, PT12H, P1M or P1Y") from None
    span: Span = parsed
    if not isinstance(parsed, timedelta):
        months = parsed.years * 12 + parsed.months
        if months % 1:
            raise ValueError("must count whole years and months")
        span = CalendarSpan(int(months), parsed.tdelta) if months else parsed.tdelta
    if not duration_in_range(span):
        raise ValueError("must be a positive duration of at most 100 years")
    return span


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
    Span,
    PlainValidator(_duration),
    WithJsonSchema(
        {
            "type": "string",
            "format": "duration",
            "description": "ISO 8601; years and months are calendar ones (from 31 January, P1M ends on 28/29 February)",
            "examples": ["P30D", "PT12H", "P1M", "P1Y"],
        }
    ),
]
# A balance threshold: credits ("500") or a percentage of the balance right after the last funding ("25%")
ThresholdText = Annotated[
    str,
    BeforeValidator(_threshold_text),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"({DECIMAL_TEXT_PATTERN})|({PERCENT_TEXT_PATTERN})",
            "examples": ["500", "25%"],
        }
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID_PATTERN, description="The SaaS's customer id")]
CardId = Annotated[str, Path(pattern=CARD_ID_PATTERN)]
# A page cursor: the `nextCursor` of the page before, handed back as it came (signed: an altered one is refused)
Cursor = Annotated[str | None, Query(min_length=1, max_length=1024, description="nextCursor of the page before")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN)]
# Stripe's `t=...,v1=...` header; the stripe library reads it (a few signatures during a secret's rotation)
StripeSignature = Annotated[str | None, Header(alias="Stripe-Signature", max_length=2000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """A request body's examples in the OpenAPI document (each one a body the API takes: a test checks them)."""
    return ConfigDict(json_schema_extra={"examples": list(bodies)})


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


MeterName = Annotated[str, Field(pattern=METER_PATTERN)]
MetadataKey = Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY)]
MetadataBody = Annotated[
    dict[MetadataKey, Annotated[str, Field(max_length=MAX_METADATA_VALUE)]],
    Field(max_length=MAX_METADATA_PAIRS, description="the SaaS's own string pairs, echoed in the ledger and events"),
]
Reference = Annotated[
    str,
    Field(pattern=REFERENCE_PATTERN, description="the SaaS's own id for it, e.g. an invoice", examples=["INV-0042"]),
]
NoteText = Annotated[str, Field(min_length=1, max_length=MAX_NOTE_TEXT, pattern=r"^[^\x00-\x1f\x7f]+$")]


class AppliesToBody(Body):
    """The meters whose usage may draw the card (absent: every meter)."""

    meters: Annotated[list[MeterName], Field(min_length=1, max_length=MAX_APPLIES_TO_METERS)]


class Noted(Body):
    """What the SaaS may attach to a card or a change."""

    reference: Reference | None = None
    metadata: MetadataBody | None = None


class PurchaseBody(Noted):
    model_config = examples(
        {"credits": "5000", "price": {"amount": "50.00", "currency": "USD"}, "expiresIn": "P365D"},
        {"credits": "1000", "payment": {"collect": "stripe", "stripeCustomer": "cus_NffrFeUfNV2Hib"}},
    )
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
    applies_to: AppliesToBody | None = Field(default=None, alias="appliesTo")


# "+n" adds a card, "-n" takes credits in card order: the one decimal on the wire that may carry a plus sign
SignedCredits = Annotated[str, Field(pattern=r"^[+-]?[0-9]+(\.[0-9]+)?$", max_length=40, examples=["+500", "-120.5"])]


class AdjustmentBody(Noted):
    """`POST /wallets/{customerId}/adjustments`: credits added as a new card, or taken in card order."""

    model_config = examples(
        {"credits": "+500", "reason": "goodwill after an outage", "expiresIn": "P30D"},
        {"credits": "-120.5", "reason": "double-billed", "meter": "api_calls", "reference": "INV-0042"},
    )

    credits: SignedCredits
    reason: NoteText
    expires_at: Instant | None = Field(default=None, alias="expiresAt", description="added credits only")
    expires_in: Duration | None = Field(default=None, alias="expiresIn", description="added credits only")
    priority: Annotated[StrictInt, Field(ge=0, le=100)] | None = Field(default=None, description="added credits only")
    applies_to: AppliesToBody | None = Field(default=None, alias="appliesTo", description="added credits only")
    meter: MeterName | None = Field(
        default=None, description="taken credits only: take them from the cards that apply to this meter"
    )


class CardChangeBody(Body):
    """`PATCH /wallets/{customerId}/cards/{cardId}`: a new expiry (null: none) or priority, and why."""

    model_config = examples({"expiresAt": "2027-06-30T23:59:59Z", "reason": "contract extended"})

    expires_at: Instant | None = Field(default=None, alias="expiresAt")
    priority: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    reason: NoteText
    metadata: MetadataBody | None = None


DimensionMap = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]], Field(max_length=20)
]


class AuthorizeBody(Body):
    """`POST /wallets/{customerId}/authorize`: may this usage go ahead, and what would it cost?"""

    model_config = examples({"meter": "api_calls", "quantity": "250", "dimensions": {"model": "large"}})

    meter: MeterName
    quantity: DecimalText
    dimensions: DimensionMap | None = None


VoidReason = Annotated[str, Field(pattern=REASON_PATTERN, examples=["payment_failed", "requested_by_customer"])]


class VoidBody(Noted):
    """`POST .../void`; the body is optional: without it, what remains is voided."""

    model_config = examples({"reason": "requested_by_customer"}, {"credits": "100", "refund": True})

    reason: VoidReason | None = None
    credits: DecimalText | None = Field(default=None, description="how many of the remaining credits; all by default")
    refund: StrictBool = Field(
        default=False, description="return their value (credits x cost basis) through the card's Stripe payment"
    )


class AutoRechargeBody(Body):
    """What a crossing of `threshold` downward buys: `credits`, or `targetBalance` (exactly one of the two)."""

    threshold: DecimalText
    credits: DecimalText | None = Field(default=None, description="the credits each recharge buys")
    target_balance: DecimalText | None = Field(
        default=None,
        alias="targetBalance",
        description="buy what lifts the balance to this (target - balance + overage), priced by the price book; "
        "more than threshold; no price with it",
    )
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


class RolloverBody(Body):
    """What a recurring card still holds at expiry moves into a new `rollover` card, up to both caps (none: all)."""

    max_percent: DecimalText | None = Field(
        default=None, alias="maxPercent", description="of the expiring card's original credits, 0 to 100"
    )
    max_credits: DecimalText | None = Field(default=None, alias="maxCredits")
    expires_in: Duration | None = Field(
        default=None, alias="expiresIn", description="the rollover card's life from the expiry; absent: no expiry"
    )


class RecurringBody(Body):
    """One grant per `interval`: weekly on `dayOfWeek` (ISO, 1 = Monday); monthly, quarterly (January, April,
    July, October) and yearly (in `month`, January by default) on `dayOfMonth` (a shorter month: its last day)."""

    credits: DecimalText
    price: MoneyBody | None = None
    interval: Literal["week", "month", "quarter", "year"] = "month"
    day_of_month: Annotated[StrictInt, Field(ge=1, le=31)] | None = Field(
        default=None, alias="dayOfMonth", description="every interval but week"
    )
    day_of_week: Annotated[StrictInt, Field(ge=1, le=7)] | None = Field(
        default=None, alias="dayOfWeek", description="week only: ISO weekday, 1 (Monday) to 7 (Sunday)"
    )
    month: Annotated[StrictInt, Field(ge=1, le=12)] | None = Field(
        default=None, description="year only: the grant's month (January when absent)"
    )
    expires_in: Duration | None = Field(default=None, alias="expiresIn")
    payment: PaymentBody | None = Field(
        default=None, description="who collects each grant's price: absent, the SaaS has it; Stripe charges it"
    )
    rollover: RolloverBody | None = None
    applies_to: AppliesToBody | None = Field(default=None, alias="appliesTo", description="each grant's meters")
    reference: Reference | None = Field(default=None, description="on each grant's card (no metadata on grants)")


class SettingsBody(Body):
    model_config = examples(
        {
            "thresholds": ["500", "25%"],
            "autoRecharge": {"threshold": "100", "credits": "1000", "maxPerDay": 2},
            "webhookUrl": "https://example.com/hooks/credits",
        }
    )
    thresholds: Annotated[list[ThresholdText], Field(max_length=20)] = Field(default_factory=list)
    auto_recharge: AutoRechargeBody | None = Field(default=None, alias="autoRecharge")
    recurring: RecurringBody | None = None
    webhook_url: Annotated[str, Field(max_length=2048)] | None = Field(default=None, alias="webhookUrl")
    overage_policy: Literal["allow", "block"] = Field(
        default="allow",
        alias="overagePolicy",
        description="what authorize answers when usage would run past the balance; ingestion never refuses usage",
    )


class SettingsPatchBody(Body):
    """`PATCH /wallets/{customerId}/settings`: a JSON Merge Patch (RFC 7386) over the settings as `PUT` takes them.
    An absent field keeps its value, null clears it, an object merges into the one there (so
    `{"autoRecharge": {"maxPerDay": 3}}` changes only that); the result is validated as `PUT`'s body is."""

    model_config = examples({"autoRecharge": {"maxPerDay": 3}}, {"webhookUrl": None, "thresholds": ["25%"]})

    thresholds: Annotated[list[ThresholdText], Field(max_length=20)] | None = None
    auto_recharge: dict[str, Any] | None = Field(
        default=None, alias="autoRecharge", description="merged into the current autoRecharge (see PUT)"
    )
    recurring: dict[str, Any] | None = Field(default=None, description="merged into the current recurring (see PUT)")
    webhook_url: Annotated[str, Field(max_length=2048)] | None = Field(default=None, alias="webhookUrl")
    overage_policy: Literal["allow", "block"] | None = Field(default=None, alias="overagePolicy")

    def merge_patch(self) -> dict[str, Any]:
        """The patch as sent: the fields given, a null kept as null (it clears)."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class TierBody(Body):
    up_to: DecimalText | None = Field(alias="upTo")
    unit_price: DecimalText = Field(alias="unitPrice")


class PriceBookBody(Body):
    model_config = examples(
        {
            "currency": "USD",
            "mode": "volume",
            "tiers": [{"upTo": "9999", "unitPrice": "0.010"}, {"upTo": None, "unitPrice": "0.008"}],
        }
    )
    currency: Currency
    mode: Literal["volume", "graduated"] = "volume"
    tiers: Annotated[list[TierBody], Field(min_length=1, max_length=50)]


DimensionValue = Annotated[str, Field(pattern=DIMENSION_VALUE_PATTERN)]


class UnitRateBody(Body):
    credits_per_unit: DecimalText = Field(alias="creditsPerUnit", description="the base rate: credits per unit")
    dimension: Annotated[str, Field(pattern=DIMENSION_PATTERN)] | None = Field(
        default=None, description="the event dimension priced by value (e.g. `model`); needs `prices`"
    )
    prices: Annotated[dict[DimensionValue, DecimalText], Field(min_length=1, max_length=MAX_PRICED_VALUES)] | None = (
        Field(
            default=None,
            description="credits per unit by the dimension's value; an event whose value is not listed (or absent) "
            "pays `creditsPerUnit`",
        )
    )


CustomerName = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)]


class RateCardBody(Body):
    model_config = examples(
        {
            "meters": {"api_calls": {"creditsPerUnit": "0.001"}},
            "overrides": {"acme": {"api_calls": {"creditsPerUnit": "0.0005"}}},
        }
    )
    meters: Annotated[dict[MeterName, UnitRateBody], Field(max_length=500)]
    overrides: Annotated[dict[CustomerName, dict[MeterName, UnitRateBody]], Field(max_length=10_000)] = Field(
        default_factory=dict
    )


class DashboardLinkBody(Body):
    """`POST /wallets/{customerId}/dashboard-links`; the body is optional."""

    model_config = examples({"ttlSeconds": 900})

    ttl_seconds: Annotated[StrictInt, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)] = Field(
        default=DEFAULT_TTL_SECONDS, alias="ttlSeconds", description="how long the link stays valid (60 s to 24 h)"
    )


class UsageBody(Body):
    """Up to 1,000 events; each is checked on its own, so one bad event never refuses the others."""

    model_config = examples(
        {
            "events": [
                {
                    "eventId": "req-1",
                    "customerId": "acme",
                    "meter": "api_calls",
                    "quantity": "1",
                    "timestamp": "2026-12-01T12:00:00Z",
                }
            ]
        }
    )

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
    appliesTo: dict[str, list[str]] | None = Field(default=None, description='{"meters": [...]}; null: every meter')
    reference: str | None = None
    metadata: dict[str, str] | None = Field(
        default=None, description="null only in an event about a later change of the card (not read for it)"
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
    availableByMeter: dict[str, str] = Field(
        description='what each meter a card is scoped to may draw now; "*": any other meter (unscoped cards)'
    )
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


def _absent(value: Any) -> bool:
    return value is None


class UnitRateOut(BaseModel):
    """A meter's rate as PUT takes it: `dimension` and `prices` only for a meter priced by dimension value."""

    creditsPerUnit: str
    dimension: str | None = Field(default=None, exclude_if=_absent)
    prices: dict[str, str] | None = Field(default=None, exclude_if=_absent)


class RateCardOut(BaseModel):
    meters: dict[str, UnitRateOut]
    overrides: dict[str, dict[str, UnitRateOut]]
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
    reference: str | None = None
    metadata: dict[str, str] | None = None
    terms: dict[str, dict[str, Any]] | None = Field(
        default=None, description='an expiry_change: {"before": {"expiresAt", "priority"}, "after": {...}}'
    )


class LedgerOut(BaseModel):
    entries: list[LedgerEntryOut]
    nextCursor: str | None


class CardListOut(BaseModel):
    """Every card of a wallet, retired ones included, newest first (createdAt, then cardId)."""

    cards: list[CardOut]
    nextCursor: str | None


class WalletSummaryOut(BaseModel):
    customerId: str
    balance: str
    overage: str
    liveCards: int = Field(description="cards pending or active")
    retiredCards: int = Field(description="cards depleted, expired or voided")
    nextExpiry: InstantText | None
    version: int
    createdAt: InstantText


class WalletListOut(BaseModel):
    """Wallets in customer id order."""

    wallets: list[WalletSummaryOut]
    nextCursor: str | None
    asOf: InstantText


class UsageBucketOut(BaseModel):
    start: InstantText
    quantity: str
    credits: str
    events: int


class PricedUsageOut(BaseModel):
    dimension: str | None = Field(description="null: the part rated at the meter's base rate")
    value: str | None
    quantity: str
    credits: str
    events: int


class MeterSeriesOut(BaseModel):
    meter: str
    quantity: str
    credits: str
    events: int
    buckets: list[UsageBucketOut]
    byDimension: list[PricedUsageOut] = Field(
        description="the span's total split by the dimension value that priced it (empty when none did)"
    )


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
    meters: list[dict[str, str | None]] = Field(
        description="with cards scoped to some meters: each meter's burn and when its cards run dry (else empty)"
    )
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
    rolledOver: str = Field(
        description="deferred revenue moved from expiring recurring cards to rollover cards (stays deferred)"
    )
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


class AdjustmentEntryOut(BaseModel):
    type: Literal["adjustment"]
    credits: str
    at: InstantText
    balanceAfter: str
    draws: list[DrawOut] | None = None
    value: MoneyOut | None = None
    meter: str | None = None
    reason: str
    reference: str | None = None
    metadata: dict[str, str] | None = None


class AdjustmentOut(BaseModel):
    adjustment: AdjustmentEntryOut
    card: CardOut | None = Field(description="the card an addition made; null when credits were taken")
    balance: str


class AuthorizeOut(BaseModel):
    allowed: bool = Field(description="false only with overagePolicy block and usage the cards cannot cover")
    credits: str = Field(description="what the usage costs by the rate card")
    balanceAfter: str
    overageAfter: str
    available: str = Field(description="what the cards that apply to the meter hold now")
    overagePolicy: Literal["allow", "block"]
    at: InstantText


class ErrorFactOut(BaseModel):
    """One entry of an error's `details`: why, which field, and the error's other facts (camelCase)."""

    model_config = ConfigDict(extra="allow")
    reason: str = Field(examples=["too_many_fractional_digits", "missing", "signature_invalid"])
    field: str | None = Field(
        default=None, description="the field at fault, when there is one", examples=["body.credits"]
    )
    message: str | None = Field(default=None, description="validation errors: what the field must be")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[ErrorFactOut] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


# Every error status a route may answer, what it means, and one body of it as the API sends it (the contract's
# `{"error": {"code", "message", "details"?}}`); 403 and 429 are API Gateway's own answers, in the same body.
ERROR_MEANINGS = {
    400: "the body is not JSON (or repeats a key, or nests too deep), or a cursor this API did not hand out",
    402: "the payment provider declined the charge: the card was voided, nothing was granted",
    403: "API Gateway refused the caller: no execute-api:Invoke permission, or a bad or expired SigV4 signature",
    404: "no such wallet or card (or no rate card yet)",
    409: "a conflict: the idempotency key reused with another body, the card's state forbids it, or the wallet "
    "kept changing",
    413: "the body is too large",
    415: "the body is not declared as application/json",
    422: "a value the contract refuses (the details name the field)",
    429: "throttled by API Gateway: retry after a second",
    503: "a service behind the API did not answer: nothing was done that the same request again would do twice",
}
ERROR_EXAMPLES = {
    400: {"code": "malformed_json", "message": "the request body is not valid JSON"},
    402: {"code": "payment_declined", "message": "the payment was declined (card_declined): nothing was granted"},
    403: {"code": "access_denied", "message": "User: arn:aws:iam::123456789012:user/ci is not authorized"},
    404: {"code": "wallet_not_found", "message": "no wallet for customer acme"},
    409: {
        "code": "idempotency_key_reused",
        "message": "idempotency key order-42 was already used with a different request",
    },
    413: {"code": "payload_too_large", "message": "the body exceeds 65536 bytes"},
    415: {"code": "unsupported_media_type", "message": "send the body as application/json"},
    422: {
        "code": "validation_error",
        "message": "invalid input: body.credits",
        "details": [{"field": "body.credits", "reason": "value_error", "message": "must be a decimal string"}],
    },
    429: {"code": "throttled", "message": "too many requests; retry after a second"},
    503: {
        "code": "service_unavailable",
        "message": "try again in a moment: nothing was done that a retry would do twice",
    },
}
# API Gateway's own refusals: 403 a caller IAM refuses (signed routes only), 429 throttled (every route)
IAM_REFUSED, THROTTLED = 403, 429


def error_responses(*statuses: int) -> dict[int, Any]:
    """The error answers a route documents, each with the contract's body (`{"error": {"code", "message",
    "details"?}}`) and an example, for the `responses` of a route's decorator."""
    return {
        status: {
            "description": ERROR_MEANINGS[status],
            "content": {"application/json": {"model": ErrorOut, "example": {"error": ERROR_EXAMPLES[status]}}},
        }
        for status in statuses
    }


def answers(success: int, description: str, *errors: int, signed: bool = True) -> dict[int, Any]:
    """Every answer a route documents: its success (the body its return type names) and each error it can give,
    API Gateway's own included, in the contract's body; they replace Powertools' default 422 (`{"detail"}`), which
    this API never sends. `signed`: the route takes SigV4 (403 when IAM refuses the caller)."""
    gateway = (IAM_REFUSED, THROTTLED) if signed else (THROTTLED,)
    return {success: {"description": description}, **error_responses(*sorted({*errors, *gateway}))}


# -- webhook endpoints --------------------------------------------------------------------------------------------

EndpointId = Annotated[str, Path(pattern=ENDPOINT_ID_PATTERN, description="A webhook endpoint's id (ep_…)")]
EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN, description="The event's id (detail.eventId, webhook-id)")]
EventType = Literal[DETAIL_TYPES]  # type: ignore[valid-type]  # the tuple of every detail type, as a Literal
EventTypes = Annotated[
    list[EventType] | None,
    Field(min_length=1, max_length=len(DETAIL_TYPES), description="the detail types it gets; null: every type"),
]
EndpointUrl = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://example.com/hooks/credits"])]
EndpointDescription = Annotated[str, Field(max_length=MAX_DESCRIPTION, pattern=r"^[^\x00-\x1f\x7f]*$")]


class WebhookEndpointBody(Body):
    model_config = examples(
        {"url": "https://example.com/hooks/credits", "eventTypes": ["Credits Purchased", "Balance Low"]}
    )
    url: EndpointUrl
    event_types: EventTypes = Field(default=None, alias="eventTypes")
    description: EndpointDescription = ""


class WebhookEndpointPatchBody(Body):
    """A JSON merge patch: what is absent stays; `eventTypes` null means every type again."""

    model_config = examples({"eventTypes": None}, {"disabled": True})
    url: EndpointUrl | None = None
    event_types: EventTypes = Field(default=None, alias="eventTypes")
    description: EndpointDescription | None = None
    disabled: StrictBool | None = None


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    eventTypes: list[str] | None = Field(description="the detail types it gets; null: every type")
    description: str
    disabled: bool
    createdAt: InstantText


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret: str = Field(description="its Standard Webhooks secret (whsec_…); also at GET …/secret")


class WebhookEndpointListOut(BaseModel):
    endpoints: list[WebhookEndpointOut]


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="verify deliveries with it (Standard Webhooks, whsec_…)")


class DeliveryOut(BaseModel):
    eventId: str = Field(description="the event's id: the webhook-id header")
    eventType: str
    customerId: str
    eventTime: InstantText
    state: Literal["sending", "failed", "delivered", "dead", "queued"]
    attempts: int = Field(description="attempts in the current round (a resend starts a new one)")
    lastFailure: str | None
    nextAttemptAt: InstantText | None = Field(description="a failed delivery's next try")


class DeliveryListOut(BaseModel):
    """Newest event first."""

    deliveries: list[DeliveryOut]
    nextCursor: str | None
