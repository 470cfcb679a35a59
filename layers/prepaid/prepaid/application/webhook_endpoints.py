"""Webhook endpoints and their deliveries: the account-level endpoints (created, changed, removed, each with a
`whsec_` secret of its own in Secrets Manager), each wallet's webhook secret, the deliveries of either, newest
first, and resending one delivery."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from prepaid.application.cursors import after_text, check_limit, query_key
from prepaid.application.ports import Clock, IdFactory, QueueUnavailable, WalletStore
from prepaid.application.provenance import CommittedEvents
from prepaid.application.signing import Signer
from prepaid.application.wallets import check_customer_id
from prepaid.application.webhooks import (
    WEBHOOK,
    Addressed,
    DeliveryConflict,
    DeliveryLog,
    endpoint_channel,
    wallet_endpoint,
    wallet_webhook_secret,
)
from prepaid.domain.alerts import Alert, Delivery, DeliveryState, alert_from_envelope, in_progress, queued
from prepaid.domain.errors import (
    DeliveryInProgress,
    DeliveryNotFound,
    EndpointBusy,
    EndpointNotFound,
    EventNoLongerKept,
    InvalidRequest,
    NotResendable,
    TooManyEndpoints,
    WalletNotFound,
)
from prepaid.domain.events import DETAIL_TYPES
from prepaid.domain.rules import EVENT_ID
from prepaid.domain.wallet import Wallet
from prepaid.domain.webhook_endpoints import ENDPOINT_ID, MAX_DESCRIPTION, MAX_ENDPOINTS, WebhookEndpoint
from prepaid.domain.webhook_urls import webhook_url_refusal

MAX_PAGE = 100
DEFAULT_PAGE = 50
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64
UPDATE_TRIES = 5
RESEND_LEASE = timedelta(minutes=15)  # a resend whose message never arrives may be asked for again after this


# -- ports ---------------------------------------------------------------------------------------------------------


class EndpointChanged(Exception):
    """The endpoint changed (or went) since it was read."""


class EndpointStore(Protocol):
    def endpoints(self) -> list[WebhookEndpoint]: ...

    def get(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    def add(self, endpoint: WebhookEndpoint) -> None:
        """Store a new endpoint (its id is new)."""
        ...

    def replace(self, endpoint: WebhookEndpoint) -> None:
        """Store `endpoint` if the stored one has `endpoint.version - 1`, else raise `EndpointChanged`."""
        ...

    def delete(self, endpoint_id: str) -> None: ...


class EndpointSecrets(Protocol):
    def create(self, endpoint_id: str, secret: str) -> None: ...

    def get(self, endpoint_id: str) -> str: ...

    def delete(self, endpoint_id: str) -> None: ...


@dataclass(frozen=True)
class DeliveryView:
    """One event's delivery to one endpoint, as the deliveries listing shows it."""

    event_id: str
    event_type: str
    customer_id: str
    event_time: datetime
    state: DeliveryState
    attempts: int
    last_failure: str | None
    next_attempt_at: datetime | None  # a failed delivery's next retry


@dataclass(frozen=True)
class StoredDelivery:
    delivery: Delivery
    addressed: Addressed


class DeliveryHistory(DeliveryLog, Protocol):
    def page(self, endpoint: str, limit: int, after: str | None) -> tuple[list[DeliveryView], str | None]:
        """Up to `limit` deliveries listed under `endpoint`, newest event first, after the position `after` (a
        value this method returned); and the position of the last one when there may be more."""
        ...

    def stored(self, event_id: str, channel: str) -> StoredDelivery | None: ...


class ResendQueue(Protocol):
    def resend(self, message: str, channel: str) -> None:
        """Put an event's message back on the alert queue, for `channel` only."""
        ...


# -- the use case --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryView]
    next_cursor: str | None


KEEP: Any = object()  # an update's "leave this as it is"


