"""After a long random run, the ledger, the usage series, the revenue report and the wallets agree to the cent."""

from __future__ import annotations

import random
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from prepaid_local.stack import Stack
from support.usage import RATE_CARD, Queues, usage_event, wallet

CUSTOMERS = ("acme", "globex", "initech")
STEPS = 60
CENT = Decimal("0.01")


def ledger(stack: Stack, customer: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "limit=500" + (f"&cursor={cursor}" if cursor else "")
        body = stack.api("GET", f"/wallets/{customer}/ledger", query=query).body
        entries.extend(body["entries"])
        cursor = body["nextCursor"]
        if cursor is None:
            return entries


def test_ledger_usage_revenue_and_wallets_agree_after_a_random_run(timed_stack: Stack) -> None:
    stack = timed_stack
    rng = random.Random(2026)
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    start_day = stack.clock.now().date()
    queues = Queues(stack)
    n = 0

    # Given a random history: purchases (some expiring within hours), voids, usage, time passing
    for _ in range(STEPS):
        customer = rng.choice(CUSTOMERS)
        roll = rng.random()
        if roll < 0.3:
            body: dict[str, Any] = {
                "credits": str(rng.randint(10, 400)),
                "price": {"amount": f"{rng.randint(0, 5000) / 100:.2f}", "currency": "USD"},
            }
            if rng.random() < 0.5:
                body["expiresIn"] = f"PT{rng.randint(1, 6)}H"
            assert stack.api("POST", f"/wallets/{customer}/purchases", body).status == 201
        elif roll < 0.4:
            cards = stack.api("GET", f"/wallets/{customer}").body.get("cards", []) if n else []
            if cards:
                stack.api("POST", f"/wallets/{customer}/cards/{rng.choice(cards)['cardId']}/void")
        elif roll < 0.85:
            events = []
            for _ in range(rng.randint(1, 15)):
                n += 1
                meter = rng.choice(["api_calls", "storage_gb"])
                events.append(usage_event(f"e{n}", customer, str(rng.randint(1, 40)), meter))
            queues.send_usage({"events": events})
        else:
            stack.advance(rng.randint(10, 90) * 60)
        stack.pump()
    stack.advance(7 * 3600)  # every expiring card's time comes
    stack.pump()

    # When everything is read back through the API
    end_day = stack.clock.now().date() + timedelta(days=1)
    report = stack.api("GET", "/reports/revenue", query=f"from={start_day}&to={end_day}").body
    (usd,) = report["currencies"]
    sums = dict.fromkeys(("purchase", "usage", "overage_payoff", "void", "expiry"), Decimal(0))
    deferred_now = Decimal(0)
    for customer in CUSTOMERS:
        read = wallet(stack, customer) if stack.api("GET", f"/wallets/{customer}").status == 200 else None
        if read is None:
            continue
        entries = ledger(stack, customer)
        for e in entries:
            if e.get("value"):
                sums[e["type"]] += Decimal(e["value"]["amount"])
        # Then the ledger's usage credits, the usage series and the wallet's rated usage are one number
        usage_credits = sum((Decimal(e["credits"]) for e in entries if e["type"] == "usage"), Decimal(0))
        window = f"from={start_day}T00:00:00Z&to={end_day}T00:00:00Z&granularity=day"
        series = stack.api("GET", f"/wallets/{customer}/usage", query=window).body
        assert sum((Decimal(m["credits"]) for m in series["meters"]), Decimal(0)) == usage_credits
        assert Decimal(read["totals"]["rated"]) == usage_credits
        # And the ledger explains the wallet: conservation, and the balance after the newest entry is the balance
        totals = {k: Decimal(v) for k, v in read["totals"].items()}
        assert totals["credits"] == totals["drawn"] + totals["expired"] + totals["voided"] + Decimal(read["balance"])
        assert totals["drawn"] + Decimal(read["overage"]) == totals["rated"]
        assert entries[0]["balanceAfter"] == read["balance"]
        deferred_now += sum((Decimal(c["remaining"]) * Decimal(c["costBasis"]) for c in read["cards"]), Decimal(0))

    # And the revenue report is the ledger's values summed, to the cent
    assert Decimal(usd["purchased"]) == sums["purchase"]
    assert Decimal(usd["recognised"]) == sums["usage"] + sums["overage_payoff"]
    assert Decimal(usd["breakage"]) == sums["expiry"]
    assert Decimal(usd["voided"]) == sums["void"]
    assert Decimal(usd["deferredAtStart"]) == 0
    # And deferred revenue is what the live cards still hold at cost, within the half-cent each rounded entry may
    # have moved it
    entries_count = sum(len(ledger(stack, c)) for c in CUSTOMERS if stack.api("GET", f"/wallets/{c}").status == 200)
    assert abs(Decimal(usd["deferred"]) - deferred_now) <= CENT / 2 * entries_count
    assert sums["usage"] > 0 and sums["expiry"] > 0 and sums["void"] >= 0
    assert stack.clock.now().tzinfo == UTC
