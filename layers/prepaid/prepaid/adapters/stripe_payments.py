"""Stripe through the stripe library: off-session PaymentIntents, Checkout Sessions, and the events Stripe sends
back (their signature verified by the library). Stripe's shapes stay here: the use cases see the payment port's
values and `PaymentNotice`s.

Every call carries an idempotency key derived from the card it is for, so a retry of ours (a replayed purchase, a
timeout) gets Stripe's first answer instead of a second charge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import stripe

from prepaid.application.payments import (
    Charge,
    ChargeResult,
    ChargeStatus,
    CheckoutPage,
    CheckoutRequest,
    NoticeKind,
    PaymentNotice,
    RefundRequest,
)
from prepaid.domain.errors import PaymentDeclined, PaymentProviderUnavailable, WebhookRefused
from prepaid.domain.money import Money
from prepaid.domain.numbers import minor_units, to_wire
from prepaid.domain.rules import CARD_ID, CUSTOMER_ID

if TYPE_CHECKING:
    from collections.abc import Callable

    from stripe import RequestOptions
    from stripe.params import PaymentIntentCreateParams, RefundCreateParams
    from stripe.params.checkout import SessionCreateParams

# What each Stripe event type means for the card named in its object's metadata. A checkout page's PaymentIntent
# carries no metadata (a declined attempt there is not the end: the customer may try another card), so its
# `payment_intent.*` events are ignored and the session's own events decide.
NOTICES = {
    "payment_intent.succeeded": NoticeKind.PAID,
    "payment_intent.payment_failed": NoticeKind.FAILED,
    "checkout.session.completed": NoticeKind.PAID,  # only when its payment_status is "paid"
    "checkout.session.async_payment_succeeded": NoticeKind.PAID,
    "checkout.session.async_payment_failed": NoticeKind.FAILED,
    "checkout.session.expired": NoticeKind.ABANDONED,
}


@dataclass(frozen=True)
class StripeKeys:
    """The deployment's Stripe secret: its API key and its webhook endpoint's signing secret."""

    api_key: str
    webhook_secret: str

    @classmethod
    def from_secret(cls, text: bytes) -> StripeKeys:
        """Read the secret's JSON (`{"apiKey": "sk_...", "webhookSecret": "whsec_..."}`); empty values: payments
        off."""
        try:
            values = json.loads(text)
            return cls(str(values.get("apiKey") or ""), str(values.get("webhookSecret") or ""))
        except (ValueError, AttributeError) as error:
            raise ValueError("the payments secret is not the JSON this deployment expects") from error


def minor_amount(money: Money) -> int:
    """An amount in the currency's minor unit, as Stripe takes it (Money is already rounded to that unit)."""
    return int(money.amount.scaleb(minor_units(money.currency)))


class StripeGateway:
    """The payment port over a `stripe.StripeClient`."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def charge(self, charge: Charge) -> ChargeResult:
        """Charge the customer's saved payment method off-session, at once (`confirm`)."""
        params: PaymentIntentCreateParams = {
            "amount": minor_amount(charge.amount),
            "currency": charge.amount.currency.lower(),
            "customer": charge.stripe_customer,
            "off_session": True,
            "confirm": True,
            "description": f"Prepaid credits, card {charge.card_id}",
            "metadata": {"customerId": charge.customer_id, "cardId": charge.card_id},
        }
        method = charge.payment_method or self._default_method(charge)
        if method is not None:  # without one, Stripe refuses the charge with its own reason
            params["payment_method"] = method
        options: RequestOptions = {"idempotency_key": f"prepaid-charge-{charge.card_id}"}
        try:
            intent = self._client.v1.payment_intents.create(params=params, options=options)
        except stripe.CardError as declined:
            return ChargeResult(ChargeStatus.DECLINED, _intent_of(declined), _decline_code(declined))
        except stripe.InvalidRequestError as refused:  # e.g. no such customer: the request can never succeed
            return ChargeResult(ChargeStatus.DECLINED, None, refused.code or "invalid_request")
        except stripe.StripeError as error:
            raise PaymentProviderUnavailable(provider="stripe", reason=type(error).__name__) from error
        status = ChargeStatus.SUCCEEDED if intent.status == "succeeded" else ChargeStatus.PENDING
        return ChargeResult(status, intent.id)

    def _default_method(self, charge: Charge) -> str | None:
        """The customer's default payment method in Stripe, when the purchase named none."""
        try:
            customer = self._client.v1.customers.retrieve(charge.stripe_customer)
        except stripe.InvalidRequestError:
            return None  # the charge then fails with Stripe's own reason
        except stripe.StripeError as error:
            raise PaymentProviderUnavailable(provider="stripe", reason=type(error).__name__) from error
        settings = customer.to_dict().get("invoice_settings") or {}
        method = settings.get("default_payment_method")
        return method if isinstance(method, str) else None

    def checkout(self, request: CheckoutRequest) -> CheckoutPage:
        """A hosted Checkout page for one pending card; its session's events name the card."""
        metadata = {"customerId": request.customer_id, "cardId": request.card_id}
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.amount.currency.lower(),
                        "unit_amount": minor_amount(request.amount),
                        "product_data": {"name": f"{to_wire(request.credits)} credits"},
                    },
                }
            ],
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "client_reference_id": request.card_id,
            "metadata": metadata,
        }
        options: RequestOptions = {"idempotency_key": f"prepaid-checkout-{request.card_id}"}
        try:
            session = self._client.v1.checkout.sessions.create(params=params, options=options)
        except stripe.InvalidRequestError as refused:  # e.g. an amount below Stripe's minimum charge
            raise PaymentDeclined(card_id=request.card_id, decline_code=refused.code or "invalid_request") from refused
        except stripe.StripeError as error:
            raise PaymentProviderUnavailable(provider="stripe", reason=type(error).__name__) from error
        return CheckoutPage(session.id, str(session.url))

    def refund(self, request: RefundRequest) -> str:
        """Refund part of a PaymentIntent (the voided credits' value), idempotent by `request.key`."""
        params: RefundCreateParams = {
            "payment_intent": request.reference,
            "amount": minor_amount(request.amount),
            "metadata": {"customerId": request.customer_id, "cardId": request.card_id},
        }
        options: RequestOptions = {"idempotency_key": request.key}
        try:
            refund = self._client.v1.refunds.create(params=params, options=options)
        except stripe.StripeError as error:  # the void stands; the same request again sends the same refund
            raise PaymentProviderUnavailable(provider="stripe", reason=type(error).__name__) from error
        return str(refund.id)


