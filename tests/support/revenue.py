"""Reading the revenue report as finance does: `GET /reports/revenue` for a span of days."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import strategies as st

from prepaid_local.stack import Stack


def revenue_report(stack: Stack, start: date, end: date) -> dict[str, Any]:
    """The report's answer for the days from `start` up to `end` (exclusive), checked to be a 200."""
    answer = stack.api("GET", "/reports/revenue", query=f"from={start}&to={end}")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def replayed_slices(draw: st.DrawFn, length: int) -> list[tuple[int, int]]:
    """The slices of a stream of `length` records Lambda delivers to the revenue projection: each starts at or
    before where the last finished (a replay, after a crash or a failure), and the last reaches the end."""
    deliveries: list[tuple[int, int]] = []
    done = 0
    while done < length:
        start = draw(st.integers(0, done))
        end = draw(st.integers(start + 1, length))
        deliveries.append((start, end))
        done = max(done, end)
    return deliveries
