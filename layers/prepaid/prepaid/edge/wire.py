"""Every JSON shape of the contract, in one place: camelCase keys, decimals as strings, instants in ISO 8601 UTC.

The domain and the use cases return values; whatever answers a request (the HTTP routes) or writes an event (the
outbox) renders them here. A queue's own message format is its adapter's (prepaid/adapters/sqs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from prepaid.application.dashboard import DashboardData, DashboardLink
from prepaid.application.forecasting import METHOD, ForecastView, Recommendation
from prepaid.application.ingest import Refused, Screening
from prepaid.application.ledger import LedgerPage
from prepaid.application.listings import CardPage, WalletPage
from prepaid.application.payments import CheckoutPage
from prepaid.application.ports import AdjustmentResult, CardResult
from prepaid.application.revenue import RevenueReport
from prepaid.application.usage_series import UsageSeriesView
from prepaid.application.wallets import Authorization, PricedQuote, WalletView
from prepaid.application.webhook_endpoints import DeliveryPage, DeliveryView
from prepaid.domain.card import Card, Payment
from prepaid.domain.forecast import days_in
from prepaid.domain.ledger import CardTerms, LedgerEntry
from prepaid.domain.money import Money
from prepaid.domain.numbers import CREDIT_QUANTUM, ZERO, to_wire
from prepaid.domain.price_book import PriceBook
from prepaid.domain.rate_card import DimensionPrices, RateCard
from prepaid.domain.revenue import CurrencyRevenue
from prepaid.domain.settings import Rollover, WalletSettings, percent_text
from prepaid.domain.text import duration, instant, optional_instant
from prepaid.domain.usage_hours import MeterUsage
from prepaid.domain.wallet import Wallet
from prepaid.domain.webhook_endpoints import WebhookEndpoint

Json = dict[str, Any]


def _optional(value: Decimal | None) -> str | None:
    return to_wire(value) if value is not None else None


def money(value: Money) -> Json:
    return {"amount": format(value.amount, "f"), "currency": value.currency}


def card(value: Card, at: datetime | None = None) -> Json:
    """A card as the API shows it; given `at`, a card past its expiry shows as expired even before the job ran."""
    status = value.status_at(at) if at is not None else value.status
    return {
        "cardId": value.card_id,
        "credits": to_wire(value.credits),
        "remaining": to_wire(value.remaining),
        "price": money(value.price),
        "costBasis": to_wire(value.cost_basis),
        "source": value.source.value,
        "priority": value.priority,
        "effectiveAt": instant(value.effective_at),
        "expiresAt": optional_instant(value.expires_at),
        "status": status.value,
        "payment": payment(value.payment) if value.payment else None,
        "appliesTo": {"meters": sorted(value.applies_to)} if value.applies_to is not None else None,
        "reference": value.reference,
        # null only in an event about a later change of the card: its metadata was not read for it
        "metadata": dict(value.metadata) if value.metadata is not None else None,
    }


def payment(value: Payment) -> Json:
    """Who collects a card's price and, once paid, the payment's id at the provider."""
    shown = {"collect": value.collect.value, "stripeCustomer": value.stripe_customer, "reference": value.reference}
    return {k: v for k, v in shown.items() if v is not None}


def card_result(result: CardResult) -> Json:
    """A purchase's or a void's answer (a void with refund says what goes back)."""
    answer = {"card": card(result.card, result.at), "balance": to_wire(result.balance)}
    return answer | ({"refund": money(result.refund)} if result.refund else {})


def checkout(result: CardResult, page: CheckoutPage) -> Json:
    """A dashboard checkout's answer: the page to pay on, and the card waiting for that payment."""
    return {**card_result(result), "checkoutUrl": page.url, "sessionId": page.session_id}


def settings(value: WalletSettings) -> Json:
    auto, recurring = value.auto_recharge, value.recurring
    return {
        "thresholds": [to_wire(t) for t in value.thresholds] + [percent_text(p) for p in value.percent_thresholds],
        "autoRecharge": None
        if auto is None
        else {
            "threshold": to_wire(auto.threshold),
            "credits": to_wire(auto.credits) if auto.credits is not None else None,
            "targetBalance": to_wire(auto.target_balance) if auto.target_balance is not None else None,
            "price": money(auto.price) if auto.price else None,
            "maxPerDay": auto.max_per_day,
            "payment": payment(auto.payment) if auto.payment else None,
            "maxSpendPerMonth": money(auto.max_spend_per_month) if auto.max_spend_per_month else None,
        },
        "recurring": None
        if recurring is None
        else {
            "credits": to_wire(recurring.credits),
            "price": money(recurring.price) if recurring.price else None,
            "dayOfMonth": recurring.day_of_month,
            "expiresIn": duration(recurring.expires_in) if recurring.expires_in else None,
            "payment": payment(recurring.payment) if recurring.payment else None,
            "interval": recurring.interval.value,
            "dayOfWeek": recurring.day_of_week,
            "month": recurring.month,
            "rollover": _rollover(recurring.rollover) if recurring.rollover else None,
            "appliesTo": {"meters": sorted(recurring.applies_to)} if recurring.applies_to is not None else None,
            "reference": recurring.reference,
        },
        "webhookUrl": value.webhook_url,
        "overagePolicy": value.overage_policy.value,
    }


