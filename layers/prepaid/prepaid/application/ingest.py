"""Usage intake: screen events (every refusal with a reason), rate them, and shape them for drawdown."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prepaid.application.ports import CatalogStore, Clock, UsageRecords, WalletStore
from prepaid.domain.rate_card import RateCard
from prepaid.domain.usage import ID_REUSED, EventContent, Rejection, UsageEvent, parse_usage, rate
from prepaid.domain.wallet import RatedUsage

Rated = TypeVar("Rated")


class RateCards:
    """The rate card, cached for `ttl` seconds: rating must not read the table for every batch. A meter the cached
    card does not know may have been added since (a PUT served by another execution environment), so before an
    event is refused for it the card is read again, at most once every `recheck` seconds."""

    def __init__(
        self,
        catalog: CatalogStore,
        ttl: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        recheck: float = 1.0,
    ):
        self._catalog = catalog
        self._ttl = ttl
        self._recheck = recheck
        self._monotonic = monotonic
        self._card: RateCard | None = None
        self._read_at: float | None = None

    def current(self) -> RateCard | None:
        return self._read_if_older_than(self._ttl)

    def recheck(self) -> RateCard | None:
        """The card read again, unless it was read less than `recheck` seconds ago."""
        return self._read_if_older_than(self._recheck)

    def _read_if_older_than(self, seconds: float) -> RateCard | None:
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= seconds:
            self._card, self._read_at = self._catalog.rate_card(), now
        return self._card


@dataclass(frozen=True)
class Refused:
    """An event refused at intake: where it was, its id if it had one, and why."""

    index: int
    event_id: str | None
    reason: str
    field: str | None = None


@dataclass
class Screening:
    """What screening made of some events: those accepted with their cost in credits (`rated`, in the same order),
    those refused, and the ids of replays (each once: nothing to do, not an error)."""

    accepted: list[UsageEvent] = field(default_factory=list)
    rated: list[RatedUsage] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def by_customer(self, correlation_id: str | None = None) -> dict[str, list[RatedUsage]]:
        """The rated events grouped by customer, in arrival order (each with `correlation_id`, the request's)."""
        grouped: dict[str, list[RatedUsage]] = {}
        for event, rated in zip(self.accepted, self.rated, strict=True):
            grouped.setdefault(event.customer_id, []).append(followed(rated, correlation_id))
        return grouped


def followed(usage: RatedUsage, correlation_id: str | None) -> RatedUsage:
    """`usage` as it came with the request or message `correlation_id`."""
    return usage if correlation_id is None else dataclasses.replace(usage, correlation_ids=(correlation_id,))


def wallet_required(store: WalletStore, unknown_customers: str) -> Callable[[str], bool] | None:
    """The intake's customer check for the `UNKNOWN_CUSTOMERS` policy: none when unknown customers get a wallet."""
    if unknown_customers != "reject":
        return None
    return lambda customer_id: store.load(customer_id) is not None


class UsageIntake:
    """Screens and rates usage events. `known_customer`, when given, refuses events for customers with no wallet;
    `records`, when given, finds replays of events already drawn, so the sender hears at once."""

    def __init__(
        self,
        rate_cards: RateCards,
        clock: Clock,
        known_customer: Callable[[str], bool] | None = None,
        records: UsageRecords | None = None,
    ) -> None:
        self._rate_cards = rate_cards
        self._clock = clock
        self._known_customer = known_customer
        self._records = records

    def screen(self, raw_events: Sequence[Any]) -> Screening:
        """Validate and rate each event on its own: one bad event never holds back its neighbours. An event id
        seen earlier (in the request, or drawn before when `records` is given) is a duplicate when the content is
        the same, else refused as a conflict; the drawdown decides the same way for whatever this cannot see yet."""
        now = self._clock()
        card = self._rate_cards.current()
        screening = Screening()
        known: dict[str, bool] = {}
        passed: list[tuple[int, UsageEvent, RatedUsage]] = []
        for index, raw in enumerate(raw_events):
            parsed = parse_usage(raw, now)
            rated: RatedUsage | Rejection = parsed if isinstance(parsed, Rejection) else _rated(parsed, card)
            if isinstance(rated, Rejection) and rated.reason == "unknown_meter":
                card = self._rate_cards.recheck()  # the meter may be newer than the cached card
                rated = _rated(parsed, card) if isinstance(parsed, UsageEvent) else rated
            if isinstance(parsed, UsageEvent) and isinstance(rated, RatedUsage) and self._known_customer is not None:
                if parsed.customer_id not in known:
                    known[parsed.customer_id] = self._known_customer(parsed.customer_id)
                if not known[parsed.customer_id]:
                    rated = Rejection("unknown_customer", "customerId", parsed.event_id)
            if isinstance(rated, Rejection):
                screening.refused.append(Refused(index, rated.event_id, rated.reason, rated.field))
            else:
                assert isinstance(parsed, UsageEvent)
                passed.append((index, parsed, rated))
        seen: dict[str, EventContent] = {}
        if self._records is not None and passed:
            found = self._records.recorded_events([e.event_id for _, e, _ in passed])
            seen = {i: r.content for i, r in found.items()}
        for index, event, rated in passed:
            content = event.content
            before = seen.setdefault(event.event_id, content)
            if before is content:  # the first time this id is seen
                screening.accepted.append(event)
                screening.rated.append(rated)
            elif before == content:
                if event.event_id not in screening.duplicates:
                    screening.duplicates.append(event.event_id)
            else:
                screening.refused.append(Refused(index, event.event_id, ID_REUSED, "eventId"))
        screening.refused.sort(key=lambda r: r.index)
        return screening


def _rated(event: UsageEvent, card: RateCard | None) -> RatedUsage | Rejection:
    """The event rated by the card, or why it cannot be."""
    return Rejection("no_rate_card", "meter", event.event_id) if card is None else rate(event, card)


# A drawdown message holds at most this many rated events (ten of them, one FIFO batch, are two commits).
EVENTS_PER_DRAWDOWN_MESSAGE = 100


def drawdown_chunks(
    grouped: Iterable[tuple[str, Sequence[Rated]]], size: int = EVENTS_PER_DRAWDOWN_MESSAGE
) -> list[tuple[str, list[Rated]]]:
    """Each customer's events in arrival order, `size` at a time: one drawdown message each."""
    return [
        (customer_id, list(items[start : start + size]))
        for customer_id, items in grouped
        for start in range(0, len(items), size)
    ]


@dataclass
class Delivery:
    """What one delivery of usage-queue messages yields, each part with the message it came from: when a part
    cannot be sent on, only the messages it came from are delivered again, never another customer's."""

    rated: dict[str, list[tuple[str, RatedUsage]]] = field(default_factory=dict)  # customer -> (message, usage)
    refused: list[tuple[str, Any, str]] = field(default_factory=list)  # (message, event, reason)
    poison: list[tuple[str, str, str]] = field(default_factory=list)  # (message, body, reason)
    duplicates: int = 0  # the same event twice in a message: sent on once

    def add(
        self, message_id: str, events: Sequence[Any], screening: Screening, correlation_id: str | None = None
    ) -> None:
        for event, rated in zip(screening.accepted, screening.rated, strict=True):
            self.rated.setdefault(event.customer_id, []).append((message_id, followed(rated, correlation_id)))
        self.refused.extend((message_id, events[r.index], r.reason) for r in screening.refused)
        self.duplicates += len(screening.duplicates)

    def chunks(self, size: int = EVENTS_PER_DRAWDOWN_MESSAGE) -> list[tuple[str, list[RatedUsage], set[str]]]:
        """(customer, up to `size` rated events in arrival order, the messages they came from): one drawdown
        message each."""
        return [
            (customer_id, [usage for _, usage in part], {source for source, _ in part})
            for customer_id, part in drawdown_chunks(self.rated.items(), size)
        ]

    @property
    def accepted(self) -> int:
        return sum(len(pairs) for pairs in self.rated.values())
