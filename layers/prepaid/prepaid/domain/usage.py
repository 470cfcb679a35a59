"""Usage events: validation with a reason for every refusal, and rating by the rate card."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prepaid.domain.errors import DomainError, UnknownMeter
from prepaid.domain.numbers import CREDIT_QUANTUM, DECIMAL_CONTEXT, MAX_CREDITS
from prepaid.domain.rate_card import PricedBy, RateCard
from prepaid.domain.rules import (
    CUSTOMER_ID,
    DIMENSION,
    DIMENSION_VALUE,
    EVENT_ID,
    METER,
    decimal_from_text,
    instant_in_range,
)
from prepaid.domain.wallet import RatedUsage

FIELDS = frozenset({"eventId", "customerId", "meter", "quantity", "timestamp", "dimensions"})
MAX_QUANTITY = MAX_CREDITS
MAX_RATED_CREDITS = MAX_CREDITS  # what one event may cost: a larger cost is a wrong rate or quantity, refused
RATED_FIELDS = frozenset({"eventId", "meter", "quantity", "credits", "timestamp"})
RATED_OPTIONAL = frozenset({"pricedBy"})  # only on events rated at a dimension value's price
MAX_DIMENSIONS = 20
FUTURE_TOLERANCE = timedelta(minutes=5)
ID_REUSED = "event_id_reused_with_other_content"  # the reason given when an event id comes back with other content


@dataclass(frozen=True)
class EventContent:
    """What an event id stands for: a replay with the same content is a duplicate, with other content a conflict."""

    customer_id: str
    meter: str
    quantity: Decimal


@dataclass(frozen=True)
class UsageEvent:
    event_id: str
    customer_id: str
    meter: str
    quantity: Decimal
    timestamp: datetime
    dimensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def content(self) -> EventContent:
        return EventContent(self.customer_id, self.meter, self.quantity)


@dataclass(frozen=True)
class Rejection:
    """Why an event was refused: a stable `reason` code, and the field it concerns."""

    reason: str
    field: str | None = None
    event_id: str | None = None


def _text(raw: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str | Rejection:
    value = raw.get(name)
    if value is None:
        return Rejection("missing_field", name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return Rejection("invalid_" + _snake(name), name)
    return value


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _amount(value: Any, name: str, limit: Decimal) -> Decimal | Rejection:
    """A non-negative decimal string of at most 9 fractional digits and at most `limit` (quantities, credits)."""
    if value is None:
        return Rejection("missing_field", name)
    amount = decimal_from_text(value)
    if amount is None:
        return Rejection(f"{name}_not_a_decimal_string", name)
    if amount < 0:
        return Rejection(f"{name}_negative", name)
    if amount > limit:
        return Rejection(f"{name}_too_large", name)
    if amount != amount.quantize(CREDIT_QUANTUM, context=DECIMAL_CONTEXT):
        return Rejection(f"{name}_too_precise", name)
    return amount


def _timestamp(value: Any, now: datetime) -> datetime | Rejection:
    if value is None:
        return Rejection("missing_field", "timestamp")
    if not isinstance(value, str) or len(value) > 64:
        return Rejection("invalid_timestamp", "timestamp")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return Rejection("invalid_timestamp", "timestamp")
    if at.tzinfo is None or "T" not in value:
        return Rejection("timestamp_without_zone" if at.tzinfo is None else "invalid_timestamp", "timestamp")
    try:
        at = at.astimezone(UTC)
    except OverflowError:  # such as 0001-01-01T00:00:00+14:00, which has no UTC instant
        return Rejection("invalid_timestamp", "timestamp")
    if at > now + FUTURE_TOLERANCE:
        return Rejection("timestamp_in_future", "timestamp")
    if not instant_in_range(at):
        return Rejection("timestamp_out_of_range", "timestamp")
    return at


def _dimensions(value: Any) -> dict[str, str] | Rejection:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > MAX_DIMENSIONS
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256 for k, v in value.items()
        )
    ):
        return Rejection("invalid_dimensions", "dimensions")
    return dict(value)


def parse_usage(raw: Any, now: datetime) -> UsageEvent | Rejection:
    """Validate one usage event as received (a JSON object); every refusal says why."""
    if not isinstance(raw, dict):
        return Rejection("not_an_object")
    event_id = raw.get("eventId")
    if event_id is None:
        return Rejection("missing_field", "eventId")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        return Rejection("invalid_event_id", "eventId")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        return Rejection("unknown_field", unknown[0], event_id)
    customer_id = _text(raw, "customerId", CUSTOMER_ID)
    meter = _text(raw, "meter", METER)
    quantity = _amount(raw.get("quantity"), "quantity", MAX_QUANTITY)
    timestamp = _timestamp(raw.get("timestamp"), now)
    dimensions = _dimensions(raw.get("dimensions"))
    for part in (customer_id, meter, quantity, timestamp, dimensions):
        if isinstance(part, Rejection):
            return Rejection(part.reason, part.field, event_id)
    assert isinstance(customer_id, str) and isinstance(meter, str)
    assert isinstance(quantity, Decimal) and isinstance(timestamp, datetime) and isinstance(dimensions, dict)
    return UsageEvent(event_id, customer_id, meter, quantity, timestamp, dimensions)


def rate(event: UsageEvent, rate_card: RateCard) -> RatedUsage | Rejection:
    """The event's cost in credits by the rate card, or why it cannot be rated: its meter is unknown, or its cost
    is out of range (a rate that makes one event cost more than 10^12 credits, or that is not a finite number)."""
    try:
        price = rate_card.unit_price(event.customer_id, event.meter, event.dimensions)
        credits = rate_card.cost(event.quantity, price.credits_per_unit)
    except UnknownMeter:
        return Rejection("unknown_meter", "meter", event.event_id)
    except (DomainError, ArithmeticError):
        return Rejection("credits_out_of_range", "quantity", event.event_id)
    if credits > MAX_RATED_CREDITS:
        return Rejection("credits_out_of_range", "quantity", event.event_id)
    return RatedUsage(event.event_id, event.meter, event.quantity, credits, event.timestamp, price.priced_by)


def parse_rated(raw: Any, now: datetime) -> RatedUsage | Rejection:
    """Validate one rated event as it travels to drawdown: the fields ingest writes and no other, each as ingest
    checked it, and credits that are a non-negative decimal string of at most 9 fractional digits and at most
    10^12. Whoever put it on the queue, a message that fails here changes no wallet."""
    if not isinstance(raw, dict):
        return Rejection("not_an_object")
    if not RATED_FIELDS <= set(raw) <= RATED_FIELDS | RATED_OPTIONAL:
        odd = (set(raw) - RATED_FIELDS - RATED_OPTIONAL) | (RATED_FIELDS - set(raw))
        return Rejection("unexpected_fields", ",".join(sorted(odd))[:200])
    event_id = raw["eventId"]
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        return Rejection("invalid_event_id", "eventId")
    meter = _text(raw, "meter", METER)
    quantity = _amount(raw["quantity"], "quantity", MAX_QUANTITY)
    credits = _amount(raw["credits"], "credits", MAX_RATED_CREDITS)
    timestamp = _timestamp(raw["timestamp"], now)
    priced_by = _priced_by(raw.get("pricedBy"))
    for part in (meter, quantity, credits, timestamp, priced_by):
        if isinstance(part, Rejection):
            return Rejection(part.reason, part.field, event_id)
    assert isinstance(meter, str) and isinstance(quantity, Decimal) and isinstance(credits, Decimal)
    assert isinstance(timestamp, datetime) and not isinstance(priced_by, Rejection)
    return RatedUsage(event_id, meter, quantity, credits, timestamp, priced_by)


def _priced_by(value: Any) -> PricedBy | Rejection | None:
    """A rated event's `{"dimension", "value"}` as ingest writes it (absent for the base rate)."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"dimension", "value"}
        or not isinstance(value["dimension"], str)
        or not isinstance(value["value"], str)
        or not DIMENSION.fullmatch(value["dimension"])
        or not DIMENSION_VALUE.fullmatch(value["value"])
    ):
        return Rejection("invalid_priced_by", "pricedBy")
    return PricedBy(value["dimension"], value["value"])