def _rollover(value: Rollover) -> Json:
    return {
        "maxPercent": _optional(value.max_percent),
        "maxCredits": _optional(value.max_credits),
        "expiresIn": duration(value.expires_in) if value.expires_in else None,
    }


def wallet(view: WalletView) -> Json:
    """The wallet as `GET /wallets/{customerId}` shows it."""
    at, found = view.at, view.wallet
    totals = found.totals(at)
    return {
        "customerId": found.customer_id,
        "balance": to_wire(totals.balance),
        "available": to_wire(found.available(at)),
        "availableByMeter": {meter: to_wire(credits) for meter, credits in found.available_by_meter(at).items()},
        "overage": to_wire(found.overage),
        "cards": [card(c, at) for c in (*found.live_cards(at), *found.pending_cards())],
        "nextExpiry": optional_instant(found.next_expiry(at)),
        "settings": settings(found.settings),
        "totals": {
            "credits": to_wire(totals.credits),
            "drawn": to_wire(totals.drawn),
            "expired": to_wire(totals.expired),
            "voided": to_wire(totals.voided),
            "pending": to_wire(totals.pending),
            "rolledOver": to_wire(totals.rolled_over),
            "rated": to_wire(totals.rated),
        },
        "version": found.version,
        "asOf": instant(at),
    }


# What the customer sees of the wallet: not its settings (the SaaS's webhook URL, auto-recharge policy) nor its
# internal version.
CUSTOMER_WALLET_FIELDS = (
    "customerId",
    "balance",
    "available",
    "availableByMeter",
    "overage",
    "cards",
    "nextExpiry",
    "totals",
    "asOf",
)


def customer_wallet(view: WalletView) -> Json:
    shown = wallet(view)
    return {k: shown[k] for k in CUSTOMER_WALLET_FIELDS}


def ledger_entry(entry_id: str, entry: LedgerEntry) -> Json:
    """A ledger entry as `GET /wallets/{customerId}/ledger` shows it; fields that do not apply are left out."""
    shown: Json = {
        "entryId": entry_id,
        "type": entry.type.value,
        "credits": to_wire(entry.credits),
        "at": instant(entry.at),
        "balanceAfter": to_wire(entry.balance_after),
        "cardId": entry.card_id,
        "draws": [{"cardId": d.card_id, "credits": to_wire(d.credits)} for d in entry.draws] or None,
        "overage": to_wire(entry.overage) if entry.overage else None,
        "value": money(entry.value) if entry.value else None,
        "eventId": entry.event_id,
        "meter": entry.meter,
        "quantity": _optional(entry.quantity),
        "events": entry.events or None,
        "reason": entry.reason,
        "reference": entry.reference,
        "metadata": dict(entry.metadata) or None,
        "terms": {"before": card_terms(entry.terms[0]), "after": card_terms(entry.terms[1])} if entry.terms else None,
    }
    return {k: v for k, v in shown.items() if v is not None}


def card_terms(terms: CardTerms) -> Json:
    return {"expiresAt": optional_instant(terms.expires_at), "priority": terms.priority}


def adjustment(result: AdjustmentResult) -> Json:
    """An adjustment's answer: its ledger entry, the card it added (null when it took credits), the balance."""
    shown = ledger_entry("", result.entry)
    del shown["entryId"]  # named when committed; the ledger route lists it with its id
    card_shown = card(result.card, result.at) if result.card is not None else None
    return {"adjustment": shown, "card": card_shown, "balance": to_wire(result.balance)}


def authorization(result: Authorization) -> Json:
    return {
        "allowed": result.allowed,
        "credits": to_wire(result.credits),
        "balanceAfter": to_wire(result.balance_after),
        "overageAfter": to_wire(result.overage_after),
        "available": to_wire(result.available),
        "overagePolicy": result.policy.value,
        "at": instant(result.at),
    }


