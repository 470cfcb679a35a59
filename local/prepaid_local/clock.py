"""The local stack's clock: real UTC time plus however far it was moved forward.

Schedules fire, failed SQS messages come back, and asynchronous retries run when this clock says so, so a test (or
a person trying expiry out) can move time forward instead of waiting.

By default only the stack reads it; the handlers read the real time. A `ProcessClock` moves the whole process
instead (time-machine shifts what `datetime.now()` and `time.time()` answer everywhere: handlers, moto, the stack),
so a card's expiry job, fired by its schedule when the clock passes `expiresAt`, also sees the card expired. The
local server runs on one; so do the tests of the credit lifecycle.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import time_machine


class Clock:
    """UTC now, moved forward by `advance`/`set`, never back (what already fired stays fired).

    `frozen_at` stops the clock at that instant (it then moves only when told), for tests that want exact times.
    """

    def __init__(self, frozen_at: datetime | None = None) -> None:
        if frozen_at is not None and frozen_at.tzinfo is None:
            raise ValueError("the clock's time must be timezone-aware")
        self._frozen = frozen_at
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            base = self._frozen if self._frozen is not None else datetime.now(UTC)
            return base + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (>= 0); return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Move forward to `when` (a time already passed leaves the clock where it is); return the new time."""
        if when.tzinfo is None:
            raise ValueError("the clock's time must be timezone-aware")
        gap = (when - self.now()).total_seconds()
        return self.advance(gap) if gap > 0 else self.now()

    def stop(self) -> None:
        """Give the process its real time back (nothing to do for a clock only the stack reads)."""


class ProcessClock(Clock):
    """A clock the whole process follows: moving it moves `datetime.now()` and `time.time()` for every thread."""

    def __init__(self, frozen_at: datetime | None = None) -> None:
        super().__init__()
        start = frozen_at or datetime.now(UTC)
        self._traveller = time_machine.travel(start, tick=frozen_at is None)
        self._coordinates = self._traveller.start()

    def now(self) -> datetime:
        return datetime.now(UTC)  # already moved

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._coordinates.shift(timedelta(seconds=seconds))
        return self.now()

    def stop(self) -> None:
        self._traveller.stop()
