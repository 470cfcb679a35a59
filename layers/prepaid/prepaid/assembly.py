"""The composition root: every client, adapter and use case, built here from the settings, once per execution
environment (on first use, never at import: importing a handler needs no environment).

Handlers ask this module for what they run; nothing else builds a boto3 client. One clock, one id factory, one
reader of the signing key. A new execution environment (or the local stack's `cold_start`) forgets it all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from prepaid.adapters.alert_queue import AlertQueue, SqsAlertDeadLetters
from prepaid.adapters.deliveries import DynamoDeliveryLog, WalletWebhooks
from prepaid.adapters.dynamodb import DynamoCatalogStore, DynamoWalletStore
from prepaid.adapters.eventbridge import EventBridgePublisher
from prepaid.adapters.export_bucket import S3DayExport
from prepaid.adapters.revenue import DynamoRevenueStore
from prepaid.adapters.scheduler import OneTimeSchedules
from prepaid.adapters.secrets import SecretValue
from prepaid.adapters.sns import SnsAlertTopic
from prepaid.adapters.sqs import DeadLetters, DrawdownQueue
from prepaid.adapters.webhook_endpoints import DynamoEndpointStore, EndpointDirectory, SecretsManagerEndpointSecrets
from prepaid.adapters.webhook_http import HttpWebhookSender
from prepaid.application.dashboard import Dashboard, DashboardLinks, dashboard_signer
from prepaid.application.drawdown import DrawdownService
from prepaid.application.export import FinanceExport
from prepaid.application.forecasting import Forecasts
from prepaid.application.ingest import RateCards, UsageIntake, wallet_required
from prepaid.application.ledger import Ledger
from prepaid.application.lifecycle import CreditLifecycle
from prepaid.application.listings import Listings
from prepaid.application.revenue import Revenue
from prepaid.application.signing import Signer
from prepaid.application.usage_series import UsageSeries
from prepaid.application.wallets import WalletService
from prepaid.application.webhook_endpoints import WebhookEndpoints
from prepaid.application.webhooks import AlertingService
from prepaid.config import (
    alerting_settings,
    bus_settings,
    export_settings,
    lifecycle_settings,
    payments_settings,
    signing_settings,
    table_settings,
    usage_settings,
    webhook_endpoint_settings,
    webhook_url_settings,
)
from prepaid.domain.alerts import Backoff

if TYPE_CHECKING:
    from prepaid.adapters.stripe_payments import StripeEvents, StripeGateway, StripeKeys
    from prepaid.application.payments import Payments

LEDGER_CURSOR = "ledger-cursor"  # the purpose a ledger cursor is signed for
CARD_CURSOR = "card-cursor"  # the purpose a card listing's cursor is signed for
WALLET_CURSOR = "wallet-cursor"  # the purpose a wallet listing's cursor is signed for
ATTEMPT_MARGIN_SECONDS = 5  # beside a webhook's own deadline: its delivery record's writes, the secret's read
DELIVERY_CURSOR = "delivery-cursor"  # the purpose a delivery listing's cursor is signed for


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


# -- clients ---------------------------------------------------------------------------------------------------------


@cache
def client(service: str) -> Any:
    """One boto3 client per service and execution environment (from the environment's credentials and region)."""
    return boto3.client(service)  # type: ignore[call-overload]


@cache
def _signing_secret() -> SecretValue:
    return SecretValue(signing_settings().signing_secret_arn, max_age=300)


def signing_key() -> bytes:
    """The deployment's signing secret (cursors, dashboard links), from Secrets Manager, cached five minutes."""
    return _signing_secret()()


# -- stores and queues -----------------------------------------------------------------------------------------------


@cache
def wallet_store() -> DynamoWalletStore:
    return DynamoWalletStore(client("dynamodb"), table_settings().table_name)


@cache
def drawdown_store() -> DynamoWalletStore:
    """The drawdown's own: it writes most wallet versions, so it reads back what an earlier one owes rather than
    write it all again (its role may read usage records)."""
    return DynamoWalletStore(client("dynamodb"), table_settings().table_name, reads_back=True)


@cache
def catalog_store() -> DynamoCatalogStore:
    return DynamoCatalogStore(client("dynamodb"), table_settings().table_name)


@cache
def rate_cards() -> RateCards:
    """The rate card, cached for the environment's lifetime within its time to live."""
    return RateCards(catalog_store(), ttl=usage_settings().rate_card_ttl_seconds)


@cache
def drawdown_queue() -> DrawdownQueue:
    return DrawdownQueue(client("sqs"), usage_settings().drawdown_queue_url)


@cache
def usage_dead_letters() -> DeadLetters:
    """Refused usage, as producers send it (redriven through ingest once the cause is fixed)."""
    return DeadLetters(client("sqs"), usage_settings().dead_letter_queue_url)


@cache
def drawdown_dead_letters() -> DeadLetters:
    """Messages on the drawdown queue that are not what screening writes."""
    settings = usage_settings()
    return DeadLetters(client("sqs"), settings.drawdown_dead_letter_queue_url or settings.dead_letter_queue_url)


# -- use cases -------------------------------------------------------------------------------------------------------


@cache
def wallet_service() -> WalletService:
    return WalletService(wallet_store(), catalog_store(), now, new_id)


@cache
def usage_intake() -> UsageIntake:
    """Screening and rating of `POST /usage`, with the replay look-up (a sender hears at once of events drawn
    before)."""
    known = wallet_required(wallet_store(), usage_settings().unknown_customers)
    return UsageIntake(rate_cards(), now, known, records=wallet_store())


@cache
def queue_intake() -> UsageIntake:
    """Screening and rating of the usage queue's messages (replays are the drawdown's to find: no extra read)."""
    return UsageIntake(rate_cards(), now, wallet_required(wallet_store(), usage_settings().unknown_customers))


def forget_rate_card() -> None:
    """A rate card was just replaced here: screen with it at once (other environments within their TTL)."""
    rate_cards.cache_clear()
    usage_intake.cache_clear()
    queue_intake.cache_clear()


@cache
def drawdown_service() -> DrawdownService:
    create = usage_settings().unknown_customers == "create"
    return DrawdownService(drawdown_store(), now, new_id, create_unknown_wallets=create)


@cache
def ledger() -> Ledger:
    return Ledger(wallet_store(), lambda: Signer(signing_key(), LEDGER_CURSOR))


@cache
def listings() -> Listings:
    cards, wallets = (lambda: Signer(signing_key(), CARD_CURSOR)), (lambda: Signer(signing_key(), WALLET_CURSOR))
    return Listings(wallet_store(), cards, wallets, now, completed=wallet_service().with_notes)


@cache
def revenue() -> Revenue:
    return Revenue(DynamoRevenueStore(client("dynamodb"), table_settings().table_name, now))


@cache
def finance_export() -> FinanceExport:
    """The daily export: the revenue projection's notes of who had entries on a day, ledgers read as the ledger
    route reads them, the day's revenue report, into the export bucket."""
    revenue_store = DynamoRevenueStore(client("dynamodb"), table_settings().table_name, now)
    bucket = S3DayExport(client("s3"), export_settings().bucket)
    return FinanceExport(revenue_store, wallet_store(), Revenue(revenue_store), bucket)


@cache
def usage_series() -> UsageSeries:
    return UsageSeries(wallet_store(), now)


@cache
def forecasts() -> Forecasts:
    return Forecasts(wallet_store(), wallet_service().quote, now)


@cache
def dashboard_links() -> DashboardLinks:
    return DashboardLinks(wallet_store(), lambda: dashboard_signer(signing_key()), now)


@cache
def dashboard() -> Dashboard:
    return Dashboard(dashboard_links(), wallet_service(), usage_series(), forecasts(), payments, listings())


@cache
def publisher() -> EventBridgePublisher:
    return EventBridgePublisher(client("events"), bus_settings().event_bus_name)


@cache
def credit_lifecycle(schedule_target_arn: str | None = None) -> CreditLifecycle:
    """The lifecycle over the wallet table; with a target, able to schedule (the expiry function's own ARN)."""
    store = wallet_store()
    if schedule_target_arn is None:
        return CreditLifecycle(wallet_service(), store, now, new_id, registry=store, committed=store, payments=payments)
    settings = lifecycle_settings()
    scheduler = OneTimeSchedules(
        client("scheduler"), settings.schedule_group, schedule_target_arn, settings.scheduler_role_arn
    )
    return CreditLifecycle(
        wallet_service(),
        store,
        now,
        new_id,
        scheduler=scheduler,
        registry=store,
        committed=store,
        warn_before=settings.expiring_soon_before,
        payments=payments,
    )


# -- payments (the stripe library is imported by the functions that take payments only: it costs a cold start) -------


@cache
def _payments_secret() -> SecretValue | None:
    arn = payments_settings().secret_arn
    return SecretValue(arn, max_age=300) if arn else None


def stripe_keys() -> StripeKeys:
    """The Stripe keys from Secrets Manager (cached five minutes, so keys put there reach every function soon);
    empty when this deployment has none."""
    from prepaid.adapters.stripe_payments import StripeKeys

    secret = _payments_secret()
    return StripeKeys.from_secret(secret()) if secret else StripeKeys("", "")


@cache
def _stripe_gateway(api_key: str) -> StripeGateway:
    import stripe

    from prepaid.adapters.stripe_payments import StripeGateway

    api_base = payments_settings().stripe_api_base
    client = stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else None)
    return StripeGateway(client)


