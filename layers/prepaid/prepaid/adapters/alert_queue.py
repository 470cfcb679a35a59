"""The alert queue's retries (a message's visibility set to its backoff) and its dead-letter queue."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prepaid.adapters.sqs import message_attributes
from prepaid.application.webhooks import DeadLetter

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

MAX_VISIBILITY = timedelta(hours=12)  # SQS's limit for ChangeMessageVisibility


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
