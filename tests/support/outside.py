"""Talking to a running local server from outside, as a client would: plain HTTP, and boto3 against its moto."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import time_machine

from prepaid_demo.catalog import SEED
from prepaid_local.server import LocalServer, start
from support.waiting import PATIENCE_SECONDS

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # both servers are on loopback


def call(server: LocalServer, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """One HTTP request (a body that is not bytes is sent as JSON) → status and parsed JSON answer."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(server.url + path, data=data, method=method, headers={**sent, **headers})
    try:
        with _HTTP.open(request, timeout=PATIENCE_SECONDS) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def aws(server: LocalServer, service: str) -> Any:
    """A client of the embedded moto, configured explicitly so it depends on nothing in the environment."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=server.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@contextmanager
def local_server(seed: bool = False, deliver: bool = True) -> Iterator[LocalServer]:
    """`make local`'s server on free ports, for one test module. On the way out it checks that nothing of the
    server stays behind: the rest of the suite runs on in-process mock_aws, in real time."""
    before = dict(os.environ)
    running = start(port=0, moto_port=0, seed=SEED if seed else None, deliver=deliver, stripe_port=0)
    try:
        yield running
    finally:
        running.stop()
    assert dict(os.environ) == before
    assert not time_machine.escape_hatch.is_travelling()
