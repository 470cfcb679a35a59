"""The contract's rules for what crosses a boundary, each written once: id patterns, decimal text, instants, limits.

Every edge (HTTP bodies and paths, queue messages, bus events, stored items read back) checks with these, so a rule
changed here changes everywhere. Pure: patterns and bounds, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from prepaid.domain.spans import CalendarSpan, Span

# -- ids -------------------------------------------------------------------------------------------------------------
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
METER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# Usage event ids and idempotency keys: printable ASCII, no space (they become parts of table keys and headers).
EVENT_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
CARD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Stripe's object ids: a prefix (cus_, pm_, pi_, ...) and a tail
STRIPE_ID_PATTERN = r"^[a-z]{2,8}_[A-Za-z0-9_]{1,250}$"
REASON_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"  # why a card was voided: a snake_case code such as payment_failed
# The event dimension a meter may be priced by (a key of a usage event's `dimensions`), and a value given its own
# price. Neither holds `|` or `=`, which join meter, dimension and value in a stored hour's attribute names.
DIMENSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
DIMENSION_VALUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"
# What the SaaS attaches to a card or a change: its own reference (an invoice id) and string pairs
REFERENCE_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$"  # printable ASCII, no edge spaces, <= 128
MAX_METADATA_PAIRS = 20
MAX_METADATA_KEY = 40  # characters
MAX_METADATA_VALUE = 500  # characters
MAX_NOTE_TEXT = 500  # characters of an adjustment's or a card change's reason
MAX_APPLIES_TO_METERS = 50  # meters one card may be scoped to
# A correlation id: a caller's `X-Correlation-Id`, a producer's `correlationId` attribute, or AWS's own request or
# message id. Joined with commas in a drawdown message's attribute, so it holds none.
CORRELATION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MAX_CORRELATION_IDS = 10  # carried by one drawdown message, or in one event's detail
CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
METER = re.compile(METER_PATTERN)
DIMENSION = re.compile(DIMENSION_PATTERN)
DIMENSION_VALUE = re.compile(DIMENSION_VALUE_PATTERN)
EVENT_ID = re.compile(EVENT_ID_PATTERN)
CARD_ID = re.compile(CARD_ID_PATTERN)
CORRELATION_ID = re.compile(CORRELATION_ID_PATTERN)


def correlation_id(value: object) -> str | None:
    """`value` when it is a valid correlation id, else None."""
    return value if isinstance(value, str) and CORRELATION_ID.fullmatch(value) else None


def correlation_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """The distinct valid ids of `ids`, in order of first appearance, at most `MAX_CORRELATION_IDS`."""
    kept: dict[str, None] = {}
    for value in ids:
        if len(kept) == MAX_CORRELATION_IDS:
            break
        if correlation_id(value) is not None:
            kept[value] = None
    return tuple(kept)


# -- decimal text ----------------------------------------------------------------------------------------------------
# Every decimal on the wire is a string of ASCII digits: no exponent, `_`, spaces, signs other than a leading `-`, or
# digits of other scripts (which `Decimal()` would accept: it reads the fullwidth "\uff11\uff10" as 10).
DECIMAL_TEXT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
DECIMAL_TEXT = re.compile(DECIMAL_TEXT_PATTERN)
MAX_DECIMAL_TEXT = 40  # characters: more than any bounded amount needs, far less than DynamoDB's 38 digits allow


def decimal_from_text(value: object) -> Decimal | None:
    """The exact value of a decimal string as the contract writes it, or None for anything else (a JSON number,
    a bool, an exponent, `NaN`, `1_000`, ` 5 `, fullwidth digits, more than 40 characters)."""
    if not isinstance(value, str) or len(value) > MAX_DECIMAL_TEXT or not DECIMAL_TEXT.fullmatch(value):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        return None


# A balance threshold given as a share of the balance right after the wallet was last funded: "25%", "12.5%".
PERCENT_TEXT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"
MAX_PERCENT = Decimal(100)


def percent_from_text(value: object) -> Decimal | None:
    """The percentage of a text such as "25%" when it is more than 0 and at most 100, else None."""
    if not isinstance(value, str) or not value.endswith("%"):
        return None
    number = decimal_from_text(value[:-1])
    return number if number is not None and 0 < number <= MAX_PERCENT else None


# -- instants --------------------------------------------------------------------------------------------------------
# The instants a request may name. Far enough either way for any contract, and far enough from `datetime.max` that
# adding a bounded duration never overflows.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)  # exclusive
LONGEST_DURATION = timedelta(days=100 * 366)  # expiresIn and the like: at most a hundred years


def instant_in_range(at: datetime) -> bool:
    """Whether an aware instant is one the system accepts (1970-01-01 up to, not including, 9000-01-01 UTC)."""
    return EARLIEST_INSTANT <= at < LATEST_INSTANT


def duration_in_range(span: Span) -> bool:
    """Positive and at most a hundred years; a calendar one (`P1M`) from any start."""
    if isinstance(span, CalendarSpan):
        # each part bounded first (more would be past the bound anyway), so that `longest` cannot overflow
        parts_bounded = 0 < span.months <= 100 * 12 and timedelta(0) <= span.exact <= LONGEST_DURATION
        return parts_bounded and span.longest <= LONGEST_DURATION
    return timedelta(0) < span <= LONGEST_DURATION


# -- limits ----------------------------------------------------------------------------------------------------------
MAX_LIVE_CARDS = 500  # cards active or pending in one wallet (the wallet item holds them; DynamoDB caps it at 400 KB)
MAX_JSON_DEPTH = 32  # nesting of arrays and objects in any JSON a function reads (the deepest valid body has 5)
MAX_EVENTS_PER_REQUEST = 1000  # POST /usage, and one usage-queue message
MAX_PRICED_VALUES = 100  # dimension values a meter (or a customer's override of it) lists a price for
