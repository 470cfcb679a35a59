"""The export bucket: one UTC day's ledger entries and revenue figures as JSON lines, partitioned by day.

  ledger/date=<yyyy-mm-dd>/part-0000.jsonl    one ledger entry a line (as the ledger route shows it, with customerId)
  revenue/date=<yyyy-mm-dd>/part-0000.jsonl   one currency a line (as the revenue report shows it for that day)

The key depends on the day only, so exporting a day again replaces its objects (the bucket keeps old versions a
while). The Glue tables in the template read these prefixes with partition projection on `date`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

from prepaid.application.export import ExportedEntry
from prepaid.application.revenue import RevenueReport
from prepaid.edge.wire import currency_revenue, exported_entry

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

LEDGER_PREFIX = "ledger"
REVENUE_PREFIX = "revenue"
PART = "part-0000.jsonl"
IN_MEMORY_BYTES = 8 * 1024 * 1024  # a day's file spills to /tmp past this


def day_key(prefix: str, day: date) -> str:
    return f"{prefix}/date={day.isoformat()}/{PART}"


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class S3DayExport:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def ledger(self, day: date, entries: Iterator[ExportedEntry]) -> tuple[str, int]:
        key, count = day_key(LEDGER_PREFIX, day), 0
        with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES) as body:
            for e in entries:
                body.write(_line(exported_entry(e.customer_id, e.entry_id, e.entry)))
                count += 1
            body.seek(0)
            self._put(key, body)
        return key, count

    def revenue(self, day: date, report: RevenueReport) -> str:
        key = day_key(REVENUE_PREFIX, day)
        self._put(key, b"".join(_line(currency_revenue(r)) for r in report.currencies))
        return key

    def _put(self, key: str, body: Any) -> None:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/x-ndjson")
