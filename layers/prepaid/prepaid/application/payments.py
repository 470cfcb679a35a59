"""Cards paid through a payment provider: charged when bought, sold on a hosted checkout page, and activated or
voided by what the provider reports. The provider is a port; the Stripe adapter implements it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from prepaid.application.ports import CardResult
from prepaid.application.wallets import PurchaseRequest, VoidRequest, WalletService
from prepaid.domain.card import PAYMENT_FAILED_REASON, CardStatus, Collect, Payment
from prepaid.domain.errors import (
    CardNotActivatable,
    CardNotFound,
    InvalidRequest,
    PaymentDeclined,
    PaymentProviderUnavailable,
    PaymentsUnavailable,
    WalletNotFound,
)
from prepaid.domain.money import Money
from prepaid.domain.numbers import to_wire

CHECKOUT_EXPIRED_REASON = "checkout_expired"  # the void reason of a card whose checkout page was left unpaid


# -- the port --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """A pending card's price, to charge to the customer's saved payment method."""

    customer_id: str
    card_id: str
    amount: Money
    stripe_customer: str
    payment_method: str | None


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"  # paid now
    PENDING = "pending"  # the provider will say later (processing, or the customer must act)
    DECLINED = "declined"


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str | None  # the payment's id at the provider
    decline_code: str | None = None


@dataclass(frozen=True)
class CheckoutRequest:
    """A pending card to sell on the provider's hosted page; the customer comes back to one of the URLs."""

    customer_id: str
    card_id: str
    credits: Decimal
    amount: Money
    success_url: str
    cancel_url: str


@dataclass(frozen=True)
class CheckoutPage:
    session_id: str
    url: str


@dataclass(frozen=True)
class RefundRequest:
    """Money going back through a card's payment, for credits voided; `key` names this refund (a retry of it gets
    the provider's first answer)."""

    customer_id: str
    card_id: str
    reference: str  # the payment at the provider
    amount: Money
    key: str


class PaymentGateway(Protocol):
    """A payment provider. Every call is idempotent by the card it is for: a retry never charges twice."""

    def charge(self, charge: Charge) -> ChargeResult: ...

    def checkout(self, request: CheckoutRequest) -> CheckoutPage: ...

    def refund(self, request: RefundRequest) -> str:
        """The provider's id of the refund."""
        ...


class NoticeKind(StrEnum):
    PAID = "paid"
    FAILED = "failed"
    ABANDONED = "abandoned"  # a checkout page that expired unpaid


@dataclass(frozen=True)
class PaymentNotice:
    """What a provider's event means for one card (the adapter that reads the provider's events makes these)."""

    notice_id: str  # the provider's event id, for logs
    kind: NoticeKind
    customer_id: str
    card_id: str
    reference: str | None = None


class NoticeOutcome(StrEnum):
    APPLIED = "applied"  # the card changed, or already was as the notice says
    UNKNOWN_CARD = "unknown_card"  # not a card of this deployment (e.g. another product on the same account)
    REFUNDED_LATE_PAYMENT = "refunded_late_payment"  # paid after the card was voided: the payment went back


# -- the use cases ---------------------------------------------------------------------------------------------------


