"""The e2e tests' server: `make local`'s, on free ports, one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prepaid_local.server import LocalServer
from support.outside import local_server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with local_server() as running:
        yield running
