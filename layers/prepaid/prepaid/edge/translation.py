"""From request bodies to domain values (the way back is prepaid/edge/wire.py)."""

from __future__ import annotations

from decimal import Decimal

from prepaid.application.wallets import PurchaseRequest, VoidRequest
from prepaid.config import webhook_url_settings
from prepaid.domain.card import CardSource, Collect, Payment
from prepaid.domain.errors import InvalidRequest
from prepaid.domain.money import Money
from prepaid.domain.numbers import exact_credits
from prepaid.domain.price_book import PriceBook, PricingMode, Tier
from prepaid.domain.rate_card import RateCard, check_rate
from prepaid.domain.settings import AutoRecharge, RecurringGrant, WalletSettings
from prepaid.domain.webhook_urls import webhook_url_refusal
from prepaid.edge.schemas import (
    MoneyBody,
    PaymentBody,
    PriceBookBody,
    PurchaseBody,
    RateCardBody,
    SettingsBody,
    StripePaymentBody,
    UnitRateBody,
    VoidBody,
)


def money(body: MoneyBody | None) -> Money | None:
    return Money.of(body.amount, body.currency) if body is not None else None


def purchase_request(body: PurchaseBody) -> PurchaseRequest:
    return PurchaseRequest(
        credits=exact_credits(body.credits),
        price=money(body.price),
        expires_at=body.expires_at,
        expires_in=body.expires_in,
        priority=body.priority,
        source=CardSource(body.source),
        effective_at=body.effective_at,
        payment=payment(body.payment),
    )


def void_request(body: VoidBody | None) -> VoidRequest:
    """A void's body (optional: without one, what remains is voided)."""
    return VoidRequest() if body is None else VoidRequest(body.reason, body.credits, body.refund)


def payment(body: PaymentBody | None) -> Payment | None:
    if body is None:
        return None
    if isinstance(body, StripePaymentBody):
        return Payment(Collect.STRIPE, stripe_customer=body.stripe_customer, payment_method=body.payment_method)
    return Payment(Collect.MANUAL)


def wallet_settings(body: SettingsBody) -> WalletSettings:
    thresholds = tuple(exact_credits(t, "thresholds", allow_zero=True) for t in body.thresholds)
    if len(set(thresholds)) != len(thresholds):
        raise InvalidRequest(field="thresholds", reason="duplicate")
    auto, recurring = body.auto_recharge, body.recurring
    url = body.webhook_url
    if url is not None:
        refusal = webhook_url_refusal(url, allow_local_http=webhook_url_settings().allow_local_http)
        if refusal:
            raise InvalidRequest(field="webhookUrl", reason=refusal)
    return WalletSettings(
        thresholds=tuple(sorted(thresholds)),
        auto_recharge=None
        if auto is None
        else AutoRecharge(
            threshold=exact_credits(auto.threshold, "autoRecharge.threshold", allow_zero=True),
            credits=exact_credits(auto.credits, "autoRecharge.credits"),
            max_per_day=auto.max_per_day,
            price=money(auto.price),
            payment=payment(auto.payment),
            max_spend_per_month=money(auto.max_spend_per_month),
        ),
        recurring=None
        if recurring is None
        else RecurringGrant(
            credits=exact_credits(recurring.credits, "recurring.credits"),
            day_of_month=recurring.day_of_month,
            price=money(recurring.price),
            expires_in=recurring.expires_in,
            payment=payment(recurring.payment),
        ),
        webhook_url=url,
    )


def price_book_from_body(body: PriceBookBody) -> PriceBook:
    tiers = tuple(
        Tier(exact_credits(t.up_to, f"tiers[{i}].upTo") if t.up_to is not None else None, _price(t.unit_price, i))
        for i, t in enumerate(body.tiers)
    )
    return PriceBook(currency=body.currency, mode=PricingMode(body.mode), tiers=tiers)


def _price(value: Decimal, index: int) -> Decimal:
    if value < 0:
        raise InvalidRequest(field=f"tiers[{index}].unitPrice", reason="negative")
    return value


def rate_card_from_body(body: RateCardBody) -> RateCard:
    def rates(meters: dict[str, UnitRateBody], where: str) -> dict[str, Decimal]:
        return {m: _rate(r.credits_per_unit, f"{where}.{m}") for m, r in meters.items()}

    return RateCard(
        meters=rates(body.meters, "meters"),
        overrides={c: rates(meters, f"overrides.{c}") for c, meters in body.overrides.items()},
    )


def _rate(value: Decimal, field: str) -> Decimal:
    return check_rate(value, field)
