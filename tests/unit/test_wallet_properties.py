"""Properties of the domain: conservation to the last digit, and the card order, for any history."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from prepaid.domain.card import Card, CardStatus, drawdown_order
from prepaid.domain.errors import CardNotVoidable
from prepaid.domain.wallet import Wallet, allocate
from support.domain_builders import T0, card, usage

credits = st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(10**6), places=9)
hours = st.integers(min_value=0, max_value=200)

cards = st.builds(
    lambda i, c, p, prio, eff, exp: card(
        f"c{i}",
        c,
        price=str(p),
        priority=prio,
        effective=T0 + timedelta(hours=eff),
        expires=None if exp is None else T0 + timedelta(hours=eff + exp),
    ),
    st.integers(0, 10**6),
    credits,
    st.decimals(min_value=0, max_value=1000, places=2),
    st.integers(0, 100),
    hours,
    st.none() | st.integers(1, 200),
)


@given(st.lists(cards, max_size=12, unique_by=lambda c: c.card_id), credits, hours, st.integers(0, 48))
def test_allocation_covers_in_order_and_never_overdraws(
    pool: list[Card], amount: Decimal, at_hour: int, lag_hours: int
) -> None:
    at = T0 + timedelta(hours=at_hour)
    now = at + timedelta(hours=lag_hours)  # drawn when it arrives, possibly late
    draws, left = allocate(pool, amount, at, now)
    by_id = {c.card_id: c for c in pool}
    # Everything is accounted for, exactly
    assert sum((d.credits for d in draws), Decimal(0)) + left == amount
    assert left >= 0
    # No card gives more than it has, and only usable cards give
    assert all(0 < d.credits <= by_id[d.card_id].remaining and by_id[d.card_id].usable_at(at, now) for d in draws)
    # The draws are a prefix of the usable cards in the contract's order, all but the last drawn in full
    usable = sorted((c for c in pool if c.usable_at(at, now)), key=drawdown_order)
    assert [d.card_id for d in draws] == [c.card_id for c in usable[: len(draws)]]
    assert all(d.credits == by_id[d.card_id].remaining for d in draws[:-1])
    # Credits are left over only once every usable card is empty
    if left > 0:
        assert len(draws) == len(usable)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), cards),
        st.tuples(st.just("use"), credits),
        st.tuples(st.just("void"), st.integers(0, 20)),
        st.tuples(st.just("expire"), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 48)),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(operations)
def test_conservation_holds_after_every_change(ops: list[tuple[str, object]]) -> None:
    wallet = Wallet(customer_id="acme", created_at=T0)
    now = T0
    for n, (op, arg) in enumerate(ops):
        if op == "buy":
            assert isinstance(arg, Card)
            if arg.card_id in wallet.cards:
                continue
            wallet = wallet.add_card(arg, now).wallet
        elif op == "use":
            assert isinstance(arg, Decimal)
            wallet = wallet.draw(usage(f"e{n}", arg, at=now), now).wallet
        elif op == "void" and wallet.cards:
            assert isinstance(arg, int)
            target = sorted(wallet.cards)[arg % len(wallet.cards)]
            with contextlib.suppress(CardNotVoidable):
                wallet = wallet.void_card(target, now).wallet
        elif op == "expire":
            wallet = wallet.expire_due(now).wallet
        elif op == "wait":
            assert isinstance(arg, int)
            now += timedelta(hours=arg)
        for at in (now, now + timedelta(hours=500)):
            t = wallet.totals(at)
            assert t.credits == t.drawn + t.expired + t.voided + t.balance
            assert t.drawn + t.overage == t.rated
            assert t.balance >= 0
            assert t.overage >= 0
        assert all(c.credits == c.remaining + c.drawn + c.expired + c.voided for c in wallet.cards.values())
        assert all(c.status is CardStatus.ACTIVE for c in wallet.cards.values())
