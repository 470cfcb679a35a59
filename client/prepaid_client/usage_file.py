"""Usage events from a file (JSON lines, or one JSON array), kept as the JSON text written, in request batches."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

MAX_EVENTS_PER_REQUEST = 1_000  # POST /usage takes 1 to 1,000 events
# POST /usage takes at most 2 MiB; a batch stops short of it, leaving room for the envelope.
MAX_BATCH_BYTES = 2 * 1024 * 1024 - 1024


class UsageFileError(ValueError):
    """The file is not JSON lines nor a JSON array of events; the message says where."""


def read_events(path: Path) -> list[str]:
    """Each event's JSON text as written (so numbers stay exactly as in the file); each must be a JSON object."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _array_items(stripped)
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            events.append(_one_object(line.strip(), f"line {number}"))
    return events


def batches(events: Sequence[str], size: int = MAX_EVENTS_PER_REQUEST) -> Iterator[Sequence[str]]:
    """Consecutive runs of at most `size` events whose request stays under the body limit."""
    if not 1 <= size <= MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"a batch holds 1 to {MAX_EVENTS_PER_REQUEST} events")
    start, taken, used = 0, 0, 0
    for index, event in enumerate(events):
        cost = len(event.encode()) + 1
        if taken and (taken == size or used + cost > MAX_BATCH_BYTES):
            yield events[start:index]
            start, taken, used = index, 0, 0
        taken, used = taken + 1, used + cost
    if taken:
        yield events[start:]


def _one_object(text: str, where: str) -> str:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageFileError(f"{where}: not JSON ({error})") from error
    if not isinstance(value, dict):
        raise UsageFileError(f"{where}: an event is a JSON object")
    return text


def _array_items(text: str) -> list[str]:
    """The text of each element of a JSON array, as written."""
    decoder, at = json.JSONDecoder(), 1
    items: list[str] = []
    while True:
        at = _skip_space(text, at)
        if text.startswith("]", at) and not items:
            break
        try:
            _, end = decoder.raw_decode(text, at)
        except ValueError as error:
            raise UsageFileError(f"element {len(items)}: not JSON ({error})") from error
        items.append(_one_object(text[at:end], f"element {len(items)}"))
        at = _skip_space(text, end)
        if text.startswith("]", at):
            break
        if not text.startswith(",", at):
            raise UsageFileError(f"element {len(items) - 1}: expected ',' or ']' at character {at}")
        at += 1
    if text[at + 1 :].strip():
        raise UsageFileError("text after the array's closing ']'")
    return items


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