def payment_gateway() -> StripeGateway | None:
    """Stripe, when the deployment has an API key; None: payments off."""
    api_key = stripe_keys().api_key
    return _stripe_gateway(api_key) if api_key else None


@cache
def payments() -> Payments:
    from prepaid.application.payments import Payments

    return Payments(wallet_service(), payment_gateway)


@cache
def stripe_events() -> StripeEvents:
    from prepaid.adapters.stripe_payments import StripeEvents

    return StripeEvents(lambda: stripe_keys().webhook_secret)


@cache
def alerting() -> AlertingService:
    settings = alerting_settings()
    store = wallet_store()
    return AlertingService(
        directory=WalletWebhooks(store),
        log=DynamoDeliveryLog(client("dynamodb"), table_settings().table_name),
        sender=HttpWebhookSender(settings.timeout_seconds, allow_local_http=settings.allow_local_http),
        topic=SnsAlertTopic(client("sns"), settings.topic_arn) if settings.topic_arn else None,
        dead_letters=SqsAlertDeadLetters(client("sqs"), settings.dead_letter_queue_url),
        # the webhook signing key (Secrets Manager), cached for five minutes; never logged
        secret=SecretValue(settings.secret_arn, max_age=300),
        clock=now,
        backoff=Backoff(
            max_attempts=settings.max_attempts,
            base=timedelta(seconds=settings.backoff_base_seconds),
            cap=timedelta(seconds=settings.backoff_max_seconds),
        ),
        endpoints=EndpointDirectory(endpoint_store(), endpoint_secrets()),
        allow_local_http=settings.allow_local_http,
        committed=store,
        attempt_time=timedelta(seconds=settings.timeout_seconds + ATTEMPT_MARGIN_SECONDS),
    )


