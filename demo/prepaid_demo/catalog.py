"""The demo's catalog: what `make local ARGS=--seed` loads (demo/seed.json, read here so it is written once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEED = Path(__file__).resolve().parents[1] / "seed.json"


def _seeded(path: str) -> dict[str, Any]:
    requests: list[dict[str, Any]] = json.loads(SEED.read_text())
    (body,) = [r["body"] for r in requests if r["path"] == path]
    return dict(body)


DEMO_PRICE_BOOK = _seeded("/price-book")
DEMO_RATE_CARD = _seeded("/rate-card")
