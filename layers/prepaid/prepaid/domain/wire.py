"""The contract's JSON shapes of domain values: camelCase keys, decimals as strings, instants in ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prepaid.domain.card import Card, CardStatus
from prepaid.domain.ledger import LedgerEntry
from prepaid.domain.numbers import ZERO, to_wire
from prepaid.domain.settings import WalletSettings

if TYPE_CHECKING:
    from prepaid.domain.wallet import Wallet


def instant(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, milliseconds kept only when present."""
    text = value.astimezone(UTC).isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def optional_instant(value: datetime | None) -> str | None:
    return instant(value) if value is not None else None


def card_to_wire(card: Card, at: datetime | None = None) -> dict[str, Any]:
    """A card as the API shows it; given `at`, a card past its expiry shows as expired even before the job ran."""
    status = CardStatus.EXPIRED if at is not None and card.is_expired_at(at) else card.status
    return {
        "cardId": card.card_id,
        "credits": to_wire(card.credits),
        "remaining": to_wire(card.remaining),
        "price": card.price.to_wire(),
        "costBasis": to_wire(card.cost_basis),
        "source": card.source.value,
        "priority": card.priority,
        "effectiveAt": instant(card.effective_at),
        "expiresAt": optional_instant(card.expires_at),
        "status": status.value,
    }


def settings_to_wire(settings: WalletSettings) -> dict[str, Any]:
    auto, recurring = settings.auto_recharge, settings.recurring
    return {
        "thresholds": [to_wire(t) for t in settings.thresholds],
        "autoRecharge": None
        if auto is None
        else {
            "threshold": to_wire(auto.threshold),
            "credits": to_wire(auto.credits),
            "price": auto.price.to_wire() if auto.price else None,
            "maxPerDay": auto.max_per_day,
        },
        "recurring": None
        if recurring is None
        else {
            "credits": to_wire(recurring.credits),
            "price": recurring.price.to_wire() if recurring.price else None,
            "dayOfMonth": recurring.day_of_month,
            "expiresIn": duration(recurring.expires_in) if recurring.expires_in else None,
        },
        "webhookUrl": settings.webhook_url,
    }


def duration(value: timedelta) -> str:
    """ISO 8601 duration in days, hours, minutes and seconds (`P30D`, `PT1H30M`)."""
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "") if days or time else "PT0S"


def wallet_to_wire(wallet: Wallet, at: datetime) -> dict[str, Any]:
    """The wallet as `GET /wallets/{customerId}` shows it at `at`."""
    totals = wallet.totals(at)
    return {
        "customerId": wallet.customer_id,
        "balance": to_wire(totals.balance),
        "available": to_wire(sum((c.remaining for c in wallet.live_cards(at) if c.usable_at(at)), ZERO)),
        "overage": to_wire(wallet.overage),
        "cards": [card_to_wire(c, at) for c in wallet.live_cards(at)],
        "nextExpiry": optional_instant(wallet.next_expiry(at)),
        "settings": settings_to_wire(wallet.settings),
        "totals": {
            "credits": to_wire(totals.credits),
            "drawn": to_wire(totals.drawn),
            "expired": to_wire(totals.expired),
            "voided": to_wire(totals.voided),
            "rated": to_wire(totals.rated),
        },
        "version": wallet.version,
        "asOf": instant(at),
    }


def ledger_entry_to_wire(entry_id: str, entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry as `GET /wallets/{customerId}/ledger` shows it; fields that do not apply are left out."""
    shown: dict[str, Any] = {
        "entryId": entry_id,
        "type": entry.type.value,
        "credits": to_wire(entry.credits),
        "at": instant(entry.at),
        "balanceAfter": to_wire(entry.balance_after),
        "cardId": entry.card_id,
        "draws": [{"cardId": d.card_id, "credits": to_wire(d.credits)} for d in entry.draws] or None,
        "overage": to_wire(entry.overage) if entry.overage else None,
        "value": entry.value.to_wire() if entry.value else None,
        "eventId": entry.event_id,
        "meter": entry.meter,
        "quantity": to_wire(entry.quantity) if entry.quantity is not None else None,
        "events": entry.events or None,
    }
    return {k: v for k, v in shown.items() if v is not None}
