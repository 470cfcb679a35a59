"""Domain errors. Each carries fields, never a formatted message; the HTTP layer maps classes to responses."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code: ClassVar[str] = "domain_error"

    def details(self) -> dict[str, Any]:
        """The error's fields, for logs and error bodies."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:
        return f"{self.code} {self.details()}"


@dataclass(frozen=True)
class InvalidAmount(DomainError):
    code: ClassVar[str] = "invalid_amount"
    field: str
    value: str
    reason: str


@dataclass(frozen=True)
class InvalidRequest(DomainError):
    """A value that is well-formed but not acceptable, such as an expiry in the past."""

    code: ClassVar[str] = "invalid_request"
    field: str
    reason: str


@dataclass(frozen=True)
class UnsupportedCurrency(DomainError):
    """A currency code that is not ISO 4217's (`not_iso_4217`), or one ISO gives no minor unit (`no_minor_unit`)."""

    code: ClassVar[str] = "unsupported_currency"
    currency: str
    reason: str


@dataclass(frozen=True)
class WalletNotFound(DomainError):
    code: ClassVar[str] = "wallet_not_found"
    customer_id: str


@dataclass(frozen=True)
class CardNotFound(DomainError):
    code: ClassVar[str] = "card_not_found"
    customer_id: str
    card_id: str


@dataclass(frozen=True)
class CardNotVoidable(DomainError):
    code: ClassVar[str] = "card_not_voidable"
    card_id: str
    status: str


@dataclass(frozen=True)
class InsufficientCredits(DomainError):
    """A negative adjustment asks for more than the cards it may draw hold (adjustments never make overage)."""

    code: ClassVar[str] = "insufficient_credits"
    requested: str
    available: str


@dataclass(frozen=True)
class CardNotChangeable(DomainError):
    code: ClassVar[str] = "card_not_changeable"
    card_id: str
    status: str


@dataclass(frozen=True)
class CardNotActivatable(DomainError):
    code: ClassVar[str] = "card_not_activatable"
    card_id: str
    status: str


@dataclass(frozen=True)
class PaymentsUnavailable(DomainError):
    """A purchase asks a payment provider this deployment has no credentials for."""

    code: ClassVar[str] = "payments_unavailable"
    collect: str


@dataclass(frozen=True)
class CardNotRefundable(DomainError):
    """A refund asked for a card with no payment to refund through (not paid through Stripe), or still pending."""

    code: ClassVar[str] = "card_not_refundable"
    card_id: str
    reason: str


@dataclass(frozen=True)
class PaymentDeclined(DomainError):
    """The provider declined the charge: the card was voided, nothing was granted."""

    code: ClassVar[str] = "payment_declined"
    card_id: str
    decline_code: str


@dataclass(frozen=True)
class PaymentProviderUnavailable(DomainError):
    """The payment provider did not answer (or refused our credentials): nothing was charged by this attempt; the
    same request again (same idempotency key) retries it safely."""

    code: ClassVar[str] = "payment_provider_unavailable"
    provider: str
    reason: str


@dataclass(frozen=True)
class WebhookRefused(DomainError):
    """A provider's webhook delivery that is not signed with this endpoint's secret (or not an event at all)."""

    code: ClassVar[str] = "webhook_refused"
    reason: str


@dataclass(frozen=True)
class PriceBookMissing(DomainError):
    code: ClassVar[str] = "price_book_missing"


@dataclass(frozen=True)
class RateCardMissing(DomainError):
    code: ClassVar[str] = "rate_card_missing"


@dataclass(frozen=True)
class TooManyEvents(DomainError):
    code: ClassVar[str] = "too_many_events"
    count: int
    limit: int


@dataclass(frozen=True)
class NoEvents(DomainError):
    """A usage request that carries no event (an empty list is a mistake of the sender, not a no-op)."""

    code: ClassVar[str] = "no_events"


@dataclass(frozen=True)
class TooManyLiveCards(DomainError):
    """A wallet holds as many live cards as it may; a new one would be lost in an item DynamoDB cannot store."""

    code: ClassVar[str] = "too_many_live_cards"
    customer_id: str
    limit: int


@dataclass(frozen=True)
class CurrencyMismatch(DomainError):
    code: ClassVar[str] = "currency_mismatch"
    expected: str
    given: str


@dataclass(frozen=True)
class UnknownMeter(DomainError):
    code: ClassVar[str] = "unknown_meter"
    meter: str


@dataclass(frozen=True)
class IdempotencyKeyReused(DomainError):
    """The same idempotency key came back with a different request."""

    code: ClassVar[str] = "idempotency_key_reused"
    key: str


@dataclass(frozen=True)
class ConcurrentUpdate(DomainError):
    """The wallet kept changing under us beyond the retry budget."""

    code: ClassVar[str] = "concurrent_update"
    customer_id: str
    attempts: int


@dataclass(frozen=True)
class InvalidCursor(DomainError):
    """A page cursor that this deployment did not hand out for this query (altered, forged or reused elsewhere)."""

    code: ClassVar[str] = "invalid_cursor"


@dataclass(frozen=True)
class DashboardTokenRefused(DomainError):
    """A dashboard token that opens nothing: missing, expired, or not one this deployment signed."""

    code: ClassVar[str] = "token_refused"


@dataclass(frozen=True)
class TokenMissing(DashboardTokenRefused):
    code: ClassVar[str] = "token_missing"


@dataclass(frozen=True)
class TokenExpired(DashboardTokenRefused):
    """A genuine dashboard token past its expiry: the SaaS backend must ask for a new link."""

    code: ClassVar[str] = "token_expired"
    expired_at: str


@dataclass(frozen=True)
class InvalidToken(DashboardTokenRefused):
    """A dashboard token altered, forged, or signed for another purpose (such as a page cursor)."""

    code: ClassVar[str] = "invalid_token"


# -- webhook endpoints ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointNotFound(DomainError):
    code: ClassVar[str] = "endpoint_not_found"
    endpoint_id: str


@dataclass(frozen=True)
class EndpointBusy(DomainError):
    """Changed by others on every try of an update."""

    code: ClassVar[str] = "endpoint_busy"
    endpoint_id: str


@dataclass(frozen=True)
class TooManyEndpoints(DomainError):
    code: ClassVar[str] = "too_many_endpoints"
    limit: int


@dataclass(frozen=True)
class DeliveryNotFound(DomainError):
    code: ClassVar[str] = "delivery_not_found"
    event_id: str


@dataclass(frozen=True)
class DeliveryInProgress(DomainError):
    """A resend of a delivery still being tried: its own retries come first."""

    code: ClassVar[str] = "delivery_in_progress"
    event_id: str


@dataclass(frozen=True)
class EventNoLongerKept(DomainError):
    """A resend of an event older than its outbox record (which the alerting function checks every event against)."""

    code: ClassVar[str] = "event_no_longer_kept"
    event_id: str


@dataclass(frozen=True)
class NotResendable(DomainError):
    """A resend the alerting function would not send: the endpoint is disabled or no longer gets that type, or the
    wallet has no webhook URL now."""

    code: ClassVar[str] = "not_resendable"
    event_id: str
    reason: str
