"""`make local`'s own command starts the stack: run as the Makefile writes it (its environment and module, in a
process of its own), not in the test's process, whose import path already holds everything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from support.waiting import PATIENCE_SECONDS, eventually

ROOT = Path(__file__).resolve().parents[2]


def local_recipe() -> tuple[dict[str, str], list[str]]:
    """The `local` target's recipe: its environment assignments and its command (`$(BIN)/python` as this venv's)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^local:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe is not None, "the Makefile has a `local` target with a one-line recipe"
    words = recipe.group(1).replace("$(ARGS)", "").split()
    assignments = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if "=" in w and not w.startswith("-")}
    command = [sys.executable if w == "$(BIN)/python" else w for w in words if w.split("=", 1)[0] not in assignments]
    return assignments, command


def test_the_makefiles_local_command_serves_the_api(tmp_path: Path) -> None:
    # Given the recipe of `make local`, with ports the system picks
    assignments, command = local_recipe()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | assignments
    out = (tmp_path / "out.txt").open("w+")
    ports = ["--port", "0", "--moto-port", "0", "--stripe-port", "0", "--seed"]
    process = subprocess.Popen([*command, *ports], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # When it has started
        def started() -> bool:
            """the banner names the API's address (or the process ended)"""
            return process.poll() is not None or "API          http" in (tmp_path / "out.txt").read_text()

        eventually(started, seconds=PATIENCE_SECONDS * 4)  # a cold start of moto and every handler: generous
        printed = (tmp_path / "out.txt").read_text()
        assert process.poll() is None, printed[-3000:]
        url = re.search(r"API          (http://\S+)", printed)
        assert url is not None, printed[-3000:]
        # Then it serves the API, seeded
        with urllib.request.urlopen(f"{url.group(1)}/rate-card", timeout=PATIENCE_SECONDS) as answer:
            assert "api_calls" in json.loads(answer.read())["meters"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=PATIENCE_SECONDS)
        out.close()