def ledger_page(page: LedgerPage) -> Json:
    return {"entries": [ledger_entry(i, e) for i, e in page.entries], "nextCursor": page.next_cursor}


def card_page(page: CardPage) -> Json:
    """`GET /wallets/{customerId}/cards`: each card as the wallet read shows it."""
    return {"cards": [card(c, page.at) for c in page.cards], "nextCursor": page.next_cursor}


def wallet_summary(found: Wallet, at: datetime) -> Json:
    """A wallet as `GET /wallets` lists it."""
    return {
        "customerId": found.customer_id,
        "balance": to_wire(found.balance(at)),
        "overage": to_wire(found.overage),
        "liveCards": len(found.cards),
        "retiredCards": found.retired.count,
        "nextExpiry": optional_instant(found.next_expiry(at)),
        "version": found.version,
        "createdAt": instant(found.created_at),
    }


def wallet_page(page: WalletPage) -> Json:
    return {
        "wallets": [wallet_summary(w, page.at) for w in page.wallets],
        "nextCursor": page.next_cursor,
        "asOf": instant(page.at),
    }


def price_book(book: PriceBook) -> Json:
    return {
        "currency": book.currency,
        "mode": book.mode.value,
        "tiers": [{"upTo": _optional(t.up_to), "unitPrice": to_wire(t.unit_price)} for t in book.tiers],
        "version": book.version,
    }


def rate_card(value: RateCard) -> Json:
    return {
        "meters": _unit_rates(value.meters, value.by_dimension),
        "overrides": {
            c: _unit_rates(meters, value.overrides_by_dimension.get(c, {})) for c, meters in value.overrides.items()
        },
        "version": value.version,
    }


def _unit_rates(rates: Mapping[str, Decimal], priced: Mapping[str, DimensionPrices]) -> Json:
    """Each meter's rate as PUT /rate-card takes it: `dimension` and `prices` only for a meter priced by one."""
    shown: Json = {}
    for meter, rate in rates.items():
        shown[meter] = {"creditsPerUnit": to_wire(rate)}
        if meter in priced:
            by = priced[meter]
            shown[meter] |= {"dimension": by.dimension, "prices": {v: to_wire(p) for v, p in by.prices.items()}}
    return shown


def quote(priced: PricedQuote) -> Json:
    q, book = priced.quote, priced.book
    return {
        "credits": to_wire(q.credits),
        "price": money(q.price),
        "unitPrice": to_wire(q.unit_price),
        "mode": book.mode.value,
        "tier": {"index": q.tier_index, "upTo": _optional(book.tiers[q.tier_index].up_to)},
        "priceBookVersion": book.version,
        "quotedAt": instant(priced.at),
    }


def _usage(usage: MeterUsage) -> Json:
    return {"quantity": to_wire(usage.quantity), "credits": to_wire(usage.credits), "events": usage.events}


def usage_series(view: UsageSeriesView) -> Json:
    return {
        "customerId": view.customer_id,
        "granularity": view.granularity.value,
        "from": instant(view.start),
        "to": instant(view.end),
        "meters": [
            {
                "meter": series.meter,
                **_usage(series.total),
                "buckets": [{"start": instant(at), **_usage(usage)} for at, usage in series.buckets],
                "byDimension": [
                    {
                        "dimension": part.priced_by.dimension if part.priced_by else None,
                        "value": part.priced_by.value if part.priced_by else None,
                        **_usage(part.usage),
                    }
                    for part in series.by_dimension
                ],
            }
            for series in view.meters
        ],
    }


def _credits(value: Decimal) -> str:
    """A projected amount of credits, to the 9 fractional digits credits have."""
    return to_wire(value.quantize(CREDIT_QUANTUM))


def _recommendation(recommendation: Recommendation | None) -> Json | None:
    if recommendation is None:
        return None
    q = recommendation.quote
    return {
        "credits": to_wire(recommendation.credits),
        "price": money(q.price) if q else None,
        "unitPrice": to_wire(q.unit_price) if q else None,
    }


