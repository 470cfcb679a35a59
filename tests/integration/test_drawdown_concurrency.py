"""Eight execution environments draw 2,000 events from one wallet at once, with purchases interleaved.

The FIFO queue normally keeps one wallet to one batch at a time; this test takes that away on purpose, so that
what keeps the wallet exact is the drawdown's own optimistic concurrency against DynamoDB (moto, atomic per
request). With the wallet's version condition switched off, the same checks catch the lost updates.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

import drawdown_handler
from prepaid import assembly
from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid.adapters.sqs import rated_to_wire
from prepaid.application.drawdown import DrawdownService
from prepaid.application.wallets import WalletService
from prepaid.assembly import new_id, now
from prepaid.domain.wallet import RatedUsage
from prepaid_local.apigateway import Gateway
from prepaid_local.lambda_context import LocalContext
from prepaid_local.server import LocalServer
from support.aws import REGION
from support.environments import Environment, moto_server, racy_store, run_environments

WORKERS = 8
EVENTS_PER_WORKER = 250  # 2,000 in all
EVENTS_PER_MESSAGE = 25
PURCHASE = Decimal(150)
REDELIVERIES = 5  # the drawdown queue's maxReceiveCount


def _stores(version_condition: bool) -> None:
    """This environment's handlers, on a store whose version condition may be off, pausing between read and write."""
    store, catalog = racy_store(version_condition, pause=0.001)
    drawdown = DrawdownService(store, now, new_id)
    wallets = WalletService(store, catalog, now, new_id)
    assembly.drawdown_service = lambda: drawdown  # type: ignore[assignment]
    assembly.wallet_service = lambda: wallets  # type: ignore[assignment]


def _usage(n: int, rng: random.Random) -> list[RatedUsage]:
    at = now()
    return [
        RatedUsage(
            f"w{n}-e{i}", "api_calls", Decimal(1), Decimal(f"{rng.randint(0, 2)}.{rng.randint(0, 10**9 - 1):09d}"), at
        )
        for i in range(EVENTS_PER_WORKER)
    ]


def _draw_and_buy(n: int, gateway: Gateway, version_condition: bool) -> dict[str, Any]:
    """Draw this worker's events in messages of 25 through the drawdown handler; buy a card between some."""
    _stores(version_condition)
    rng = random.Random(n)
    usages = _usage(n, rng)
    failed: list[str] = []
    bought: list[str] = []
    redelivered = 0
    drawdown_handler.logger.setLevel("CRITICAL")  # a redelivered message logs its conflict; expected here
    for start in range(0, len(usages), EVENTS_PER_MESSAGE):
        body = rated_to_wire("acme", usages[start : start + EVENTS_PER_MESSAGE])
        message_id = f"{n}-{start}"
        attributes = {"MessageGroupId": "acme"}
        record = {"messageId": message_id, "receiptHandle": "r", "body": json.dumps(body), "attributes": attributes}
        for _ in range(REDELIVERIES):  # SQS delivers a failed message again, as long as its redrive policy allows
            answer = drawdown_handler.lambda_handler({"Records": [record]}, LocalContext("DrawdownFunction"))
            if not answer["batchItemFailures"]:
                break
            redelivered += 1
        else:
            failed.append(message_id)
        if rng.random() < 0.3:
            price = {"amount": "1.50", "currency": "USD"}
            bought_answer = gateway.request(
                "POST", "/wallets/acme/purchases", {"credits": str(PURCHASE), "price": price}
            )
            if bought_answer.status == 201:
                bought.append(bought_answer.body["card"]["cardId"])
    rated = str(sum((u.credits for u in usages), Decimal(0)))
    return {"rated": rated, "failed": failed, "bought": bought, "redelivered": redelivered}


def _run(server: LocalServer, version_condition: bool) -> tuple[Decimal, list[str], list[str]]:
    price = {"amount": "10.00", "currency": "USD"}
    assert server.stack.api("POST", "/wallets/acme/purchases", {"credits": "1000", "price": price}).status == 201
    results = run_environments(WORKERS, Environment.of(server), _draw_and_buy, version_condition)
    rated = sum((Decimal(r["rated"]) for r in results), Decimal(0))
    return rated, [f for r in results for f in r["failed"]], [b for r in results for b in r["bought"]]


def _problems(server: LocalServer, rated: Decimal, bought: list[str]) -> list[str]:
    client = boto3.client("dynamodb", region_name=REGION)
    table = server.stack.name("WalletTable")
    wallet = DynamoWalletStore(client, table).load("acme")
    assert wallet is not None
    totals = wallet.totals(now())
    events = client.scan(
        TableName=table, FilterExpression="itemType = :u", ExpressionAttributeValues={":u": {"S": "usage"}}
    )
    problems = []
    if totals.credits != Decimal(1000) + PURCHASE * len(bought):
        problems.append(f"cards lost: {totals.credits} credits held, {Decimal(1000) + PURCHASE * len(bought)} bought")
    if totals.credits != totals.drawn + totals.expired + totals.voided + totals.balance:
        problems.append("conservation broken")
    if totals.drawn + totals.overage != rated or wallet.rated != rated:
        problems.append(f"drawn + overage = {totals.drawn + totals.overage}, rated usage = {rated}")
    if any(c.remaining < 0 for c in wallet.cards.values()) or totals.balance < 0:
        problems.append("overdrawn")
    if events["Count"] != WORKERS * EVENTS_PER_WORKER:
        problems.append(f"{events['Count']} event records for {WORKERS * EVENTS_PER_WORKER} events")
    return problems


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with moto_server() as running:
        yield running


def test_concurrent_drawdowns_of_one_wallet_stay_exact(server: LocalServer) -> None:
    # Given a funded wallet and 8 environments each drawing 250 events and buying cards in between
    # When they all run at once against the same wallet
    rated, failed, bought = _run(server, version_condition=True)
    # Then every message was drawn: conflicts were retried, and the few that ran out of tries were delivered again
    assert failed == []
    # And nothing was overdrawn, lost or doubled: conservation and drawn + overage = rated, to the last digit
    assert _problems(server, rated, bought) == []


def test_without_the_version_condition_the_same_checks_catch_lost_updates(server: LocalServer) -> None:
    # Given the same workload on a store whose wallet write ignores the version
    rated, _, bought = _run(server, version_condition=False)
    # Then the checks find what was lost
    assert _problems(server, rated, bought) != []
