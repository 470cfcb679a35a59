"""Reading the ledger: a wallet's immutable entries, newest first, a page at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prepaid.application.cursors import after_text, query_key
from prepaid.application.signing import Signer
from prepaid.domain.errors import InvalidRequest, WalletNotFound
from prepaid.domain.ledger import EntryType, LedgerEntry
from prepaid.domain.text import instant

MAX_PAGE = 500
DEFAULT_PAGE = 100
# Items one page may read, whatever the filters: a filter that matches little returns a short page (perhaps
# empty) with a cursor rather than reading the whole ledger in one request.
MAX_READ_PER_PAGE = 600


@dataclass(frozen=True)
class LedgerQuery:
    """Which entries: of one type, and `start <= at < end` (each optional)."""

    type: EntryType | None = None
    start: datetime | None = None
    end: datetime | None = None

    def matches(self, entry: LedgerEntry) -> bool:
        return (
            (self.type is None or entry.type == self.type)
            and (self.start is None or entry.at >= self.start)
            and (self.end is None or entry.at < self.end)
        )

    def fingerprint(self, customer_id: str) -> str:
        """Ties a cursor to the query it was handed out for."""
        return query_key(customer_id, self.type or "", *(instant(t) if t else "" for t in (self.start, self.end)))


@dataclass(frozen=True)
class LedgerPage:
    """Entries newest first, by entry id, and the cursor of the next page (None: the last page)."""

    entries: list[tuple[str, LedgerEntry]]
    next_cursor: str | None


class LedgerReader(Protocol):
    def ledger_entries(self, customer_id: str, before: str | None, page_size: int) -> Iterator[tuple[str, LedgerEntry]]:
        """(entry id, entry) newest first, starting after the entry `before` (its id) when given, read from storage
        `page_size` at a time as the caller goes on."""
        ...

    def exists(self, customer_id: str) -> bool: ...


class Ledger:
    """Pages of a wallet's ledger. A cursor names the last entry handed out; entries written later are newer, so
    they never shift a page a client is walking through (they appear on a fresh first page)."""

    def __init__(self, reader: LedgerReader, signer: Callable[[], Signer]) -> None:
        self._reader = reader
        self._signer = signer

    def page(
        self, customer_id: str, query: LedgerQuery, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> LedgerPage:
        """A page of entries, newest first, and where the next one starts."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(field="limit", reason=f"between 1 and {MAX_PAGE}")
        if query.start and query.end and query.start >= query.end:
            raise InvalidRequest(field="from", reason="before to")
        fingerprint = query.fingerprint(customer_id)
        before = after_text(self._signer(), cursor, fingerprint) if cursor else None
        found: list[tuple[str, LedgerEntry]] = []
        # Unfiltered, one more than the page tells whether there is a next page (and the store reads the cursor's
        # own entry first, to skip it); filtered, how many will match is unknown.
        page_size = limit + 1 + (before is not None) if query == LedgerQuery() else MAX_READ_PER_PAGE
        read, last_read = 0, None
        for entry_id, entry in self._reader.ledger_entries(customer_id, before, page_size):
            read, last_read = read + 1, entry_id
            if query.matches(entry):
                found.append((entry_id, entry))
                if len(found) > limit:
                    break
            if read >= MAX_READ_PER_PAGE:
                break
        if not found and cursor is None and not self._reader.exists(customer_id):
            raise WalletNotFound(customer_id=customer_id)
        shown = found[:limit]
        if len(found) > limit:
            after: str | None = shown[-1][0]
        elif read >= MAX_READ_PER_PAGE:  # cut short: the next page goes on after the last entry read
            after = last_read
        else:
            after = None
        next_cursor = self._signer().seal({"q": fingerprint, "after": after}) if after is not None else None
        return LedgerPage(shown, next_cursor)
