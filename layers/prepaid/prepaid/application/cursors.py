"""Page cursors, one rule for every listing: a cursor is a signed token of `{"q": <the query's key>, "after": ...}`,
handed back as it came; one altered, forged, or handed out for another query is refused (400 invalid_cursor)."""

from __future__ import annotations

import hashlib
from typing import Any

from prepaid.application.signing import Signer
from prepaid.domain.errors import InvalidCursor, InvalidRequest


def query_key(*parts: str) -> str:
    """Ties a cursor to the query it was handed out for."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def opened(signer: Signer, cursor: str, query: str) -> dict[str, Any]:
    """The payload of a cursor this signer sealed for `query`; `InvalidCursor` for anything else."""
    payload = signer.open(cursor)
    if payload is None or payload.get("q") != query:
        raise InvalidCursor()
    return payload


def after_text(signer: Signer, cursor: str, query: str) -> str:
    """The position a cursor whose `after` is text names; `InvalidCursor` for anything else."""
    after = opened(signer, cursor, query).get("after")
    if not isinstance(after, str):
        raise InvalidCursor()
    return after


def check_limit(limit: int, most: int) -> None:
    if isinstance(limit, bool) or not 1 <= limit <= most:
        raise InvalidRequest(field="limit", reason=f"between 1 and {most}")
