"""Cards waiting for their payment: outside the balance, never drawn, activated or voided when the payment is known."""

from datetime import timedelta
from decimal import Decimal

import pytest

from prepaid.domain.card import CardStatus
from prepaid.domain.errors import CardNotActivatable
from prepaid.domain.events import (
    BALANCE_RECOVERED,
    CREDITS_PENDING,
    CREDITS_PURCHASED,
    CREDITS_VOIDED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
)
from prepaid.domain.ledger import EntryType
from prepaid.domain.revenue import movements
from prepaid.domain.wallet import Outcome, Wallet
from support.domain_builders import MANUAL, T0, card, usage, wallet

H = timedelta(hours=1)


def _d(*numbers: int) -> tuple[Decimal, ...]:
    return tuple(Decimal(n) for n in numbers)


def _conserved(w: Wallet) -> None:
    t = w.totals(T0 + 2 * H)
    assert t.credits == t.drawn + t.expired + t.voided + t.balance + t.pending
    assert t.drawn + t.overage == t.rated


def _types(outcome: Outcome) -> list[str]:
    return [e.detail_type for e in outcome.events]


def test_a_pending_card_is_in_the_wallet_but_not_in_the_balance_and_is_never_drawn() -> None:
    # Given a paid card of 10 credits
    w = wallet(card("paid", "10"))
    # When an invoiced card of 100 credits joins it
    held = w.add_card(card("invoiced", "100", price="1.00", payment=MANUAL), T0)
    # Then it waits: in the wallet, not in the balance or what may be drawn, reported as pending
    w = held.wallet
    assert w.card("invoiced").status is CardStatus.PENDING
    assert (w.balance(T0 + H), w.available(T0 + H), w.totals(T0 + H).pending) == _d(10, 10, 100)
    assert [e.type for e in held.ledger] == [EntryType.PENDING]
    assert _types(held) == [CREDITS_PENDING]
    # And usage of 30 credits draws the paid card only; the rest is overage
    drawn = w.draw(usage("e1", "30"), T0 + H)
    assert [(d.card_id, d.credits) for d in drawn.ledger[0].draws] == [("paid", Decimal(10))]
    assert drawn.wallet.overage == 20
    assert drawn.wallet.card("invoiced").remaining == 100
    _conserved(drawn.wallet)


def test_activation_funds_the_card_as_a_purchase_paying_off_overage_first() -> None:
    # Given a pending card and 20 credits of overage
    w = wallet(card("paid", "10"), card("invoiced", "100", price="1.00", payment=MANUAL), thresholds=("50",))
    w = w.draw(usage("e1", "30"), T0 + H).wallet
    # When it is activated
    activated = w.activate_card("invoiced", T0 + 2 * H)
    # Then it pays off the overage and the rest is in the balance
    w = activated.wallet
    assert w.card("invoiced").status is CardStatus.ACTIVE
    assert (w.overage, w.balance(T0 + 2 * H), w.totals(T0 + 2 * H).pending) == _d(0, 80, 0)
    assert [e.type for e in activated.ledger] == [EntryType.PURCHASE, EntryType.OVERAGE_PAYOFF]
    assert _types(activated) == [PAYMENT_SUCCEEDED, CREDITS_PURCHASED, BALANCE_RECOVERED, BALANCE_RECOVERED]
    assert activated.events[0].detail["amount"].amount == Decimal("1.00")
    _conserved(w)
    # And activating it again changes nothing
    assert not w.activate_card("invoiced", T0 + 3 * H).changed


def test_revenue_counts_a_card_when_it_is_paid_and_never_a_failed_one() -> None:
    # Given two invoiced cards of 10.00 USD each
    w = wallet(card("a", "100", price="10.00", payment=MANUAL), card("b", "100", price="10.00", payment=MANUAL))
    # When one is paid and the other's payment fails
    paid = w.activate_card("a", T0 + H)
    failed = paid.wallet.void_card("b", T0 + H, "payment_failed")
    # Then only the paid card's price is purchased (deferred), and the failed one moves no money
    pending = wallet().add_card(card("c", "1", price="10.00", payment=MANUAL), T0)
    (day,) = movements([*pending.ledger, *paid.ledger, *failed.ledger])
    assert dict(day.amounts) == {"purchased": Decimal("10.00")}
    # And the failure is reported, the voided credits accounted for
    assert _types(failed) == [CREDITS_VOIDED, PAYMENT_FAILED]
    assert failed.ledger[0].reason == "payment_failed"
    t = failed.wallet.totals(T0 + H)
    assert (t.credits, t.voided, t.balance, t.pending) == _d(200, 100, 100, 0)


def test_a_voided_or_lapsed_pending_card_cannot_be_activated() -> None:
    # Given a pending card that expires at T0 + 1h, and a pending card voided
    w = wallet(card("lapsing", "10", expires=T0 + H, payment=MANUAL), card("voided", "10", payment=MANUAL))
    w = w.void_card("voided", T0).wallet
    # Then activating the lapsed one is refused as expired (void it instead), and it may still be voided
    with pytest.raises(CardNotActivatable) as refused:
        w.activate_card("lapsing", T0 + 2 * H)
    assert refused.value.status == "expired"
    assert w.void_card("lapsing", T0 + 2 * H, "payment_failed").wallet.totals(T0 + 2 * H).voided == 20
