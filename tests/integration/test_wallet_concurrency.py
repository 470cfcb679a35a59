"""Eight threads buy, void and read one wallet through the API handler at once.

moto's DynamoDB is serialized per request (as DynamoDB is atomic per request), so what is tested is our own
optimistic concurrency: the wallet's version condition. The same workload with the condition switched off
must be caught losing updates, which shows the checks below can fail.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

import api_handler
from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.items import retired_card_from_item
from prepaid.application.wallets import WalletService
from prepaid.config import table_settings
from prepaid.domain.card import Card, CardStatus
from prepaid.domain.wallet import Wallet
from prepaid_local.stack import Stack
from support.aws import REGION

THREADS = 8
ROUNDS = 12


@dataclass
class Findings:
    bought: dict[str, Decimal] = field(default_factory=dict)  # card id -> credits, from 201 answers
    voided: set[str] = field(default_factory=set)  # card ids from 200 void answers
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    unexpected: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _use_store(monkeypatch: pytest.MonkeyPatch, version_condition: bool) -> None:
    """The handler's service, with a pause between reading and committing that makes races likely."""
    client = boto3.client("dynamodb", region_name=REGION)
    table = table_settings().table_name
    store = DynamoWalletStore(client, table, version_condition=version_condition)
    load = store.load

    def slow_load(customer_id: str) -> Any:
        wallet = load(customer_id)
        time.sleep(0.002)
        return wallet

    store.load = slow_load  # type: ignore[method-assign]
    service = WalletService(store, DynamoCatalogStore(client, table), api_handler._now, api_handler._new_id)
    monkeypatch.setattr(api_handler, "wallet_service", lambda: service)


def _worker(stack: Stack, n: int, findings: Findings, start: threading.Barrier) -> None:
    rng = random.Random(n)
    mine: list[str] = []
    start.wait()
    for r in range(ROUNDS):
        credits = f"{rng.randint(1, 10_000)}.{rng.randint(0, 999_999_999):09d}"
        body = {"credits": credits, "price": {"amount": "1.00", "currency": "USD"}}
        answer = stack.api("POST", "/wallets/acme/purchases", body, {"Idempotency-Key": f"t{n}-r{r}"})
        with findings.lock:
            findings.statuses[("purchase", answer.status)] += 1
            if answer.status == 201:
                findings.bought[answer.body["card"]["cardId"]] = Decimal(credits)
                mine.append(answer.body["card"]["cardId"])
            elif not (answer.status == 409 and answer.body["error"]["code"] == "concurrent_update"):
                findings.unexpected.append(answer.body)
        if mine and rng.random() < 0.4:
            card_id = mine.pop(rng.randrange(len(mine)))
            answer = stack.api("POST", f"/wallets/acme/cards/{card_id}/void")
            with findings.lock:
                findings.statuses[("void", answer.status)] += 1
                if answer.status == 200:
                    findings.voided.add(card_id)
                elif answer.status not in (404, 409):  # 404: the card's purchase was lost (only without the condition)
                    findings.unexpected.append(answer.body)
        answer = stack.api("GET", "/wallets/acme")
        with findings.lock:
            findings.statuses[("read", answer.status)] += 1
            if answer.status not in (200, 404):
                findings.unexpected.append(answer.body)


def _run(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Findings:
    # Powertools Metrics keeps one metric set per process; Lambda never runs two invocations in one process,
    # this test does, so metrics are off here (they are on in the other handler tests).
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["100"]})
    findings = Findings()
    start = threading.Barrier(THREADS)
    threads = [threading.Thread(target=_worker, args=(stack, n, findings, start)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
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
    return wallet, [i for i in plain if i["itemType"] == "ledger"], retired


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


def test_concurrent_buys_voids_and_reads_lose_nothing(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the handler's real store, with the wallet's version condition
    _use_store(monkeypatch, version_condition=True)
    # When 8 threads buy, void and read the same wallet at once
    findings = _run(stack, monkeypatch)
    # Then every answer was a success or a reported conflict
    assert findings.unexpected == []
    assert findings.statuses[("purchase", 201)] >= THREADS * ROUNDS // 2
    # And no card, void or ledger entry was lost
    assert _lost_updates(stack, findings) == []
    # And conservation holds to the last digit
    wallet = stack.api("GET", "/wallets/acme").body
    totals = wallet["totals"]
    assert Decimal(totals["credits"]) == sum(findings.bought.values())
    assert Decimal(totals["credits"]) == (
        Decimal(totals["drawn"]) + Decimal(totals["expired"]) + Decimal(totals["voided"]) + Decimal(wallet["balance"])
    )
    assert len(wallet["cards"]) == len(findings.bought) - len(findings.voided)


def test_the_same_workload_without_the_version_condition_is_caught_losing_updates(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the store with its version condition switched off
    _use_store(monkeypatch, version_condition=False)
    # When the same workload runs
    findings = _run(stack, monkeypatch)
    # Then the checks above find lost updates
    assert _lost_updates(stack, findings) != []
