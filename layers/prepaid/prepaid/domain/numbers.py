"""Exact decimal rules for credits and money."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

from iso4217 import Currency

from prepaid.domain.errors import InvalidAmount, UnsupportedCurrency

CREDIT_DIGITS = 9
CREDIT_QUANTUM = Decimal(1).scaleb(-CREDIT_DIGITS)
COST_BASIS_QUANTUM = Decimal(1).scaleb(-12)
MAX_CREDITS = Decimal(10) ** 12
ZERO = Decimal(0)

# DynamoDB numbers hold 38 significant digits; computing with the same precision keeps every stored value exact.
DECIMAL_CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)

# ISO 4217's minor unit of every currency it lists (the `iso4217` package holds the published table). The codes ISO
# gives no minor unit (precious metals such as XAU, SDR XDR, bond units, XTS, XXX) are refused: a price must round to a
# smallest unit, and a payment provider takes none of them.
MINOR_UNITS: dict[str, int] = {c.code: c.exponent for c in Currency if c.exponent is not None}
UNITLESS_CURRENCIES = frozenset(c.code for c in Currency if c.exponent is None)


def finite(value: Decimal, field: str) -> Decimal:
    """Reject NaN and infinities, which `Decimal` accepts but no amount may be."""
    if not value.is_finite():
        raise InvalidAmount(field=field, value=str(value), reason="not_finite")
    return value


def round_credits(value: Decimal) -> Decimal:
    """Round credits half-even to 9 fractional digits."""
    return finite(value, "credits").quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_EVEN, context=DECIMAL_CONTEXT)


def exact_credits(value: Decimal, field: str = "credits", *, allow_zero: bool = False) -> Decimal:
    """Validate credits given by a client: positive, at most 9 fractional digits, at most 10^12."""
    finite(value, field)
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidAmount(field=field, value=str(value), reason="not_positive" if not allow_zero else "negative")
    if value > MAX_CREDITS:
        raise InvalidAmount(field=field, value=str(value), reason="too_large")
    if value != value.quantize(CREDIT_QUANTUM, context=DECIMAL_CONTEXT):
        raise InvalidAmount(field=field, value=str(value), reason="too_many_fractional_digits")
    return value


def minor_units(currency: str) -> int:
    """Number of fractional digits of a currency's minor unit; a code that is not ISO 4217's, or one without a minor
    unit, is refused."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        reason = "no_minor_unit" if currency in UNITLESS_CURRENCIES else "not_iso_4217"
        raise UnsupportedCurrency(currency=currency, reason=reason) from None


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round an amount half-even to its currency's minor unit."""
    quantum = Decimal(1).scaleb(-minor_units(currency))
    try:
        return finite(amount, "amount").quantize(quantum, rounding=ROUND_HALF_EVEN, context=DECIMAL_CONTEXT)
    except InvalidOperation:
        raise InvalidAmount(field="amount", value=str(amount), reason="too_large") from None


def to_wire(value: Decimal) -> str:
    """Plain decimal string without exponent, as the contract puts amounts on the wire."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text