def endpoint_store() -> DynamoEndpointStore:
    return DynamoEndpointStore(client("dynamodb"), table_settings().table_name)


@cache
def endpoint_secrets() -> SecretsManagerEndpointSecrets:
    return SecretsManagerEndpointSecrets(client("secretsmanager"), webhook_endpoint_settings().secret_prefix)


@cache
def webhook_endpoints() -> WebhookEndpoints:
    """Account-level endpoints, each wallet's webhook secret, deliveries and resends (the webhooks function)."""
    settings = webhook_endpoint_settings()
    return WebhookEndpoints(
        store=endpoint_store(),
        endpoint_secrets=endpoint_secrets(),
        history=DynamoDeliveryLog(client("dynamodb"), table_settings().table_name),
        queue=AlertQueue(client("sqs"), settings.webhook_queue_url),
        wallets=wallet_store(),
        wallet_key=SecretValue(settings.webhook_key_arn, max_age=300),
        cursor_signer=lambda: Signer(signing_key(), DELIVERY_CURSOR),
        clock=now,
        new_id=new_id,
        committed=wallet_store(),
        allow_local_http=webhook_url_settings().allow_local_http,
    )


@cache
def alert_queue() -> AlertQueue:
    return AlertQueue(client("sqs"), alerting_settings().webhook_queue_url)


def allows_local_http() -> bool:
    """Whether plain-http webhooks to this machine may be set (the local stack and the tests only)."""
    return webhook_url_settings().allow_local_http
