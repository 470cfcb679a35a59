from decimal import Decimal

import pytest

from prepaid.domain.errors import UnknownMeter
from prepaid.domain.rate_card import RateCard


def test_customer_override_wins_and_rating_rounds_half_even() -> None:
    # Given a rate card with a per-customer override
    card = RateCard(
        meters={"api_calls": Decimal("0.001"), "tokens": Decimal("0.0000000015")},
        overrides={"acme": {"api_calls": Decimal("0.0005")}},
    )
    # Then acme pays the override and others the list rate
    assert card.rate("acme", "api_calls", Decimal(3)) == Decimal("0.0015")
    assert card.rate("other", "api_calls", Decimal(3)) == Decimal("0.003")
    # And a rating finer than 1e-9 rounds half-even: 1.5e-9 becomes 2e-9
    assert card.rate("other", "tokens", Decimal(1)) == Decimal("0.000000002")


def test_unknown_meter_is_rejected_with_its_name() -> None:
    card = RateCard(meters={"api_calls": Decimal("0.001")})
    with pytest.raises(UnknownMeter) as refused:
        card.rate("acme", "storage", Decimal(1))
    assert refused.value.meter == "storage"
