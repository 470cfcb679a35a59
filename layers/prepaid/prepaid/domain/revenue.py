"""Revenue from the ledger: what each entry means for deferred, recognised and breakage revenue.

Money is the ledger entries' own `value` (exact from the card's price, rounded once to the currency's minor unit
when the entry was written), so the report agrees with the ledger to the cent by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from prepaid.domain.ledger import EntryType, LedgerEntry
from prepaid.domain.numbers import ZERO

# Where an entry's value goes. A purchase defers its price; usage and overage pay-off recognise what they drew;
# expiry is breakage; a void takes what remained out of deferred revenue without recognising it. A pending card's
# entry moves no money: its price is deferred when it is paid (the activation's purchase entry). A refund is money
# returned for voided credits: of what was voided, how much went back to the customer (deferred revenue moved once,
# with the void). A rollover moves what an expiring recurring card still held to a new card at the same cost basis:
# deferred revenue stays deferred (neither recognised nor breakage); `rolledOver` says how much of it moved.
MEASURE = {
    EntryType.PURCHASE: "purchased",
    EntryType.USAGE: "recognised",
    EntryType.OVERAGE_PAYOFF: "recognised",
    EntryType.EXPIRY: "breakage",
    EntryType.VOID: "voided",
    EntryType.REFUND: "refunded",
    EntryType.ROLLOVER: "rolledOver",
}
MEASURES = ("purchased", "recognised", "breakage", "voided", "refunded", "rolledOver")


def measure_of(entry: LedgerEntry) -> str | None:
    """Where an entry's value goes. An adjustment that added credits made a card (its price, usually 0, is
    deferred as a purchase's); one that took credits drew them from cards, unused: voided, as a void's."""
    if entry.type is EntryType.ADJUSTMENT:
        return "voided" if entry.draws else "purchased"
    return MEASURE.get(entry.type)


@dataclass(frozen=True)
class DayRevenue:
    """One currency's revenue movements on one UTC day."""

    day: date
    currency: str
    amounts: Mapping[str, Decimal] = field(default_factory=dict)

    def get(self, measure: str) -> Decimal:
        return self.amounts.get(measure, ZERO)

    @property
    def deferred_change(self) -> Decimal:
        return self.get("purchased") - self.get("recognised") - self.get("breakage") - self.get("voided")


def movements(entries: Iterable[LedgerEntry]) -> list[DayRevenue]:
    """The entries' values summed per day, currency and measure (entries without a value move no money)."""
    sums: dict[tuple[date, str], dict[str, Decimal]] = {}
    for entry in entries:
        measure = measure_of(entry)
        if entry.value is None or measure is None:
            continue
        amounts = sums.setdefault((entry.at.date(), entry.value.currency), {})
        amounts[measure] = amounts.get(measure, ZERO) + entry.value.amount
    return [DayRevenue(day, currency, amounts) for (day, currency), amounts in sorted(sums.items())]


@dataclass(frozen=True)
class CurrencyRevenue:
    currency: str
    deferred_at_start: Decimal
    purchased: Decimal
    recognised: Decimal
    breakage: Decimal
    voided: Decimal
    deferred_at_end: Decimal
    refunded: Decimal = Decimal(0)
    rolled_over: Decimal = Decimal(0)  # deferred revenue moved from expiring recurring cards to rollover cards


def report(days: Iterable[DayRevenue], start: date, end: date) -> list[CurrencyRevenue]:
    """Per currency, for days in [start, end): the movements, and deferred revenue before and after them.

    `days` must hold every day before `end` (deferred revenue is everything purchased and not yet recognised,
    broken or voided).
    """
    before: dict[str, Decimal] = {}
    within: dict[str, dict[str, Decimal]] = {}
    for d in days:
        if d.day >= end:
            continue
        if d.day < start:
            before[d.currency] = before.get(d.currency, ZERO) + d.deferred_change
        else:
            sums = within.setdefault(d.currency, {})
            for measure in MEASURES:
                sums[measure] = sums.get(measure, ZERO) + d.get(measure)
    result = []
    for currency in sorted(set(before) | set(within)):
        sums = within.get(currency, {})
        opening = before.get(currency, ZERO)
        moved = {m: sums.get(m, ZERO) for m in MEASURES}
        closing = opening + moved["purchased"] - moved["recognised"] - moved["breakage"] - moved["voided"]
        result.append(
            CurrencyRevenue(
                currency,
                deferred_at_start=opening,
                purchased=moved["purchased"],
                recognised=moved["recognised"],
                breakage=moved["breakage"],
                voided=moved["voided"],
                deferred_at_end=closing,
                refunded=moved["refunded"],
                rolled_over=moved["rolledOver"],
            )
        )
    return result
