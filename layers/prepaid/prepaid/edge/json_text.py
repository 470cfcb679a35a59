"""Reading JSON that crossed a boundary: an HTTP body, a queue message, a bus event.

`json.loads` alone takes the last of duplicated keys (`{"credits":"10","credits":"20"}` would buy 20), accepts
`NaN` and `Infinity`, and raises `RecursionError` on deep nesting (30,000 levels of `[` in 60 KB), which escapes
every `except ValueError`. `read_json` refuses all three with a reason, before anything acts on the value. It uses
no regular expression: one that skips strings backtracks exponentially on an unterminated string of escapes.
"""

from __future__ import annotations

import json
from typing import Any

from prepaid.domain.rules import MAX_JSON_DEPTH


class JsonRefused(ValueError):
    """JSON that is not read: `reason` is `not_json`, `too_deep` or `duplicate_key`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def nesting_depth(value: Any) -> int:
    """How deep the arrays and objects of a parsed JSON value nest (a scalar is 0), walked without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise JsonRefused("duplicate_key")
    return found


def _no_constant(name: str) -> Any:
    raise JsonRefused("not_json")  # NaN, Infinity, -Infinity: not JSON (RFC 8259)


def read_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value of a JSON text, refused (`JsonRefused`) when it is not JSON, nests deeper than `max_depth`, or
    repeats a key in an object."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("not_json") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except JsonRefused:
        raise
    except RecursionError:  # nested past the interpreter's limit (json's C scanner stops there, cleanly)
        raise JsonRefused("too_deep") from None
    except ValueError:
        raise JsonRefused("not_json") from None
    if nesting_depth(value) > max_depth:
        raise JsonRefused("too_deep")
    return value
