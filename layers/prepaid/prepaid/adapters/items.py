"""The single-table item shapes, and their conversion to and from domain values.

Keys (see docs/data-model.md):
  wallet       PK=W#<customerId>                       SK=WALLET
  card page    PK=W#<customerId>                       SK=P#<version>.<hash of its cards>   (immutable)
  retired card PK=W#<customerId>                       SK=C#<cardId>
  ledger       PK=W#<customerId>                       SK=L#<version:012>#<commitId>#<n:03>
  ledger page  PK=W#<customerId>                       SK=the key of its first entry   (entries of consecutive
                                                       versions, immutable)
  idempotency  PK=I#<customerId>#<scope>#<key>         SK=IDEMPOTENCY
  outbox       PK=O#<eventId>                          SK=OUTBOX
  usage event  PK=E#<usage eventId>                    SK=EVENT   (exactly once: written only if absent)
  hourly usage PK=A#<customerId>                       SK=H#<hour, ISO 8601>   (q:/c:/n:<meter> per meter, and
                                                       q:/c:/n:<meter>|<dimension>=<value> per priced value)
  catalog      PK=CATALOG                              SK=PRICE_BOOK | RATE_CARD
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from prepaid.application.ports import (
    AdjustmentResult,
    CardResult,
    IdempotencyRecord,
    OutboxEvent,
    RecordedEvent,
    StoredEvent,
    WalletChange,
)
from prepaid.domain.card import (
    EMPTY_METADATA,
    Card,
    CardSource,
    CardStatus,
    Collect,
    Metadata,
    Payment,
    drawdown_order,
    metadata_of,
)
from prepaid.domain.ledger import CardTerms, Draw, EntryType, LedgerEntry
from prepaid.domain.money import Money
from prepaid.domain.price_book import PriceBook, PricingMode, Tier
from prepaid.domain.rate_card import DimensionPrices, PricedBy, RateCard
from prepaid.domain.recurrence import index_key
from prepaid.domain.settings import AutoRecharge, Interval, OveragePolicy, RecurringGrant, Rollover, WalletSettings
from prepaid.domain.spans import CalendarSpan, Span
from prepaid.domain.text import instant
from prepaid.domain.usage_hours import HourUsage, MeterUsage
from prepaid.domain.wallet import EventDraw, Recharges, Retired, Wallet
from prepaid.edge.wire import event_detail

WALLET_SK = "WALLET"
OUTBOX_SK = "OUTBOX"
IDEMPOTENCY_SK = "IDEMPOTENCY"
CATALOG_PK = "CATALOG"
PRICE_BOOK_SK = "PRICE_BOOK"
RATE_CARD_SK = "RATE_CARD"
# Longer than an alert can wait on its queue (14 days), so a consumer always finds the record of a genuine event
OUTBOX_RETENTION = timedelta(days=15)
IDEMPOTENCY_RETENTION = timedelta(days=30)

Item = dict[str, Any]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attributes(item: Item) -> dict[str, Any]:
    """A plain item as DynamoDB attribute values, leaving out `None` so optional fields take no space."""
    return {k: _serializer.serialize(_drop_none(v)) for k, v in item.items() if v is not None}


def from_attributes(attributes: dict[str, Any]) -> Item:
    return {k: _deserializer.deserialize(v) for k, v in attributes.items()}


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


WALLET_PREFIX = "W#"
RECURRING_INDEX = "RecurringIndex"
# The sparse, KEYS_ONLY index that lists wallets (`GET /wallets`): every wallet item carries its key `wl` with this
# one value, from the wallet's first write on. DynamoDB writes a global secondary index only when a table write
# adds, changes or removes the index's key attributes (or a projected one): a wallet's later puts leave it as it
# was, so the index costs one write per wallet, at its creation, and none on the usage path. The name is short
# because every byte of the wallet item is paid for on every put (bench, steady: the wallet items' WRU/event was
# 0.693 without it, 0.703 with a 13-byte `walletList: "all"`, 0.693 with these 3 bytes).
WALLET_INDEX = "WalletIndex"
WALLET_LIST_KEY = "wl"
WALLET_LIST = "W"


def wallet_pk(customer_id: str) -> str:
    return f"{WALLET_PREFIX}{customer_id}"


LEDGER_PREFIX = "L#"


def ledger_sk(version: int, commit_id: str, index: int) -> str:
    return f"{LEDGER_PREFIX}{version:012d}#{commit_id}#{index:03d}"


def idempotency_pk(customer_id: str, scope: str, key: str) -> str:
    return f"I#{customer_id}#{scope}#{key}"


def outbox_pk(event_id: str) -> str:
    return f"O#{event_id}"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _optional_at(value: str | None) -> datetime | None:
    return _at(value) if value is not None else None


def _money(value: Item) -> Money:
    return Money(Decimal(value["amount"]), value["currency"])


def _money_item(value: Money) -> Item:
    return {"amount": value.amount, "currency": value.currency}


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


# -- wallet --------------------------------------------------------------------------------------------------------


def card_item(card: Card) -> Item:
    return {
        "cardId": card.card_id,
        "credits": card.credits,
        "remaining": card.remaining,
        "price": _money_item(card.price),
        "costBasis": card.cost_basis,
        "source": card.source.value,
        "priority": card.priority,
        "effectiveAt": instant(card.effective_at),
        "expiresAt": instant(card.expires_at) if card.expires_at else None,
        "status": card.status.value,
        "createdAt": instant(card.created_at),
        "drawn": card.drawn,
        "expired": card.expired,
        "voided": card.voided,
        **({"rolledOver": card.rolled_over} if card.rolled_over else {}),  # only an expired recurring card's
        **({"payment": _payment_item(card.payment)} if card.payment else {}),  # most cards have none: no bytes
        **({"appliesTo": sorted(card.applies_to)} if card.applies_to is not None else {}),
        **({"reference": card.reference} if card.reference is not None else {}),
        # the pairs themselves are on the card's note item (`card_note_item`), written once
        **({"noted": True} if card.metadata is None or card.metadata else {}),
    }


def _payment_item(payment: Payment) -> Item:
    item = {
        "collect": payment.collect.value,
        "stripeCustomer": payment.stripe_customer,
        "paymentMethod": payment.payment_method,
        "reference": payment.reference,
    }
    return {k: v for k, v in item.items() if v is not None}


def _payment(item: Item | None) -> Payment | None:
    if not item:
        return None
    return Payment(
        collect=Collect(item["collect"]),
        stripe_customer=item.get("stripeCustomer"),
        payment_method=item.get("paymentMethod"),
        reference=item.get("reference"),
    )


def card_from_item(item: Item) -> Card:
    return Card(
        card_id=item["cardId"],
        credits=Decimal(item["credits"]),
        remaining=Decimal(item["remaining"]),
        price=_money(item["price"]),
        cost_basis=Decimal(item["costBasis"]),
        source=CardSource(item["source"]),
        priority=int(item["priority"]),
        effective_at=_at(item["effectiveAt"]),
        expires_at=_optional_at(item.get("expiresAt")),
        status=CardStatus(item["status"]),
        created_at=_at(item["createdAt"]),
        drawn=Decimal(item["drawn"]),
        expired=Decimal(item["expired"]),
        voided=Decimal(item["voided"]),
        rolled_over=Decimal(item.get("rolledOver", 0)),
        payment=_payment(item.get("payment")),
        applies_to=frozenset(item["appliesTo"]) if item.get("appliesTo") is not None else None,
        reference=item.get("reference"),
        metadata=None if item.get("noted") else EMPTY_METADATA,
    )


def settings_item(settings: WalletSettings) -> Item:
    auto, recurring = settings.auto_recharge, settings.recurring
    return {
        "thresholds": list(settings.thresholds),
        "percentThresholds": list(settings.percent_thresholds) or None,
        "autoRecharge": None
        if auto is None
        else {
            "threshold": auto.threshold,
            "credits": auto.credits,
            "targetBalance": auto.target_balance,
            "maxPerDay": auto.max_per_day,
            "price": _money_item(auto.price) if auto.price else None,
            "payment": _payment_item(auto.payment) if auto.payment else None,
            "maxSpendPerMonth": _money_item(auto.max_spend_per_month) if auto.max_spend_per_month else None,
        },
        "recurring": None
        if recurring is None
        else {
            "credits": recurring.credits,
            "dayOfMonth": recurring.day_of_month,
            "price": _money_item(recurring.price) if recurring.price else None,
            **_span_item(recurring.expires_in),
            "payment": _payment_item(recurring.payment) if recurring.payment else None,
            "interval": recurring.interval.value,
            "dayOfWeek": recurring.day_of_week,
            "month": recurring.month,
            "rollover": _rollover_item(recurring.rollover) if recurring.rollover else None,
            "appliesTo": sorted(recurring.applies_to) if recurring.applies_to is not None else None,
            "reference": recurring.reference,
        },
        "webhookUrl": settings.webhook_url,
        # only when not the default: this map rides on the wallet item, written per usage commit
        **({"overagePolicy": settings.overage_policy.value} if settings.overage_policy is OveragePolicy.BLOCK else {}),
    }


def settings_from_item(item: Item) -> WalletSettings:
    auto, recurring = item.get("autoRecharge"), item.get("recurring")
    return WalletSettings(
        thresholds=tuple(item.get("thresholds", ())),
        percent_thresholds=tuple(item.get("percentThresholds") or ()),
        auto_recharge=None
        if auto is None
        else AutoRecharge(
            threshold=auto["threshold"],
            credits=auto.get("credits"),
            max_per_day=int(auto["maxPerDay"]),
            target_balance=auto.get("targetBalance"),
            price=_money(auto["price"]) if auto.get("price") else None,
            payment=_payment(auto.get("payment")),
            max_spend_per_month=_money(auto["maxSpendPerMonth"]) if auto.get("maxSpendPerMonth") else None,
        ),
        recurring=None
        if recurring is None
        else RecurringGrant(
            credits=recurring["credits"],
            day_of_month=_optional_int(recurring.get("dayOfMonth")),
            price=_money(recurring["price"]) if recurring.get("price") else None,
            expires_in=_span(recurring),
            payment=_payment(recurring.get("payment")),
            interval=Interval(recurring.get("interval", Interval.MONTH)),
            day_of_week=_optional_int(recurring.get("dayOfWeek")),
            month=_optional_int(recurring.get("month")),
            rollover=_rollover(recurring["rollover"]) if recurring.get("rollover") else None,
            applies_to=frozenset(recurring["appliesTo"]) if recurring.get("appliesTo") is not None else None,
            reference=recurring.get("reference"),
        ),
        webhook_url=item.get("webhookUrl"),
        overage_policy=OveragePolicy(item.get("overagePolicy", OveragePolicy.ALLOW)),
    )


RETIRED_CARD_PREFIX = "C#"


def retired_card_sk(card_id: str) -> str:
    return f"{RETIRED_CARD_PREFIX}{card_id}"


def card_note_sk(card_id: str) -> str:
    return f"N#{card_id}"


def card_note_item(customer_id: str, card: Card) -> Item:
    """A card's metadata, apart from the wallet: written once, when the card is made."""
    assert card.metadata, "only a card with metadata has a note"
    return {
        "PK": wallet_pk(customer_id),
        "SK": card_note_sk(card.card_id),
        "itemType": "cardNote",
        "cardId": card.card_id,
        "metadata": dict(card.metadata),
    }


