"""Reading JSON that crossed a boundary: an HTTP body, a queue message, a bus event.

`json.loads` alone takes the last of duplicated keys (`{"credits":"10","credits":"20"}` would buy 20), accepts
`NaN` and `Infinity`, and raises `RecursionError` on deep nesting (30,000 levels of `[` in 60 KB), which escapes
every `except ValueError`. `read_json` refuses all three with a reason, before anything acts on the value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from prepaid.domain.rules import MAX_JSON_DEPTH

_STRING = re.compile(r'"(?:[^"\\]+|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
_INNERMOST = re.compile(r"\[\]|\{\}")
_OPENERS = re.compile(r"[\[{]+")


class JsonRefused(ValueError):
    """JSON that is not read: `reason` is `not_json`, `too_deep` or `duplicate_key`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def nesting_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than `limit`, found without parsing it.

    String contents are removed first (a `[` inside a string is not structure), then the brackets alone are
    reduced innermost pair by innermost pair: each pass is one regular-expression sweep in C, and a text within
    the limit needs at most `limit` passes, so this costs no more than a few sweeps of the text.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for depth in range(limit + 1):
        if not brackets:
            return False
        reduced = _INNERMOST.sub("", brackets)
        if reduced == brackets:  # unbalanced (not JSON): as deep as its longest run of openers, at least
            return depth + max((len(run) for run in _OPENERS.findall(brackets)), default=0) > limit
        brackets = reduced
    return True


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
    if nesting_depth_exceeds(text, max_depth):
        raise JsonRefused("too_deep")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except JsonRefused:
        raise
    except (ValueError, RecursionError):
        raise JsonRefused("not_json") from None
