"""Drawdown: rated usage drawn from a wallet exactly once per event id, in as few transactions as fit."""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prepaid.application.changes import change_of
from prepaid.application.ports import (
    ChangeTooLarge,
    Clock,
    EventsAlreadyRecorded,
    IdFactory,
    VersionConflict,
    WalletChange,
    WalletStore,
)
from prepaid.application.retry import RetryPolicy
from prepaid.domain.usage import ID_REUSED, EventContent
from prepaid.domain.usage_hours import tally
from prepaid.domain.wallet import RatedUsage, Wallet

# Ten FIFO messages of 100 events are two commits. What one commit owes rides on the wallet item (about 120 bytes
# an event, within DynamoDB's 400 KB next to 500 live cards); a change that still does not fit is halved.
MAX_EVENTS_PER_COMMIT = 500


@dataclass(frozen=True)
class Refusal:
    usage: RatedUsage  # the refused event as it came, so it can be inspected and sent again
    reason: str

    @property
    def event_id(self) -> str:
        return self.usage.event_id


@dataclass
class DrawdownReport:
    """What became of each event: drawn now, a duplicate of one drawn before, or refused with a reason."""

    drawn: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    commits: int = 0
    conflicts_retried: int = 0


class DrawdownService:
    """Draws a customer's rated usage, in order, in transactions of up to `max_events_per_commit` events.

    `max_events_per_commit=1` is the naive design (one transaction per event) the benchmark compares against.
    """

    def __init__(
        self,
        store: WalletStore,
        clock: Clock,
        new_id: IdFactory,
        retry: RetryPolicy | None = None,
        *,
        create_unknown_wallets: bool = True,
        max_events_per_commit: int = MAX_EVENTS_PER_COMMIT,
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_id = new_id
        self._retry = retry or RetryPolicy()
        self._create_unknown = create_unknown_wallets
        self._max_events = max_events_per_commit

    def apply(self, customer_id: str, usages: Sequence[RatedUsage]) -> DrawdownReport:
        """Draw `usages` for one customer; a replayed event id changes nothing and is reported as a duplicate."""
        report = DrawdownReport()
        first: dict[str, RatedUsage] = {}
        pending: list[RatedUsage] = []
        for usage in usages:  # the same id twice in one delivery: the first is the event, the rest replays
            seen = first.get(usage.event_id)
            if seen is None:
                first[usage.event_id] = usage
                pending.append(usage)
            elif _content(customer_id, seen) == _content(customer_id, usage):
                report.duplicates.append(usage.event_id)
            else:
                report.refused.append(Refusal(usage, ID_REUSED))
        queue = deque(pending)
        while queue:
            batch = [queue.popleft() for _ in range(min(self._max_events, len(queue)))]
            queue.extendleft(reversed(self._settle(customer_id, batch, report)))
        return report

    def _settle(self, customer_id: str, batch: list[RatedUsage], report: DrawdownReport) -> list[RatedUsage]:
        """Commit as much of `batch` as one transaction holds; return what did not fit."""
        while batch:
            try:
                committed = self._retry.run(customer_id, functools.partial(self._commit, customer_id, batch, report))
            except EventsAlreadyRecorded as known:
                self._sort_out(customer_id, batch, known, report)
                gone = {r.event_id for r in known.recorded}
                batch = [u for u in batch if u.event_id not in gone]
                continue
            if committed is None:  # no wallet, and unknown customers are refused
                report.refused.extend(Refusal(u, "unknown_customer") for u in batch)
                return []
            report.drawn.extend(u.event_id for u in batch[:committed])
            return batch[committed:]
        return []

    @staticmethod
    def _sort_out(
        customer_id: str, batch: list[RatedUsage], known: EventsAlreadyRecorded, report: DrawdownReport
    ) -> None:
        """An event id drawn before is a duplicate if it is the same event, else a conflict with a reason."""
        by_id = {u.event_id: u for u in batch}
        for recorded in known.recorded:
            usage = by_id[recorded.event_id]
            if recorded.content == _content(customer_id, usage):
                report.duplicates.append(usage.event_id)
            else:
                report.refused.append(Refusal(usage, ID_REUSED))

    def _commit(self, customer_id: str, usages: list[RatedUsage], report: DrawdownReport) -> int | None:
        """One attempt: draw the longest prefix of `usages` that fits a transaction; return its length."""
        now = self._clock()
        wallet = self._store.load(customer_id, [u.event_id for u in usages])
        if wallet is None:
            if not self._create_unknown:
                return None
            wallet = Wallet(customer_id=customer_id, created_at=now)
        count = len(usages)
        while True:
            try:
                self._store.commit(self._change(wallet, usages[:count], now))
                break
            except ChangeTooLarge:
                if count == 1:
                    raise
                count //= 2
            except VersionConflict:
                report.conflicts_retried += 1
                raise
        report.commits += 1
        return count

    def _change(self, wallet: Wallet, usages: list[RatedUsage], now: datetime) -> WalletChange:
        outcome = wallet.draw_batch(usages, now)
        open_hour, hours = tally(wallet.open_hour, usages)
        outcome = dataclasses.replace(outcome, wallet=dataclasses.replace(outcome.wallet, open_hour=open_hour))
        followed = [i for u in usages for i in u.correlation_ids]
        return change_of(wallet, outcome, now, self._new_id(), hours=hours, correlation_ids=followed)


def _content(customer_id: str, usage: RatedUsage) -> EventContent:
    return EventContent(customer_id, usage.meter, usage.quantity)
