"""JSON Merge Patch (RFC 7386) and the settings a patch makes of the current ones."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from prepaid.domain.settings import WalletSettings
from prepaid.edge.merge_patch import merge_patch, patched_settings, settings_body
from prepaid.edge.schemas import SettingsBody
from prepaid.edge.translation import wallet_settings

# RFC 7386, Appendix A: (original, patch, result)
RFC_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_EXAMPLES)
def test_merge_patch_gives_the_rfcs_results(original: Any, patch: Any, result: Any) -> None:
    # Given a document and a patch from RFC 7386's examples / When merged / Then the RFC's result
    assert merge_patch(original, patch) == result


FULL: dict[str, Any] = {
    "thresholds": ["10", "25%"],
    "autoRecharge": {
        "threshold": "10",
        "credits": "100",
        "price": {"amount": "1.00", "currency": "USD"},
        "maxPerDay": 2,
        "payment": {"collect": "stripe", "stripeCustomer": "cus_1", "paymentMethod": "pm_1"},
    },
    "recurring": {"credits": "100", "dayOfMonth": 1, "expiresIn": "P30D", "rollover": {"maxPercent": "50"}},
    "webhookUrl": "https://example.com/hook",
    "overagePolicy": "block",
}


def settings(body: dict[str, Any]) -> WalletSettings:
    return wallet_settings(SettingsBody.model_validate(body))


def test_an_empty_patch_keeps_every_setting_the_payment_method_included() -> None:
    # Given settings with every part set (a Stripe payment method the wallet does not show among them)
    current = settings(FULL)
    # When nothing is patched / Then the settings are the same, and PUT of the body they came from sets them again
    assert patched_settings(current, {}) == current
    assert settings(settings_body(current)) == current


def test_a_patch_changes_what_it_names_and_clears_what_it_nulls() -> None:
    # Given full settings
    current = settings(FULL)
    # When thresholds change, the webhook URL is nulled and one field of autoRecharge changes
    patched = patched_settings(current, {"thresholds": ["5"], "webhookUrl": None, "autoRecharge": {"maxPerDay": 7}})
    # Then those change, as PUT of the merged body would set them, and the rest is kept
    expected = {**FULL, "thresholds": ["5"], "autoRecharge": {**FULL["autoRecharge"], "maxPerDay": 7}}
    del expected["webhookUrl"]
    assert patched == settings(expected)
    assert (patched.webhook_url, patched.recurring) == (None, current.recurring)


def test_a_patch_whose_result_put_would_refuse_is_refused_in_the_body() -> None:
    # Given settings without auto-recharge
    current = settings({"thresholds": ["10"]})
    # When a patch gives only part of an autoRecharge
    with pytest.raises(RequestValidationError) as refused:
        patched_settings(current, {"autoRecharge": {"threshold": "5"}})
    # Then it is refused as PUT's body would be, located in the body
    assert [e["loc"] for e in refused.value.errors()] == [("body", "autoRecharge", "maxPerDay")]