def card_note_from_item(item: Item) -> Metadata:
    return metadata_of(item["metadata"])


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _rollover_item(rollover: Rollover) -> Item:
    return {
        "maxPercent": rollover.max_percent,
        "maxCredits": rollover.max_credits,
        **_span_item(rollover.expires_in),
    }


def _rollover(item: Item) -> Rollover:
    return Rollover(max_percent=item.get("maxPercent"), max_credits=item.get("maxCredits"), expires_in=_span(item))


def _span_item(span: Span | None) -> Item:
    """An `expiresIn` as stored: its exact part in seconds, and its calendar months only when it has some (so an
    exact one is stored as before calendar durations were read)."""
    if span is None:
        return {"expiresInSeconds": None}
    if isinstance(span, CalendarSpan):
        return {"expiresInSeconds": int(span.exact.total_seconds()), "expiresInMonths": span.months}
    return {"expiresInSeconds": int(span.total_seconds())}


def _span(item: Item) -> Span | None:
    seconds, months = item.get("expiresInSeconds"), item.get("expiresInMonths")
    if seconds is None:
        return None
    exact = timedelta(seconds=int(seconds))
    return CalendarSpan(int(months), exact) if months else exact


def retired_card_item(customer_id: str, card: Card) -> Item:
    return {"PK": wallet_pk(customer_id), "SK": retired_card_sk(card.card_id), "itemType": "card", **card_item(card)}


