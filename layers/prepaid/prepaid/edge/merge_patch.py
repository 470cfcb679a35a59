"""`PATCH /wallets/{customerId}/settings`: a JSON Merge Patch (RFC 7386) over the settings as `PUT` takes them.

An absent field keeps its value, null clears it (back to what `PUT` gives when the field is left out), an object
merges into the one there, anything else replaces it. The result is validated as a whole, as `PUT`'s body is.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from prepaid.domain.card import Payment
from prepaid.domain.settings import WalletSettings
from prepaid.edge import wire
from prepaid.edge.schemas import SettingsBody
from prepaid.edge.translation import wallet_settings


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2: `patch` applied to `target`."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def patched_settings(current: WalletSettings, patch: dict[str, Any]) -> WalletSettings:
    """The settings `patch` makes of `current`; a result `PUT` would refuse is refused the same way (422)."""
    merged = merge_patch(settings_body(current), patch)
    try:
        body = SettingsBody.model_validate(merged)
    except ValidationError as invalid:
        # located in the body, as PUT's validation errors are
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in invalid.errors()]) from None
    return wallet_settings(body)


def settings_body(current: WalletSettings) -> dict[str, Any]:
    """The `PUT` body that sets `current`: the wallet's settings as shown, without nulls (a null is an absent
    field), each payment with its payment method (which the wallet does not show, but a patch must keep)."""
    body: dict[str, Any] = _without_nulls(wire.settings(current))
    for name, part in (("autoRecharge", current.auto_recharge), ("recurring", current.recurring)):
        if part is not None and part.payment is not None:
            body[name]["payment"] = _payment_body(part.payment)
    return body


def _payment_body(payment: Payment) -> dict[str, Any]:
    shown = {
        "collect": payment.collect.value,
        "stripeCustomer": payment.stripe_customer,
        "paymentMethod": payment.payment_method,
    }
    return {k: v for k, v in shown.items() if v is not None}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