class Payments:
    """Purchases that a provider collects, and the provider's notices applied to their cards. Every step is
    idempotent: a replayed purchase charges with the same key (the provider answers as the first time), and a
    notice delivered twice, or together with its twin, finds the card already changed."""

    def __init__(self, wallets: WalletService, gateway: Callable[[], PaymentGateway | None]) -> None:
        self._wallets = wallets
        self._gateway = gateway  # None when this deployment has no provider credentials

    def purchase(
        self,
        customer_id: str,
        request: PurchaseRequest,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CardResult:
        """A purchase; one that Stripe collects makes a pending card, then charges it (a decline voids it)."""
        payment = request.payment
        if payment is None or payment.collect is Collect.MANUAL:
            return self._wallets.purchase(customer_id, request, idempotency_key, correlation_id)
        self._provider(payment.collect)  # no pending card for a provider this deployment cannot reach
        bought = self._wallets.purchase(customer_id, request, idempotency_key, correlation_id)
        return self.collect(customer_id, bought, () if correlation_id is None else (correlation_id,))

    def collect(self, customer_id: str, result: CardResult, correlation_ids: Sequence[str] = ()) -> CardResult:
        """Charge a pending card bought to be charged off-session (a purchase's, an auto-recharge's), with the
        card's own idempotency key: paid, it is activated; declined, it is voided and `PaymentDeclined` raised.
        `correlation_ids`: the request or event the purchase answered, named in the events of both."""
        card = result.card
        if card.payment is None or not card.payment.charged_off_session or card.status is not CardStatus.PENDING:
            return result  # a replay of a purchase whose card was settled since answers as first answered
        assert card.payment.stripe_customer is not None
        gateway = self._gateway()
        if gateway is None:  # payments turned off since: nothing will ever pay for the card
            self._wallets.cancel_pending(
                customer_id, card.card_id, PAYMENT_FAILED_REASON, correlation_ids=correlation_ids
            )
            raise PaymentsUnavailable(collect=card.payment.collect.value)
        charged = gateway.charge(
            Charge(customer_id, card.card_id, card.price, card.payment.stripe_customer, card.payment.payment_method)
        )
        if charged.status is ChargeStatus.SUCCEEDED:
            activated = self._wallets.activate(
                customer_id, card.card_id, charged.reference, correlation_ids=correlation_ids
            )
            return _as(result, activated)
        if charged.status is ChargeStatus.DECLINED:
            self._wallets.cancel_pending(
                customer_id, card.card_id, PAYMENT_FAILED_REASON, correlation_ids=correlation_ids
            )
            raise PaymentDeclined(card_id=card.card_id, decline_code=charged.decline_code or "declined")
        return result

    def void(
        self,
        customer_id: str,
        card_id: str,
        request: VoidRequest,
        idempotency_key: str | None,
        correlation_id: str | None = None,
    ) -> CardResult:
        """A void; with `refund`, the voided credits' value goes back through the card's Stripe payment. A refund
        needs an idempotency key: the void is committed first, so the same request again must find it (and send
        the same refund, keyed by the card and its voided total, which Stripe then answers as the first time)."""
        gateway = None
        if request.refund:
            if idempotency_key is None:
                raise InvalidRequest(field="Idempotency-Key", reason="required_to_refund")
            gateway = self._provider(Collect.STRIPE)
        result = self._wallets.void(customer_id, card_id, request, idempotency_key, correlation_id)
        card = result.card
        if gateway is None or result.refund is None or result.refund.amount <= 0:
            return result
        assert card.payment is not None and card.payment.reference is not None
        key = f"prepaid-refund-{card_id}-{to_wire(card.voided)}"
        gateway.refund(RefundRequest(customer_id, card_id, card.payment.reference, result.refund, key))
        return result

    def checkout(
        self,
        customer_id: str,
        credits: Decimal,
        success_url: str,
        cancel_url: str,
        correlation_id: str | None = None,
    ) -> tuple[CardResult, CheckoutPage]:
        """The customer buys `credits` at the price book's price on the provider's page: a pending card now,
        active once paid, voided if the page expires unpaid."""
        gateway = self._provider(Collect.STRIPE)
        asked = PurchaseRequest(credits, payment=Payment(Collect.STRIPE))
        result = self._wallets.purchase(customer_id, asked, correlation_id=correlation_id)
        card = result.card
        try:
            page = gateway.checkout(
                CheckoutRequest(customer_id, card.card_id, card.credits, card.price, success_url, cancel_url)
            )
        except (PaymentDeclined, PaymentProviderUnavailable):
            # no page, so no payment can ever come for the card: it must not wait forever
            self._wallets.cancel_pending(customer_id, card.card_id, CHECKOUT_EXPIRED_REASON, correlation_id)
            raise
        return result, page

    def apply(self, notice: PaymentNotice, correlation_id: str | None = None) -> NoticeOutcome:
        """Apply a provider's notice to its card: paid activates it, failed or abandoned voids it if it is still
        pending. Applying it again changes nothing."""
        try:
            if notice.kind is NoticeKind.PAID:
                self._wallets.activate(notice.customer_id, notice.card_id, notice.reference, correlation_id)
            else:
                reason = PAYMENT_FAILED_REASON if notice.kind is NoticeKind.FAILED else CHECKOUT_EXPIRED_REASON
                self._wallets.cancel_pending(notice.customer_id, notice.card_id, reason, correlation_id)
        except (WalletNotFound, CardNotFound):
            return NoticeOutcome.UNKNOWN_CARD
        except CardNotActivatable:
            self._refund_late_payment(notice)
            return NoticeOutcome.REFUNDED_LATE_PAYMENT
        return NoticeOutcome.APPLIED

    def _refund_late_payment(self, notice: PaymentNotice) -> None:
        """A payment for a card voided before it was paid (its checkout expired, its charge was given up): no
        credits are granted for it, so the whole price goes back, once (keyed by the card)."""
        card = self._wallets.card(notice.customer_id, notice.card_id)
        gateway = self._gateway()
        if gateway is None or notice.reference is None or card.price.amount <= 0:
            return
        key = f"prepaid-late-refund-{card.card_id}"
        gateway.refund(RefundRequest(notice.customer_id, card.card_id, notice.reference, card.price, key))

    def _provider(self, collect: Collect) -> PaymentGateway:
        gateway = self._gateway()
        if gateway is None:
            raise PaymentsUnavailable(collect=collect.value)
        return gateway


def _as(first: CardResult, now: CardResult) -> CardResult:
    """The answer to a purchase settled at once: the card as it is now, replayed if the purchase was."""
    return CardResult(now.card, now.balance, now.at, replayed=first.replayed)