def _error_of(error: stripe.StripeError) -> dict[str, Any]:
    """The `error` object of Stripe's answer, as it was sent."""
    body = error.json_body if isinstance(error.json_body, dict) else {}
    found = body.get("error")
    return found if isinstance(found, dict) else {}


def _intent_of(error: stripe.StripeError) -> str | None:
    intent = _error_of(error).get("payment_intent")
    return str(intent["id"]) if isinstance(intent, dict) and intent.get("id") else None


def _decline_code(error: stripe.StripeError) -> str:
    return str(_error_of(error).get("decline_code") or error.code or "card_declined")


class StripeEvents:
    """Stripe's webhook deliveries: verified with the endpoint's secret by the stripe library, read as notices."""

    def __init__(self, webhook_secret: Callable[[], str]) -> None:
        self._webhook_secret = webhook_secret

    def read(self, payload: str, signature: str | None) -> PaymentNotice | None:
        """The notice an event carries, or None for an event that concerns no card of ours. Raises
        `WebhookRefused` unless Stripe signed it with this endpoint's secret within the library's tolerance."""
        secret = self._webhook_secret()
        if not secret:
            raise WebhookRefused(reason="payments_not_configured")
        if not signature:
            raise WebhookRefused(reason="signature_missing")
        try:
            event = stripe.Webhook.construct_event(payload, signature, secret)
        except stripe.SignatureVerificationError as error:
            raise WebhookRefused(reason="signature_invalid") from error
        except ValueError as error:  # signed, yet not a JSON event: never from Stripe
            raise WebhookRefused(reason="not_an_event") from error
        return notice_of(event.to_dict())


def notice_of(event: dict[str, Any]) -> PaymentNotice | None:
    """What a verified Stripe event (as a dict) means for one of our cards, or None."""
    kind = NOTICES.get(str(event.get("type")))
    data = event.get("data")
    target = data.get("object") if isinstance(data, dict) else None
    if kind is None or not isinstance(target, dict):
        return None
    metadata = target.get("metadata")
    if not isinstance(metadata, dict):
        return None
    customer_id, card_id = metadata.get("customerId"), metadata.get("cardId")
    if not isinstance(customer_id, str) or not CUSTOMER_ID.fullmatch(customer_id):
        return None
    if not isinstance(card_id, str) or not CARD_ID.fullmatch(card_id):
        return None
    reference = target.get("id")
    if str(target.get("object")) == "checkout.session":
        if event["type"] == "checkout.session.completed" and target.get("payment_status") != "paid":
            return None  # an asynchronous method (e.g. a bank debit): async_payment_succeeded will follow
        reference = target.get("payment_intent")
    return PaymentNotice(
        notice_id=str(event.get("id")),
        kind=kind,
        customer_id=customer_id,
        card_id=card_id,
        reference=reference if isinstance(reference, str) else None,
    )
