"""Forecast backtests on synthetic histories: the projected depletion lands near the true one, expiries included.

Each backtest builds a usage history from a known process, forecasts from its first 28 days, then runs the same
process on (with fresh noise) against the same cards to find when they truly run dry. Stated error bounds:
steady burn with ±10% daily noise → within 1 day; a weekday/weekend pattern → within 1 day; expiring cards →
the credits lost to expiry are counted exactly and the runway within 1 day.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from prepaid.domain.card import Card, CardSource
from prepaid.domain.forecast import BurnRate, burn_rate, burn_rate_from_today, credits_to_buy, project
from prepaid.domain.money import Money

NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # a Tuesday, midnight: whole days from here
TODAY = NOW.date()
HISTORY = 28


def card(card_id: str, credits: int, expires_in_days: float | None = None, priority: int = 50) -> Card:
    return Card.issue(
        card_id=card_id,
        credits=Decimal(credits),
        price=Money(Decimal(credits) / 100, "USD"),
        source=CardSource.PURCHASE,
        priority=priority,
        effective_at=NOW - timedelta(days=60),
        expires_at=NOW + timedelta(days=expires_in_days) if expires_in_days is not None else None,
        created_at=NOW - timedelta(days=60),
    )


def history(daily: dict[int, Decimal]) -> dict[date, Decimal]:
    """Credits per day, keyed by days before today (1 = yesterday)."""
    return {TODAY - timedelta(days=ago): credits for ago, credits in daily.items()}


def true_depletion(cards: list[Card], burn_on: list[Decimal]) -> float:
    """Days until the cards, drawn in order and each lost at its expiry, cannot pay the true daily burn."""
    left = {c.card_id: c.remaining for c in cards}
    for day, burn in enumerate(burn_on):
        need = burn
        for c in sorted(cards, key=lambda c: (c.priority, c.expires_at or datetime.max.replace(tzinfo=UTC))):
            usable = c.expires_at is None or c.expires_at > NOW + timedelta(days=day)
            if usable and need > 0:
                take = min(left[c.card_id], need)
                left[c.card_id] -= take
                need -= take
        if need > 0:
            return day + float((burn - need) / burn)
        for c in cards:
            if c.expires_at is not None and c.expires_at <= NOW + timedelta(days=day + 1):
                left[c.card_id] = Decimal(0)
    raise AssertionError("never ran dry")


def forecast_days(cards: list[Card], past: dict[date, Decimal], horizon: int = 60) -> float:
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=HISTORY))
    result = project(cards, Decimal(0), burn, NOW, horizon)
    assert result.depletion_at is not None
    return (result.depletion_at - NOW).total_seconds() / 86_400


def noisy(rng: random.Random, mean: Decimal) -> Decimal:
    return (mean * Decimal(rng.randint(90, 110)) / 100).quantize(Decimal("0.01"))


def test_steady_burn_lands_within_a_day_of_the_true_depletion() -> None:
    # Given 28 days of about 50 credits a day (±10%), and 1,000 credits left
    rng = random.Random(7)
    past = history({ago: noisy(rng, Decimal(50)) for ago in range(1, HISTORY + 1)})
    cards = [card("a", 1000)]
    # When forecast, and when the same process truly runs on
    forecast = forecast_days(cards, past)
    truth = true_depletion(cards, [noisy(rng, Decimal(50)) for _ in range(60)])
    # Then the two agree within one day (both near 20 days)
    assert abs(forecast - truth) <= 1.0, (forecast, truth)
    assert 18 <= forecast <= 22


def test_a_weekday_pattern_is_learned_and_projected() -> None:
    # Given 4 weeks of 70 credits on weekdays and none at weekends
    past = history(
        {ago: Decimal(70) if (TODAY - timedelta(days=ago)).weekday() < 5 else Decimal(0) for ago in range(1, 29)}
    )
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=HISTORY))
    # Then weekends get a factor of zero and weekdays 1.4 (70 / the mean of 50)
    assert burn.weekday_factors is not None
    assert burn.weekday_factors[5:] == (Decimal(0), Decimal(0))
    assert all(f == Decimal("1.4") for f in burn.weekday_factors[:5])
    # And 700 credits from a Tuesday midnight last to Tuesday the week after next: ten weekdays of 70
    cards = [card("a", 700)]
    truth = true_depletion(
        cards, [Decimal(70) if (TODAY + timedelta(days=d)).weekday() < 5 else Decimal(0) for d in range(60)]
    )
    assert abs(forecast_days(cards, past) - truth) <= 1.0
    assert 13 <= truth <= 14


def test_credits_that_expire_before_use_do_not_extend_the_runway() -> None:
    # Given 50 credits a day, a 500-credit card expiring in 5 days (drawn first) and 1,000 without expiry
    past = history({ago: Decimal(50) for ago in range(1, HISTORY + 1)})
    cards = [card("soon", 500, expires_in_days=5), card("later", 1000)]
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=HISTORY))

    # When projected over 30 days
    result = project(cards, Decimal(0), burn, NOW, 30)

    # Then 250 credits expire unused, and the runway is 5 + 20 = 25 days, not the 30 the balance suggests
    assert [(e.card_id, e.credits) for e in result.expiring_unused] == [("soon", Decimal(250))]
    assert result.depletion_at == NOW + timedelta(days=25)
    assert abs(25 - true_depletion(cards, [Decimal(50)] * 60)) <= 1e-9
    # And the purchase covering 30 days is the 5 days the cards cannot pay: 250 credits
    assert result.projected_usage == Decimal(1500)
    assert credits_to_buy(result.shortfall) == Decimal(250)


def test_overage_owed_is_part_of_the_recommended_purchase() -> None:
    past = history({ago: Decimal(10) for ago in range(1, HISTORY + 1)})
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=HISTORY))
    result = project([card("a", 1000)], Decimal("12.5"), burn, NOW, 30)
    assert result.depletion_at is not None and result.shortfall == Decimal("12.5")
    assert credits_to_buy(result.shortfall) == Decimal(13)


def test_a_new_wallet_uses_the_days_it_has_and_no_usage_means_no_depletion() -> None:
    # Given usage only for the last 3 days: the rate is the mean of those days, weighted to the latest
    past = history({1: Decimal(30), 2: Decimal(30), 3: Decimal(30)})
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=3))
    assert (burn.per_day, burn.days_of_history, burn.weekday_factors) == (Decimal(30), 3, None)
    # And a wallet that never used anything never runs dry and needs nothing
    idle = burn_rate({}, TODAY, None)
    result = project([card("a", 100)], Decimal(0), idle, NOW, 30)
    assert (result.depletion_at, result.shortfall) == (None, Decimal(0))
    assert len(result.days) == 30 and result.days[-1].balance == Decimal(100)


def test_a_wallet_with_usage_only_today_is_projected_from_today() -> None:
    # Given 30 credits used in the first 6 hours of the only day of usage
    burn = burn_rate_from_today(Decimal(30), timedelta(hours=6))
    # Then it burns 120 a day, and 100 credits last 20 hours
    assert (burn.per_day, burn.days_of_history) == (Decimal(120), 0)
    result = project([card("a", 100)], Decimal(0), burn, NOW, 30)
    assert result.depletion_at == NOW + timedelta(hours=20)
    # And in the first minutes of a day, at least an hour counts as elapsed (no wild rate)
    assert burn_rate_from_today(Decimal(1), timedelta(minutes=1)).per_day == Decimal(24)


def test_a_horizon_starting_at_any_instant_of_the_day_needs_exactly_what_it_burns() -> None:
    # Given 900 credits, a steady 10 a day, and "now" at odd instants (CI once ran at 12:06:13.932 and asked for 301)
    past = history({ago: Decimal(10) for ago in range(1, 11)})
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=10))
    rng = random.Random(7)
    for _ in range(200):
        now = NOW + timedelta(microseconds=rng.randrange(86_400 * 10**6))
        result = project([card("a", 900)], Decimal(0), burn, now, 120)
        # Then 120 days burn 1,200, the card supplies 900, and the purchase is 300 credits, not one more
        assert result.projected_usage.quantize(Decimal("1e-12")) == Decimal(1200)
        assert credits_to_buy(result.shortfall) == Decimal(300), now
        # And it runs dry 90 days from now, to the microsecond
        assert result.depletion_at == now + timedelta(days=90)


def test_a_huge_burn_is_projected_without_running_out_of_digits() -> None:
    # Given 10^14 credits a day (the contract bounds no wallet's size) and a card of 10^16
    past = history({ago: Decimal(10) ** 14 for ago in range(1, 11)})
    burn = burn_rate(past, TODAY, TODAY - timedelta(days=10))
    # When a year is projected
    result = project([card("a", 10**16)], Decimal(0), burn, NOW + timedelta(microseconds=123_457), 366)
    # Then the totals are exact: 366 days burn 3.66 * 10^16, the card supplies 10^16, the rest is to buy
    assert result.projected_usage == Decimal("3.66E16") and result.supplied == Decimal(10) ** 16
    assert credits_to_buy(result.shortfall) == Decimal("2.66E16")


def test_with_cards_scoped_to_a_meter_each_meter_is_projected_from_the_cards_that_pay_for_it() -> None:
    # Given 100 credits for GPU seconds only and 50 for anything, and each meter burning 10 credits a day
    gpu_only = dataclasses.replace(card("gpu", 100, priority=10), applies_to=frozenset({"gpu_seconds"}))
    anything = card("any", 50)
    ten = BurnRate(Decimal(10), None, 28)
    by_meter = {"api_calls": ten, "gpu_seconds": ten}
    # When the wallet is projected meter by meter
    result = project([gpu_only, anything], Decimal(0), BurnRate(Decimal(20), None, 28), NOW, 30, by_meter)
    # Then API calls run dry after 5 days (only the unscoped card pays them), GPU seconds after 10, and the wallet
    # when the first meter does; one burn of 20 a day over all 150 credits would have said 7.5 days
    dry = {m.meter: m.depletion_at for m in result.meters}
    assert dry == {"api_calls": NOW + timedelta(days=5), "gpu_seconds": NOW + timedelta(days=10)}
    assert result.depletion_at == NOW + timedelta(days=5)
    pooled = project([gpu_only, anything], Decimal(0), BurnRate(Decimal(20), None, 28), NOW, 30)
    assert pooled.depletion_at == NOW + timedelta(days=7, hours=12) and pooled.meters == ()
