"""`authorize` agrees with what the drawdown then does with the same event: for random wallets (cards scoped to some
meters or not, in force or not yet, expiring, with overage outstanding) and random events (meter, quantity,
dimensions priced or not), under either overage policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from prepaid.application.drawdown import DrawdownService
from prepaid.application.retry import RetryPolicy
from prepaid.application.wallets import AuthorizeRequest, PurchaseRequest, WalletService
from prepaid.domain.money import Money
from prepaid.domain.rate_card import DimensionPrices, RateCard
from prepaid.domain.settings import OveragePolicy, WalletSettings
from prepaid.domain.usage import UsageEvent, rate
from prepaid.domain.wallet import RatedUsage
from support.memory_store import MemoryCatalog, MemoryStore

T0 = datetime(2026, 5, 1, tzinfo=UTC)
METERS = ("api_calls", "gpu", "tokens")
RATES = RateCard(
    meters={"api_calls": Decimal("0.5"), "gpu": Decimal(3), "tokens": Decimal("0.000002")},
    by_dimension={"tokens": DimensionPrices("model", {"large": Decimal("0.00003")})},
)
credits = st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(200), places=9)
cards = st.lists(
    st.tuples(
        credits,
        st.none() | st.frozensets(st.sampled_from(METERS), min_size=1),  # appliesTo
        st.integers(0, 100),  # priority
        st.none() | st.integers(1, 48),  # expires so many hours after it takes effect
        st.integers(0, 3),  # takes effect in hours
    ),
    max_size=6,
)
events = st.tuples(
    st.sampled_from(METERS),
    st.decimals(min_value=0, max_value=Decimal(10**6), places=3),
    st.sampled_from([{}, {"model": "large"}, {"model": "small"}]),
)


@settings(max_examples=300, deadline=None)
@given(
    bought=cards,
    prior=st.none() | st.tuples(st.sampled_from(METERS), credits),
    event=events,
    hours_later=st.integers(0, 72),
    block=st.booleans(),
)
def test_authorize_agrees_with_the_drawdown_of_the_same_event(
    bought: list[tuple[Decimal, frozenset[str] | None, int, int | None, int]],
    prior: tuple[str, Decimal] | None,
    event: tuple[str, Decimal, dict[str, str]],
    hours_later: int,
    block: bool,
) -> None:
    # Given a wallet of random cards, perhaps some overage already, and a rate card with a dimension price
    now = [T0]
    store, catalog = MemoryStore(), MemoryCatalog()
    catalog.card = RATES
    ids = (f"id{n}" for n in itertools.count())
    no_wait = RetryPolicy(sleep=lambda _: None)
    wallets = WalletService(store, catalog, lambda: now[0], lambda: next(ids), no_wait)
    drawdown = DrawdownService(store, lambda: now[0], lambda: next(ids), no_wait)
    policy = OveragePolicy.BLOCK if block else OveragePolicy.ALLOW
    wallets.configure("acme", WalletSettings(overage_policy=policy))
    if prior is not None:
        meter, owed = prior
        owing = rate(UsageEvent("prior", "acme", meter, owed, T0), RATES)
        assert isinstance(owing, RatedUsage)
        drawdown.apply("acme", [owing])
    for amount, meters, priority, expires, effective in bought:
        request = PurchaseRequest(
            amount,
            Money(Decimal(1), "USD"),
            expires_at=T0 + timedelta(hours=effective + expires) if expires else None,
            priority=priority,
            effective_at=T0 + timedelta(hours=effective),
            applies_to=meters,
        )
        wallets.purchase("acme", request)
    now[0] = T0 + timedelta(hours=hours_later)
    meter, quantity, dimensions = event

    before = store.load("acme")
    assert before is not None

    # When usage is authorized, then the same event is drawn
    answer = wallets.authorize("acme", AuthorizeRequest(meter, quantity, dimensions))
    usage = rate(UsageEvent("e1", "acme", meter, quantity, now[0], dimensions), RATES)
    assert isinstance(usage, RatedUsage)
    assert drawdown.apply("acme", [usage]).drawn == ["e1"]
    after = store.load("acme")
    assert after is not None

    # Then authorize said exactly what the drawdown did: the cost, the balance and the overage after it
    assert answer.credits == usage.credits
    assert (answer.balance_after, answer.overage_after) == (after.balance(now[0]), after.overage)
    # And it allowed the usage unless the policy blocks and the cards for its meter could not cover it
    ran_over = after.overage > before.overage
    assert answer.allowed == (not block or not ran_over)
    assert ran_over == (answer.available < usage.credits)