class WebhookEndpoints:
    def __init__(
        self,
        store: EndpointStore,
        endpoint_secrets: EndpointSecrets,
        history: DeliveryHistory,
        queue: ResendQueue,
        wallets: WalletStore,
        wallet_key: Callable[[], bytes],
        cursor_signer: Callable[[], Signer],
        clock: Clock,
        new_id: IdFactory,
        committed: CommittedEvents,
        *,
        allow_local_http: bool = False,
    ) -> None:
        self._store = store
        self._committed = committed
        self._secrets = endpoint_secrets
        self._history = history
        self._queue = queue
        self._wallets = wallets
        self._wallet_key = wallet_key  # the deployment's webhook key, from which each wallet's secret is derived
        self._signer = cursor_signer
        self._clock = clock
        self._new_id = new_id
        self._allow_local_http = allow_local_http

    # -- account-level endpoints ---------------------------------------------------------------------------------

    def create(
        self, url: str, event_types: Collection[str] | None, description: str = ""
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its secret (made first: an endpoint never exists without one)."""
        endpoint = WebhookEndpoint(
            endpoint_id=f"ep_{self._new_id()}",
            url=self._checked_url(url),
            event_types=_checked_types(event_types),
            description=_checked_description(description),
            created_at=self._clock(),
        )
        if len(self._store.endpoints()) >= MAX_ENDPOINTS:
            raise TooManyEndpoints(limit=MAX_ENDPOINTS)
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
        self._secrets.create(endpoint.endpoint_id, secret)
        try:
            self._store.add(endpoint)
        except BaseException:
            self._secrets.delete(endpoint.endpoint_id)  # no secret left behind for an endpoint that never was
            raise
        return endpoint, secret

    def endpoints(self) -> list[WebhookEndpoint]:
        return sorted(self._store.endpoints(), key=lambda e: (e.created_at, e.endpoint_id))

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        found = self._store.get(endpoint_id) if ENDPOINT_ID.fullmatch(endpoint_id) else None
        if found is None:
            raise EndpointNotFound(endpoint_id=endpoint_id)
        return found

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Collection[str] | None = KEEP,
        description: str | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change what is given (`event_types` None: every type; KEEP: as it is), on the endpoint as last stored."""
        for _ in range(UPDATE_TRIES):
            current = self.endpoint(endpoint_id)
            changed = dataclasses.replace(
                current,
                url=current.url if url is None else self._checked_url(url),
                event_types=current.event_types if event_types is KEEP else _checked_types(event_types),
                description=current.description if description is None else _checked_description(description),
                disabled=current.disabled if disabled is None else disabled,
                version=current.version + 1,
            )
            try:
                self._store.replace(changed)
            except EndpointChanged:  # changed (or removed) since it was read: read it again
                continue
            return changed
        raise EndpointBusy(endpoint_id=endpoint_id)

    def delete(self, endpoint_id: str) -> None:
        """The endpoint gets nothing more; its secret goes (Secrets Manager keeps it 7 days, then deletes it)."""
        self.endpoint(endpoint_id)
        self._store.delete(endpoint_id)
        self._secrets.delete(endpoint_id)

    def secret(self, endpoint_id: str) -> str:
        return self._secrets.get(self.endpoint(endpoint_id).endpoint_id)

    # -- a wallet's webhook --------------------------------------------------------------------------------------

    def wallet_secret(self, customer_id: str) -> str:
        self._wallet_exists(customer_id)
        return wallet_webhook_secret(self._wallet_key(), customer_id)

    # -- deliveries ----------------------------------------------------------------------------------------------

    def deliveries(self, endpoint_id: str, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> DeliveryPage:
        return self._page(self.endpoint(endpoint_id).endpoint_id, limit, cursor)

    def wallet_deliveries(self, customer_id: str, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> DeliveryPage:
        self._wallet_exists(customer_id)
        return self._page(wallet_endpoint(customer_id), limit, cursor)

    def resend(self, endpoint_id: str, event_id: str) -> DeliveryView:
        """Send one event to the endpoint again, as a new round of attempts (a delivered one too)."""
        endpoint = self.endpoint(endpoint_id)

        def refusal(alert: Alert) -> str | None:  # what alerting would find, so a 202 is a round under way
            if endpoint.disabled:
                return "endpoint_disabled"
            return None if endpoint.wants(alert.detail_type, alert.happened_at) else "not_subscribed"

        return self._resend(endpoint.endpoint_id, endpoint_channel(endpoint.endpoint_id), event_id, refusal)

    def wallet_resend(self, customer_id: str, event_id: str) -> DeliveryView:
        url = self._wallet(customer_id).settings.webhook_url
        return self._resend(
            wallet_endpoint(customer_id), WEBHOOK, event_id, lambda _: None if url else "no_webhook_url"
        )

    def _resend(
        self, endpoint: str, channel: str, event_id: str, refusal: Callable[[Alert], str | None]
    ) -> DeliveryView:
        if not EVENT_ID.fullmatch(event_id):
            raise DeliveryNotFound(event_id=event_id)
        stored = self._history.stored(event_id, channel)
        if stored is None or stored.addressed.endpoint != endpoint:  # another wallet's event is not this one's
            raise DeliveryNotFound(event_id=event_id)
        now = self._clock()
        if in_progress(stored.delivery, now):
            raise DeliveryInProgress(event_id=event_id)
        if self._committed.committed_event(event_id) is None:  # alerting would dead-letter it as not committed
            raise EventNoLongerKept(event_id=event_id)
        reason = refusal(stored.addressed.alert)
        if reason is not None:
            raise NotResendable(event_id=event_id, reason=reason)
        again = queued(stored.delivery, f"resend-{self._new_id()}", now + RESEND_LEASE)
        try:
            self._history.save(again, stored.addressed)
        except DeliveryConflict:  # a retry or another resend got there first
            raise DeliveryInProgress(event_id=event_id) from None
        try:
            self._queue.resend(stored.addressed.message, channel)
        except QueueUnavailable:  # not queued: the delivery is as it was, so the same request may be sent again
            with contextlib.suppress(DeliveryConflict):
                self._history.save(dataclasses.replace(stored.delivery, version=again.version + 1), stored.addressed)
            raise
        return view_of(again, stored.addressed)

    def _page(self, endpoint: str, limit: int, cursor: str | None) -> DeliveryPage:
        check_limit(limit, MAX_PAGE)
        query = query_key("deliveries", endpoint)
        after = after_text(self._signer(), cursor, query) if cursor else None
        shown, last = self._history.page(endpoint, limit, after)
        next_cursor = self._signer().seal({"q": query, "after": last}) if last is not None else None
        return DeliveryPage(shown, next_cursor)

    def _wallet_exists(self, customer_id: str) -> None:
        self._wallet(customer_id)

    def _wallet(self, customer_id: str) -> Wallet:
        found = self._wallets.load(check_customer_id(customer_id))
        if found is None:
            raise WalletNotFound(customer_id=customer_id)
        return found

    def _checked_url(self, url: str) -> str:
        refusal = webhook_url_refusal(url, allow_local_http=self._allow_local_http)
        if refusal:
            raise InvalidRequest(field="url", reason=refusal)
        return url


def view_of(delivery: Delivery, addressed: Addressed) -> DeliveryView:
    alert = addressed.alert
    return DeliveryView(
        event_id=alert.event_id,
        event_type=alert.detail_type,
        customer_id=alert.customer_id,
        event_time=alert.happened_at,
        state=delivery.state,
        attempts=delivery.attempts,
        last_failure=delivery.last_failure,
        next_attempt_at=delivery.lease_until if delivery.state is DeliveryState.FAILED else None,
    )


def addressed_from(message: str, endpoint: str | None) -> Addressed:
    """A stored delivery's event again, from the message it keeps (it was an event when it was stored)."""
    return Addressed(alert_from_envelope(json.loads(message)), message, endpoint)


def _checked_types(event_types: Collection[str] | None) -> frozenset[str] | None:
    if event_types is None:
        return None
    chosen = frozenset(event_types)
    if not chosen:
        raise InvalidRequest(field="eventTypes", reason="empty")
    unknown = sorted(chosen - set(DETAIL_TYPES))
    if unknown:
        raise InvalidRequest(field="eventTypes", reason="unknown_event_type")
    return chosen


def _checked_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION or not description.isprintable():
        raise InvalidRequest(field="description", reason=f"printable, at most {MAX_DESCRIPTION} characters")
    return description
