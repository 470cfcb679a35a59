"""Eight execution environments buy, void and read one wallet through the API handler at once.

moto's DynamoDB is serialized per request (as DynamoDB is atomic per request), so what is tested is our own
optimistic concurrency: the wallet's version condition. The same workload with the condition switched off
must be caught losing updates, which shows the checks below can fail.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from prepaid import assembly
from prepaid.adapters.dynamodb import DynamoWalletStore
from prepaid.adapters.items import retired_card_from_item
from prepaid.application.wallets import WalletService
from prepaid.assembly import new_id, now
from prepaid.domain.card import Card, CardStatus
from prepaid.domain.wallet import Wallet
from prepaid_local.apigateway import Gateway
from prepaid_local.server import LocalServer
from prepaid_local.stack import Stack
from support.aws import REGION
from support.environments import Environment, moto_server, racy_store, run_environments
from support.usage import Table

THREADS = 8
ROUNDS = 12


@dataclass
class Findings:
    bought: dict[str, Decimal] = field(default_factory=dict)  # card id -> credits, from 201 answers
    voided: set[str] = field(default_factory=set)  # card ids from 200 void answers
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: list[Any] = field(default_factory=list)


def _use_store(version_condition: bool) -> None:
    """The handler's service, with a pause between reading and committing that makes races likely."""
    store, catalog = racy_store(version_condition, pause=0.002)
    service = WalletService(store, catalog, now, new_id)
    assembly.wallet_service = lambda: service  # type: ignore[assignment]


def _buy_void_read(n: int, gateway: Gateway, version_condition: bool) -> list[tuple[str, int, Any, str]]:
    """One execution environment's share of the workload; returns what each request answered."""
    _use_store(version_condition)
    rng = random.Random(n)
    mine: list[str] = []
    log: list[tuple[str, int, Any, str]] = []
    for r in range(ROUNDS):
        credits = f"{rng.randint(1, 10_000)}.{rng.randint(0, 999_999_999):09d}"
        body = {"credits": credits, "price": {"amount": "1.00", "currency": "USD"}}
        answer = gateway.request("POST", "/wallets/acme/purchases", body, {"Idempotency-Key": f"t{n}-r{r}"})
        log.append(("purchase", answer.status, answer.body, credits))
        if answer.status == 201:
            mine.append(answer.body["card"]["cardId"])
        if mine and rng.random() < 0.4:
            card_id = mine.pop(rng.randrange(len(mine)))
            answer = gateway.request("POST", f"/wallets/acme/cards/{card_id}/void")
            log.append(("void", answer.status, answer.body, card_id))
        answer = gateway.request("GET", "/wallets/acme")
        log.append(("read", answer.status, answer.body if answer.status != 200 else None, ""))
    return log


def _run(server: LocalServer, version_condition: bool) -> Findings:
    assert server.stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["100"]}).status == 200
    logs = run_environments(THREADS, Environment.of(server), _buy_void_read, version_condition)
    findings = Findings()
    for kind, status, body, subject in (entry for log in logs for entry in log):
        findings.statuses[(kind, status)] += 1
        if kind == "purchase" and status == 201:
            findings.bought[body["card"]["cardId"]] = Decimal(subject)
        elif kind == "void" and status == 200:
            findings.voided.add(subject)
        elif status == 409 and body["error"]["code"] == "concurrent_update":
            pass  # a conflict reported to the client, who may retry
        elif kind == "void" and status == 404 and not version_condition:
            pass  # the card's purchase was lost: only without the condition
        elif not (kind == "read" and status == 200):
            findings.unexpected.append((kind, status, body))
    return findings


def _stored(stack: Stack) -> tuple[Wallet, list[dict[str, Any]], dict[str, Card]]:
    client = boto3.client("dynamodb", region_name=REGION)
    wallet = DynamoWalletStore(client, stack.name("WalletTable")).load("acme")
    assert wallet is not None
    items = client.query(
        TableName=stack.name("WalletTable"),
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "W#acme"}},
        ConsistentRead=True,
    )["Items"]
    plain = [{k: TypeDeserializer().deserialize(v) for k, v in item.items()} for item in items]
    retired = {i["cardId"]: retired_card_from_item(i) for i in plain if i["itemType"] == "card"}
    return wallet, Table(stack).ledger("acme"), retired


def _lost_updates(stack: Stack, findings: Findings) -> list[str]:
    """What a lost update leaves behind: cards, voids or ledger entries the wallet does not show."""
    wallet, ledger, retired = _stored(stack)
    cards = {**wallet.cards, **retired}
    problems = [f"card {c} answered 201 but is not in the wallet" for c in findings.bought if c not in cards]
    problems += [
        f"card {c} answered voided but is {cards[c].status}"
        for c in findings.voided
        if c in cards and cards[c].status is not CardStatus.VOIDED
    ]
    purchased = {e["cardId"]: e["credits"] for e in ledger if e["type"] == "purchase"}
    if purchased != {c: card.credits for c, card in cards.items()}:
        problems.append("ledger purchases and wallet cards disagree")
    voids = sum((e["credits"] for e in ledger if e["type"] == "void"), Decimal(0))
    if voids != sum((card.voided for card in cards.values()), Decimal(0)) or voids != wallet.retired.voided:
        problems.append("ledger voids and wallet voids disagree")
    return problems


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with moto_server() as running:
        yield running


def test_concurrent_buys_voids_and_reads_lose_nothing(server: LocalServer) -> None:
    # Given the handler's real store, with the wallet's version condition
    # When 8 execution environments buy, void and read the same wallet at once
    findings = _run(server, version_condition=True)
    # Then every answer was a success or a reported conflict
    assert findings.unexpected == []
    assert findings.statuses[("purchase", 201)] >= THREADS * ROUNDS // 2
    # And no card, void or ledger entry was lost
    assert _lost_updates(server.stack, findings) == []
    # And conservation holds to the last digit
    wallet = server.stack.api("GET", "/wallets/acme").body
    totals = wallet["totals"]
    assert Decimal(totals["credits"]) == sum(findings.bought.values())
    assert Decimal(totals["credits"]) == (
        Decimal(totals["drawn"]) + Decimal(totals["expired"]) + Decimal(totals["voided"]) + Decimal(wallet["balance"])
    )
    assert len(wallet["cards"]) == len(findings.bought) - len(findings.voided)


def test_the_same_workload_without_the_version_condition_is_caught_losing_updates(server: LocalServer) -> None:
    # Given the store with its version condition switched off
    # When the same workload runs
    findings = _run(server, version_condition=False)
    # Then the checks above find lost updates
    assert _lost_updates(server.stack, findings) != []
