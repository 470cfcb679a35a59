from datetime import timedelta
from decimal import Decimal

import pytest

from prepaid.domain.card import CardStatus
from prepaid.domain.errors import CardNotFound, CardNotVoidable
from prepaid.domain.ledger import EntryType
from prepaid.domain.money import Money
from support.domain_builders import T0, card, usage, wallet

H = timedelta(hours=1)


def test_card_order_is_priority_then_expiry_then_cost_then_age_then_id() -> None:
    # Given cards that differ in one ordering key at a time
    w = wallet(
        card("z-no-expiry", "10"),
        card("y-expires-late", "10", expires=T0 + 30 * H),
        card("x-expires-soon", "10", expires=T0 + 20 * H),
        card("w-paid", "10", price="1.00", expires=T0 + 20 * H),
        card("v-urgent", "10", priority=10),
        card("u-newer", "10", effective=T0 + H, expires=T0 + 20 * H),
        card("a-same-as-x", "10", expires=T0 + 20 * H),
    )
    # When usage draws everything at T0 + 2h
    outcome = w.draw(usage("e1", "70"), T0 + 2 * H)
    # Then the draws follow the contract's order
    order = [d.card_id for d in outcome.ledger[0].draws]
    assert order == ["v-urgent", "a-same-as-x", "x-expires-soon", "u-newer", "w-paid", "y-expires-late", "z-no-expiry"]


def test_available_leaves_out_cards_not_yet_in_force_and_the_balance_keeps_them() -> None:
    # Given a card in force, one in force from T0 + 10h, and one expired at T0 + 1h
    w = wallet(card("now", "10"), card("future", "5", effective=T0 + 10 * H), card("expired", "7", expires=T0 + H))
    # When the wallet is read at T0 + 2h and at T0 + 10h
    # Then the balance counts the future card at once, what may be drawn only once it is in force
    assert (w.balance(T0 + 2 * H), w.available(T0 + 2 * H)) == (Decimal("15"), Decimal("10"))
    assert (w.balance(T0 + 10 * H), w.available(T0 + 10 * H)) == (Decimal("15"), Decimal("15"))


def test_expired_voided_and_future_cards_are_skipped() -> None:
    w = wallet(
        card("expired", "10", expires=T0 + H),
        card("future", "10", effective=T0 + 10 * H),
        card("voided", "10"),
        card("good", "10", priority=90),
    )
    w = w.void_card("voided", T0).wallet
    outcome = w.draw(usage("e1", "5", at=T0 + 2 * H), T0 + 2 * H)
    assert [d.card_id for d in outcome.ledger[0].draws] == ["good"]


def test_expiry_is_exact_to_the_instant() -> None:
    # Given a card that expires at noon
    w = wallet(card("c", "10", expires=T0 + 12 * H))
    # Then usage one second before noon draws it, and usage at noon or one second after does not
    assert w.draw(usage("before", "1", at=T0 + 12 * H - timedelta(seconds=1)), T0).ledger[0].draws
    assert not w.draw(usage("at", "1", at=T0 + 12 * H), T0).ledger[0].draws
    assert not w.draw(usage("after", "1", at=T0 + 12 * H + timedelta(seconds=1)), T0).ledger[0].draws
    # And the balance read after noon never counts it, although the expiry job has not run
    assert w.balance(T0 + 12 * H) == 0
    assert w.cards["c"].status is CardStatus.ACTIVE


def test_shortfall_becomes_overage_and_the_next_card_pays_it_off() -> None:
    # Given a wallet with 10 credits that uses 25
    w = wallet(card("a", "10"))
    drawn = w.draw(usage("e1", "25"), T0 + H)
    assert drawn.wallet.overage == Decimal(15)
    assert [e.detail_type for e in drawn.events] == ["Balance Depleted", "Overage Recorded"]
    # When a new card of 100 arrives
    bought = drawn.wallet.add_card(card("b", "100", price="10.00", effective=T0 + 2 * H), T0 + 2 * H)
    # Then it first pays the 15 owed, recorded in the ledger
    assert bought.wallet.overage == 0
    assert bought.wallet.balance(T0 + 2 * H) == Decimal(85)
    payoff = [e for e in bought.ledger if e.type is EntryType.OVERAGE_PAYOFF]
    assert payoff[0].credits == Decimal(15)
    assert payoff[0].value is not None
    assert payoff[0].value.amount == Decimal("1.50")
    totals = bought.wallet.totals(T0 + 2 * H)
    assert totals.drawn + totals.overage == totals.rated == Decimal(25)


