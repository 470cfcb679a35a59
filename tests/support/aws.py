"""Test helpers over moto: the region, and a tap on the event bus."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import boto3

from prepaid_local import bus_tap
from prepaid_local.stack import Stack

REGION = "us-east-1"


class BusTap(bus_tap.BusTap):
    """The local stack's bus tap, on the test's moto."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(lambda service: boto3.client(cast(Any, service), region_name=REGION), stack.name("EventBus"))


@contextmanager
def on_every_call(event_name: str, handler: Callable[..., None]) -> Iterator[None]:
    """A hook on boto3's default session (botocore's event system) while in use: every client built from it, the
    handlers' included once their cached clients are rebuilt, calls `handler` on `event_name`."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    unique = f"test-hook-{id(handler)}"
    session.events.register(event_name, handler, unique_id=unique)
    try:
        yield
    finally:
        session.events.unregister(event_name, unique_id=unique)
