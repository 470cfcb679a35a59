"""Rate card prices by dimension value: the listed price for a listed value, the meter's base rate for any other
(or none), per customer override too; and the priced split kept through every stored and travelling shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prepaid.adapters import items
from prepaid.adapters.sqs import MalformedRatedMessage, rated_from_wire, rated_to_wire
from prepaid.domain.errors import InvalidRequest, UnknownMeter
from prepaid.domain.rate_card import DimensionPrices, PricedBy, RateCard
from prepaid.domain.usage import UsageEvent, rate
from prepaid.domain.usage_hours import HourUsage, MeterUsage
from prepaid.domain.wallet import RatedUsage
from prepaid.edge import wire
from prepaid.edge.schemas import RateCardBody
from prepaid.edge.translation import rate_card_from_body

AT = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
TOKENS = DimensionPrices("model", {"gpt-4": Decimal("0.00003"), "small": Decimal("0.000001")})
CARD = RateCard(
    meters={"tokens": Decimal("0.000002"), "api_calls": Decimal("0.5")},
    overrides={"vip": {"tokens": Decimal("0.0000015")}, "flat": {"tokens": Decimal("0.000001")}},
    by_dimension={"tokens": TOKENS},
    overrides_by_dimension={"vip": {"tokens": DimensionPrices("model", {"gpt-4": Decimal("0.00002")})}},
)


def test_a_listed_value_pays_its_price_and_any_other_the_base_rate() -> None:
    # Given tokens priced by model: gpt-4 0.00003, small 0.000001, base 0.000002
    # When a million tokens are rated with each model, an unlisted one, another dimension only, and none
    million = Decimal(1_000_000)
    rated = {
        name: CARD.rate("acme", "tokens", million, dimensions)
        for name, dimensions in {
            "gpt-4": {"model": "gpt-4"},
            "small": {"model": "small", "region": "eu"},
            "unlisted": {"model": "gpt-5"},
            "other dimension": {"region": "gpt-4"},
            "none": None,
        }.items()
    }

    # Then each listed model pays its price and everything else the base rate
    assert rated == {
        "gpt-4": Decimal("30"),
        "small": Decimal("1"),
        "unlisted": Decimal("2"),
        "other dimension": Decimal("2"),
        "none": Decimal("2"),
    }
    # And the unit price names the value that set it
    assert CARD.unit_price("acme", "tokens", {"model": "gpt-4"}).priced_by == PricedBy("model", "gpt-4")
    assert CARD.unit_price("acme", "tokens", {"model": "gpt-5"}).priced_by is None
    # And the call without dimensions is as before
    assert CARD.rate("acme", "api_calls", Decimal(3)) == Decimal("1.5")


def test_an_override_replaces_the_meters_whole_rate_prices_by_dimension_included() -> None:
    # Given vip overrides tokens with its own gpt-4 price, and flat overrides tokens with a base rate alone
    million, gpt4 = Decimal(1_000_000), {"model": "gpt-4"}
    # Then vip pays its gpt-4 price, and its base rate for small (the card's small price is not vip's)
    assert CARD.rate("vip", "tokens", million, gpt4) == Decimal("20")
    assert CARD.rate("vip", "tokens", million, {"model": "small"}) == Decimal("1.5")
    # And flat pays its base rate whatever the model
    assert CARD.rate("flat", "tokens", million, gpt4) == Decimal("1")
    # And an unknown meter is still refused, dimensions or not
    with pytest.raises(UnknownMeter):
        CARD.rate("acme", "storage", million, gpt4)


values = st.text(alphabet="abcdefgh-4.", min_size=1, max_size=6).filter(lambda v: v[0].isalnum())
rates = st.decimals(min_value=0, max_value=1000, places=6)


@given(
    base=rates,
    prices=st.dictionaries(values, rates, max_size=5),
    dimensions=st.dictionaries(st.sampled_from(["model", "region", "tier"]), values, max_size=3),
    quantity=st.decimals(min_value=0, max_value=10**6, places=3),
)
def test_a_dimension_priced_rate_is_the_listed_price_and_everything_else_falls_back(
    base: Decimal, prices: dict[str, Decimal], dimensions: dict[str, str], quantity: Decimal
) -> None:
    # Given a meter priced by `model`, and any event dimensions
    card = RateCard(meters={"m": base}, by_dimension={"m": DimensionPrices("model", prices)} if prices else {})
    event = UsageEvent("e1", "acme", "m", quantity, AT, dimensions)

    # When the event is rated
    rated = rate(event, card)

    # Then it pays the price listed for its model, else the base rate, and says which value priced it
    value = dimensions.get("model")
    listed = prices.get(value) if value is not None else None
    assert isinstance(rated, RatedUsage)
    assert rated.credits == RateCard.cost(quantity, base if listed is None else listed)
    assert rated.priced_by == (PricedBy("model", value) if listed is not None and value is not None else None)


def test_the_priced_value_travels_to_drawdown_and_is_kept_in_stored_hours() -> None:
    # Given a rated event priced by gpt-4 and one at the base rate
    usages = (
        RatedUsage("e1", "tokens", Decimal(1000), Decimal("0.03"), AT, PricedBy("model", "gpt-4")),
        RatedUsage("e2", "tokens", Decimal(1000), Decimal("0.002"), AT),
    )

    # When they travel on the drawdown queue, the base-rate one exactly as before prices by dimension
    text = json.dumps(rated_to_wire("acme", usages))
    assert "pricedBy" not in json.dumps(rated_to_wire("acme", usages[1:]))

    # Then they arrive as sent
    assert rated_from_wire(text, AT).usages == usages
    # And a forged `pricedBy` is dead-lettered with a reason
    forged = json.loads(text)
    forged["events"][0]["pricedBy"] = {"dimension": "model", "value": "gpt 4"}
    with pytest.raises(MalformedRatedMessage, match="invalid_priced_by"):
        rated_from_wire(json.dumps(forged), AT)

    # And an hour holding the split reads back the same from the wallet's open hour and from a stored hour item
    hour = HourUsage(
        AT.replace(minute=0),
        {"tokens": MeterUsage(Decimal(2000), Decimal("0.032"), 2)},
        {("tokens", PricedBy("model", "gpt-4")): MeterUsage(Decimal(1000), Decimal("0.03"), 1)},
    )
    assert items._open_hour(items._open_hour_text(hour)) == hour
    assert items.hour_from_item(items.from_attributes(items.to_attributes(items.hour_item("acme", 7, hour)))) == hour


def test_the_rate_card_round_trips_through_body_item_and_answer() -> None:
    # Given a PUT body with prices by model, and an override with its own
    body = {
        "meters": {
            "tokens": {"creditsPerUnit": "0.000002", "dimension": "model", "prices": {"gpt-4": "0.00003"}},
            "api_calls": {"creditsPerUnit": "0.5"},
        },
        "overrides": {"vip": {"tokens": {"creditsPerUnit": "0.0000015", "dimension": "model", "prices": {"a": "1"}}}},
    }

    # When it is read, stored and read back, and answered
    card = rate_card_from_body(RateCardBody.model_validate(body))
    stored = items.rate_card_from_item(items.from_attributes(items.to_attributes(items.rate_card_item(card))))
    answer = wire.rate_card(stored)

    # Then the answer is the body, unchanged (a meter without prices by dimension keeps today's shape)
    assert stored == card
    assert {k: answer[k] for k in ("meters", "overrides")} == body
    # And a card stored before prices by dimension still reads
    old = items.rate_card_item(RateCard(meters={"m": Decimal(1)}))
    del old["byDimension"], old["overridesByDimension"]
    assert items.rate_card_from_item(old) == RateCard(meters={"m": Decimal(1)})


@pytest.mark.parametrize(
    ("rate", "field"),
    [
        ({"creditsPerUnit": "1", "dimension": "model"}, "meters.tokens.prices"),
        ({"creditsPerUnit": "1", "prices": {"gpt-4": "2"}}, "meters.tokens.dimension"),
    ],
)
def test_dimension_and_prices_go_together(rate: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        rate_card_from_body(RateCardBody.model_validate({"meters": {"tokens": rate}}))
    assert refused.value.field == field
