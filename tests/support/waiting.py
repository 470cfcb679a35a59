"""Waiting for what the local stack does in the background, without a wall-clock bound on how fast it does it.

Every wait ends as soon as its condition holds; the limit only keeps a broken test from hanging. It is generous on
purpose: on a loaded two-core CI machine (load average 9 to 20) what takes 0.3 s unloaded was seen taking over
10 s, and a test must not fail for the machine being busy. Speed is measured by `make bench`, never here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PATIENCE_SECONDS = 180.0


def eventually(check: Callable[[], T | None], seconds: float = PATIENCE_SECONDS, every: float = 0.2) -> T:
    """Call `check` until it returns something truthy, or fail after `seconds`; return what it returned."""
    deadline = time.monotonic() + seconds
    while True:
        outcome = check()
        if outcome:
            return outcome
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {seconds} s: {check.__doc__ or check}")
        time.sleep(every)
