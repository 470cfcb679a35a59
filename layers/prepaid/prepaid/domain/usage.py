"""Usage events: validation with a reason for every refusal, and rating by the rate card."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from prepaid.domain.errors import UnknownMeter
from prepaid.domain.numbers import CREDIT_QUANTUM, DECIMAL_CONTEXT, MAX_CREDITS
from prepaid.domain.rate_card import RateCard

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
METER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
FIELDS = frozenset({"eventId", "customerId", "meter", "quantity", "timestamp", "dimensions"})
MAX_QUANTITY = MAX_CREDITS
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


def _quantity(value: Any) -> Decimal | Rejection:
    if value is None:
        return Rejection("missing_field", "quantity")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return Rejection("quantity_not_a_decimal_string", "quantity")
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        return Rejection("quantity_not_a_decimal_string", "quantity")
    if not quantity.is_finite():
        return Rejection("quantity_not_finite", "quantity")
    if quantity < 0:
        return Rejection("quantity_negative", "quantity")
    if quantity > MAX_QUANTITY:
        return Rejection("quantity_too_large", "quantity")
    if quantity != quantity.quantize(CREDIT_QUANTUM, context=DECIMAL_CONTEXT):
        return Rejection("quantity_too_precise", "quantity")
    return quantity


def _timestamp(value: Any, now: datetime) -> datetime | Rejection:
    if value is None:
        return Rejection("missing_field", "timestamp")
    if not isinstance(value, str):
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
    raw_id = raw.get("eventId")
    event_id = raw_id if isinstance(raw_id, str) and 1 <= len(raw_id) <= 128 else None
    if raw_id is None:
        return Rejection("missing_field", "eventId")
    if event_id is None or not event_id.isprintable():
        return Rejection("invalid_event_id", "eventId")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        return Rejection("unknown_field", unknown[0], event_id)
    customer_id = _text(raw, "customerId", CUSTOMER_ID)
    meter = _text(raw, "meter", METER)
    quantity = _quantity(raw.get("quantity"))
    timestamp = _timestamp(raw.get("timestamp"), now)
    dimensions = _dimensions(raw.get("dimensions"))
    for part in (customer_id, meter, quantity, timestamp, dimensions):
        if isinstance(part, Rejection):
            return Rejection(part.reason, part.field, event_id)
    assert isinstance(customer_id, str) and isinstance(meter, str)
    assert isinstance(quantity, Decimal) and isinstance(timestamp, datetime) and isinstance(dimensions, dict)
    return UsageEvent(event_id, customer_id, meter, quantity, timestamp, dimensions)


def check_rated(event: UsageEvent, rate_card: RateCard) -> Rejection | None:
    """An event whose meter the rate card does not know is refused, never dropped silently."""
    try:
        rate_card.credits_per_unit(event.customer_id, event.meter)
    except UnknownMeter:
        return Rejection("unknown_meter", "meter", event.event_id)
    return None
