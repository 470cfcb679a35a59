"""The daily export for finance: one UTC day's ledger entries and revenue figures, written where Athena reads them.

Which customers had entries on a day comes from the revenue projection, which sees every wallet version and notes,
per day, each customer with an entry on it and the oldest version holding one (`DayCustomers`). Each of those
customers' ledgers is read as the ledger route reads it, newest first, back to that version only: the export costs
reads in proportion to the day's activity, not to the number of wallets or the length of their history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from prepaid.application.ledger import LedgerReader
from prepaid.application.revenue import Revenue, RevenueReport
from prepaid.domain.ledger import LedgerEntry

LEDGER_PAGE = 100  # entries per read of a customer's ledger


@dataclass(frozen=True)
class ExportedEntry:
    """A ledger entry with the customer it belongs to."""

    customer_id: str
    entry_id: str
    entry: LedgerEntry


@dataclass(frozen=True)
class ExportedDay:
    """What one day's export wrote: where, and how many entries and currencies."""

    day: date
    keys: tuple[str, ...]
    entries: int
    currencies: int


class DayCustomers(Protocol):
    def customers_on(self, day: date) -> Iterator[tuple[str, str]]:
        """Each customer with a ledger entry on `day`, in customer id order, and an entry id that every entry of
        that day is at or after (entry ids sort as the ledger does)."""
        ...


class ExportSink(Protocol):
    def ledger(self, day: date, entries: Iterator[ExportedEntry]) -> tuple[str, int]:
        """Write the day's entries in the given order as one object in place of any before it; return its key and
        how many entries it holds."""
        ...

    def revenue(self, day: date, report: RevenueReport) -> str:
        """Write the day's revenue figures per currency as one object in place of any before it; return its key."""
        ...


class FinanceExport:
    def __init__(self, customers: DayCustomers, reader: LedgerReader, revenue: Revenue, sink: ExportSink) -> None:
        self._customers = customers
        self._reader = reader
        self._revenue = revenue
        self._sink = sink

    def export(self, day: date) -> ExportedDay:
        """Write `day`'s ledger entries and revenue figures. The same day again writes the same keys, with what is
        recorded by then (the same content, unless entries of that day were committed since)."""
        ledger_key, entries = self._sink.ledger(day, self.entries_on(day))
        report = self._revenue.report(day, day + timedelta(days=1))
        revenue_key = self._sink.revenue(day, report)
        return ExportedDay(day, (ledger_key, revenue_key), entries, len(report.currencies))

    def entries_on(self, day: date) -> Iterator[ExportedEntry]:
        """The entries of `day`, by customer id, then oldest first."""
        for customer_id, since in self._customers.customers_on(day):
            found = []
            for entry_id, entry in self._reader.ledger_entries(customer_id, None, LEDGER_PAGE):
                if entry_id < since:  # older versions than the day's first: nothing of the day further on
                    break
                if entry.at.date() == day:
                    found.append(ExportedEntry(customer_id, entry_id, entry))
            yield from reversed(found)
