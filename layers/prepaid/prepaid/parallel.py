"""Work whose waits can overlap (requests to AWS), run side by side in threads."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# DynamoDB requests of one commit in flight together, and customers of one drawdown batch committed together
# (a FIFO batch holds at most 10 messages, so at most 10 customers)
PARALLEL_REQUESTS = 16
PARALLEL_CUSTOMERS = 10


def side_by_side(work: Callable[[Any], T], parts: Sequence[Any], limit: int = PARALLEL_REQUESTS) -> list[T]:
    """`work` on each part, at most `limit` at a time, the results in the parts' order; one part runs here.
    An exception of any part is raised here once every part has run or failed."""
    if len(parts) <= 1:
        return [work(p) for p in parts]
    # each in a copy of the caller's context, so what it carries (the local stack's running function) goes along
    contexts = [contextvars.copy_context() for _ in parts]
    with ThreadPoolExecutor(max_workers=min(len(parts), limit)) as pool:
        return list(pool.map(lambda job: job[0].run(work, job[1]), zip(contexts, parts, strict=True)))
