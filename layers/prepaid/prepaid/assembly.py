"""The lifecycle use cases put together from settings and boto3 clients, for the functions that run them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache

import boto3

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.scheduler import OneTimeSchedules
from prepaid.application.lifecycle import CreditLifecycle
from prepaid.application.wallets import WalletService
from prepaid.config import lifecycle_settings, table_settings


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


@cache
def credit_lifecycle(schedule_target_arn: str | None = None) -> CreditLifecycle:
    """The lifecycle over the wallet table; with a target, able to schedule (the expiry function's own ARN).
    Built once per execution environment (and per target)."""
    client = boto3.client("dynamodb")
    table = table_settings().table_name
    store = DynamoWalletStore(client, table)
    wallets = WalletService(store, DynamoCatalogStore(client, table), now, new_id)
    if schedule_target_arn is None:
        return CreditLifecycle(wallets, store, now, new_id, registry=store, committed=store)
    settings = lifecycle_settings()
    scheduler = OneTimeSchedules(
        boto3.client("scheduler"), settings.schedule_group, schedule_target_arn, settings.scheduler_role_arn
    )
    return CreditLifecycle(
        wallets,
        store,
        now,
        new_id,
        scheduler=scheduler,
        registry=store,
        committed=store,
        warn_before=settings.expiring_soon_before,
    )
