"""Reading the revenue report as finance does: `GET /reports/revenue` for a span of days."""

from __future__ import annotations

from datetime import date
from typing import Any

from prepaid_local.stack import Stack


def revenue_report(stack: Stack, start: date, end: date) -> dict[str, Any]:
    """The report's answer for the days from `start` up to `end` (exclusive), checked to be a 200."""
    answer = stack.api("GET", "/reports/revenue", query=f"from={start}&to={end}")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body