def forecast(view: ForecastView) -> Json:
    result, now = view.result, view.as_of
    burn = result.burn
    runway = None
    if result.depletion_at is not None:
        runway = to_wire(days_in(result.depletion_at - now).quantize(Decimal("0.01")))
    return {
        "customerId": view.customer_id,
        "asOf": instant(now),
        "horizonDays": view.horizon_days,
        "method": METHOD,
        "burnRate": {
            "creditsPerDay": to_wire(burn.per_day),
            "weekdayFactors": [to_wire(f) for f in burn.weekday_factors] if burn.weekday_factors else None,
            "daysOfHistory": burn.days_of_history,
        },
        "balance": to_wire(view.balance),
        "projectedDepletionAt": optional_instant(result.depletion_at),
        "runwayDays": runway,
        "projectedUsage": _credits(result.projected_usage),
        "creditsExpiringUnused": _credits(sum((e.credits for e in result.expiring_unused), ZERO)),
        "expiringUnused": [
            {"cardId": e.card_id, "expiresAt": instant(e.expires_at), "credits": _credits(e.credits)}
            for e in result.expiring_unused
        ],
        "recommendedPurchase": _recommendation(view.recommendation),
        # with cards scoped to some meters, each meter's own projection (else every card pays every meter: [])
        "meters": [
            {
                "meter": m.meter,
                "creditsPerDay": to_wire(m.burn.per_day),
                "projectedDepletionAt": optional_instant(m.depletion_at),
            }
            for m in result.meters
        ],
        "days": [
            {
                "date": d.day.isoformat(),
                "projectedBurn": to_wire(d.burn.quantize(Decimal("0.000001"))),
                "projectedBalance": to_wire(d.balance.quantize(Decimal("0.000001"))),
            }
            for d in result.days
        ],
    }


def revenue_report(report: RevenueReport) -> Json:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "currencies": [currency_revenue(r) for r in report.currencies],
    }


def currency_revenue(r: CurrencyRevenue) -> Json:
    """One currency's figures as the revenue report shows them (and the daily export writes them)."""
    return {
        "currency": r.currency,
        "deferredAtStart": to_wire(r.deferred_at_start),
        "purchased": to_wire(r.purchased),
        "recognised": to_wire(r.recognised),
        "breakage": to_wire(r.breakage),
        "voided": to_wire(r.voided),
        "refunded": to_wire(r.refunded),
        "rolledOver": to_wire(r.rolled_over),
        "deferred": to_wire(r.deferred_at_end),
    }


def exported_entry(customer_id: str, entry_id: str, entry: LedgerEntry) -> Json:
    """A ledger entry as the daily export writes it: as the ledger route shows it, with its customer."""
    return {"customerId": customer_id, **ledger_entry(entry_id, entry)}


def dashboard_link(link: DashboardLink, url: str) -> Json:
    return {"url": url, "token": link.token, "expiresAt": instant(link.expires_at)}


def dashboard_data(data: DashboardData) -> Json:
    return {
        "customerId": data.link.customer_id,
        "linkExpiresAt": instant(data.link.expires_at),
        "wallet": customer_wallet(data.wallet),
        "usage": usage_series(data.usage),
        "forecast": forecast(data.forecast),
    }


def refused(refusal: Refused) -> Json:
    answer: Json = {"index": refusal.index, "eventId": refusal.event_id, "reason": refusal.reason}
    if refusal.field:
        answer["field"] = refusal.field
    return answer


def screening(result: Screening) -> Json:
    """`POST /usage`'s answer."""
    return {
        "accepted": [e.event_id for e in result.accepted],
        "duplicates": result.duplicates,
        "rejected": [refused(r) for r in result.refused],
    }


def event_detail(detail: Mapping[str, Any]) -> Json:
    """An event's detail, its values rendered as every consumer of the bus reads them."""
    return {key: _value(value) for key, value in detail.items()}


def _value(value: Any) -> Any:
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, Decimal):
        return to_wire(value)
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, Card):
        return card(value)
    if isinstance(value, Money):
        return money(value)
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _value(v) for k, v in value.items()}
    raise TypeError(f"an event cannot carry a {type(value).__name__}")


def webhook_endpoint(endpoint: WebhookEndpoint) -> Json:
    return {
        "id": endpoint.endpoint_id,
        "url": endpoint.url,
        "eventTypes": sorted(endpoint.event_types) if endpoint.event_types is not None else None,
        "description": endpoint.description,
        "disabled": endpoint.disabled,
        "createdAt": instant(endpoint.created_at),
    }


def delivery(view: DeliveryView) -> Json:
    return {
        "eventId": view.event_id,
        "eventType": view.event_type,
        "customerId": view.customer_id,
        "eventTime": instant(view.event_time),
        "state": view.state.value,
        "attempts": view.attempts,
        "lastFailure": view.last_failure,
        "nextAttemptAt": optional_instant(view.next_attempt_at),
    }


def delivery_page(page: DeliveryPage) -> Json:
    return {"deliveries": [delivery(d) for d in page.deliveries], "nextCursor": page.next_cursor}
