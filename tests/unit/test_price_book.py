from decimal import Decimal

import pytest

from prepaid.domain.errors import InvalidRequest, UnsupportedCurrency
from prepaid.domain.money import Money
from prepaid.domain.price_book import PriceBook, PricingMode, Tier

CONTRACT_TIERS = (
    Tier(Decimal(9999), Decimal("0.010")),
    Tier(Decimal(99999), Decimal("0.009")),
    Tier(None, Decimal("0.008")),
)


@pytest.mark.parametrize(
    ("credits", "amount", "tier"),
    [
        ("1", "0.01", 0),
        ("9999", "99.99", 0),
        ("9999.5", "89.9955", 1),  # just past the first tier's bound: the whole quantity moves up a tier
        ("10000", "90.00", 1),
        ("99999", "899.991", 1),
        ("100000", "800.00", 2),
        ("250000", "2000.00", 2),
    ],
)
def test_volume_tiers_price_every_credit_at_the_tier_the_quantity_reaches(credits: str, amount: str, tier: int) -> None:
    book = PriceBook("USD", PricingMode.VOLUME, CONTRACT_TIERS)
    quote = book.quote(Decimal(credits))
    assert quote.tier_index == tier
    assert quote.price == Money.rounded(Decimal(amount), "USD")


def test_graduated_tiers_price_each_slice_at_its_own_tier() -> None:
    # Given the contract's tiers priced graduated / When 100,000 credits are quoted
    book = PriceBook("USD", PricingMode.GRADUATED, CONTRACT_TIERS)
    quote = book.quote(Decimal(100000))
    # Then 9,999 at 0.010 + 90,000 at 0.009 + 1 at 0.008
    assert quote.price.amount == Decimal("99.99") + Decimal("810.00") + Decimal("0.01")


@pytest.mark.parametrize(
    ("tiers", "reason"),
    [
        ((), "empty"),
        ((Tier(Decimal(10), Decimal(1)),), "only_last_tier_is_open"),
        ((Tier(None, Decimal(1)), Tier(None, Decimal(1))), "only_last_tier_is_open"),
        ((Tier(Decimal(10), Decimal(1)), Tier(Decimal(5), Decimal(1)), Tier(None, Decimal(1))), "bounds_not_ascending"),
        ((Tier(None, Decimal(-1)),), "negative_unit_price"),
    ],
)
def test_malformed_price_books_are_refused(tiers: tuple[Tier, ...], reason: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        PriceBook("USD", PricingMode.VOLUME, tiers)
    assert refused.value.reason == reason


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(UnsupportedCurrency):
        PriceBook("ABC", PricingMode.VOLUME, (Tier(None, Decimal(1)),))
