"""Handlers run in separate processes, as separate Lambda execution environments, against one moto server.

Lambda never runs two invocations in one process, and handlers keep per-invocation state in module globals
(the resolver's current event, the metric set). So concurrency is tested the way Lambda scales: N processes,
each importing the handler on its own, all calling one moto server whose DynamoDB is atomic per request.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.config import table_settings
from prepaid.domain.wallet import Wallet
from prepaid_local.apigateway import Gateway, Route
from prepaid_local.lambda_context import LocalContext
from prepaid_local.server import LocalServer, start
from support.aws import REGION


@contextmanager
def moto_server() -> Iterator[LocalServer]:
    """The local stack on free ports: moto serialized per request, resources from template.yaml. Nothing is
    delivered in the background: the workers call the functions themselves, and a pump publishing their
    outbox would only compete with them (and with moto, in this process) for the CPU."""
    server = start(port=0, moto_port=0, deliver=False, stripe_port=0)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Environment:
    """What a worker process needs to call the API as API Gateway would: routes and handler names."""

    env: dict[str, str]
    routes: list[Route]
    handlers: dict[str, str]  # function logical id -> "module.function"

    @classmethod
    def of(cls, server: LocalServer) -> Environment:
        stack = server.stack
        # Another process reaches moto through the server (the server's own handlers call it in-process)
        env = {**os.environ, "AWS_ENDPOINT_URL": server.moto_url}
        return cls(env, stack.gateway.routes, {k: f.handler for k, f in stack.functions.items()})

    def gateway(self) -> Gateway:
        """A gateway that invokes this process's own import of each handler."""

        def invoke(function: str, event: dict[str, Any]) -> Any:
            module, name = self.handlers[function].rsplit(".", 1)
            return getattr(importlib.import_module(module), name)(event, LocalContext(function_name=function))

        return Gateway(self.routes, invoke)


Worker = Callable[..., Any]


def _enter(n: int, environment: Environment, worker: Worker, args: tuple[Any, ...], results: Any, start: Any) -> None:
    os.environ.clear()
    os.environ.update(environment.env)
    boto3.setup_default_session()  # from this environment, not the one the server process imported under
    try:
        start.wait(timeout=60)
        results.put((n, worker(n, environment.gateway(), *args), None))
    except BaseException:  # the parent reports it; a worker must never hang the test
        results.put((n, None, traceback.format_exc()))


def run_environments(
    count: int, environment: Environment, worker: Worker, *args: Any, timeout: float = 180
) -> list[Any]:
    """Run `worker(n, gateway, *args)` in `count` processes started together; return their results in order."""
    # Forked from a server process that imported the handlers once (as a fresh Lambda environment has imported
    # them before its first invocation), so eight environments start in a second rather than eight imports' time.
    # The server is started once per test process, by its first caller, and imported the handlers under that
    # caller's environment: this holds because handlers read settings and build clients on first use, never at
    # import (and each worker sets its own environment and boto3 session first).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(sorted({"boto3", *(h.rsplit(".", 1)[0] for h in environment.handlers.values())}))
    results = context.Queue()
    start = context.Barrier(count)
    processes = [
        context.Process(target=_enter, args=(n, environment, worker, args, results, start)) for n in range(count)
    ]
    for process in processes:
        process.start()
    try:
        found = [results.get(timeout=timeout) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [error for _, _, error in found if error]
    assert not errors, errors[0]
    return [result for _, result, _ in sorted(found, key=lambda r: r[0])]


def racy_store(version_condition: bool, pause: float) -> tuple[DynamoWalletStore, DynamoCatalogStore]:
    """This environment's stores on the stack's table, pausing `pause` seconds between reading a wallet and
    deciding, which makes races likely; `version_condition=False` switches off the wallet's version check."""
    client = boto3.client("dynamodb", region_name=REGION)
    table = table_settings().table_name
    store = DynamoWalletStore(client, table, version_condition=version_condition)
    load = store.load

    def slow_load(customer_id: str, usage_ids: Collection[str] = ()) -> Wallet | None:
        wallet = load(customer_id, usage_ids)
        time.sleep(pause)
        return wallet

    store.load = slow_load  # type: ignore[method-assign]
    return store, DynamoCatalogStore(client, table)
