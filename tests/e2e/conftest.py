"""The e2e tests' server: `make local`'s, on free ports, one per test module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from prepaid_local.server import LocalServer
from support.outside import local_server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with local_server() as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium: `make browser` (which `make test` runs) installs it; missing, the browser tests fail."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make browser` (apt-get install chromium)")
    return found
