"""The customer dashboard: short-lived signed links scoped to one wallet, and what the page shows.

A link carries a token `Signer(key, "dashboard").seal({"customerId", "exp"})`, `exp` in whole seconds since the
epoch. The token is the page's only credential: every read opens it again and reads the wallet it names, never a
customer id from the request. The signature is checked before anything else, so an altered token (its customer or
its expiry changed) is refused as forged, not as expired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from prepaid.application.forecasting import Forecasts, ForecastView
from prepaid.application.ports import Clock
from prepaid.application.signing import Signer
from prepaid.application.usage_series import Granularity, SeriesQuery, UsageSeries, UsageSeriesView
from prepaid.application.wallets import PricedQuote, WalletService, WalletView, check_customer_id
from prepaid.domain.errors import InvalidRequest, InvalidToken, TokenExpired, TokenMissing, WalletNotFound
from prepaid.domain.rules import CUSTOMER_ID
from prepaid.domain.text import instant

if TYPE_CHECKING:
    from prepaid.application.listings import CardPage, Listings
    from prepaid.application.payments import CheckoutPage, Payments
    from prepaid.application.ports import CardResult

PURPOSE = "dashboard"
DEFAULT_TTL_SECONDS = 15 * 60
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 24 * 60 * 60
MAX_TOKEN_CHARS = 1024  # a genuine token is ~150 characters; anything far longer is refused unread
FORECAST_HORIZON_DAYS = 30
CARDS_PER_PAGE = 20  # the "All cards" list: a page, then "More cards"


def dashboard_signer(key: bytes) -> Signer:
    """The signer of dashboard tokens (a token of another purpose, such as a page cursor, never opens here)."""
    return Signer(key, PURPOSE)


class WalletExistence(Protocol):
    def exists(self, customer_id: str) -> bool: ...


@dataclass(frozen=True)
class DashboardLink:
    customer_id: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class DashboardData:
    """What the page shows of the one wallet its token names."""

    link: DashboardLink
    wallet: WalletView
    usage: UsageSeriesView
    forecast: ForecastView


class DashboardLinks:
    """Issues dashboard tokens for existing wallets and opens them again."""

    def __init__(self, wallets: WalletExistence, signer: Callable[[], Signer], clock: Clock) -> None:
        self._wallets = wallets
        self._signer = signer  # built on use: the key comes from Secrets Manager through a cache
        self._clock = clock

    def issue(self, customer_id: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> DashboardLink:
        """A token for the wallet of `customer_id`, valid for `ttl_seconds` (60 s to 24 h)."""
        check_customer_id(customer_id)
        if isinstance(ttl_seconds, bool) or not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidRequest(field="ttlSeconds", reason=f"between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")
        if not self._wallets.exists(customer_id):
            raise WalletNotFound(customer_id=customer_id)
        now = self._clock().replace(microsecond=0)
        expires_at = now + timedelta(seconds=ttl_seconds)
        token = self._signer().seal({"customerId": customer_id, "exp": int(expires_at.timestamp())})
        return DashboardLink(customer_id, token, expires_at)

    def open(self, token: str | None) -> DashboardLink:
        """The link a token stands for; refused when missing, not signed by us for dashboards, or expired."""
        if not token:
            raise TokenMissing()
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken()
        payload = self._signer().open(token)
        if payload is None:
            raise InvalidToken()
        customer_id, expires = payload.get("customerId"), payload.get("exp")
        if not isinstance(customer_id, str) or not CUSTOMER_ID.fullmatch(customer_id):
            raise InvalidToken()
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise InvalidToken()
        try:
            expires_at = datetime.fromtimestamp(expires, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidToken() from None
        if self._clock() >= expires_at:
            raise TokenExpired(expired_at=instant(expires_at))
        return DashboardLink(customer_id, token, expires_at)


class Dashboard:
    """What the dashboard page reads, for the one wallet its token names (the existing read use cases, combined)."""

    def __init__(
        self,
        links: DashboardLinks,
        wallets: WalletService,
        usage: UsageSeries,
        forecasts: Forecasts,
        payments: Callable[[], Payments],
        listings: Listings,
    ) -> None:
        self._links = links
        self._listings = listings
        self._wallets = wallets
        self._usage = usage
        self._forecasts = forecasts
        self._payments = payments  # built on use: only a checkout needs the payment provider

    def quote(self, token: str | None, credits: Decimal) -> PricedQuote:
        """The price book's price of `credits`, for a customer about to buy them."""
        self._links.open(token)
        return self._wallets.priced_quote(credits)

    def checkout(
        self, token: str | None, credits: Decimal, success_url: str, cancel_url: str, correlation_id: str | None = None
    ) -> tuple[CardResult, CheckoutPage]:
        """The token's customer buys `credits` on the payment provider's page: a pending card until paid."""
        link = self._links.open(token)
        return self._payments().checkout(link.customer_id, credits, success_url, cancel_url, correlation_id)

    def cards(self, token: str | None, cursor: str | None = None) -> CardPage:
        """Every card of the token's wallet, retired ones included, newest first, a page at a time (a cursor
        handed out for another wallet does not open here: it is tied to the customer it listed)."""
        link = self._links.open(token)
        return self._listings.cards(link.customer_id, limit=CARDS_PER_PAGE, cursor=cursor)

    def data(self, token: str | None) -> DashboardData:
        """The wallet as its customer sees it, usage per meter per day over the last 30 days, and the 30-day
        forecast with the recommended purchase."""
        link = self._links.open(token)
        customer_id = link.customer_id
        return DashboardData(
            link,
            self._wallets.wallet(customer_id),
            self._usage.read(customer_id, SeriesQuery(Granularity.DAY)),
            self._forecasts.forecast(customer_id, FORECAST_HORIZON_DAYS),
        )
