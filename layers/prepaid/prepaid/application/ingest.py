"""Usage intake: screen events (every refusal with a reason), rate them, and shape them for drawdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid.application.ports import CatalogStore, Clock, UsageRecords, WalletStore
from prepaid.domain.numbers import to_wire
from prepaid.domain.rate_card import RateCard
from prepaid.domain.usage import ID_REUSED, EventContent, Rejection, UsageEvent, check_rated, parse_usage
from prepaid.domain.wallet import RatedUsage
from prepaid.domain.wire import instant

MAX_EVENTS_PER_REQUEST = 1000


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

    def to_wire(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"index": self.index, "eventId": self.event_id, "reason": self.reason}
        if self.field:
            answer["field"] = self.field
        return answer


@dataclass
class Screening:
    accepted: list[UsageEvent] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # ids of replays (each once): nothing to do, not an error


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
        """Validate each event on its own: one bad event never holds back its neighbours. An event id seen
        earlier (in the request, or drawn before when `records` is given) is a duplicate when the content is the
        same, else refused as a conflict; the drawdown decides the same way for whatever this cannot see yet."""
        now = self._clock()
        card = self._rate_cards.current()
        screening = Screening()
        known: dict[str, bool] = {}
        passed: list[tuple[int, UsageEvent]] = []
        for index, raw in enumerate(raw_events):
            parsed = parse_usage(raw, now)
            if isinstance(parsed, UsageEvent):
                unrated = _unrated(parsed, card)
                if unrated is not None:
                    card = self._rate_cards.recheck()  # the meter may be newer than the cached card
                    unrated = _unrated(parsed, card)
                parsed = unrated or parsed
            if isinstance(parsed, UsageEvent) and self._known_customer is not None:
                if parsed.customer_id not in known:
                    known[parsed.customer_id] = self._known_customer(parsed.customer_id)
                if not known[parsed.customer_id]:
                    parsed = Rejection("unknown_customer", "customerId", parsed.event_id)
            if isinstance(parsed, Rejection):
                screening.refused.append(Refused(index, parsed.event_id, parsed.reason, parsed.field))
            else:
                passed.append((index, parsed))
        seen: dict[str, EventContent] = {}
        if self._records is not None and passed:
            seen = {i: r.content for i, r in self._records.recorded_events([e.event_id for _, e in passed]).items()}
        for index, event in passed:
            content = event.content
            before = seen.setdefault(event.event_id, content)
            if before is content:  # the first time this id is seen
                screening.accepted.append(event)
            elif before == content:
                if event.event_id not in screening.duplicates:
                    screening.duplicates.append(event.event_id)
            else:
                screening.refused.append(Refused(index, event.event_id, ID_REUSED, "eventId"))
        screening.refused.sort(key=lambda r: r.index)
        return screening

    def rate(self, events: Sequence[UsageEvent]) -> dict[str, list[RatedUsage]]:
        """Credits for each event, grouped by customer in arrival order. Screened events only."""
        card = self._rate_cards.current()
        assert card is not None, "screened events were checked against a rate card"
        by_customer: dict[str, list[RatedUsage]] = {}
        for e in events:
            credits = card.rate(e.customer_id, e.meter, e.quantity)
            by_customer.setdefault(e.customer_id, []).append(
                RatedUsage(e.event_id, e.meter, e.quantity, credits, e.timestamp)
            )
        return by_customer


def _unrated(event: UsageEvent, card: RateCard | None) -> Rejection | None:
    """Why the rate card cannot rate the event, if it cannot."""
    return Rejection("no_rate_card", "meter", event.event_id) if card is None else check_rated(event, card)


def usage_to_wire(event: UsageEvent) -> dict[str, Any]:
    """A screened event as it travels on the usage queue (normalized: decimal strings, UTC instants)."""
    body: dict[str, Any] = {
        "eventId": event.event_id,
        "customerId": event.customer_id,
        "meter": event.meter,
        "quantity": to_wire(event.quantity),
        "timestamp": instant(event.timestamp),
    }
    if event.dimensions:
        body["dimensions"] = dict(event.dimensions)
    return body


def rated_to_wire(customer_id: str, usages: Sequence[RatedUsage]) -> dict[str, Any]:
    """Rated usage of one customer, as it travels to drawdown."""
    return {
        "customerId": customer_id,
        "events": [
            {
                "eventId": u.event_id,
                "meter": u.meter,
                "quantity": to_wire(u.quantity),
                "credits": to_wire(u.credits),
                "timestamp": instant(u.at),
            }
            for u in usages
        ],
    }


def usage_of(customer_id: str, usage: RatedUsage) -> dict[str, Any]:
    """Rated usage as a usage event a producer could send again (its credits and dimensions left out), e.g. to be
    dead-lettered for a redrive."""
    return {
        "eventId": usage.event_id,
        "customerId": customer_id,
        "meter": usage.meter,
        "quantity": to_wire(usage.quantity),
        "timestamp": instant(usage.at),
    }


def rated_from_wire(body: dict[str, Any]) -> tuple[str, list[RatedUsage]]:
    return body["customerId"], [
        RatedUsage(
            e["eventId"],
            e["meter"],
            Decimal(e["quantity"]),
            Decimal(e["credits"]),
            datetime.fromisoformat(e["timestamp"]),
        )
        for e in body["events"]
    ]
