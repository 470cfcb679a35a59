"""The alert queue's retries (a message's visibility set to its backoff) and its dead-letter queue."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from prepaid.adapters.sqs import message_attributes
from prepaid.application.ports import QueueUnavailable
from prepaid.application.webhooks import DeadLetter

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

MAX_VISIBILITY = timedelta(hours=12)  # SQS's limit for ChangeMessageVisibility
RESEND_CHANNEL = "resendChannel"
MAX_CHANNEL = 64


class AlertQueue:
    def __init__(self, client: SQSClient, url: str) -> None:
        self._client = client
        self.url = url

    def retry_in(self, receipt_handle: str, wait: timedelta) -> None:
        """Keep a received message invisible for `wait`, counted from now: its next attempt."""
        seconds = int(min(max(wait, timedelta(0)), MAX_VISIBILITY).total_seconds())
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def resend(self, message: str, channel: str) -> None:
        """An event's message again (a resend through the API), for one channel: its `resendChannel` attribute."""
        try:
            self._client.send_message(
                QueueUrl=self.url, MessageBody=message, MessageAttributes=message_attributes({RESEND_CHANNEL: channel})
            )
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailable(self.url, 1) from error


def resend_channel(attributes: dict[str, Any]) -> str | None:
    """The channel a message on the alert queue is a resend for (None: every channel), from its attributes as a
    Lambda SQS record gives them. Anything but a short string is no channel at all."""
    value = (attributes.get(RESEND_CHANNEL) or {}).get("stringValue")
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CHANNEL else None


class SqsAlertDeadLetters:
    """The original message body, unchanged (redrive puts it back on the alert queue as it came), with why it was
    given up on as message attributes: `reason`, `channel`, `attempts`, `status`, `error`, `host`, `eventId`,
    `detailType`, `customerId` (those that apply)."""

    def __init__(self, client: SQSClient, url: str) -> None:
        self._client = client
        self.url = url

    def send(self, message_body: str, letter: DeadLetter) -> None:
        fields: dict[str, Any] = {
            "reason": letter.reason,
            "channel": letter.channel,
            "attempts": letter.attempts or None,
            "status": letter.status,
            "error": letter.error,
            "host": letter.host,
            "eventId": letter.event_id,
            "detailType": letter.detail_type,
            "customerId": letter.customer_id,
        }
        attributes = message_attributes(fields)
        self._client.send_message(QueueUrl=self.url, MessageBody=message_body, MessageAttributes=attributes)
