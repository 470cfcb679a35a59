"""DynamoDB storage: every wallet change is one `TransactWriteItems`."""

from __future__ import annotations

import base64
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from prepaid import parallel
from prepaid.adapters import items
from prepaid.adapters.items import from_attributes, to_attributes
from prepaid.application.changes import items_written
from prepaid.application.ports import (
    ChangeTooLarge,
    EventsAlreadyRecorded,
    IdempotencyRace,
    IdempotencyRecord,
    RecordedEvent,
    StoredEvent,
    VersionConflict,
    WalletChange,
)
from prepaid.domain.card import Card, Metadata
from prepaid.domain.ledger import LedgerEntry
from prepaid.domain.price_book import PriceBook
from prepaid.domain.rate_card import RateCard
from prepaid.domain.usage_hours import HourUsage
from prepaid.domain.wallet import Wallet

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: names and values in UTF-8, numbers ~1 byte per 2 digits, 3 bytes per
    list or map plus 1 per element (docs: "Item sizes and formats")."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_bytes(data)
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_bytes(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def _number_bytes(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    return math.ceil(len(digits) / 2) + 1


def _remember(memory: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)


def query_pages(client: DynamoDBClient, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a Query finds, read a page at a time as the caller goes."""
    while True:
        page = client.query(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


log = logging.getLogger(__name__)

BATCH_GET_KEYS = 100
BATCH_WRITE_ITEMS = 25
MAX_TRANSACTION_ITEMS = 100
BATCH_TRIES = 4
# DynamoDB's item limit is 400 KB; a change whose wallet item would pass this is cut (`ChangeTooLarge`).
MAX_WALLET_BYTES = 350 * 1024
# The most ledger entries a wallet carries before it writes them as a page: a bound on what each read of the
# ledger route takes from the wallet item
LEDGER_TAIL_ENTRIES = 32
RECORD_PROJECTION = "PK, SK, customerId, meter, quantity"
PAGE_RACES = 3  # wallet reads when a page it names was dropped by a newer version meanwhile
REMEMBERED = 1024  # wallet versions a process keeps in mind


@dataclass(frozen=True)
class _Named:
    """What a wallet version holds outside its own attributes: the card pages it names, and the ledger entries it
    carries (stored nowhere else yet)."""

    pages: tuple[str, ...] = ()
    ledger: tuple[items.Item, ...] = ()


def _named_in(item: items.Item) -> _Named:
    return _Named(items.page_ids(item), items.carried_ledger(item))


def write_units(item: dict[str, Any]) -> int:
    """The write units a `PutItem` of `item` costs (one per started KB)."""
    return max(1, math.ceil(item_bytes(item) / 1024))


@dataclass(frozen=True)
class _Loaded:
    """A wallet version as this process read it: what it owes (None when known to owe nothing) and the usage
    records read with it (`asked`: the event ids looked up)."""

    owed: items.Owed | None
    asked: frozenset[str]
    records: dict[str, RecordedEvent]


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _record_key(event_id: str) -> dict[str, Any]:
    return _key(items.usage_event_pk(event_id), items.EVENT_SK)


def _until_taken(send: Callable[[Any], Any], request: Any) -> Any:
    """Send a batch request until DynamoDB has taken all of it, backing off as the SDKs do when it leaves some
    (throttled); `send` returns what was left. What is still left after a few tries is returned (else None)."""
    for attempt in range(BATCH_TRIES):
        if attempt:
            time.sleep(0.01 * 2**attempt)
        request = send(request)
        if not request:
            return None
    return request


def _is_stored(item: items.Item, stored: dict[tuple[str, str], items.Item]) -> bool:
    """The item is in the table as this commit wrote it (a usage record: of this customer and wallet version, not
    another customer's record of the same event id)."""
    found = stored.get((item["PK"], item["SK"]))
    if found is None:
        return False
    if item["SK"] != items.EVENT_SK:
        return True
    return bool(found.get("customerId") == item["customerId"] and int(found["version"]) == int(item["version"]))


class UnreadRecords(Exception):
    """DynamoDB left some usage records unread after a few tries."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} event records not read")


class StorageError(Exception):
    """DynamoDB refused a write for a reason that is not a lost race."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


class DynamoWalletStore:
    """Wallets, ledger, outbox and idempotency records in one table.

    A change is one conditional `PutItem` of the wallet, carrying what the change still owes (its usage records,
    ledger entries, events, retired cards, hourly usage); those are written right after, each so that writing it
    again changes nothing, and the next change of the wallet makes sure they are stored before it replaces them
    (docs/drawdown-design.md). A change with an idempotency record (a purchase) is one `TransactWriteItems`, as is
    every change when `one_transaction` (the naive design the benchmark compares against). `reads_back`: what an
    earlier version owes is read back and only what is missing written (the drawdown's store, which writes most
    wallet versions); otherwise it is written again whole, unless this process wrote it.

    `version_condition=False` exists only so a test can show that the concurrency test catches lost updates.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        version_condition: bool = True,
        one_transaction: bool = False,
        reads_back: bool = False,
    ) -> None:
        self._client = client
        self._reads_back = reads_back
        self._table = table_name
        self._version_condition = version_condition
        self._one_transaction = one_transaction
        # Wallet versions this process read (with what they owe and the usage records read with them), and those
        # it knows to owe nothing any more.
        self._loaded: OrderedDict[tuple[str, int], _Loaded] = OrderedDict()
        self._settled: OrderedDict[tuple[str, int], None] = OrderedDict()
        # The card pages each wallet version read or written here names and the ledger entries it carries, and the
        # pages' cards (a page never changes, so what was read once stays true)
        self._named: OrderedDict[tuple[str, int], _Named] = OrderedDict()
        self._pages: OrderedDict[tuple[str, str], dict[str, Card]] = OrderedDict()

    def forget(self) -> None:
        """Know no more than a new execution environment does (the benchmark's steady traffic, where each commit
        of a wallet may be made by another environment)."""
        self._loaded.clear()
        self._settled.clear()
        self._named.clear()
        self._pages.clear()

    def _get(self, pk: str, sk: str) -> items.Item | None:
        response = self._client.get_item(
            TableName=self._table, Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True
        )
        found = response.get("Item")
        return from_attributes(found) if found else None

    def load(self, customer_id: str, usage_ids: Collection[str] = ()) -> Wallet | None:
        """The wallet; with `usage_ids` (events about to be drawn), their usage records are read in the same
        request, for the commit that follows to know which were drawn before."""
        wallet_key = _key(items.wallet_pk(customer_id), items.WALLET_SK)
        ids = list(dict.fromkeys(usage_ids))
        for _ in range(PAGE_RACES):
            if ids:
                found = self._read([wallet_key, *map(_record_key, ids)])
                item = found.pop((wallet_key["PK"]["S"], items.WALLET_SK), None)
            else:
                found, item = {}, self._get(items.wallet_pk(customer_id), items.WALLET_SK)
            if item is None:
                return None
            names = items.page_ids(item)
            written = self._card_pages(customer_id, names)
            if written is not None:
                break
        else:
            raise StorageError(["CardPagesMissing"])
        key = (customer_id, int(item["version"]))
        _remember(self._named, key, _named_in(item))
        if key not in self._settled or ids:
            owed = items.owed_from_item(item) if key not in self._settled else None
            records = [items.recorded_event_from_item(i) for i in found.values()]
            _remember(self._loaded, key, _Loaded(owed, frozenset(ids), {r.event_id: r for r in records}))
        return items.wallet_from_item(item, written)

    def _card_pages(self, customer_id: str, page_ids: Sequence[str]) -> dict[str, dict[str, Card]] | None:
        """The cards of each page (known here, else read, eventually consistent first: a page is written before
        any wallet names it, and never changed); None when one is gone (a newer wallet version dropped it)."""
        missing = [p for p in page_ids if (customer_id, p) not in self._pages]
        for consistent in (False, True):
            if not missing:
                break
            keys = [_key(items.wallet_pk(customer_id), items.card_page_sk(p)) for p in missing]
            for (_, sk), item in self._read(keys, consistent=consistent).items():
                _remember(self._pages, (customer_id, sk.removeprefix("P#")), items.card_page_from_item(item))
            missing = [p for p in missing if (customer_id, p) not in self._pages]
        if missing:
            return None
        return {p: self._pages[(customer_id, p)] for p in page_ids}

    def _layout(self, change: WalletChange) -> tuple[items.CardLayout, tuple[items.Item, ...]]:
        """Where the new version's cards go, from the pages the version it replaces names (read here when this
        process did not read that version), writing the new pages it needs first: a version never names a page
        that is not stored. And the ledger entries the version it replaces carries."""
        customer_id = change.wallet.customer_id
        if change.expected_version == 0:
            named = _Named()
        elif (known := self._named.get((customer_id, change.expected_version))) is not None:
            named = known
        else:
            item = self._get(items.wallet_pk(customer_id), items.WALLET_SK)
            if item is None or int(item["version"]) != change.expected_version:
                raise VersionConflict()
            named = _named_in(item)
            _remember(self._named, (customer_id, change.expected_version), named)
        written = self._card_pages(customer_id, named.pages)
        if written is None:  # dropped by a newer version: this change lost the race
            raise VersionConflict()
        layout = items.card_layout(change.wallet, named.pages, written)
        for page_id, cards in layout.new_pages.items():
            _remember(self._pages, (customer_id, page_id), {c.card_id: c for c in cards})
        self._put_all([items.card_page_item(customer_id, p, cards) for p, cards in layout.new_pages.items()])
        return layout, named.ledger

    def _named_after(self, change: WalletChange, layout: items.CardLayout, carried: tuple[items.Item, ...]) -> None:
        """Remember the new version's pages and the entries it carries, and delete the card pages the version it
        replaced named and it does not: no version that can still commit names them. A crash before the delete
        leaves a page no wallet names, which changes nothing."""
        customer_id, version = change.wallet.customer_id, change.wallet.version
        _remember(self._named, (customer_id, version), _Named(layout.pages, carried))
        before = self._named.get((customer_id, change.expected_version))
        dropped = set(before.pages if before else ()) - set(layout.pages)
        if dropped:
            pk = items.wallet_pk(customer_id)
            deletes = [{"DeleteRequest": {"Key": _key(pk, items.card_page_sk(p))}} for p in dropped]
            try:
                self._write_all(deletes)
            except (ClientError, BotoCoreError, StorageError) as error:
                log.warning("card pages not deleted (%s): left where no wallet names them", error)

    def _read(
        self, keys: Sequence[dict[str, Any]], projection: str | None = None, *, consistent: bool = True
    ) -> dict[tuple[str, str], items.Item]:
        """Items by key (consistently unless told), 100 keys a request (BatchGetItem's limit), until every key is
        read or DynamoDB still leaves some after a few tries (`UnreadRecords`)."""
        reading: dict[str, Any] = {"ConsistentRead": consistent}
        if projection:
            reading["ProjectionExpression"] = projection

        def read_chunk(chunk: Sequence[dict[str, Any]]) -> list[items.Item]:
            got: list[items.Item] = []

            def send(request: Any) -> Any:
                answer = self._client.batch_get_item(RequestItems=request)
                got.extend(from_attributes(raw) for raw in answer["Responses"].get(self._table, []))
                return answer.get("UnprocessedKeys")

            left = _until_taken(send, {self._table: {"Keys": list(chunk), **reading}})
            if left:
                raise UnreadRecords(len(left[self._table]["Keys"]))
            return got

        chunks = [keys[start : start + BATCH_GET_KEYS] for start in range(0, len(keys), BATCH_GET_KEYS)]
        return {(i["PK"], i["SK"]): i for part in parallel.side_by_side(read_chunk, chunks) for i in part}

    def idempotency_record(self, customer_id: str, scope: str, key: str) -> IdempotencyRecord | None:
        item = self._get(items.idempotency_pk(customer_id, scope, key), items.IDEMPOTENCY_SK)
        return items.idempotency_from_item(scope, key, item) if item else None

    def recorded_events(self, event_ids: Collection[str]) -> dict[str, RecordedEvent]:
        """Events already drawn, read 100 keys at a time (BatchGetItem's limit), eventually consistent: this is
        the intake's early answer; the drawdown's own consistent read stays the authority. So keys DynamoDB leaves
        unprocessed after a few tries, or a read that fails, leave their events to be sorted out at drawdown
        (logged), rather than failing the request."""
        keys = [_record_key(i) for i in dict.fromkeys(event_ids)]
        try:
            found = self._read(keys, RECORD_PROJECTION, consistent=False).values()
            return {r.event_id: r for r in map(items.recorded_event_from_item, found)}
        except (ClientError, BotoCoreError, UnreadRecords) as error:
            log.warning("event records not read (%s); the drawdown will sort them out", error)
            return {}

    def committed_event(self, event_id: str) -> StoredEvent | None:
        item = self._get(items.outbox_pk(event_id), items.OUTBOX_SK)
        return items.outbox_from_item(item) if item else None

    def retired_card(self, customer_id: str, card_id: str) -> Card | None:
        item = self._get(items.wallet_pk(customer_id), items.retired_card_sk(card_id))
        return items.retired_card_from_item(item) if item else None

    def card_notes(self, customer_id: str, card_ids: Collection[str]) -> dict[str, Metadata]:
        pk = items.wallet_pk(customer_id)
        found = self._read([_key(pk, items.card_note_sk(card_id)) for card_id in dict.fromkeys(card_ids)])
        return {item["cardId"]: items.card_note_from_item(item) for item in found.values()}

    def every_card(self, customer_id: str) -> list[Card] | None:
        """The live cards of the wallet's current version (on its item and its pages), and every retired card: those
        stored as their own items (one Query of the wallet's `C#` range) and those the version still owes. The
        wallet is read first: a card retired between the two reads is listed once, retired."""
        item, written = self._wallet_with_pages(customer_id)
        if item is None:
            return None
        cards = dict(items.wallet_from_item(item, written).cards)
        pk, prefix = items.wallet_pk(customer_id), items.RETIRED_CARD_PREFIX
        retired = (items.retired_card_from_item(i) for i in self._query(pk, prefix, prefix + "~"))  # "~" after ids
        cards.update((c.card_id, c) for c in (*retired, *items.owed_retired_cards(item)))
        return list(cards.values())

    def _wallet_with_pages(self, customer_id: str) -> tuple[items.Item | None, items.CardPages]:
        """The wallet item and the cards of the pages it names (read again should a newer version drop a page)."""
        for _ in range(PAGE_RACES):
            item = self._get(items.wallet_pk(customer_id), items.WALLET_SK)
            if item is None:
                return None, {}
            written = self._card_pages(customer_id, items.page_ids(item))
            if written is not None:
                return item, written
        raise StorageError(["CardPagesMissing"])

    def wallets_after(self, after: str | None, count: int) -> list[Wallet]:
        """Up to `count` wallets in customer id order, after `after`: their keys from the sparse `WalletIndex`
        (eventually consistent: a wallet created a moment ago may be missing), then each wallet read as `load`
        reads it."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": items.WALLET_INDEX,
            "KeyConditionExpression": "#list = :wallets",
            "ExpressionAttributeNames": {"#list": items.WALLET_LIST_KEY},
            "ExpressionAttributeValues": {":wallets": {"S": items.WALLET_LIST}},
            "Limit": count,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {
                items.WALLET_LIST_KEY: {"S": items.WALLET_LIST},
                **_key(items.wallet_pk(after), items.WALLET_SK),
            }
        customers = [
            i["PK"]["S"].removeprefix(items.WALLET_PREFIX) for i in itertools.islice(self._paged_query(kwargs), count)
        ]
        keys = [_key(items.wallet_pk(c), items.WALLET_SK) for c in customers]
        found = self._read(keys)
        wallets = []
        for customer_id in customers:
            item = found.get((items.wallet_pk(customer_id), items.WALLET_SK))
            if item is None:  # never so: a wallet is never deleted
                continue
            written = self._card_pages(customer_id, items.page_ids(item))
            # a page dropped by a newer version meanwhile: that wallet is read again
            wallet = items.wallet_from_item(item, written) if written is not None else self.load(customer_id)
            if wallet is not None:
                wallets.append(wallet)
        return wallets

    def commit(self, change: WalletChange) -> None:
        customer_id = change.wallet.customer_id
        if change.expected_version:
            self._settle(customer_id, change.expected_version)
        if change.idempotency is not None or self._one_transaction:
            self._commit_in_one_transaction(change)
        else:
            self._commit_wallet_first(change)

    def _settle(self, customer_id: str, version: int) -> None:
        """Make sure what `version` of the wallet owes is stored, before a change replaces it (the invariant the
        exactly-once rests on: every usage record of a version older than the wallet's is in the table). Known
        here when this process wrote it; otherwise read back, and what is missing written."""
        key = (customer_id, version)
        if key in self._settled:
            return
        loaded = self._loaded.get(key)
        owed = loaded.owed if loaded is not None else None
        if owed is None:  # a change decided from a wallet this process did not read
            wallet_key = _key(items.wallet_pk(customer_id), items.WALLET_SK)
            item = self._read([wallet_key]).get((wallet_key["PK"]["S"], items.WALLET_SK))
            if item is None or int(item["version"]) != version:
                raise VersionConflict()
            owed = items.owed_from_item(item)
            _remember(self._named, key, _named_in(item))  # for the change's layout: no second read
        missing = list(owed.puts)
        if missing and self._reads_back:
            # Eventually consistent, at half the read units: an item such a read returns is stored, and one it
            # misses (written a moment ago) is written again, which changes nothing
            keys = [_key(i["PK"], i["SK"]) for i in owed.puts]
            stored = self._read(keys, "PK, SK, customerId, version", consistent=False)
            missing = [i for i in owed.puts if not _is_stored(i, stored)]
        self._put_all(missing)
        _remember(self._settled, key, None)

    def _commit_wallet_first(self, change: WalletChange) -> None:
        wallet = change.wallet
        known = self._drawn_before(change)
        if known:
            raise EventsAlreadyRecorded(known)
        layout, carried = self._layout(change)
        owed, item, carrying, ahead = self._carrying(change, layout, carried, items.change_ledger(change))
        put: dict[str, Any] = {"TableName": self._table, "Item": item, **self._version_check(change)}
        if item_bytes(put["Item"]) > MAX_WALLET_BYTES:
            raise ChangeTooLarge()
        if ahead:
            # Entries the version this one replaces carries are committed: stored now as their page, they leave
            # the wallet item with this put. Should the put fail, the page holds entries a wallet still carries,
            # which readers list once, and the page written when they next leave has the same key and more.
            self._put_all([items.ledger_page_item(ahead)])
        try:
            self._client.put_item(**put)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise VersionConflict() from error
            raise
        self._named_after(change, layout, carrying)
        self._put_all(owed.puts)
        _remember(self._settled, (wallet.customer_id, wallet.version), None)

    @staticmethod
    def _carrying(
        change: WalletChange, layout: items.CardLayout, carried: tuple[items.Item, ...], own: tuple[items.Item, ...]
    ) -> tuple[items.Owed, dict[str, Any], tuple[items.Item, ...], tuple[items.Item, ...]]:
        """The wallet item to write, what it owes, the ledger entries it carries, and those to store as a page
        before it (`carried`, the entries of the version it replaces, when dropping them costs its write a unit
        less). The entries (`carried`, then the change's `own`) stay on the wallet while that costs the write no
        unit more and they are few (`LEDGER_TAIL_ENTRIES`); else the version's own entries stay and the carried
        ones go ahead as a page; only a change with more entries than a tail holds owes them, as one page item.
        Most commits of a steady trickle so write no ledger item of their own, and none writes a wallet item
        over a KB for want of paging (a page it owed made the item, and the next one's write, cost a unit more)."""
        wallet = items.wallet_item(change.wallet, layout)
        ledger = (*carried, *own)
        if len(own) <= LEDGER_TAIL_ENTRIES:
            plain_owed, plain = items.owed_of(change, ())

            def carrying(entries: tuple[items.Item, ...]) -> dict[str, Any]:
                return to_attributes({**wallet, "owed": plain, "ledgerTail": items.ledger_tail(entries)})

            kept = carrying(ledger) if len(ledger) <= LEDGER_TAIL_ENTRIES else None
            if kept is not None and (not carried or write_units(kept) == 1):
                return plain_owed, kept, ledger, ()
            lighter = carrying(own)
            if kept is not None and write_units(kept) <= write_units(lighter):
                return plain_owed, kept, ledger, ()
            return plain_owed, lighter, own, carried
        owed, attribute = items.owed_of(change, ledger)
        return owed, to_attributes({**wallet, "owed": attribute}), (), ()

    def _drawn_before(self, change: WalletChange) -> list[RecordedEvent]:
        """The change's usage events that were drawn before: from the records read with the wallet, and what that
        wallet version itself owed; else read now (the previous version's writes are stored by now)."""
        ids = [d.usage.event_id for d in change.usage]
        if not ids:
            return []
        loaded = self._loaded.pop((change.wallet.customer_id, change.expected_version), None)
        if loaded is None or not loaded.asked.issuperset(ids):
            found = self._read([_record_key(i) for i in ids], RECORD_PROJECTION).values()
            return [items.recorded_event_from_item(i) for i in found]
        known = dict(loaded.records)
        if loaded.owed is not None:
            for put in loaded.owed.puts:
                if put["SK"] == items.EVENT_SK:
                    known.setdefault(put["PK"].removeprefix("E#"), items.recorded_event_from_item(put))
        return [known[i] for i in dict.fromkeys(ids) if i in known]

    def _version_check(self, change: WalletChange) -> dict[str, Any]:
        if change.expected_version == 0:
            return {"ConditionExpression": "attribute_not_exists(PK)"}
        if not self._version_condition:
            return {}
        return {
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeValues": {":expected": {"N": str(change.expected_version)}},
        }

    def _put_all(self, puts: Sequence[items.Item]) -> None:
        """Every item written (or raise: the next change writes them again)."""
        self._write_all([{"PutRequest": {"Item": to_attributes(i)}} for i in puts])

    def _write_all(self, requests: Sequence[dict[str, Any]]) -> None:
        """`BatchWriteItem`, 25 requests each, side by side, until DynamoDB has taken every one (or raise)."""
        chunks = [requests[s : s + BATCH_WRITE_ITEMS] for s in range(0, len(requests), BATCH_WRITE_ITEMS)]
        parallel.side_by_side(self._write_chunk, chunks)

    def _write_chunk(self, chunk: Sequence[dict[str, Any]]) -> None:
        def send(request: Any) -> Any:
            return self._client.batch_write_item(RequestItems=request).get("UnprocessedItems")

        if _until_taken(send, {self._table: list(chunk)}):
            raise StorageError(["UnprocessedItems"])

    def _commit_in_one_transaction(self, change: WalletChange) -> None:
        wallet = change.wallet
        customer_id = wallet.customer_id
        layout, carried = self._layout(change)
        owed = items.owed_items(change, carried)
        if items_written(change) + (1 if carried else 0) > MAX_TRANSACTION_ITEMS:
            raise ChangeTooLarge()
        put_wallet: dict[str, Any] = {
            "TableName": self._table,
            "Item": to_attributes({**items.wallet_item(wallet, layout), "ledger": items.ledger_document(owed)}),
            **self._version_check(change),
        }
        transaction: list[dict[str, Any]] = [{"Put": put_wallet}]
        usage_indexes = []
        for item in owed.puts:
            if item.get("itemType") == items.LEDGER_PAGE:
                # Not conditional: a commit of the same version written wallet first may have stored this page
                # ahead of its wallet put (the same entries under the same key, or fewer if it lost its race)
                transaction.append({"Put": {"TableName": self._table, "Item": to_attributes(item)}})
                continue
            put = self._new_item(item)
            if item["SK"] == items.EVENT_SK:
                put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"  # a duplicate is told by what is stored
                usage_indexes.append(len(transaction))
            transaction.append({"Put": put})
        idempotency_index = None
        if change.idempotency is not None:
            idempotency_index = len(transaction)
            item = items.idempotency_item(customer_id, change.idempotency, change.at)
            transaction.append({"Put": self._new_item(item)})
        self._transact(transaction, idempotency_index, usage_indexes)
        self._named_after(change, layout, ())
        _remember(self._settled, (customer_id, wallet.version), None)

    def stored_hours(self, customer_id: str, start: datetime, end: datetime) -> list[HourUsage]:
        """The stored hourly usage items from `start` to `end` (the wallet's open hour is not among them)."""
        hours: dict[datetime, HourUsage] = {}
        # an hour's items sort from `H#<hour>` to `H#<hour>#<version>`: "~" sorts after both
        for item in self._query(items.hours_pk(customer_id), items.hour_sk(start), items.hour_sk(end) + "~"):
            hour = items.hour_from_item(item)
            hours[hour.hour] = hours[hour.hour].merged(hour) if hour.hour in hours else hour
        return [h for h in hours.values() if start <= h.hour <= end]

    def _query(
        self, pk: str, low: str, high: str, *, newest_first: bool = False, page_size: int | None = None
    ) -> Iterator[items.Item]:
        """Items of a partition with `low <= SK <= high`, in key order (or reversed), read a page at a time (of
        `page_size` items when given, else as many as fit DynamoDB's 1 MB)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }
        if page_size is not None:
            kwargs["Limit"] = page_size
        yield from (from_attributes(i) for i in self._paged_query(kwargs))

    def _paged_query(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return query_pages(self._client, kwargs)

    def ledger_entries(self, customer_id: str, before: str | None, page_size: int) -> Iterator[tuple[str, LedgerEntry]]:
        """(entry id, entry) newest first; after the entry `before` when given (its id names its sort key); read
        `page_size` items per Query as the caller goes on."""
        low, high = items.LEDGER_PREFIX, items.LEDGER_PREFIX + (before if before is not None else "~")
        pk = items.wallet_pk(customer_id)
        # The newest entries may be carried by the wallet, or still owed by it (written a moment after it, or after
        # a crash by the next change): they count as recorded, and come first, being of the newest versions.
        unstored = sorted(
            (i for i in self._unstored_ledger(customer_id) if low <= i["SK"] < high),
            key=lambda i: i["SK"],
            reverse=True,
        )
        yield from ((i["entryId"], items.ledger_from_item(i)) for i in unstored)
        listed = {i["SK"] for i in unstored}
        for item in self._query(pk, low, high, newest_first=True, page_size=page_size):
            for entry in reversed(items.ledger_entries_of(item)):
                if entry["SK"] < high and entry["SK"] not in listed:
                    yield entry["entryId"], items.ledger_from_item(entry)

    def _unstored_ledger(self, customer_id: str) -> list[items.Item]:
        response = self._client.get_item(
            TableName=self._table,
            Key=_key(items.wallet_pk(customer_id), items.WALLET_SK),
            ProjectionExpression="owed, ledgerTail, version",
            ConsistentRead=True,
        )
        return items.unstored_ledger(from_attributes(response.get("Item", {})))

    def customers_granted_on(self, key: int) -> Iterator[str]:
        """Customers whose recurring grant has that index key (the sparse `RecurringIndex`)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": items.RECURRING_INDEX,
            "KeyConditionExpression": "recurringDay = :day",
            "ExpressionAttributeValues": {":day": {"N": str(key)}},
        }
        yield from (i["PK"]["S"].removeprefix(items.WALLET_PREFIX) for i in self._paged_query(kwargs))

    def exists(self, customer_id: str) -> bool:
        return self._get(items.wallet_pk(customer_id), items.WALLET_SK) is not None

    def _new_item(self, item: items.Item) -> dict[str, Any]:
        # Immutable records: a write never replaces one.
        return {
            "TableName": self._table,
            "Item": to_attributes(item),
            "ConditionExpression": "attribute_not_exists(PK)",
        }

    def _transact(
        self,
        transaction: list[dict[str, Any]],
        idempotency_index: int | None = None,
        usage_indexes: Sequence[int] = (),
    ) -> None:
        try:
            self._client.transact_write_items(TransactItems=transaction)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            cancellations = list(error.response.get("CancellationReasons", []))
            reasons = [r.get("Code", "None") for r in cancellations]
            recorded = [
                items.recorded_event_from_item(from_attributes(cancellations[i]["Item"]))  # type: ignore[arg-type]
                for i in usage_indexes
                if reasons[i] == "ConditionalCheckFailed" and cancellations[i].get("Item")
            ]
            if recorded:
                raise EventsAlreadyRecorded(recorded) from error
            if idempotency_index is not None and reasons[idempotency_index : idempotency_index + 1] == [
                "ConditionalCheckFailed"
            ]:
                raise IdempotencyRace() from error
            if reasons[:1] == ["ConditionalCheckFailed"] or "TransactionConflict" in reasons:
                raise VersionConflict() from error
            raise StorageError(reasons) from error


class DynamoCatalogStore:
    """Price book and rate card, each one versioned item."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _get(self, sk: str) -> items.Item | None:
        response = self._client.get_item(
            TableName=self._table, Key={"PK": {"S": items.CATALOG_PK}, "SK": {"S": sk}}, ConsistentRead=True
        )
        found = response.get("Item")
        return from_attributes(found) if found else None

    def _put_versioned(self, item: items.Item) -> None:
        version = int(item["version"])
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if version == 1
            else {
                "ConditionExpression": "version = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(version - 1)}},
            }
        )
        try:
            self._client.put_item(TableName=self._table, Item=to_attributes(item), **condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise VersionConflict() from error
            raise

    def price_book(self) -> PriceBook | None:
        item = self._get(items.PRICE_BOOK_SK)
        return items.price_book_from_item(item) if item else None

    def save_price_book(self, book: PriceBook) -> None:
        self._put_versioned(items.price_book_item(book))

    def rate_card(self) -> RateCard | None:
        item = self._get(items.RATE_CARD_SK)
        return items.rate_card_from_item(item) if item else None

    def save_rate_card(self, card: RateCard) -> None:
        self._put_versioned(items.rate_card_item(card))
