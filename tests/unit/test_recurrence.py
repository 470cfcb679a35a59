"""Recurring grants by interval, and rollover of what a recurring card still holds when it expires."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from prepaid.application.lifecycle import CreditLifecycle
from prepaid.application.wallets import WalletService
from prepaid.domain.card import CardSource, CardStatus
from prepaid.domain.errors import InvalidRequest
from prepaid.domain.events import CREDITS_EXPIRED, CREDITS_PURCHASED
from prepaid.domain.ledger import Draw, EntryType, LedgerEntry
from prepaid.domain.money import Money
from prepaid.domain.recurrence import GrantPeriod, due_period, index_key, index_keys, rolled_over
from prepaid.domain.revenue import movements, report
from prepaid.domain.settings import Interval, RecurringGrant, Rollover, WalletSettings
from prepaid.domain.wallet import Wallet
from support.domain_builders import T0, card, usage
from support.memory_store import MemoryCatalog, MemoryStore

D = timedelta(days=1)
USD = "USD"


def grant(
    interval: Interval, day_of_month: int | None = None, day_of_week: int | None = None, month: int | None = None
) -> RecurringGrant:
    return RecurringGrant(Decimal(100), day_of_month, interval=interval, day_of_week=day_of_week, month=month)


def test_each_interval_has_one_grant_per_period_on_its_anchor_day() -> None:
    # Given a grant of each interval
    weekly = grant(Interval.WEEK, day_of_week=3)  # Wednesdays
    monthly = grant(Interval.MONTH, day_of_month=31)
    quarterly = grant(Interval.QUARTER, day_of_month=15)
    yearly = grant(Interval.YEAR, day_of_month=10, month=6)
    # Then each is due on its day and later in its period's month (week), under the period's key
    assert due_period(weekly, date(2026, 12, 2)) == GrantPeriod("recurring:2026-W49", date(2026, 12, 2))
    assert due_period(weekly, date(2026, 12, 6)) == GrantPeriod("recurring:2026-W49", date(2026, 12, 2))
    assert due_period(weekly, date(2026, 12, 1)) is None  # Tuesday: this week's Wednesday is still to come
    assert due_period(weekly, date(2027, 1, 1)) == GrantPeriod("recurring:2026-W53", date(2026, 12, 30))
    assert due_period(monthly, date(2026, 2, 28)) == GrantPeriod("recurring:2026-02", date(2026, 2, 28))
    assert due_period(monthly, date(2026, 3, 30)) is None
    assert due_period(quarterly, date(2026, 10, 15)) == GrantPeriod("recurring:2026-Q4", date(2026, 10, 15))
    assert due_period(quarterly, date(2026, 4, 20)) == GrantPeriod("recurring:2026-Q2", date(2026, 4, 15))
    # And no grant falls outside its month: a quarterly grant in February, a yearly one in July
    assert due_period(quarterly, date(2026, 2, 15)) is None
    assert due_period(yearly, date(2026, 6, 10)) == GrantPeriod("recurring:2026", date(2026, 6, 10))
    assert due_period(yearly, date(2026, 7, 10)) is None
    assert due_period(grant(Interval.YEAR, day_of_month=1), date(2027, 1, 1)).key == "recurring:2027"  # type: ignore[union-attr]


def test_the_index_finds_weekly_grants_by_weekday_and_the_others_by_day_of_month() -> None:
    # Then weekly grants are looked up by 100 + ISO weekday, apart from days of the month
    assert index_key(grant(Interval.WEEK, day_of_week=7)) == 107
    assert index_key(grant(Interval.QUARTER, day_of_month=15)) == 15
    # And a daily run looks back two days for both (Wednesday 2026-12-02: Monday, Tuesday, Wednesday; and 30
    # November, the last day of its month, so grants on days November lacks too)
    assert index_keys(date(2026, 12, 2)) == [1, 2, 30, 31, 101, 102, 103]
    assert index_keys(date(2026, 2, 28)) == [26, 27, 28, 29, 30, 31, 104, 105, 106]


def test_settings_name_the_anchor_their_interval_needs() -> None:
    with pytest.raises(InvalidRequest):
        grant(Interval.WEEK, day_of_month=3)
    with pytest.raises(InvalidRequest):
        grant(Interval.MONTH, day_of_week=3)
    with pytest.raises(InvalidRequest):
        grant(Interval.QUARTER, day_of_month=3, month=2)
    with pytest.raises(InvalidRequest):
        Rollover(max_percent=Decimal("100.5"))


def test_rollover_is_capped_by_percent_of_the_original_credits_and_by_credits() -> None:
    # Given a recurring card of 333 credits still holding 300
    held = card("g", "333", source=CardSource.RECURRING).draw(Decimal(33))
    # Then 10% of 333 is 33.3; a percentage that is not a whole credit rounds down to 9 digits
    assert rolled_over(held, Rollover(max_percent=Decimal(10))) == Decimal("33.3")
    assert rolled_over(held, Rollover(max_percent=Decimal("0.000000001"))) == Decimal("0.000000003")
    assert rolled_over(held, Rollover(max_percent=Decimal(10), max_credits=Decimal(20))) == Decimal(20)
    assert rolled_over(held, Rollover()) == Decimal(300)
    assert rolled_over(held, Rollover(max_credits=Decimal(0))) == Decimal(0)


def rollover_wallet(rollover: Rollover, price: str = "10.00") -> tuple[Wallet, list[LedgerEntry]]:
    """A wallet granted 1,000 recurring credits at `price` expiring at T0 + 30 days, 700 of them used; and its
    ledger."""
    settings = WalletSettings(recurring=RecurringGrant(Decimal(1000), 1, rollover=rollover))
    granted = card("g", "1000", price=price, priority=20, expires=T0 + 30 * D, source=CardSource.RECURRING)
    funded = Wallet(customer_id="acme", created_at=T0, settings=settings).add_card(granted, T0)
    drawn = funded.wallet.draw(usage("u1", "700"), T0 + D)
    return drawn.wallet, [*funded.ledger, *drawn.ledger]


def test_an_expiring_recurring_card_rolls_over_up_to_its_cap_and_only_the_rest_is_breakage() -> None:
    # Given 300 credits left on a recurring card, rollover capped at 15% (150) and 200, for 10 days
    w, _ = rollover_wallet(Rollover(Decimal(15), Decimal(200), 10 * D))
    # When the expiry job runs an hour after the expiry
    at = T0 + 30 * D + timedelta(hours=1)
    outcome = w.expire_due(at)
    # Then 150 moved to a rollover card with the same cost basis and priority, in force from the expiry
    new = outcome.wallet.card("g-rollover")
    assert (new.source, new.credits, new.price, new.cost_basis) == (
        CardSource.ROLLOVER,
        Decimal(150),
        Money(Decimal("1.50"), USD),
        Decimal("0.01"),
    )
    assert (new.priority, new.effective_at, new.expires_at) == (20, T0 + 30 * D, T0 + 40 * D)
    # And the ledger says 150 broke (1.50) and 150 rolled over, drawn from the expired card
    expiry, rollover = outcome.ledger
    assert (expiry.type, expiry.credits, expiry.value) == (EntryType.EXPIRY, Decimal(150), Money(Decimal("1.50"), USD))
    assert (rollover.type, rollover.credits, rollover.card_id) == (EntryType.ROLLOVER, Decimal(150), "g-rollover")
    assert (rollover.draws, rollover.value, rollover.balance_after) == (
        (Draw("g", Decimal(150)),),
        Money(Decimal("1.50"), USD),
        Decimal(150),
    )
    # And the events report both, and the new card (its expiry gets scheduled from it)
    expired, purchased = (e for e in outcome.events if e.detail_type in (CREDITS_EXPIRED, CREDITS_PURCHASED))
    assert (expired.detail["credits"], expired.detail["rolledOver"]) == (Decimal(150), Decimal(150))
    assert (expired.detail["rolloverCardId"], purchased.detail["rolledOverFrom"]) == ("g-rollover", "g")
    # And conservation holds with rolled-over credits as their own term
    t = outcome.wallet.totals(at)
    assert [t.credits, t.drawn, t.expired, t.rolled_over, t.balance] == [1150, 700, 150, 150, 150]
    assert t.credits == t.drawn + t.expired + t.voided + t.rolled_over + t.balance + t.pending
    assert outcome.card("g").status is CardStatus.EXPIRED


def test_a_rollover_card_does_not_roll_again_and_other_sources_never_roll() -> None:
    # Given a rollover card of 150 and a purchased card expiring at the same instant
    w = rollover_wallet(Rollover())[0].expire_due(T0 + 31 * D).wallet
    rolled = w.card("g-rollover")
    assert (rolled.credits, rolled.expires_at) == (Decimal(300), None)
    w = dataclasses.replace(w, cards={**w.cards, "g-rollover": dataclasses.replace(rolled, expires_at=T0 + 40 * D)})
    w = w.add_card(card("p", "50", expires=T0 + 40 * D), T0 + 31 * D).wallet
    # When both expire
    outcome = w.expire_due(T0 + 40 * D)
    # Then all they held is breakage: nothing rolls over
    assert [(e.type, e.card_id, e.credits) for e in outcome.ledger] == [
        (EntryType.EXPIRY, "g-rollover", Decimal(300)),
        (EntryType.EXPIRY, "p", Decimal(50)),
    ]
    assert outcome.wallet.cards == {}


def test_the_rollover_card_first_pays_off_overage_run_up_after_the_expiry() -> None:
    # Given usage after the recurring card's expiry, before the job ran: it became overage
    w, _ = rollover_wallet(Rollover(max_credits=Decimal(100)))
    w = w.draw(usage("late", "40", at=T0 + 30 * D + timedelta(minutes=1)), T0 + 30 * D + timedelta(minutes=1)).wallet
    assert w.overage == 40
    # When the expiry job runs
    outcome = w.expire_due(T0 + 30 * D + timedelta(minutes=2))
    # Then the rollover card of 100 paid the 40 owed, recognised at the card's cost basis
    assert [(e.type, e.credits) for e in outcome.ledger] == [
        (EntryType.EXPIRY, Decimal(200)),
        (EntryType.ROLLOVER, Decimal(100)),
        (EntryType.OVERAGE_PAYOFF, Decimal(40)),
    ]
    assert [outcome.wallet.overage, outcome.wallet.balance(T0 + 31 * D)] == [0, 60]
    assert outcome.ledger[-1].value == Money(Decimal("0.40"), USD)


def test_revenue_moves_deferred_from_the_expiring_card_to_its_rollover_card_to_the_last_digit() -> None:
    # Given a cost basis that is no whole number of cents: 1,000 credits for 9.99 USD, 700 used
    w, entries = rollover_wallet(Rollover(max_percent=Decimal(15)), price="9.99")
    # When 300 remain at expiry and 150 roll over
    outcome = w.expire_due(T0 + 30 * D)
    new = outcome.wallet.card("g-rollover")
    # Then the rollover card's price is exactly 150 x 0.00999 and its cost basis the grant's own
    assert (new.price.amount, new.cost_basis) == (Decimal("1.4985"), Decimal("0.00999"))
    # And the report is the ledger's values: 9.99 deferred, 6.99 recognised, 1.50 breakage; the 1.50 rolled over
    # is neither recognised nor breakage and stays deferred
    (usd,) = report(movements([*entries, *outcome.ledger]), T0.date(), (T0 + 31 * D).date())
    assert (usd.purchased, usd.recognised, usd.breakage) == (Decimal("9.99"), Decimal("6.99"), Decimal("1.50"))
    assert (usd.rolled_over, usd.deferred_at_end) == (Decimal("1.50"), Decimal("1.50"))
    # And deferred revenue is what the rollover card holds at cost, within the half-cents the entries rounded
    assert abs(usd.deferred_at_end - new.remaining * new.cost_basis) <= Decimal("0.005") * 3


@dataclass
class Today:
    """The lifecycle's clock: the daily job's time on `day`."""

    day: date

    def __call__(self) -> datetime:
        return datetime.combine(self.day, time(0, 5, 30), UTC)


def test_weekly_quarterly_and_yearly_grants_come_once_per_period_through_the_lifecycle() -> None:
    # Given three wallets: weekly on Fridays, quarterly on the 5th, yearly on 29 February (a shorter month: 28th)
    store, clock = MemoryStore(), Today(date(2026, 12, 1))
    ids = iter(f"id{n:04d}" for n in range(10_000))
    wallets = WalletService(store, MemoryCatalog(), clock, lambda: next(ids))
    lifecycle = CreditLifecycle(wallets, store, clock, lambda: next(ids), registry=store)
    free = Money(Decimal(0), USD)
    grants = {
        "weekly": RecurringGrant(Decimal(7), None, free, interval=Interval.WEEK, day_of_week=5),
        "quarterly": RecurringGrant(Decimal(90), 5, free, interval=Interval.QUARTER),
        "yearly": RecurringGrant(Decimal(365), 29, free, interval=Interval.YEAR, month=2),
    }
    for customer, recurring in grants.items():
        wallets.configure(customer, WalletSettings(recurring=recurring))
    # When the daily job runs every day for 14 months, skipping every 9th day (caught up the day after)
    granted: dict[str, list[date]] = {customer: [] for customer in grants}
    while clock.day < date(2028, 2, 1):
        if clock.day.toordinal() % 9:
            for customer in sorted(set(lifecycle.recurring_due(clock.day))):
                receipt = lifecycle.grant_recurring(customer, clock.day)
                if receipt is not None and not receipt.replayed:
                    granted[customer].append(receipt.card.effective_at.date())
        clock.day += D

    # Then each came once per period, on its day or the day after a skipped run
    def run_on(day: date) -> date:
        return day + D if day.toordinal() % 9 == 0 else day

    quarters = [date(2027, 1, 5), date(2027, 4, 5), date(2027, 7, 5), date(2027, 10, 5), date(2028, 1, 5)]
    assert granted["quarterly"] == [run_on(d) for d in quarters]
    assert granted["yearly"] == [run_on(date(2027, 2, 28))]
    fridays = [date(2026, 12, 4) + 7 * D * n for n in range(61)]  # the last one: 2028-01-28
    assert granted["weekly"] == [run_on(f) for f in fridays]
    assert any(run_on(f) != f for f in fridays)  # some were caught up


def test_a_recurring_grant_scoped_to_meters_grants_cards_scoped_to_them_with_its_reference() -> None:
    # Given a monthly grant on the 1st for GPU seconds only, with the SaaS's contract line as its reference
    store, clock = MemoryStore(), Today(date(2026, 12, 1))
    ids = iter(f"id{n:04d}" for n in range(100))
    wallets = WalletService(store, MemoryCatalog(), clock, lambda: next(ids))
    lifecycle = CreditLifecycle(wallets, store, clock, lambda: next(ids), registry=store)
    scoped = RecurringGrant(
        Decimal(100), 1, Money(Decimal(0), USD), applies_to=frozenset({"gpu_seconds"}), reference="CL-3"
    )
    wallets.configure("acme", WalletSettings(recurring=scoped))
    # When the daily job grants it
    receipt = lifecycle.grant_recurring("acme", clock.day)
    # Then the card applies to GPU seconds only and carries the reference
    assert receipt is not None
    assert (receipt.card.applies_to, receipt.card.reference) == (frozenset({"gpu_seconds"}), "CL-3")


def test_a_grant_missed_on_the_last_days_of_its_month_is_made_up_in_the_next_under_its_own_period() -> None:
    # Given a yearly grant on 31 December and a monthly one on the 30th
    yearly = RecurringGrant(Decimal(365), 31, Money(Decimal(0), USD), interval=Interval.YEAR, month=12)
    monthly = RecurringGrant(Decimal(30), 30, Money(Decimal(0), USD))
    # When the daily job missed 31 December and runs on 1 and 2 January
    # Then the yearly grant is due on both, for 2026 (the idempotency key makes it once), and not on 3 January
    assert due_period(yearly, date(2027, 1, 1)) == GrantPeriod("recurring:2026", date(2026, 12, 31))
    assert due_period(yearly, date(2027, 1, 2)) == GrantPeriod("recurring:2026", date(2026, 12, 31))
    assert due_period(yearly, date(2027, 1, 3)) is None
    # And a monthly grant missed on 30 November is made up on 1 December as November's, December's comes on the 30th
    assert due_period(monthly, date(2026, 12, 1)) == GrantPeriod("recurring:2026-11", date(2026, 11, 30))
    assert due_period(monthly, date(2026, 12, 30)) == GrantPeriod("recurring:2026-12", date(2026, 12, 30))
