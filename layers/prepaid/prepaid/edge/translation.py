"""From request bodies to domain values (the way back is prepaid/edge/wire.py)."""

from __future__ import annotations

from decimal import Decimal

from prepaid.application.wallets import (
    AdjustmentRequest,
    AuthorizeRequest,
    CardChange,
    PurchaseRequest,
    VoidRequest,
)
from prepaid.config import webhook_url_settings
from prepaid.domain.card import CardSource, Collect, Payment, metadata_of
from prepaid.domain.errors import InvalidRequest
from prepaid.domain.money import Money
from prepaid.domain.numbers import exact_credits
from prepaid.domain.price_book import PriceBook, PricingMode, Tier
from prepaid.domain.rate_card import DimensionPrices, RateCard, check_rate
from prepaid.domain.rules import decimal_from_text, percent_from_text
from prepaid.domain.settings import AutoRecharge, Interval, OveragePolicy, RecurringGrant, Rollover, WalletSettings
from prepaid.domain.text import to_milliseconds
from prepaid.domain.webhook_urls import webhook_url_refusal
from prepaid.edge.schemas import (
    AdjustmentBody,
    AppliesToBody,
    AuthorizeBody,
    CardChangeBody,
    MoneyBody,
    PaymentBody,
    PriceBookBody,
    PurchaseBody,
    RateCardBody,
    RolloverBody,
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
        applies_to=applies_to(body.applies_to),
        reference=body.reference,
        metadata=metadata_of(body.metadata or {}),
    )


def applies_to(body: AppliesToBody | None) -> frozenset[str] | None:
    if body is None:
        return None
    if len(set(body.meters)) != len(body.meters):
        raise InvalidRequest(field="appliesTo.meters", reason="duplicate")
    return frozenset(body.meters)


def void_request(body: VoidBody | None) -> VoidRequest:
    """A void's body (optional: without one, what remains is voided)."""
    if body is None:
        return VoidRequest()
    noted = metadata_of(body.metadata or {})
    return VoidRequest(body.reason, body.credits, body.refund, body.reference, noted)


def adjustment_request(body: AdjustmentBody) -> AdjustmentRequest:
    credits = decimal_from_text(body.credits.removeprefix("+"))
    assert credits is not None, "the body's pattern admits only decimal text"
    return AdjustmentRequest(
        credits=credits,
        reason=body.reason,
        reference=body.reference,
        metadata=metadata_of(body.metadata or {}),
        expires_at=body.expires_at,
        expires_in=body.expires_in,
        priority=body.priority,
        applies_to=applies_to(body.applies_to),
        meter=body.meter,
    )


def card_change(body: CardChangeBody) -> CardChange:
    """A card's new terms; `expiresAt: null` sent (not left out) removes the expiry."""
    sent = body.model_fields_set
    if "expires_at" not in sent and body.priority is None:
        raise InvalidRequest(field="body", reason="nothing_to_change")
    return CardChange(
        reason=body.reason,
        # kept to the millisecond, as stored: the same change sent again is then the same terms
        expires_at=to_milliseconds(body.expires_at) if body.expires_at else None,
        remove_expiry="expires_at" in sent and body.expires_at is None,
        priority=body.priority,
        metadata=metadata_of(body.metadata or {}),
    )


def authorize_request(body: AuthorizeBody) -> AuthorizeRequest:
    return AuthorizeRequest(body.meter, body.quantity, body.dimensions or {})


def payment(body: PaymentBody | None) -> Payment | None:
    if body is None:
        return None
    if isinstance(body, StripePaymentBody):
        return Payment(Collect.STRIPE, stripe_customer=body.stripe_customer, payment_method=body.payment_method)
    return Payment(Collect.MANUAL)


def wallet_settings(body: SettingsBody) -> WalletSettings:
    thresholds, percents = _thresholds(body.thresholds)
    auto, recurring = body.auto_recharge, body.recurring
    url = body.webhook_url
    if url is not None:
        refusal = webhook_url_refusal(url, allow_local_http=webhook_url_settings().allow_local_http)
        if refusal:
            raise InvalidRequest(field="webhookUrl", reason=refusal)
    return WalletSettings(
        thresholds=thresholds,
        percent_thresholds=percents,
        auto_recharge=None
        if auto is None
        else AutoRecharge(
            threshold=exact_credits(auto.threshold, "autoRecharge.threshold", allow_zero=True),
            credits=None if auto.credits is None else exact_credits(auto.credits, "autoRecharge.credits"),
            target_balance=None
            if auto.target_balance is None
            else exact_credits(auto.target_balance, "autoRecharge.targetBalance"),
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
            interval=Interval(recurring.interval),
            day_of_week=recurring.day_of_week,
            month=recurring.month,
            rollover=rollover(recurring.rollover),
            applies_to=applies_to(recurring.applies_to),
            reference=recurring.reference,
        ),
        webhook_url=url,
        overage_policy=OveragePolicy(body.overage_policy),
    )


def rollover(body: RolloverBody | None) -> Rollover | None:
    if body is None:
        return None

    def cap(value: Decimal | None, name: str) -> Decimal | None:
        return None if value is None else exact_credits(value, f"recurring.rollover.{name}", allow_zero=True)

    return Rollover(
        max_percent=cap(body.max_percent, "maxPercent"),
        max_credits=cap(body.max_credits, "maxCredits"),
        expires_in=body.expires_in,
    )


def _thresholds(texts: list[str]) -> tuple[tuple[Decimal, ...], tuple[Decimal, ...]]:
    """The absolute thresholds ("500") and the percentages ("25%"), each sorted and without repeats."""
    absolute, percents = [], []
    for text in texts:
        percent = percent_from_text(text)
        if percent is not None:
            percents.append(percent)
        else:
            number = decimal_from_text(text)
            assert number is not None, "the body's schema admits credits or a percentage"
            absolute.append(exact_credits(number, "thresholds", allow_zero=True))
    if len(set(absolute)) != len(absolute) or len(set(percents)) != len(percents):
        raise InvalidRequest(field="thresholds", reason="duplicate")
    return tuple(sorted(absolute)), tuple(sorted(percents))


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

    def priced(meters: dict[str, UnitRateBody], where: str) -> dict[str, DimensionPrices]:
        found = {m: _dimension_prices(r, f"{where}.{m}") for m, r in meters.items()}
        return {m: p for m, p in found.items() if p is not None}

    overrides_by_dimension = {c: priced(meters, f"overrides.{c}") for c, meters in body.overrides.items()}
    return RateCard(
        meters=rates(body.meters, "meters"),
        overrides={c: rates(meters, f"overrides.{c}") for c, meters in body.overrides.items()},
        by_dimension=priced(body.meters, "meters"),
        overrides_by_dimension={c: p for c, p in overrides_by_dimension.items() if p},
    )


def _dimension_prices(rate: UnitRateBody, where: str) -> DimensionPrices | None:
    """A meter's prices by dimension value: `dimension` and `prices` come together, each price a valid rate."""
    if rate.dimension is None and rate.prices is None:
        return None
    if rate.dimension is None or rate.prices is None:
        missing = "dimension" if rate.dimension is None else "prices"
        raise InvalidRequest(field=f"{where}.{missing}", reason="dimension and prices go together")
    prices = {v: _rate(p, f"{where}.prices.{v}") for v, p in rate.prices.items()}
    return DimensionPrices(rate.dimension, prices)


def _rate(value: Decimal, field: str) -> Decimal:
    return check_rate(value, field)
