"""The README's five-minute tour, run as a newcomer runs it: each `$ curl ...` of its console blocks, top to bottom,
by bash against a fresh `make local ARGS=--seed`, and each answer checked against the one the README shows.

How the README is read: in the tour's ```console blocks a command is a line starting `$ ` and the lines indented
under it; the unindented lines after it are the answer shown. An answer shown is JSON cut to the fields that matter,
and maybe the HTTP status after it (`-w ' %{http_code}'`): every field shown must be in the real answer with that
value (objects may have more fields; `"…"` stands for any value; lists have the length shown). A read (a command
without `-X`) is run again until its answer is the one shown, within the generous wait the suite allows: usage is
drawn and schedules fire in the background, within about a second unloaded.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prepaid_local.server import LocalServer
from support.outside import local_server
from support.waiting import eventually

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR_HEADING = "## A five-minute tour"
README_ORIGIN = "localhost:3000"
ANY = "…"
_MISSING = object()  # a field the real answer does not have


@dataclass(frozen=True)
class Step:
    command: str
    shown: str  # the answer as the README shows it ("" when it shows none)

    @property
    def is_read(self) -> bool:
        return " -X " not in self.command


def tour_steps(text: str) -> list[Step]:
    """The commands of the tour's console blocks, each with the answer shown under it."""
    tour = text.split(TOUR_HEADING, 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", tour, flags=re.DOTALL):
        command: list[str] | None = None
        shown: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    steps.append(Step("\n".join(command), "\n".join(shown)))
                command, shown = [line[2:]], []
            elif line.startswith("    ") and command is not None and not shown:
                command.append(line)
            else:
                shown.append(line)
        if command is not None:
            steps.append(Step("\n".join(command), "\n".join(shown)))
    return steps


def answer_parts(text: str) -> tuple[Any, str | None]:
    """An answer's JSON and the status printed after it, if any."""
    text = text.strip()
    status = None
    found = re.fullmatch(r"(.*?)\s+(\d{3})", text, flags=re.DOTALL)
    if found and not text.isdigit():
        text, status = found.group(1), found.group(2)
    return json.loads(text), status


def shown_in(shown: Any, actual: Any, path: str = "$") -> list[str]:
    """Where the answer shown differs from the real one (fields shown and not there, or with other values)."""
    if shown == ANY:
        return []
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{path}: an object shown, {actual!r} answered"]
        return [p for k, v in shown.items() for p in shown_in(v, actual.get(k, _MISSING), f"{path}.{k}")]
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(actual) != len(shown):
            return [f"{path}: {len(shown)} items shown, {actual!r} answered"]
        return [p for n, (s, a) in enumerate(zip(shown, actual, strict=True)) for p in shown_in(s, a, f"{path}[{n}]")]
    return [] if shown == actual else [f"{path}: {shown!r} shown, {actual!r} answered"]


def run(step: Step, origin: str) -> str:
    """The command as the README writes it, by bash, against the test's server instead of port 3000."""
    command = step.command.replace(README_ORIGIN, origin)
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (step.command, done.stderr)
    return done.stdout


def differences(step: Step, answer: str) -> list[str]:
    if not step.shown.strip():
        return []
    shown, shown_status = answer_parts(step.shown)
    try:
        actual, status = answer_parts(answer)
    except ValueError:
        return [f"not JSON: {answer[:200]!r}"]
    problems = shown_in(shown, actual)
    if shown_status is not None and status != shown_status:
        problems.append(f"status {shown_status} shown, {status} answered")
    return problems


@pytest.fixture(scope="module")
def seeded() -> Iterator[LocalServer]:
    with local_server(seed=True) as running:  # as `make local ARGS=--seed`
        yield running


def test_the_readme_tour_reads_as_the_readme_says(seeded: LocalServer) -> None:
    # Given the tour's commands, in the order the README gives them
    steps = tour_steps(README.read_text())
    assert len(steps) >= 15, [s.command for s in steps]
    origin = seeded.url.removeprefix("http://")
    for step in steps:
        # When each is run as written (a read again until the background work it shows is done)
        if step.is_read:
            answered: list[str] = []

            def as_shown(step: Step = step, answered: list[str] = answered) -> bool:
                """the read answers as the README shows"""
                answered[:] = [run(step, origin)]
                return not differences(step, answered[0])

            with contextlib.suppress(AssertionError):  # the last answer's differences are reported below
                eventually(as_shown)
            answer = answered[0]
        else:
            answer = run(step, origin)
        # Then it answers what the README shows
        assert differences(step, answer) == [], f"{step.command}\nanswered: {answer[:1000]}"


def test_the_check_sees_an_answer_the_readme_gets_wrong() -> None:
    # Given an answer shown with a balance, a status and a list of one event
    step = Step("curl -s x", '{"balance":"24980","events":[{"id":"…"}]} 202')
    # Then the real answer passes with more fields, and fails with another value, status or length
    assert differences(step, '{"balance":"24980","more":1,"events":[{"id":"e1","x":2}]} 202') == []
    assert differences(step, '{"balance":"25000","events":[{"id":"e1"}]} 202') != []
    assert differences(step, '{"balance":"24980","events":[{"id":"e1"}]} 201') != []
    assert differences(step, '{"balance":"24980","events":[]} 202') != []
    assert differences(step, '{"events":[{"id":"e1"}]} 202') != []
