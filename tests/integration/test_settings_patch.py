"""`PATCH /wallets/{customerId}/settings`: a JSON merge patch over the settings, through the stack; `PUT` stays a
replace."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import boto3
import pytest

from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.application.wallets import WalletService
from prepaid.assembly import new_id, now
from prepaid.domain.wallet import Wallet
from prepaid.edge.merge_patch import patched_settings
from prepaid_local.stack import Stack
from support.aws import REGION

HOOK = "https://example.com/hook"
PRICE = {"amount": "1.00", "currency": "USD"}
FULL = {
    "thresholds": ["10", "50"],
    "autoRecharge": {"threshold": "10", "credits": "100", "price": PRICE, "maxPerDay": 2},
    "recurring": {"credits": "100", "price": PRICE, "dayOfMonth": 1, "expiresIn": "P30D"},
    "webhookUrl": HOOK,
    "overagePolicy": "block",
}


def settings_of(stack: Stack) -> dict[str, Any]:
    answer = stack.api("GET", "/wallets/acme")
    assert answer.status == 200, answer.body
    settings: dict[str, Any] = answer.body["settings"]
    return settings


def test_sending_only_thresholds_keeps_the_webhook_url_and_everything_else(stack: Stack) -> None:
    # Given a wallet with every setting
    assert stack.api("PUT", "/wallets/acme/settings", FULL).status == 200
    before = settings_of(stack)
    # When only the thresholds are patched
    answer = stack.api("PATCH", "/wallets/acme/settings", {"thresholds": ["5", "25%"]})
    # Then they change and nothing else does (the answer is the wallet, as PUT's is)
    assert answer.status == 200, answer.body
    assert answer.body["settings"] == settings_of(stack) == {**before, "thresholds": ["5", "25%"]}
    # And PUT still replaces: the same body through PUT drops the rest
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["5"]}).status == 200
    assert settings_of(stack)["webhookUrl"] is None


def test_null_clears_a_field_and_an_object_merges_into_the_one_there(stack: Stack) -> None:
    # Given a wallet with every setting
    assert stack.api("PUT", "/wallets/acme/settings", FULL).status == 200
    before = settings_of(stack)
    # When the webhook URL and the recurring grant are nulled and one field of auto-recharge is sent
    patch = {"webhookUrl": None, "recurring": None, "autoRecharge": {"maxPerDay": 5}, "overagePolicy": None}
    answer = stack.api("PATCH", "/wallets/acme/settings", patch)
    # Then the nulled ones are cleared (overagePolicy back to its default), auto-recharge keeps its other fields
    assert answer.status == 200, answer.body
    assert settings_of(stack) == {
        **before,
        "webhookUrl": None,
        "recurring": None,
        "overagePolicy": "allow",
        "autoRecharge": {**before["autoRecharge"], "maxPerDay": 5},
    }


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"bonus": "5"}, "body.bonus"),
        ({"autoRecharge": {"maxPerDay": 0}}, "body.autoRecharge.maxPerDay"),
        ({"autoRecharge": {"credits": None}}, "autoRecharge.credits"),  # neither credits nor a target left
        ({"recurring": {"expiresIn": "P1D", "credits": "-1"}}, "recurring.credits"),
        ({"thresholds": [5]}, "body.thresholds.0"),
        ({"webhookUrl": "http://169.254.169.254/"}, "webhookUrl"),
    ],
)
def test_a_patch_making_bad_settings_is_a_422_naming_the_field_and_changes_nothing(
    stack: Stack, patch: dict[str, Any], field: str
) -> None:
    # Given a wallet with every setting
    assert stack.api("PUT", "/wallets/acme/settings", FULL).status == 200
    before = settings_of(stack)
    # When a patch would make settings PUT refuses
    answer = stack.api("PATCH", "/wallets/acme/settings", patch)
    # Then it is a 422 whose details name the field, and the settings are as they were
    assert answer.status == 422, answer.body
    assert field in [d.get("field") for d in answer.body["error"]["details"]], answer.body
    assert settings_of(stack) == before


def test_a_patch_of_a_wallet_not_there_yet_creates_it_as_put_would(stack: Stack) -> None:
    # When the first call for a customer is a PATCH / Then the wallet has the patch's settings over the defaults
    assert stack.api("PATCH", "/wallets/acme/settings", {"webhookUrl": HOOK}).status == 200
    assert settings_of(stack)["webhookUrl"] == HOOK


def _service_whose_read_lets_another_patch_commit_first(
    stack: Stack, other_patch: dict[str, Any], version_condition: bool = True
) -> WalletService:
    """A service whose first read of the wallet is followed at once by another service's whole PATCH."""
    client = boto3.client("dynamodb", region_name=REGION)
    table = stack.name("WalletTable")
    store = DynamoWalletStore(client, table, version_condition=version_condition)
    catalog = DynamoCatalogStore(client, table)
    other = WalletService(DynamoWalletStore(client, table), catalog, now, new_id)
    load, reads = store.load, list[str]()

    def read_then_let_the_other_commit(customer_id: str, usage_ids: Collection[str] = ()) -> Wallet | None:
        wallet = load(customer_id, usage_ids)
        if not reads:
            other.reconfigure(customer_id, lambda current: patched_settings(current, other_patch))
        reads.append(customer_id)
        return wallet

    store.load = read_then_let_the_other_commit  # type: ignore[method-assign]
    return WalletService(store, catalog, now, new_id)


def test_two_patches_of_different_fields_at_once_both_land(stack: Stack) -> None:
    # Given a wallet with thresholds only
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["10"]}).status == 200
    # When one PATCH (thresholds) reads the wallet and another (the webhook URL) commits before it does
    service = _service_whose_read_lets_another_patch_commit_first(stack, {"webhookUrl": HOOK})
    service.reconfigure("acme", lambda current: patched_settings(current, {"thresholds": ["5"]}))
    # Then both changes land: the first was decided again on a fresh read
    settings = settings_of(stack)
    assert (settings["thresholds"], settings["webhookUrl"]) == (["5"], HOOK)


def test_without_the_version_condition_the_same_race_loses_a_patch(stack: Stack) -> None:
    # Given the same race, with the wallet's version condition switched off (what the test above guards against)
    assert stack.api("PUT", "/wallets/acme/settings", {"thresholds": ["10"]}).status == 200
    service = _service_whose_read_lets_another_patch_commit_first(stack, {"webhookUrl": HOOK}, version_condition=False)
    service.reconfigure("acme", lambda current: patched_settings(current, {"thresholds": ["5"]}))
    # Then the other PATCH's webhook URL is lost
    assert settings_of(stack)["webhookUrl"] is None