def retired_card_from_item(item: Item) -> Card:
    return card_from_item(item)


# -- where a wallet's live cards are kept -----------------------------------------------------------------------------
# The wallet item holds the cards a change is likely to touch; the others wait on immutable card pages it names, so
# a drawdown writes the same few hundred bytes whether the wallet holds 5 live cards or 500 (docs/data-model.md).
HEAD_KEEP = 8  # the cards first in drawdown order stay on the wallet item when others move to a page
HEAD_LIMIT = 32  # more cards than this on the wallet item: all but the first HEAD_KEEP move to a new page
MAX_PAGES = 16  # more pages than this, or more stale copies on them than live ones: the pages are written anew
PAGE_CARDS = 256  # cards per page when pages are written anew (~10 KB: far under the item limit)

CardPages = Mapping[str, Mapping[str, Card]]  # page id -> the cards written on it


@dataclass(frozen=True)
class CardLayout:
    """Where one wallet version's live cards are: `head` on the wallet item; the rest on `pages` (in order, a later
    copy of a card winning), less the `gone` ones, which have left the wallet since their page was written."""

    head: tuple[Card, ...] = ()
    pages: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    new_pages: Mapping[str, tuple[Card, ...]] = dataclasses.field(default_factory=dict)

    @staticmethod
    def whole(wallet: Wallet) -> CardLayout:
        """Every card on the wallet item (a wallet written without pages)."""
        return CardLayout(head=tuple(wallet.cards.values()))


def card_page_sk(page_id: str) -> str:
    return f"P#{page_id}"


def card_page_item(customer_id: str, page_id: str, cards: tuple[Card, ...]) -> Item:
    return {
        "PK": wallet_pk(customer_id),
        "SK": card_page_sk(page_id),
        "itemType": "cardPage",
        "cards": packed([card_item(c) for c in cards]),
    }


def card_page_from_item(item: Item) -> dict[str, Card]:
    return {c["cardId"]: card_from_item(c) for c in unpacked(item["cards"])}


def _page_id(version: int, cards: tuple[Card, ...]) -> str:
    """Named by the version that first names it and by what it holds: two writers racing for that version can only
    ever write the same page, and a page deleted once is never needed again under its name."""
    return f"{version}.{hashlib.sha256(packed([card_item(c) for c in cards])).hexdigest()[:20]}"


def card_layout(wallet: Wallet, pages: tuple[str, ...], written: CardPages) -> CardLayout:
    """Where `wallet`'s cards go, given the pages its previous version named (`written`: their cards). A card
    whose copy on a page is still exact stays there; the others go on the wallet item, until too many are there
    (then all but the first in drawdown order move to a new page) or the pages hold too much that is stale (then
    they are written anew)."""
    paged = _paged_cards(pages, written)
    head = tuple(c for c in wallet.cards.values() if paged.get(c.card_id) != c)
    gone = tuple(card_id for card_id in paged if card_id not in wallet.cards)
    stale = len(gone) + sum(1 for c in head if c.card_id in paged)
    if len(pages) > MAX_PAGES or stale > max(HEAD_LIMIT, (len(paged) - stale)):
        return _spilled(wallet.version, tuple(wallet.cards.values()), (), ())  # written anew
    if len(head) <= HEAD_LIMIT:
        return CardLayout(head, pages, gone)
    return _spilled(wallet.version, head, pages, gone)


def _paged_cards(pages: tuple[str, ...] | list[str], written: CardPages) -> dict[str, Card]:
    """The cards on `pages`, a later page's copy of a card winning."""
    cards: dict[str, Card] = {}
    for page_id in pages:
        cards.update(written[page_id])
    return cards


