"""Listing every card of a wallet (retired ones included) and every wallet, a page at a time.

Cards come newest first: by `createdAt`, then `cardId`, both descending. Wallets come in customer id order. A cursor
is signed and names the last item handed out, so items added later never shift a page a client is walking through
(a newer card appears on a fresh first page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from prepaid.application.cursors import after_text, check_limit, opened, query_key
from prepaid.application.ports import Clock, WalletStore
from prepaid.application.signing import Signer
from prepaid.application.wallets import check_customer_id
from prepaid.domain.card import Card, CardStatus
from prepaid.domain.errors import InvalidCursor, WalletNotFound
from prepaid.domain.wallet import Wallet

MAX_PAGE = 200
DEFAULT_PAGE = 50


def newest_first(card: Card) -> tuple[datetime, str]:
    """Sort key (descending) of the card listing: creation instant, then card id."""
    return card.created_at, card.card_id


@dataclass(frozen=True)
class CardPage:
    """Cards newest first, as they are at `at` (a live card past its expiry shows as expired), and the cursor of the
    next page (None: the last page)."""

    cards: list[Card]
    at: datetime
    next_cursor: str | None


@dataclass(frozen=True)
class WalletPage:
    """Wallets in customer id order, as they are at `at`, and the cursor of the next page (None: the last page)."""

    wallets: list[Wallet]
    at: datetime
    next_cursor: str | None


def _as_stored(customer_id: str, cards: list[Card]) -> list[Card]:
    return cards


class Listings:
    """Pages of a wallet's cards and of the wallets. `cards_signer` and `wallets_signer` seal the cursors (each for
    its own purpose, so one never opens as the other); `completed` gives a page's cards what the store keeps apart
    from them (their metadata), as the wallet read shows them."""

    def __init__(
        self,
        store: WalletStore,
        cards_signer: Callable[[], Signer],
        wallets_signer: Callable[[], Signer],
        clock: Clock,
        completed: Callable[[str, list[Card]], list[Card]] = _as_stored,
    ) -> None:
        self._store = store
        self._cards_signer = cards_signer
        self._wallets_signer = wallets_signer
        self._clock = clock
        self._completed = completed

    def cards(
        self, customer_id: str, status: CardStatus | None = None, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> CardPage:
        """A page of the wallet's cards, newest first; with `status`, only cards the API shows with it."""
        check_limit(limit, MAX_PAGE)
        check_customer_id(customer_id)
        query = query_key(customer_id, status.value if status else "")
        after = self._card_after(cursor, query) if cursor else None
        every = self._store.every_card(customer_id)
        if every is None:
            raise WalletNotFound(customer_id=customer_id)
        at = self._clock()
        matching = sorted(
            (c for c in every if (status is None or c.status_at(at) is status)), key=newest_first, reverse=True
        )
        if after is not None:
            matching = [c for c in matching if newest_first(c) < after]
        shown = matching[:limit]
        next_cursor = None
        if len(matching) > limit:
            last = shown[-1]
            next_cursor = self._cards_signer().seal({"q": query, "after": [last.created_at.isoformat(), last.card_id]})
        return CardPage(self._completed(customer_id, shown), at, next_cursor)

    def _card_after(self, cursor: str, query: str) -> tuple[datetime, str]:
        payload = opened(self._cards_signer(), cursor, query)
        after = payload.get("after")
        if not (isinstance(after, list) and len(after) == 2 and all(isinstance(part, str) for part in after)):
            raise InvalidCursor()
        try:
            created_at = datetime.fromisoformat(after[0])
        except ValueError:
            raise InvalidCursor() from None
        if created_at.tzinfo is None:
            raise InvalidCursor()
        return created_at, after[1]

    def wallets(self, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> WalletPage:
        """A page of the wallets, in customer id order."""
        check_limit(limit, MAX_PAGE)
        query = query_key("wallets")
        after = None
        if cursor:
            after = after_text(self._wallets_signer(), cursor, query)
        found = self._store.wallets_after(after, limit + 1)  # one more tells whether there is a next page
        shown = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = self._wallets_signer().seal({"q": query, "after": shown[-1].customer_id})
        return WalletPage(shown, self._clock(), next_cursor)
