from decimal import Decimal

import pytest

from prepaid.domain.errors import InvalidAmount, UnsupportedCurrency
from prepaid.domain.numbers import exact_credits, round_credits, round_money, to_wire


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
