"""Revenue: the ledger projected into daily sums per currency (from the table's stream of wallet versions), and the
report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from prepaid.domain.errors import InvalidRequest
from prepaid.domain.ledger import LedgerEntry
from prepaid.domain.revenue import CurrencyRevenue, DayRevenue, report

MAX_REPORT_DAYS = 3660


@dataclass(frozen=True)
class RevenueReport:
    """Per currency, for the UTC days in [start, end)."""

    start: date
    end: date
    currencies: list[CurrencyRevenue]


@dataclass(frozen=True)
class VersionEntries:
    """The ledger entries one version of a customer's wallet committed."""

    customer_id: str
    version: int
    entries: tuple[LedgerEntry, ...]


class RevenueStore(Protocol):
    def add(self, versions: Sequence[VersionEntries]) -> int:
        """Add the versions' entries to the daily sums, each version exactly once however often it comes (a
        customer's versions arrive oldest first, as the stream delivers them); return how many were new."""
        ...

    def days_before(self, end: date) -> Iterator[DayRevenue]:
        """Every stored day before `end`, oldest first."""
        ...


class Revenue:
    def __init__(self, store: RevenueStore) -> None:
        self._store = store

    def record(self, versions: Sequence[VersionEntries]) -> int:
        """Project new wallet versions' ledger entries (from the table's stream) into the daily sums."""
        return self._store.add(versions)

    def report(self, start: date, end: date) -> RevenueReport:
        """`GET /reports/revenue?from=&to=`: per currency, for the UTC days in [from, to)."""
        if start >= end:
            raise InvalidRequest(field="from", reason="before to")
        if (end - start).days > MAX_REPORT_DAYS:
            raise InvalidRequest(field="from", reason=f"at most {MAX_REPORT_DAYS} days")
        return RevenueReport(start, end, report(self._store.days_before(end), start, end))
