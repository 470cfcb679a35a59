"""An in-memory `WalletStore` with DynamoDB's transaction semantics, for fast model-based tests of the use cases."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from prepaid.application.ports import (
    EventsAlreadyRecorded,
    IdempotencyRace,
    IdempotencyRecord,
    OutboxEvent,
    RecordedEvent,
    StoredEvent,
    VersionConflict,
    WalletChange,
)
from prepaid.domain.card import Card, Metadata
from prepaid.domain.price_book import PriceBook
from prepaid.domain.rate_card import RateCard
from prepaid.domain.recurrence import index_key
from prepaid.domain.wallet import Wallet
from prepaid.edge.wire import event_detail


class MemoryStore:
    """All-or-nothing commits: every condition (version, event ids, idempotency key) is checked before any write."""

    def __init__(self) -> None:
        self.wallets: dict[str, Wallet] = {}
        self.events: dict[str, RecordedEvent] = {}
        self.retired: dict[tuple[str, str], Card] = {}
        self.idempotency: dict[tuple[str, str, str], IdempotencyRecord] = {}
        self.ledger: list[tuple[str, int, object]] = []
        self.published: list[str] = []
        self.outbox: list[OutboxEvent] = []
        self.outbox_customers: dict[str, str] = {}
        self.notes: dict[tuple[str, str], Metadata] = {}

    def load(self, customer_id: str, usage_ids: Collection[str] = ()) -> Wallet | None:
        return self.wallets.get(customer_id)

    def idempotency_record(self, customer_id: str, scope: str, key: str) -> IdempotencyRecord | None:
        return self.idempotency.get((customer_id, scope, key))

    def retired_card(self, customer_id: str, card_id: str) -> Card | None:
        return self.retired.get((customer_id, card_id))

    def card_notes(self, customer_id: str, card_ids: Collection[str]) -> dict[str, Metadata]:
        noted = ((card_id, self.notes.get((customer_id, card_id))) for card_id in card_ids)
        return {card_id: pairs for card_id, pairs in noted if pairs}

    def every_card(self, customer_id: str) -> list[Card] | None:
        wallet = self.wallets.get(customer_id)
        if wallet is None:
            return None
        retired = [card for (customer, _), card in self.retired.items() if customer == customer_id]
        return [*wallet.cards.values(), *retired]

    def wallets_after(self, after: str | None, count: int) -> list[Wallet]:
        customers = sorted(c for c in self.wallets if after is None or c > after)
        return [self.wallets[c] for c in customers[:count]]

    def commit(self, change: WalletChange) -> None:
        customer_id = change.wallet.customer_id
        current = self.wallets.get(customer_id)
        if (current.version if current else 0) != change.expected_version:
            raise VersionConflict()
        known = [self.events[d.usage.event_id] for d in change.usage if d.usage.event_id in self.events]
        if known:
            raise EventsAlreadyRecorded(known)
        record = change.idempotency
        if record is not None and (customer_id, record.scope, record.key) in self.idempotency:
            raise IdempotencyRace()
        self.wallets[customer_id] = change.wallet
        for drawn in change.usage:
            u = drawn.usage
            self.events[u.event_id] = RecordedEvent(u.event_id, customer_id, u.meter, u.quantity)
        for card in change.retired:
            self.retired[(customer_id, card.card_id)] = card
        for card in change.noted:
            assert card.metadata, "a noted card has metadata"
            self.notes[(customer_id, card.card_id)] = card.metadata
        if record is not None:
            self.idempotency[(customer_id, record.scope, record.key)] = record
        self.ledger.extend((customer_id, change.wallet.version, entry) for entry in change.ledger)
        self.published.extend(e.event_id for e in change.events)
        self.outbox.extend(change.events)
        self.outbox_customers.update({e.event_id: customer_id for e in change.events})

    def committed_event(self, event_id: str) -> StoredEvent | None:
        return next((e for e in self.published_events() if e.event_id == event_id), None)

    def published_events(self) -> list[StoredEvent]:
        """The outbox as the relay publishes it: each detail rendered as the bus's consumers read it."""
        return [
            StoredEvent(
                e.event_id, self.outbox_customers[e.event_id], e.detail_type, event_detail(e.detail), e.occurred_at
            )
            for e in self.outbox
        ]

    def of_type(self, detail_type: str) -> list[StoredEvent]:
        return [e for e in self.published_events() if e.detail_type == detail_type]

    def customers_granted_on(self, key: int) -> Iterator[str]:
        return iter(
            sorted(
                c
                for c, w in self.wallets.items()
                if w.settings.recurring is not None and index_key(w.settings.recurring) == key
            )
        )


class MemoryCatalog:
    def __init__(self) -> None:
        self.book: PriceBook | None = None
        self.card: RateCard | None = None

    def price_book(self) -> PriceBook | None:
        return self.book

    def save_price_book(self, book: PriceBook) -> None:
        self.book = book

    def rate_card(self) -> RateCard | None:
        return self.card

    def save_rate_card(self, card: RateCard) -> None:
        self.card = card
