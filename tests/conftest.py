"""Fixtures: moto with DynamoDB atomic per request, and the stack built from template.yaml."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from prepaid_local.clock import ProcessClock
from prepaid_local.moto_serial import serialize_moto
from prepaid_local.moto_speed import speed_up_moto
from prepaid_local.offline import MOTO_ENV
from prepaid_local.stack import Stack
from support.aws import REGION, BusTap

TEST_ENV = {**MOTO_ENV, "POWERTOOLS_METRICS_NAMESPACE": "PrepaidCreditsTest", "POWERTOOLS_LOG_LEVEL": "WARNING"}

# On Lambda the environment exists before the handler module is imported; a test module may import a handler
# at collection time, so Powertools' settings are in place from the start.
for _key in ("POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME"):
    os.environ.setdefault(_key, TEST_ENV[_key])


@pytest.fixture
def aws() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(TEST_ENV)
    try:
        with mock_aws():
            serialize_moto()
            speed_up_moto()
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def stack(aws: None) -> Iterator[Stack]:
    built = Stack(lambda service: boto3.client(cast(Any, service), region_name=REGION))
    built.cold_start()  # each test has a fresh moto: handlers must not keep clients of the last one
    yield built
    built.cold_start()


@pytest.fixture
def timed_stack(aws: None) -> Iterator[Stack]:
    """The stack on a clock the whole process follows (handlers too): moving it makes schedules fire and their
    handlers see the time they fired at. Real time comes back at the end."""
    clock = ProcessClock()
    try:
        built = Stack(lambda service: boto3.client(cast(Any, service), region_name=REGION), clock=clock)
        built.cold_start()
        yield built
        built.cold_start()
    finally:
        clock.stop()


@pytest.fixture
def bus(stack: Stack) -> BusTap:
    return BusTap(stack)