def _spilled(version: int, cards: tuple[Card, ...], pages: tuple[str, ...], gone: tuple[str, ...]) -> CardLayout:
    """`cards` on the wallet item but for those after the first HEAD_KEEP in drawdown order, which go on new pages
    after `pages`."""
    ordered = sorted(cards, key=drawdown_order)
    rest = ordered[HEAD_KEEP:]
    chunks = (tuple(rest[start : start + PAGE_CARDS]) for start in range(0, len(rest), PAGE_CARDS))
    new_pages = {_page_id(version, chunk): chunk for chunk in chunks}
    return CardLayout(tuple(ordered[:HEAD_KEEP]), (*pages, *new_pages), gone, new_pages)


def page_ids(item: Item) -> tuple[str, ...]:
    """The card pages a stored wallet version names."""
    return tuple(unpacked(item["paged"])["pages"]) if item.get("paged") else ()


def wallet_item(wallet: Wallet, layout: CardLayout | None = None) -> Item:
    """The wallet item; its cards as `layout` says (all on the item when none is given)."""
    layout = layout if layout is not None else CardLayout.whole(wallet)
    return {
        "PK": wallet_pk(wallet.customer_id),
        "SK": WALLET_SK,
        "itemType": "wallet",
        "customerId": wallet.customer_id,
        "version": wallet.version,
        "createdAt": instant(wallet.created_at),
        "overage": wallet.overage,
        # by meter, only while some is owed (most wallets owe none: no bytes)
        "overageMeters": dict(wallet.overage_meters) or None,
        "rated": wallet.rated,
        "retired": dataclasses.asdict(wallet.retired),
        "settings": settings_item(wallet.settings),
        # One compressed JSON document rather than a map of maps: a smaller item (fewer write units per change)
        # that is read and written whole anyway. Amounts inside stay decimal strings, so nothing is rounded.
        "cards": packed([card_item(card) for card in layout.head]),
        "paged": packed({"pages": list(layout.pages), "gone": list(layout.gone)}) if layout.pages else None,
        "openHour": None if wallet.open_hour is None else _open_hour_text(wallet.open_hour),
        WALLET_LIST_KEY: WALLET_LIST,  # the key of the sparse WalletIndex: the same on every version of every wallet
        # the key of the sparse RecurringIndex: present only for wallets with a recurring grant
        "recurringDay": index_key(wallet.settings.recurring) if wallet.settings.recurring else None,
        "recharges": None if wallet.recharges is None else _recharges_item(wallet.recharges),
        "funded": wallet.funded,
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


# What the packed documents (cards, what a commit owes) mostly say, as zlib's preset dictionary: a document of a few
# hundred bytes then compresses to references into it rather than to its own first occurrences. Part of the stored
# format: changing it makes stored documents unreadable, so a new one would need its own marker.
PACKED_WORDS = (
    b'"priority":0,"source":"promotion","source":"grant","source":"recurring","source":"auto_recharge",'
    b'"status":"voided","status":"expired","drawn":"0","expired":"0","voided":"0",'
    b'"itemType":{"S":"outbox"},"eventType":{"S":"Balance Low"},"detail":{"S":"{\\"customerId\\":\\"'
    b'"type":{"S":"purchase"},"type":{"S":"expiry"},"value":{"M":{"amount":{"N":"0"},"currency":{"S":"USD"}}},'
    b'"unique":[{"PK":{"S":"W#","SK":{"S":"L#000000000","itemType":{"S":"ledger"},"entryId":{"S":"000000000'
    b'"type":{"S":"usage"},"credits":{"N":"0.","at":{"S":"2026-12-01T00:00:00.000Z"},"balanceAfter":{"N":"'
    b'"draws":{"L":[{"M":{"cardId":{"S":"","credits":{"N":"0."}}}]},"overage":{"N":"0"},"events":{"N":"'
    b'"hours":[],"records":[["api_calls","tokens","0","0.000","2026-12-01T00:00:00.000Z","=0.","0"],'
    b'[{"cardId":"","credits":"","remaining":"0.","price":{"amount":"0.00","currency":"USD"},"costBasis":"0.00'
    b'","source":"purchase","priority":1,"effectiveAt":"2026-12-01T00:00:00.000Z","expiresAt":"2026-12-01T'
    b'00:00:00.000Z","status":"active","createdAt":"2026-12-01T00:00:00.000Z","drawn":"0.","expired":"0","voided":"0"}'
)


def packed(value: Any) -> bytes:
    """`value` as compact JSON, compressed against `PACKED_WORDS` (amounts stay decimal strings: nothing rounded)."""
    # level 6: on these documents (a wallet's cards, what it owes, 2 to 32 ledger entries) the same bytes as 9,
    # so the same write units, in half the time (measured 2026-12-03: 51 against 104 us for 32 entries)
    compressor = zlib.compressobj(6, zdict=PACKED_WORDS)
    return compressor.compress(_json(value)) + compressor.flush()


def unpacked(blob: bytes | str) -> Any:
    """What `packed` stored, from an item (bytes) or a stream image (where a binary is base64 text)."""
    data = base64.b64decode(blob) if isinstance(blob, str) else bytes(blob)
    decompressor = zlib.decompressobj(zdict=PACKED_WORDS)
    return json.loads(decompressor.decompress(data) + decompressor.flush(), parse_float=Decimal)


def _open_hour_text(hour: HourUsage) -> str:
    meters = {m: [str(u.quantity), str(u.credits), u.events] for m, u in hour.meters.items()}
    document: dict[str, Any] = {"hour": instant(hour.hour), "meters": meters}
    if hour.priced:  # only hours with usage priced by dimension carry the split: other wallets' bytes are as before
        document["priced"] = [
            [m, p.dimension, p.value, str(u.quantity), str(u.credits), u.events] for (m, p), u in hour.priced.items()
        ]
    return json.dumps(document, separators=(",", ":"))


def _open_hour(text: str | None) -> HourUsage | None:
    if text is None:
        return None
    value = json.loads(text)
    meters = {m: MeterUsage(Decimal(q), Decimal(c), int(n)) for m, (q, c, n) in value["meters"].items()}
    priced = {
        (m, PricedBy(d, v)): MeterUsage(Decimal(q), Decimal(c), int(n)) for m, d, v, q, c, n in value.get("priced", ())
    }
    return HourUsage(_at(value["hour"]), meters, priced)


def wallet_from_item(item: Item, written: CardPages | None = None) -> Wallet:
    """The wallet; `written` holds the cards of the pages it names (`page_ids`)."""
    cards: dict[str, Card] = {}
    if item.get("paged"):
        paged = unpacked(item["paged"])
        cards = _paged_cards(paged["pages"], written or {})
        for card_id in paged["gone"]:
            cards.pop(card_id, None)
    cards.update((card["cardId"], card_from_item(card)) for card in unpacked(item["cards"]))
    return Wallet(
        customer_id=item["customerId"],
        created_at=_at(item["createdAt"]),
        version=int(item["version"]),
        cards=cards,
        overage=item["overage"],
        overage_meters=dict(item.get("overageMeters") or {}),
        rated=item["rated"],
        retired=Retired(
            credits=item["retired"]["credits"],
            drawn=item["retired"]["drawn"],
            expired=item["retired"]["expired"],
            voided=item["retired"]["voided"],
            count=int(item["retired"]["count"]),
            rolled_over=Decimal(item["retired"].get("rolled_over", 0)),
        ),
        settings=settings_from_item(item["settings"]),
        open_hour=_open_hour(item.get("openHour")),
        recharges=_recharges(item["recharges"]) if item.get("recharges") else None,
        funded=item.get("funded"),
    )


def _recharges_item(recharges: Recharges) -> Item:
    item: Item = {"day": recharges.day.isoformat(), "count": recharges.count}
    if recharges.month:  # most wallets have no spend cap: no bytes
        item |= {"month": recharges.month, "spent": recharges.spent}
    return item


def _recharges(item: Item) -> Recharges:
    day, count = date.fromisoformat(item["day"]), int(item["count"])
    return Recharges(day, count, str(item.get("month", "")), Decimal(item.get("spent", 0)))


# -- ledger, outbox, idempotency -----------------------------------------------------------------------------------


def ledger_item(customer_id: str, version: int, commit_id: str, index: int, entry: LedgerEntry) -> Item:
    sk = ledger_sk(version, commit_id, index)
    keys = {"PK": wallet_pk(customer_id), "SK": sk, "itemType": "ledger", "entryId": sk.removeprefix("L#")}
    return {**keys, **_entry_fields(entry)}


def _entry_fields(entry: LedgerEntry) -> Item:
    return {
        "type": entry.type.value,
        "credits": entry.credits,
        "at": instant(entry.at),
        "balanceAfter": entry.balance_after,
        "cardId": entry.card_id,
        "draws": [{"cardId": d.card_id, "credits": d.credits} for d in entry.draws],
        "overage": entry.overage,
        "value": _money_item(entry.value) if entry.value else None,
        "eventId": entry.event_id,
        "meter": entry.meter,
        "quantity": entry.quantity,
        "events": entry.events or None,
        "reason": entry.reason,
        "reference": entry.reference,
        "metadata": dict(entry.metadata) or None,
        "terms": [_terms_item(t) for t in entry.terms] if entry.terms else None,
    }


def _terms_item(terms: CardTerms) -> Item:
    return {"expiresAt": instant(terms.expires_at) if terms.expires_at else None, "priority": terms.priority}


def _terms(item: Item) -> CardTerms:
    return CardTerms(_optional_at(item.get("expiresAt")), int(item["priority"]))


def entry_version(entry: Item) -> int:
    """The wallet version that committed a ledger entry (its key begins with it)."""
    return int(entry["SK"].removeprefix(LEDGER_PREFIX)[:12])


def change_ledger(change: WalletChange) -> tuple[Item, ...]:
    """The ledger entries a change commits, as items."""
    customer_id, version = change.wallet.customer_id, change.wallet.version
    return tuple(ledger_item(customer_id, version, change.commit_id, i, e) for i, e in enumerate(change.ledger))


# A wallet version may carry the ledger entries of itself and the versions before it (`ledgerTail`) instead of
# owing them, while that costs its write no unit more: then they are written later, as one page item, by the
# version that no longer carries them (docs/drawdown-design.md).
LEDGER_PAGE = "ledgerPage"


def ledger_tail(entries: Sequence[Item]) -> bytes | None:
    """The `ledgerTail` attribute carrying `entries` (`None` for none)."""
    return packed([to_attributes(e) for e in entries]) if entries else None


def carried_ledger(item: Item) -> tuple[Item, ...]:
    """The ledger entries a stored wallet version carries, from its item or its stream image."""
    tail = _document(item, "ledgerTail")
    return tuple(from_attributes(e) for e in tail) if tail else ()


def ledger_page_item(entries: Sequence[Item]) -> Item:
    """Ledger entries of consecutive versions as one immutable item, under its first entry's key: a range of
    keys that holds an entry's key then holds the page's (pages never overlap)."""
    first = entries[0]
    return {"PK": first["PK"], "SK": first["SK"], "itemType": LEDGER_PAGE, "entries": ledger_tail(entries)}


def ledger_entries_of(item: Item) -> list[Item]:
    """The ledger entries a stored ledger item holds: a page's, in key order, or the entry itself."""
    if item.get("itemType") != LEDGER_PAGE:
        return [item]
    return [from_attributes(e) for e in _document(item, "entries")]


def ledger_from_item(item: Item) -> LedgerEntry:
    return LedgerEntry(
        type=EntryType(item["type"]),
        credits=item["credits"],
        at=_at(item["at"]),
        balance_after=item["balanceAfter"],
        card_id=item.get("cardId"),
        draws=tuple(Draw(d["cardId"], d["credits"]) for d in item.get("draws", ())),
        overage=item["overage"],
        value=_money(item["value"]) if item.get("value") else None,
        event_id=item.get("eventId"),
        meter=item.get("meter"),
        quantity=item.get("quantity"),
        events=int(item.get("events", 0)),
        reason=item.get("reason"),
        reference=item.get("reference"),
        metadata=metadata_of(item.get("metadata") or {}),
        terms=(_terms(item["terms"][0]), _terms(item["terms"][1])) if item.get("terms") else None,
    )


def outbox_item(customer_id: str, event: OutboxEvent) -> Item:
    return {
        "PK": outbox_pk(event.event_id),
        "SK": OUTBOX_SK,
        "itemType": "outbox",
        "eventId": event.event_id,
        "customerId": customer_id,
        "detailType": event.detail_type,
        "detail": json.dumps(event_detail(event.detail), separators=(",", ":")),
        "occurredAt": instant(event.occurred_at),
        "ttl": _epoch(event.occurred_at + OUTBOX_RETENTION),
    }


def outbox_from_item(item: Item) -> StoredEvent:
    return StoredEvent(
        event_id=item["eventId"],
        customer_id=item["customerId"],
        detail_type=item["detailType"],
        detail=json.loads(item["detail"]),
        occurred_at=_at(item["occurredAt"]),
    )


def idempotency_item(customer_id: str, record: IdempotencyRecord, now: datetime) -> Item:
    return {
        "PK": idempotency_pk(customer_id, record.scope, record.key),
        "SK": IDEMPOTENCY_SK,
        "itemType": "idempotency",
        "requestHash": record.request_hash,
        "result": None if record.result is None else _card_result_item(record.result),
        "adjustment": None if record.adjustment is None else _adjustment_item(record.adjustment),
        "createdAt": instant(now),
        "ttl": _epoch(now + IDEMPOTENCY_RETENTION),
    }


def idempotency_from_item(scope: str, key: str, item: Item) -> IdempotencyRecord:
    result, adjustment = item.get("result"), item.get("adjustment")
    return IdempotencyRecord(
        scope,
        key,
        item["requestHash"],
        _card_result(result) if result else None,
        _adjustment(adjustment) if adjustment else None,
    )


def _adjustment_item(result: AdjustmentResult) -> Item:
    card = {"card": card_item(result.card)} if result.card else {}
    return {"entry": _entry_fields(result.entry), "balance": result.balance, "at": instant(result.at), **card}


def _adjustment(item: Item) -> AdjustmentResult:
    card = card_from_item(item["card"]) if item.get("card") else None
    return AdjustmentResult(ledger_from_item(item["entry"]), Decimal(item["balance"]), _at(item["at"]), card)


def _card_result_item(result: CardResult) -> Item:
    refund = {"refund": _money_item(result.refund)} if result.refund else {}
    return {"card": card_item(result.card), "balance": result.balance, "at": instant(result.at), **refund}


def _card_result(item: Item) -> CardResult:
    refund = _money(item["refund"]) if item.get("refund") else None
    return CardResult(card_from_item(item["card"]), Decimal(item["balance"]), _at(item["at"]), refund=refund)


# -- catalog -------------------------------------------------------------------------------------------------------


def price_book_item(book: PriceBook) -> Item:
    return {
        "PK": CATALOG_PK,
        "SK": PRICE_BOOK_SK,
        "itemType": "price_book",
        "version": book.version,
        "currency": book.currency,
        "mode": book.mode.value,
        "tiers": [{"upTo": t.up_to, "unitPrice": t.unit_price} for t in book.tiers],
    }


def price_book_from_item(item: Item) -> PriceBook:
    return PriceBook(
        currency=item["currency"],
        mode=PricingMode(item["mode"]),
        tiers=tuple(Tier(t.get("upTo"), t["unitPrice"]) for t in item["tiers"]),
        version=int(item["version"]),
    )


def rate_card_item(card: RateCard) -> Item:
    return {
        "PK": CATALOG_PK,
        "SK": RATE_CARD_SK,
        "itemType": "rate_card",
        "version": card.version,
        "meters": dict(card.meters),
        "overrides": {customer: dict(meters) for customer, meters in card.overrides.items()},
        # prices by dimension value: {meter: {"dimension", "prices": {value: rate}}}, overrides likewise per customer
        "byDimension": _dimension_prices_item(card.by_dimension),
        "overridesByDimension": {c: _dimension_prices_item(m) for c, m in card.overrides_by_dimension.items()},
    }


def _dimension_prices_item(priced: Mapping[str, DimensionPrices]) -> Item:
    return {meter: {"dimension": p.dimension, "prices": dict(p.prices)} for meter, p in priced.items()}


def rate_card_from_item(item: Item) -> RateCard:
    # cards stored before prices by dimension have neither attribute
    return RateCard(
        meters=dict(item["meters"]),
        overrides={customer: dict(meters) for customer, meters in item["overrides"].items()},
        version=int(item["version"]),
        by_dimension=_dimension_prices(item.get("byDimension", {})),
        overrides_by_dimension={c: _dimension_prices(m) for c, m in item.get("overridesByDimension", {}).items()},
    )


def _dimension_prices(item: Item) -> dict[str, DimensionPrices]:
    return {meter: DimensionPrices(p["dimension"], dict(p["prices"])) for meter, p in item.items()}


# -- usage ---------------------------------------------------------------------------------------------------------

EVENT_SK = "EVENT"
EVENT_RETENTION = timedelta(days=400)  # longer than any replay window a producer could have


def usage_event_pk(event_id: str) -> str:
    return f"E#{event_id}"


def usage_event_item(customer_id: str, version: int, drawn: EventDraw, now: datetime) -> Item:
    return _usage_record(customer_id, version, now, _record_fields(drawn))


def _record_fields(drawn: EventDraw) -> list[str]:
    """What a usage record holds of its event, as text: id, meter, quantity, credits, timestamp, draws, overage."""
    usage = drawn.usage
    # draws compact, in one string, so the record stays well under 1 KB (one write unit, two in a transaction)
    draws = ";".join(f"{d.card_id}={d.credits}" for d in drawn.draws)
    return [
        usage.event_id,
        usage.meter,
        str(usage.quantity),
        str(usage.credits),
        instant(usage.at),
        draws,
        str(drawn.overage),
    ]


def _usage_record(customer_id: str, version: int, now: datetime, fields: list[str]) -> Item:
    event_id, meter, quantity, credits, timestamp, draws, overage = fields
    return {
        "PK": usage_event_pk(event_id),
        "SK": EVENT_SK,
        "itemType": "usage",
        "customerId": customer_id,
        "meter": meter,
        "quantity": Decimal(quantity),
        "credits": Decimal(credits),
        "timestamp": timestamp,
        "draws": draws,
        "overage": Decimal(overage),
        "version": version,
        "drawnAt": instant(now),
        "ttl": _epoch(now + EVENT_RETENTION),
    }


def recorded_event_from_item(item: Item) -> RecordedEvent:
    return RecordedEvent(
        event_id=item["PK"].removeprefix("E#"),
        customer_id=item["customerId"],
        meter=item["meter"],
        quantity=Decimal(item["quantity"]),
    )


# -- hourly usage ----------------------------------------------------------------------------------------------------

HOUR_PREFIX = "H#"
# One item per customer and hour, a number attribute per meter and measure, so that one write covers every meter
# (DynamoDB's ADD works on top-level attributes without reading the item first). The part of a meter's usage priced
# by a dimension value is named `<meter>|<dimension>=<value>`: neither a meter nor a dimension holds `|` or `=`.
MEASURES = (("q:", "quantity"), ("c:", "credits"), ("n:", "events"))


def hours_pk(customer_id: str) -> str:
    return f"A#{customer_id}"


def hour_sk(hour: datetime, version: int | None = None) -> str:
    """The hour's sort key; with the wallet version whose usage of the hour an item holds."""
    return f"{HOUR_PREFIX}{instant(hour)}" + (f"#{version:012d}" if version is not None else "")


def hour_item(customer_id: str, version: int, hour: HourUsage) -> Item:
    """A wallet version's usage of an hour it no longer holds open: immutable, so written again it changes
    nothing; the hour's items are summed when read."""
    return {
        "PK": hours_pk(customer_id),
        "SK": hour_sk(hour.hour, version),
        "itemType": "hour",
        **hour_additions(hour),
    }


def hour_additions(hour: HourUsage) -> dict[str, Decimal | int]:
    """The attributes to ADD to the hour's item: `q:<meter>`, `c:<meter>`, `n:<meter>` (and per priced value)."""
    named = {
        **hour.meters,
        **{f"{meter}|{p.dimension}={p.value}": usage for (meter, p), usage in hour.priced.items()},
    }
    return {f"{prefix}{name}": getattr(usage, field) for name, usage in named.items() for prefix, field in MEASURES}


def hour_from_item(item: Item) -> HourUsage:
    named: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        for prefix, field in MEASURES:
            if name.startswith(prefix):
                named.setdefault(name.removeprefix(prefix), {})[field] = value
    usage = {
        n: MeterUsage(Decimal(v.get("quantity", 0)), Decimal(v.get("credits", 0)), int(v.get("events", 0)))
        for n, v in named.items()
    }
    priced: dict[tuple[str, PricedBy], MeterUsage] = {}
    for name in [n for n in usage if "|" in n]:
        meter, _, dimension_value = name.partition("|")
        dimension, _, value = dimension_value.partition("=")
        priced[(meter, PricedBy(dimension, value))] = usage.pop(name)
    return HourUsage(_at(item["SK"].removeprefix(HOUR_PREFIX).split("#", 1)[0]), usage, priced)


# -- what a commit still owes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    """The items a wallet version's commit writes after the wallet itself (docs/drawdown-design.md).

    Each of `puts` is immutable and written whole, so writing it again changes nothing: usage records, ledger
    entries, events, retired cards, and the usage of hours the wallet no longer holds open (one item per hour and
    wallet version, read back summed).
    """

    customer_id: str
    version: int
    puts: tuple[Item, ...]

    @property
    def empty(self) -> bool:
        return not self.puts


def owed_items(change: WalletChange, carried: Sequence[Item] = ()) -> Owed:
    """What `change` writes besides its wallet, in one transaction: its ledger entries each as its own item, and
    the entries the version it replaces carried as one page."""
    records, others = _owed_parts(change)
    unique = [*change_ledger(change), *others]
    return _owed(change.wallet.customer_id, change.wallet.version, change.at, records, unique, change.hours, carried)


def owed_of(change: WalletChange, ledger: Sequence[Item]) -> tuple[Owed, bytes | None]:
    """What `change` writes besides its wallet, with `ledger` (entries the wallet no longer carries) as one page;
    and that as the wallet item carries it (`None` for nothing): one compressed JSON document (it is billed by
    the KB each time the wallet is written), the usage records as compact rows, the other items in DynamoDB's
    own JSON (so numbers stay numbers)."""
    records, others = _owed_parts(change)
    owed = _owed(change.wallet.customer_id, change.wallet.version, change.at, records, others, change.hours, ledger)
    if owed.empty:
        return owed, None
    document = {
        "at": instant(change.at),
        "records": records,
        "unique": [to_attributes(i) for i in others],
        "hours": [_open_hour_text(hour) for hour in change.hours],
        "ledger": [to_attributes(e) for e in ledger],
    }
    return owed, packed(document)


def _owed_parts(change: WalletChange) -> tuple[list[list[str]], list[Item]]:
    """The change's usage records (as compact rows), and its events and retired cards."""
    records = [_record_fields(d) for d in change.usage]
    others = [
        *(outbox_item(change.wallet.customer_id, e) for e in change.events),
        *(retired_card_item(change.wallet.customer_id, card) for card in change.retired),
        *(card_note_item(change.wallet.customer_id, card) for card in change.noted),
    ]
    return records, others


def _document(item: Item, attribute: str) -> Any:
    """A compressed JSON attribute, from a stored item or a stream image (where a binary is base64 text)."""
    blob = item.get(attribute)
    return unpacked(blob) if blob else None


def _owed_document(item: Item) -> dict[str, Any] | None:
    document: dict[str, Any] | None = _document(item, "owed")
    return document


def owed_from_item(item: Item) -> Owed:
    """What a stored wallet version still owes (nothing, for a version written in one transaction)."""
    customer_id, version = item["customerId"], int(item["version"])
    owed = _owed_document(item)
    if owed is None:
        return _owed(customer_id, version, None, [], [], (), ())
    hours = tuple(h for h in (_open_hour(text) for text in owed["hours"]) if h is not None)
    unique = [from_attributes(i) for i in owed["unique"]]
    ledger = [from_attributes(e) for e in owed.get("ledger", ())]
    return _owed(customer_id, version, _at(owed["at"]), owed["records"], unique, hours, ledger)


def owed_ledger(item: Item) -> list[Item]:
    """The ledger entries a stored wallet version owes (those of its page, and, as versions stored before pages
    owed them, its own)."""
    owed = _owed_document(item)
    if owed is None:
        return []
    paged = (from_attributes(e) for e in owed.get("ledger", ()))
    unique = (from_attributes(i) for i in owed["unique"])
    return [*paged, *(i for i in unique if i.get("itemType") == "ledger")]


def owed_retired_cards(item: Item) -> list[Card]:
    """The cards a stored wallet version retired and still owes as their own items (written a moment after it, or
    after a crash by the next change)."""
    owed = _owed_document(item)
    if owed is None:
        return []
    unique = (from_attributes(i) for i in owed["unique"])
    return [retired_card_from_item(i) for i in unique if i.get("itemType") == "card"]


def unstored_ledger(item: Item) -> list[Item]:
    """The ledger entries a stored wallet version carries or owes: those that may not have their own item yet."""
    return [*carried_ledger(item), *owed_ledger(item)]


def ledger_document(owed: Owed) -> bytes | None:
    """The ledger entries among what a change writes, as a wallet written in one transaction carries them, for the
    revenue projection, which reads each wallet version's entries from the table's stream (a wallet-first version
    has them in `owed`)."""
    entries = [to_attributes(i) for i in owed.puts if i.get("itemType") == "ledger"]
    return packed(entries) if entries else None


def version_ledger(item: Item) -> list[LedgerEntry]:
    """The ledger entries one wallet version committed, from its item or its stream image."""
    written = _document(item, "ledger")
    if written is not None:  # a version written in one transaction
        return [ledger_from_item(from_attributes(i)) for i in written]
    version = int(item["version"])
    return [ledger_from_item(e) for e in unstored_ledger(item) if entry_version(e) == version]


def _owed(
    customer_id: str,
    version: int,
    at: datetime | None,
    records: list[list[str]],
    unique: list[Item],
    hours: tuple[HourUsage, ...],
    ledger: Sequence[Item],
) -> Owed:
    written = tuple(_usage_record(customer_id, version, at, fields) for fields in records) if at else ()
    page = (ledger_page_item(ledger),) if ledger else ()
    hour_items = (hour_item(customer_id, version, h) for h in hours)
    return Owed(customer_id, version, (*written, *page, *unique, *hour_items))
