from decimal import Decimal

import pytest

from prepaid.application.ingest import RateCards
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


class _Catalog:
    """A catalog whose rate card can be changed, counting reads."""

    def __init__(self, card: RateCard) -> None:
        self.card, self.reads = card, 0

    def rate_card(self) -> RateCard:
        self.reads += 1
        return self.card


def test_the_cached_card_is_read_again_for_an_unknown_meter_at_most_once_a_second() -> None:
    # Given a card cached for 30 s, read at t=0, then changed in the table
    clock = [0.0]
    catalog = _Catalog(RateCard(meters={"api_calls": Decimal("0.5")}))
    cards = RateCards(catalog, ttl=30, monotonic=lambda: clock[0], recheck=1)  # type: ignore[arg-type]
    assert cards.current() is not None and catalog.reads == 1
    catalog.card = RateCard(meters={"api_calls": Decimal("0.5"), "tokens": Decimal("0.002")})
    # When asked again within the 30 s, the cached card stands; a recheck within the second reads nothing
    clock[0] = 0.5
    assert cards.current() is not catalog.card and cards.recheck() is not catalog.card and catalog.reads == 1
    # Then a recheck a second after the last read reads the new card, which is current from then on
    clock[0] = 1.0
    assert cards.recheck() is catalog.card and cards.current() is catalog.card and catalog.reads == 2
    # And past the 30 s the card is read again even with no unknown meter
    clock[0] = 31.0
    assert cards.current() is catalog.card and catalog.reads == 3
