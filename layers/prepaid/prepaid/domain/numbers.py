"""Exact decimal rules for credits and money."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

from prepaid.domain.errors import InvalidAmount, UnsupportedCurrency

CREDIT_DIGITS = 9
CREDIT_QUANTUM = Decimal(1).scaleb(-CREDIT_DIGITS)
COST_BASIS_QUANTUM = Decimal(1).scaleb(-12)
MAX_CREDITS = Decimal(10) ** 12
ZERO = Decimal(0)

# DynamoDB numbers hold 38 significant digits; computing with the same precision keeps every stored value exact.
DECIMAL_CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)

# ISO 4217 minor units of the currencies a price may be in.
MINOR_UNITS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "NZD": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "PLN": 2, "CZK": 2, "HUF": 2, "INR": 2, "CNY": 2, "HKD": 2, "SGD": 2, "MXN": 2, "BRL": 2, "ZAR": 2,
    "ILS": 2, "TRY": 2, "AED": 2, "SAR": 2, "THB": 2, "MYR": 2, "PHP": 2, "IDR": 2, "TWD": 2,
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


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
    """Number of fractional digits of a currency's minor unit."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnsupportedCurrency(currency=currency) from None


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
