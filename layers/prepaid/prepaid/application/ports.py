"""What the use cases need from storage; adapters implement these with boto3, tests with fakes or moto."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from prepaid.domain.card import Card, Metadata
from prepaid.domain.ledger import LedgerEntry
from prepaid.domain.money import Money
from prepaid.domain.price_book import PriceBook
from prepaid.domain.rate_card import RateCard
from prepaid.domain.usage import EventContent
from prepaid.domain.usage_hours import HourUsage
from prepaid.domain.wallet import EventDraw, Wallet

Clock = Callable[[], datetime]
IdFactory = Callable[[], str]


class VersionConflict(Exception):
    """The wallet changed since it was read; the use case reloads and decides again."""


class ChangeTooLarge(Exception):
    """The change does not fit one write (an item's 400 KB, a transaction's 100 items): make it smaller."""


class QueueUnavailable(Exception):
    """A queue did not take every message sent to it (the sender is to retry: nothing was lost)."""

    def __init__(self, queue_url: str, failed: int) -> None:
        super().__init__(f"{failed} message(s) not accepted by {queue_url}")
        self.failed = failed


class IdempotencyRace(Exception):
    """Another request with the same idempotency key committed first."""


@dataclass(frozen=True)
class RecordedEvent:
    """What is stored of a usage event already drawn, enough to tell a duplicate from a conflict."""

    event_id: str
    customer_id: str
    meter: str
    quantity: Decimal

    @property
    def content(self) -> EventContent:
        return EventContent(self.customer_id, self.meter, self.quantity)


class EventsAlreadyRecorded(Exception):
    """Some usage events of the change were drawn before (by an earlier delivery or another batch)."""

    def __init__(self, recorded: list[RecordedEvent]) -> None:
        super().__init__(f"{len(recorded)} event(s) already recorded")
        self.recorded = recorded


@dataclass(frozen=True)
class OutboxEvent:
    """A domain event with the stable id consumers dedupe on; its detail holds values, rendered when written."""

    event_id: str
    detail_type: str
    detail: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class StoredEvent:
    """An outbox record as stored: the event as it is published (its detail the JSON consumers receive)."""

    event_id: str
    customer_id: str
    detail_type: str
    detail: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class CardResult:
    """A card as a change left it and the balance after it: the answer to a purchase or a void. `replayed` when it
    is the first answer to the same idempotency key, given again."""

    card: Card
    balance: Decimal
    at: datetime  # when it was decided: a card past its expiry by then shows as expired
    replayed: bool = False
    refund: Money | None = None  # what a void with refund returns through the card's payment


@dataclass(frozen=True)
class AdjustmentResult:
    """The answer to an adjustment: its ledger entry, the card it added (none when it took credits), the balance
    after it. `replayed` when it is the first answer to the same idempotency key, given again."""

    entry: LedgerEntry
    balance: Decimal
    at: datetime
    card: Card | None = None
    replayed: bool = False


@dataclass(frozen=True)
class IdempotencyRecord:
    """A request made with an idempotency key: what it meant (`request_hash`) and its first answer, if it has one
    to give again (a purchase's card and balance)."""

    scope: str
    key: str
    request_hash: str
    result: CardResult | None = None
    adjustment: AdjustmentResult | None = None  # an adjustment's first answer (it has no card result)

    def replayed(self) -> CardResult | None:
        """Its first answer, given again (None: the request decided to buy nothing)."""
        return None if self.result is None else dataclasses.replace(self.result, replayed=True)


@dataclass(frozen=True)
class WalletChange:
    """Everything one change writes, in one transaction: wallet, ledger, outbox and idempotency record."""

    wallet: Wallet  # the new state; its version is `expected_version + 1`
    expected_version: int  # 0 when the wallet is new
    commit_id: str
    at: datetime  # when the change was decided
    ledger: tuple[LedgerEntry, ...]
    events: tuple[OutboxEvent, ...]
    idempotency: IdempotencyRecord | None = None
    retired: tuple[Card, ...] = ()  # cards this change ended, moved out of the wallet into their own items
    usage: tuple[EventDraw, ...] = ()  # usage events drawn: one record each, keyed by event id (exactly once)
    hours: tuple[HourUsage, ...] = ()  # usage to add to stored hourly aggregates (the open hour is on the wallet)
    noted: tuple[Card, ...] = ()  # new cards with metadata: it is written once, beside the wallet (`card_notes`)


class WalletStore(Protocol):
    def load(self, customer_id: str, usage_ids: Collection[str] = ()) -> Wallet | None:
        """The wallet; `usage_ids` are events about to be drawn, whose records a store may read with it."""
        ...

    def commit(self, change: WalletChange) -> None:
        """Write the change atomically; raise `VersionConflict` or `IdempotencyRace` when it lost a race."""
        ...

    def idempotency_record(self, customer_id: str, scope: str, key: str) -> IdempotencyRecord | None: ...

    def retired_card(self, customer_id: str, card_id: str) -> Card | None:
        """A card that left the wallet (depleted, expired or voided), as it ended."""
        ...

    def card_notes(self, customer_id: str, card_ids: Collection[str]) -> dict[str, Metadata]:
        """The metadata of those of the cards that have some (written when each card was made)."""
        ...

    def every_card(self, customer_id: str) -> list[Card] | None:
        """Every card the wallet holds or held: its live cards and its retired ones (None: no such wallet)."""
        ...

    def wallets_after(self, after: str | None, count: int) -> list[Wallet]:
        """Up to `count` wallets in customer id order, those after the customer `after` when given."""
        ...


class UsageRecords(Protocol):
    def recorded_events(self, event_ids: Collection[str]) -> dict[str, RecordedEvent]:
        """Those of `event_ids` already drawn, by id (a read that may lag a commit by a moment)."""
        ...


class CatalogStore(Protocol):
    def price_book(self) -> PriceBook | None: ...

    def save_price_book(self, book: PriceBook) -> None:
        """Store `book` if the stored one still has `book.version - 1`, else raise `VersionConflict`."""
        ...

    def rate_card(self) -> RateCard | None: ...

    def save_rate_card(self, card: RateCard) -> None: ...


class Scheduler(Protocol):
    def once(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        """Deliver `payload` to the lifecycle function once, at `at` (rounded up to the second). Scheduling a
        name again changes nothing (the first schedule stands): callers name a schedule by what it is for."""
        ...


class RecurringRegistry(Protocol):
    def customers_granted_on(self, key: int) -> Iterator[str]:
        """Customers whose recurring grant has that index key: a day of the month, or 100 + an ISO weekday for a
        weekly grant (`prepaid.domain.recurrence.index_key`)."""
        ...
