"""Three months of recurring grants with rollover caps, driven by the stack's clock: what rolls over, what is
breakage, and the revenue report, to the last digit."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from prepaid_local.stack import Stack
from support.aws import BusTap
from support.usage import RATE_CARD, Queues, usage_event, wallet

GRANT = {"credits": "1000", "price": {"amount": "10.00", "currency": "USD"}, "dayOfMonth": 1, "expiresIn": "P27D"}


def at(stack: Stack, bus: BusTap, month: int, day: int, hour: int = 0, minute: int = 6) -> None:
    """Move the stack's clock to that instant of 2027 a day at a time (the daily grant job runs at 00:05 each day,
    and a clock that jumps days fires it once), letting everything due happen; the bus tap reads what was published
    each day (its queue keeps messages 4 days of the moving clock)."""
    target = datetime(2027, month, day, hour, minute, tzinfo=UTC)
    while (next_run := datetime.combine(stack.clock.now().date() + timedelta(days=1), time(0, 6), UTC)) < target:
        stack.set_time(next_run)
        stack.pump()
        bus.drain()
    stack.set_time(target)
    stack.pump()
    bus.drain()


def use(stack: Stack, event_id: str, units: str) -> None:
    Queues(stack).send_usage({"events": [usage_event(event_id, "acme", units)]})  # 0.5 credits a unit
    stack.pump()


def settings(stack: Stack, rollover: dict[str, str]) -> dict[str, Any]:
    answer = stack.api("PUT", "/wallets/acme/settings", {"recurring": {**GRANT, "rollover": rollover}})
    assert answer.status == 200, answer.body
    recurring: dict[str, Any] = answer.body["settings"]["recurring"]
    return recurring


def test_three_months_of_grants_roll_over_up_to_their_caps_and_revenue_agrees_with_the_ledger(
    timed_stack: Stack,
) -> None:
    stack = timed_stack
    bus = BusTap(stack)
    stack.set_time(datetime(2027, 1, 31, 12, tzinfo=UTC))
    stack.pump()  # the daily job's run for the days the clock jumped over
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    # Given 1,000 credits for 10.00 USD on the 1st of each month, for 27 days; what is left rolls over, at most 15%
    # of the grant and 200 credits, for 10 days
    shown = settings(stack, {"maxPercent": "15", "maxCredits": "200", "expiresIn": "P10D"})
    assert (shown["interval"], shown["rollover"]) == (
        "month",
        {"maxPercent": "15", "maxCredits": "200", "expiresIn": "P10D"},
    )

    # When February's grant is used down to 300 and expires: 150 (15%) rolls over
    at(stack, bus, 2, 1)
    use(stack, "feb", "1400")
    at(stack, bus, 2, 28, 1)
    # And March's grant comes; usage draws the rollover card first (it expires sooner), which then expires with 50
    at(stack, bus, 3, 1)
    use(stack, "mar-1", "200")
    at(stack, bus, 3, 10, 1)
    use(stack, "mar-2", "1700")
    # And before March's grant expires with 150, the cap becomes 40 credits (the setting in force at expiry counts)
    settings(stack, {"maxPercent": "15", "maxCredits": "40", "expiresIn": "P10D"})
    at(stack, bus, 3, 28, 1)
    # And April's grant comes, the rollover card is used to 10 and expires, and the grant expires holding 500
    at(stack, bus, 4, 1)
    use(stack, "apr-1", "60")
    at(stack, bus, 4, 7, 1)
    use(stack, "apr-2", "1000")
    at(stack, bus, 4, 28, 1)

    # Then three grants came, and each month's expiries rolled over and broke exactly this much
    grants = [e["detail"]["card"]["cardId"] for e in bus.of_type("Credits Purchased")
              if e["detail"]["card"]["source"] == "recurring"]  # fmt: skip
    assert len(grants) == 3
    g1, g2, g3 = grants
    expired = [
        (e["detail"]["cardId"], e["detail"]["credits"], e["detail"]["rolledOver"], e["detail"]["breakage"]["amount"])
        for e in bus.of_type("Credits Expired")
    ]
    assert expired == [
        (g1, "150", "150", "1.50"),  # February: 300 left, 15% of 1,000 rolls over
        (f"{g1}-rollover", "50", "0", "0.50"),  # a rollover card does not roll again
        (g2, "110", "40", "1.10"),  # March: 150 left, capped at 40
        (f"{g2}-rollover", "10", "0", "0.10"),
        (g3, "460", "40", "4.60"),  # April: 500 left, capped at 40
    ]
    rollovers = [
        e["detail"]["card"] for e in bus.of_type("Credits Purchased") if e["detail"]["card"]["source"] == "rollover"
    ]
    assert [(c["cardId"], c["credits"], c["price"]["amount"], c["costBasis"]) for c in rollovers] == [
        (f"{g1}-rollover", "150", "1.50", "0.01"),
        (f"{g2}-rollover", "40", "0.40", "0.01"),
        (f"{g3}-rollover", "40", "0.40", "0.01"),
    ]

    # And the wallet: conservation with rolled-over credits as their own term, and the last rollover card held
    read = wallet(stack, "acme")
    totals = {k: Decimal(v) for k, v in read["totals"].items()}
    assert [totals["credits"], totals["drawn"], totals["expired"], totals["rolledOver"]] == [3230, 2180, 780, 230]
    assert totals["credits"] == totals["drawn"] + totals["expired"] + totals["voided"] + totals["rolledOver"] + 40
    assert [(c["cardId"], c["remaining"]) for c in read["cards"]] == [(f"{g3}-rollover", "40")]

    # And the ledger says the same: its rollover entries draw from the expired grants
    entries = stack.api("GET", "/wallets/acme/ledger", query="limit=500").body["entries"]
    moved = [(e["draws"], e["value"]["amount"]) for e in reversed(entries) if e["type"] == "rollover"]
    assert moved == [
        ([{"cardId": g1, "credits": "150"}], "1.50"),
        ([{"cardId": g2, "credits": "40"}], "0.40"),
        ([{"cardId": g3, "credits": "40"}], "0.40"),
    ]
    sums: dict[str, Decimal] = {}
    for e in entries:
        if e.get("value"):
            sums[e["type"]] = sums.get(e["type"], Decimal(0)) + Decimal(e["value"]["amount"])

    # And the revenue report agrees with the ledger to the cent: rollover stays deferred, neither recognised nor
    # breakage, and what is deferred is what the last rollover card holds at cost
    report = stack.api("GET", "/reports/revenue", query="from=2027-01-31&to=2027-04-29").body
    (usd,) = report["currencies"]
    assert {k: usd[k] for k in ("purchased", "recognised", "breakage", "rolledOver", "voided", "deferred")} == {
        "purchased": "30",
        "recognised": "21.8",
        "breakage": "7.8",
        "rolledOver": "2.3",
        "voided": "0",
        "deferred": "0.4",
    }
    assert Decimal(usd["purchased"]) == sums["purchase"]
    assert Decimal(usd["recognised"]) == sums["usage"]
    assert Decimal(usd["breakage"]) == sums["expiry"]
    assert Decimal(usd["rolledOver"]) == sums["rollover"]
