"""Test helpers over moto: the region, and a tap on the event bus."""

from __future__ import annotations

from typing import Any, cast

import boto3

from prepaid_local import bus_tap
from prepaid_local.stack import Stack

REGION = "us-east-1"


class BusTap(bus_tap.BusTap):
    """The local stack's bus tap, on the test's moto."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(lambda service: boto3.client(cast(Any, service), region_name=REGION), stack.name("EventBus"))
