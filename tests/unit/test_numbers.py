from decimal import Decimal

import pytest
from iso4217 import Currency

from prepaid.domain.errors import InvalidAmount, UnsupportedCurrency
from prepaid.domain.numbers import (
    MINOR_UNITS,
    UNITLESS_CURRENCIES,
    exact_credits,
    round_credits,
    round_money,
    to_wire,
)


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [
        ("0.0000000005", "0E-9"),  # half to even: down to 0
        ("0.0000000015", "2E-9"),  # half to even: up to 2
        ("0.0000000025", "2E-9"),
        ("1.23456789049", "1.234567890"),
    ],
)
def test_credits_round_half_even_to_nine_digits(raw: str, rounded: str) -> None:
    # Given a rated amount with more than 9 fractional digits / When rounded / Then half-even at 1e-9
    assert round_credits(Decimal(raw)) == Decimal(rounded)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "not_positive"),
        ("-1", "not_positive"),
        ("NaN", "not_finite"),
        ("Infinity", "not_finite"),
        ("1000000000000.5", "too_large"),
        ("0.0000000001", "too_many_fractional_digits"),
    ],
)
def test_client_credits_are_refused_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidAmount) as refused:
        exact_credits(Decimal(value))
    assert refused.value.reason == reason
    assert refused.value.field == "credits"


def test_money_rounds_to_the_minor_unit_of_its_currency() -> None:
    assert round_money(Decimal("1.005"), "USD") == Decimal("1.00")
    assert round_money(Decimal("1.015"), "USD") == Decimal("1.02")
    assert round_money(Decimal("100.5"), "JPY") == Decimal("100")
    assert round_money(Decimal("1.0005"), "KWD") == Decimal("1.000")
    with pytest.raises(UnsupportedCurrency):
        round_money(Decimal(1), "XXX")


@pytest.mark.parametrize(
    ("value", "text"),
    [("12.500", "12.5"), ("1E+3", "1000"), ("0E-9", "0"), ("-0", "0"), ("0.000000001", "0.000000001")],
)
def test_wire_form_is_a_plain_decimal_string(value: str, text: str) -> None:
    assert to_wire(Decimal(value)) == text


@pytest.mark.parametrize(("currency", "digits"), [("UYW", 4), ("CLF", 4), ("MGA", 2), ("XOF", 0), ("LYD", 3)])
def test_every_iso_4217_currency_rounds_to_its_own_minor_unit(currency: str, digits: int) -> None:
    # Given currencies the hand list of 39 did not know (four digits, zero, three)
    # When an amount finer than their minor unit is rounded
    rounded = round_money(Decimal("1.123456"), currency)
    # Then it keeps exactly ISO 4217's number of fractional digits
    assert rounded.as_tuple().exponent == -digits


def test_all_iso_4217_currencies_with_a_minor_unit_are_known() -> None:
    # Given the published ISO 4217 table (178 codes, 13 of them without a minor unit)
    # Then every code with a minor unit is priced, and none of the others
    assert len(MINOR_UNITS) == len(Currency) - len(UNITLESS_CURRENCIES) >= 160
    assert not set(MINOR_UNITS) & UNITLESS_CURRENCIES


@pytest.mark.parametrize(
    ("currency", "reason"), [("XAU", "no_minor_unit"), ("XXX", "no_minor_unit"), ("ABC", "not_iso_4217")]
)
def test_a_code_without_a_minor_unit_or_outside_iso_4217_is_refused_with_its_reason(currency: str, reason: str) -> None:
    # Given gold (no minor unit), "no currency", and a made-up code / When an amount in it is rounded
    with pytest.raises(UnsupportedCurrency) as refused:
        round_money(Decimal(1), currency)
    # Then the refusal says which
    assert refused.value.reason == reason
