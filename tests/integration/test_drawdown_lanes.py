"""The customers of one drawdown batch commit side by side, and one customer's failure holds back no other."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

import drawdown_handler
from prepaid import assembly
from prepaid.adapters.sqs import rated_to_wire
from prepaid.application.drawdown import DrawdownReport
from prepaid.assembly import now
from prepaid.domain.wallet import RatedUsage
from prepaid_local.lambda_context import LocalContext

CUSTOMERS = ("acme", "globex", "initech")
# generous, not a speed bound: only a drawdown that commits customers one after another waits this long
MEET_WITHIN_SECONDS = 60


class MeetingService:
    """A drawdown service whose commits each wait until every customer of the batch has started one."""

    def __init__(self, customers: int, failing: str | None = None) -> None:
        self.meeting = threading.Barrier(customers, timeout=MEET_WITHIN_SECONDS)
        self.failing = failing
        self.threads: set[int] = set()

    def apply(self, customer_id: str, usages: Sequence[RatedUsage]) -> DrawdownReport:
        self.threads.add(threading.get_ident())
        self.meeting.wait()
        if customer_id == self.failing:
            raise RuntimeError("the table is unreachable for this customer")
        return DrawdownReport(drawn=[u.event_id for u in usages])


def batch(customers: Sequence[str]) -> dict[str, Any]:
    records = []
    for n, customer in enumerate(customers):
        usage = RatedUsage(f"{customer}-e1", "api_calls", Decimal(1), Decimal("0.5"), now())
        records.append(
            {
                "messageId": f"m{n}",
                "receiptHandle": "r",
                "body": json.dumps(rated_to_wire(customer, [usage])),
                "attributes": {"MessageGroupId": customer},
            }
        )
    return {"Records": records}


@pytest.fixture
def meeting(monkeypatch: pytest.MonkeyPatch, stack: Any) -> MeetingService:
    service = MeetingService(len(CUSTOMERS))
    monkeypatch.setattr(assembly, "drawdown_service", lambda: service)
    return service


def test_the_customers_of_a_batch_commit_side_by_side(meeting: MeetingService) -> None:
    # Given a batch with messages of three customers, whose commits can only finish once all three have begun
    # When the drawdown handles it
    answer = drawdown_handler.lambda_handler(batch(CUSTOMERS), LocalContext("DrawdownFunction"))
    # Then no message failed: the three commits were under way together, on three threads
    assert answer == {"batchItemFailures": []}
    assert len(meeting.threads) == len(CUSTOMERS)


def test_a_customer_whose_drawdown_fails_fails_only_its_own_messages(meeting: MeetingService) -> None:
    # Given a batch of three customers, one of whose commits fails
    meeting.failing = "globex"
    # When the drawdown handles it (the failure is logged; expected here)
    level = drawdown_handler.logger.log_level
    drawdown_handler.logger.setLevel("CRITICAL")
    try:
        answer = drawdown_handler.lambda_handler(batch(CUSTOMERS), LocalContext("DrawdownFunction"))
    finally:
        drawdown_handler.logger.setLevel(level)
    # Then only that customer's message is reported failed, for FIFO to deliver again
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
