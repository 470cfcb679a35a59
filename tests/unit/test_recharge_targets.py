"""Auto-recharge to a target balance, and thresholds given as a percentage of the last funded balance."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prepaid.domain.card import Card, CardSource
from prepaid.domain.errors import InvalidRequest
from prepaid.domain.events import AUTO_RECHARGE_PURCHASED, AUTO_RECHARGE_SKIPPED, BALANCE_LOW, BALANCE_RECOVERED
from prepaid.domain.money import Money
from prepaid.domain.numbers import ZERO
from prepaid.domain.price_book import PriceBook, PricingMode, Tier
from prepaid.domain.settings import AutoRecharge, WalletSettings, percent_text
from prepaid.domain.wallet import Outcome, Recharges, Wallet
from support.domain_builders import T0, card, usage, wallet

H = timedelta(hours=1)
AT = T0 + H
# the contract's example tiers
BOOK = PriceBook(
    "USD",
    PricingMode.VOLUME,
    (Tier(Decimal(9999), Decimal("0.010")), Tier(Decimal(99999), Decimal("0.009")), Tier(None, Decimal("0.008"))),
)
credits = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(50_000), places=3)


def priced(amount: Decimal) -> Money:
    return BOOK.quote(amount).price


def drawn_wallet(bought: Decimal, used: Decimal, auto: AutoRecharge) -> Wallet:
    """A wallet that bought `bought` credits, then used `used` (what they did not cover is overage)."""
    start = wallet(card("a", bought)).configure(WalletSettings(auto_recharge=auto)).wallet
    return start.draw(usage("u1", used), AT).wallet


def recharge_card(target: Decimal) -> Card:
    """The card the purchase hands the wallet before it is sized (named after the target, as the lifecycle asks)."""
    return card("r", target, source=CardSource.AUTO_RECHARGE)


def target_auto(threshold: Decimal, target: Decimal, cap: Money | None = None) -> AutoRecharge:
    return AutoRecharge(threshold, None, 3, max_spend_per_month=cap, target_balance=target)


@settings(max_examples=200, deadline=None)
@given(credits, credits, st.decimals(min_value=0, max_value=1000, places=2), credits)
def test_a_target_buys_exactly_target_minus_balance_plus_overage_priced_by_the_book(
    bought: Decimal, used: Decimal, headroom: Decimal, above: Decimal
) -> None:
    # Given a wallet drawn to some balance (or into overage), at or below its auto-recharge threshold
    balance, overage = max(bought - used, ZERO), max(used - bought, ZERO)
    threshold = balance + headroom
    target = threshold + above
    w = drawn_wallet(bought, used, target_auto(threshold, target))
    assert (w.balance(AT), w.overage) == (balance, overage)
    # When the crossing's recharge decides on this wallet
    outcome = w.auto_recharge(recharge_card(target), AT, threshold, priced)
    # Then it bought target - balance + overage credits at the book's price for exactly those credits
    assert outcome is not None
    need = target - balance + overage
    recharge = outcome.card("r")
    assert (recharge.credits, recharge.price) == (need, priced(need))
    # And the wallet stands at the target with nothing owed
    assert (outcome.wallet.balance(AT), outcome.wallet.overage) == (target, ZERO)
    # And the event says what was bought, for which target
    (event,) = [e for e in outcome.events if e.detail_type == AUTO_RECHARGE_PURCHASED]
    assert (event.detail["credits"], event.detail["targetBalance"], event.detail["card"]) == (need, target, recharge)
    assert outcome.wallet.recharges == Recharges(AT.date(), 1, f"{AT:%Y-%m}", priced(need).amount)


@settings(max_examples=200, deadline=None)
@given(credits, credits, st.decimals(min_value=0, max_value=500, places=2), st.decimals(0, 500, places=2))
def test_the_monthly_cap_stops_a_target_recharge_on_its_computed_price(
    used: Decimal, above: Decimal, cap: Decimal, spent: Decimal
) -> None:
    # Given a wallet of 100 credits drawn to 0 or into overage, auto-recharge at 0 to a target, a monthly cap,
    # and some of it spent this month already
    threshold, target = ZERO, above
    auto = target_auto(threshold, target, Money(cap, "USD"))
    w = drawn_wallet(Decimal(100), Decimal(100) + used, auto)
    w = dataclasses.replace(w, recharges=Recharges(AT.date(), 0, f"{AT:%Y-%m}", spent))
    need = target + w.overage
    # When the crossing's recharge decides
    outcome = w.auto_recharge(recharge_card(target), AT, threshold, priced)
    assert outcome is not None
    if spent + priced(need).amount > cap:
        # Then past the cap nothing is bought, and the skip says why, with the price the credits would have cost
        assert "r" not in outcome.wallet.cards and outcome.wallet == w
        (skipped,) = outcome.events
        assert skipped.detail_type == AUTO_RECHARGE_SKIPPED
        assert skipped.detail["reason"] == "monthly_cap"
        assert (skipped.detail["credits"], skipped.detail["price"]) == (need, priced(need))
        assert skipped.detail["spentThisMonth"] == Money(spent, "USD")
    else:
        # Else within the cap the target is bought
        assert outcome.card("r").credits == need
        assert outcome.wallet.balance(AT) == target


def test_nothing_is_bought_when_the_balance_is_back_over_the_threshold() -> None:
    # Given a wallet whose balance went up again after the crossing (another purchase answered it)
    w = drawn_wallet(Decimal(100), Decimal(95), target_auto(Decimal(10), Decimal(200)))
    w = w.add_card(card("b", "500"), AT).wallet
    # When the crossing's recharge decides, then it buys nothing and asks no price
    assert w.auto_recharge(recharge_card(Decimal(200)), AT, Decimal(10), None) is None


def test_auto_recharge_holds_credits_or_a_target_above_its_threshold_and_no_price_with_a_target() -> None:
    usd = Money(Decimal(5), "USD")
    with pytest.raises(InvalidRequest, match="exactly_one"):
        AutoRecharge(Decimal(10), Decimal(100), 1, target_balance=Decimal(100))
    with pytest.raises(InvalidRequest, match="exactly_one"):
        AutoRecharge(Decimal(10), None, 1)
    with pytest.raises(InvalidRequest, match="not_above_threshold"):
        AutoRecharge(Decimal(10), None, 1, target_balance=Decimal(10))
    with pytest.raises(InvalidRequest, match="exclusive_with_targetBalance"):
        AutoRecharge(Decimal(10), None, 1, price=usd, target_balance=Decimal(100))
    assert AutoRecharge(Decimal(10), Decimal(100), 1, price=usd).credits_for(Decimal(5), Decimal(7)) == 100


# -- percentage thresholds -------------------------------------------------------------------------------------------


def percent_wallet(*percents: str) -> Wallet:
    shares = tuple(Decimal(p) for p in percents)
    return Wallet(customer_id="acme", created_at=T0, settings=WalletSettings(percent_thresholds=shares))


def crossings(outcome: Outcome) -> list[tuple[str, object, object]]:
    return [
        (e.detail_type, e.detail["threshold"], e.detail.get("thresholdCredits"))
        for e in outcome.events
        if e.detail_type in {BALANCE_LOW, BALANCE_RECOVERED}
    ]


def test_a_percentage_is_of_the_balance_right_after_the_last_funding_and_shown_as_configured() -> None:
    # Given a wallet with a 25% threshold whose first funding brought it to 1000
    first = percent_wallet("25").add_card(card("a", "1000"), AT)
    # Then that first funding raised no Balance Recovered
    assert crossings(first) == []
    # When usage takes it to 250 (25% of 1000), then Balance Low shows "25%" and the 250 credits it meant
    low = first.wallet.draw(usage("u1", "750"), AT)
    assert crossings(low) == [(BALANCE_LOW, "25%", Decimal(250))]
    # And further usage below it raises nothing more
    assert crossings(low.wallet.draw(usage("u2", "100"), AT)) == []
    # When a purchase of 200 lifts it to 450, the percentage is of 450 now (112.5): recovered
    again = low.wallet.add_card(card("b", "200"), AT)
    assert crossings(again) == [(BALANCE_RECOVERED, "25%", Decimal("112.5"))]
    assert again.wallet.funded == Decimal(450)


def test_a_funding_that_leaves_the_wallet_as_low_as_before_raises_nothing() -> None:
    # Given a wallet at 10% of its 1000, low for a 50% threshold
    low = percent_wallet("50").add_card(card("a", "1000"), AT).wallet.draw(usage("u1", "900"), AT).wallet
    # When 10 more credits arrive (balance 110, 50% of it is 55): recovered; then usage to 55 is low once more
    lifted = low.add_card(card("b", "10"), AT)
    assert crossings(lifted) == [(BALANCE_RECOVERED, "50%", Decimal(55))]
    assert crossings(lifted.wallet.draw(usage("u2", "55"), AT)) == [(BALANCE_LOW, "50%", Decimal(55))]


# A history of a wallet with percentage thresholds: buy (credits), use (credits), void the oldest live card
steps = st.lists(
    st.tuples(st.sampled_from(["buy", "use", "void"]), st.decimals(min_value=1, max_value=2000, places=2)),
    min_size=1,
    max_size=25,
)
percents = st.lists(st.decimals(min_value=Decimal("0.1"), max_value=100, places=1), min_size=1, max_size=3, unique=True)


def is_low(w: Wallet, percent: Decimal) -> bool:
    """The model: low when at or below the share of the last funded balance; a wallet never funded is low."""
    if w.funded is None:
        return True
    return w.balance(AT) <= (w.funded * percent / 100).quantize(Decimal("1e-9"))


@settings(max_examples=300, deadline=None)
@given(percents, steps)
def test_each_percentage_is_crossed_once_per_crossing_whatever_the_history(
    shares: list[Decimal], history: list[tuple[str, Decimal]]
) -> None:
    w = percent_wallet(*map(str, shares))
    seen: dict[str, list[str]] = {percent_text(p): [] for p in shares}
    for n, (step, amount) in enumerate(history):
        # When a step happens
        if step == "buy":
            outcome = w.add_card(card(f"c{n}", amount), AT)
        elif step == "use":
            outcome = w.draw(usage(f"u{n}", amount), AT)
        elif w.cards:
            outcome = w.void_card(min(w.cards), AT)
        else:
            continue
        first_funding = w.funded is None
        # Then each percentage raises Low exactly when the wallet turns low for it, Recovered exactly when it
        # stops being low (but for the first funding), and nothing otherwise
        raised = {str(t): kind for kind, t, _ in crossings(outcome) if isinstance(t, str)}
        for p in shares:
            was, now = is_low(w, p), is_low(outcome.wallet, p)
            expected = None
            if not was and now:
                expected = BALANCE_LOW
            elif was and not now and not first_funding:
                expected = BALANCE_RECOVERED
            assert raised.get(percent_text(p)) == expected
            if expected:
                seen[percent_text(p)].append(expected)
        w = outcome.wallet
    # And so Low and Recovered alternate for each percentage
    for kinds in seen.values():
        assert all(a != b for a, b in itertools.pairwise(kinds))
