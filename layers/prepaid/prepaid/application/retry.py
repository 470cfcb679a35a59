"""Bounded retries with full jitter for optimistic concurrency."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from prepaid.application.ports import VersionConflict
from prepaid.domain.errors import ConcurrentUpdate

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 12
    base_seconds: float = 0.005
    cap_seconds: float = 0.2
    sleep: Callable[[float], None] = field(default=time.sleep)

    def run(self, customer_id: str, attempt: Callable[[], T]) -> T:
        """Run `attempt` until it commits without a version conflict, or report `ConcurrentUpdate`."""
        for n in range(self.attempts):
            try:
                return attempt()
            except VersionConflict:
                if n + 1 < self.attempts:
                    self.sleep(random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**n)))  # noqa: S311
        raise ConcurrentUpdate(customer_id=customer_id, attempts=self.attempts)