def test_thresholds_crossed_down_and_up_raise_low_and_recovered() -> None:
    w = wallet(card("a", "100"), thresholds=("50", "20"))
    low = w.draw(usage("e1", "60"), T0 + H)
    assert [(e.detail_type, e.detail["threshold"]) for e in low.events] == [("Balance Low", Decimal(50))]
    lower = low.wallet.draw(usage("e2", "30"), T0 + H)
    assert [(e.detail_type, e.detail["threshold"]) for e in lower.events] == [("Balance Low", Decimal(20))]
    recovered = lower.wallet.add_card(card("b", "100"), T0 + 2 * H)
    assert [(e.detail_type, e.detail.get("threshold")) for e in recovered.events] == [
        ("Credits Purchased", None),
        ("Balance Recovered", Decimal(20)),
        ("Balance Recovered", Decimal(50)),
    ]


def test_void_keeps_what_was_drawn_and_voids_the_rest() -> None:
    w = wallet(card("a", "100", price="9.00")).draw(usage("e1", "40"), T0 + H).wallet
    outcome = w.void_card("a", T0 + 2 * H)
    voided = outcome.card("a")
    assert voided.status is CardStatus.VOIDED
    assert (voided.remaining, voided.drawn, voided.voided) == (Decimal(0), Decimal(40), Decimal(60))
    assert outcome.ledger[0].value is not None
    assert outcome.ledger[0].value.amount == Decimal("5.40")
    # And the card leaves the wallet, its sums kept for conservation
    assert "a" not in outcome.wallet.cards
    assert outcome.retired == (voided,)
    totals = outcome.wallet.totals(T0 + 2 * H)
    assert (totals.credits, totals.drawn, totals.voided, totals.balance) == tuple(Decimal(n) for n in (100, 40, 60, 0))


def test_void_of_unknown_or_expired_card_is_refused() -> None:
    w = wallet(card("a", "10", expires=T0 + H))
    with pytest.raises(CardNotFound):
        w.void_card("nope", T0)
    with pytest.raises(CardNotVoidable) as refused:
        w.void_card("a", T0 + 2 * H)
    assert refused.value.status == "expired"


def test_expiry_records_breakage_and_keeps_conservation() -> None:
    w = wallet(card("a", "100", price="10.00", expires=T0 + 5 * H)).draw(usage("e1", "30"), T0 + H).wallet
    outcome = w.expire_due(T0 + 5 * H)
    assert outcome.ledger[0].type is EntryType.EXPIRY
    assert outcome.ledger[0].credits == Decimal(70)
    assert outcome.events[0].detail["breakage"] == Money(Decimal("7.00"), "USD")
    for at_ in (T0 + 4 * H, T0 + 5 * H):
        before, after = w.totals(at_), outcome.wallet.totals(at_)
        assert before.credits == before.drawn + before.expired + before.voided + before.balance
        assert after.credits == after.drawn + after.expired + after.voided + after.balance


def test_cards_without_expiry_go_cheapest_first_whatever_their_age() -> None:
    # Given an old paid card and a newer free one, neither expiring (found by the state-machine test)
    w = wallet(card("old-paid", "10", price="5.00"), card("new-free", "10", effective=T0 + H))
    # When usage draws 10
    outcome = w.draw(usage("e1", "10", at=T0 + 2 * H), T0 + 2 * H)
    # Then the free card goes first: cost basis ranks before age
    assert [d.card_id for d in outcome.ledger[0].draws] == ["new-free"]


def test_late_usage_draws_a_card_bought_after_it_happened_but_not_one_expired_before_it() -> None:
    # Given usage that happened at 09:59 and arrives at 10:30, and cards bought at 10:00 and expired at 09:00
    w = wallet(card("bought-later", "10", effective=T0 + 10 * H), card("expired", "10", expires=T0 + 9 * H))
    late = usage("e1", "4", at=T0 + 10 * H - timedelta(minutes=1))
    # When it is drawn on arrival
    outcome = w.draw(late, T0 + 10 * H + timedelta(minutes=30))
    # Then the card in force on arrival pays (as it would have paid the same usage off as overage), the expired does not
    assert [(d.card_id, d.credits) for d in outcome.ledger[0].draws] == [("bought-later", Decimal(4))]
    assert outcome.wallet.overage == 0


def test_a_wallets_first_card_raises_no_balance_recovered_for_its_thresholds() -> None:
    # Given a new wallet whose thresholds were set before it ever had credits
    empty = wallet(thresholds=("50", "200"))
    # When its first card arrives (1,000 credits: above both thresholds)
    first = empty.add_card(card("first", "1000"), T0)
    # Then it was never low, so nothing recovered: the purchase alone is reported
    assert [e.detail_type for e in first.events] == ["Credits Purchased"]
    # And once it has been low (100 left: below 200), a card that lifts it again does raise Balance Recovered
    low = first.wallet.draw(usage("u1", "900"), T0)
    assert [(e.detail_type, e.detail["threshold"]) for e in low.events] == [("Balance Low", Decimal(200))]
    again = low.wallet.add_card(card("second", "500"), T0)
    assert [(e.detail_type, e.detail.get("threshold")) for e in again.events] == [
        ("Credits Purchased", None),
        ("Balance Recovered", Decimal(200)),
    ]
