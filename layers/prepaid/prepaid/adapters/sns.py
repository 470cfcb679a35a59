"""The alert topic: account teams subscribe (email, SQS, chat) and filter on the message attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from prepaid.application.webhooks import SendResult
from prepaid.domain.alerts import Alert

if TYPE_CHECKING:
    from types_boto3_sns import SNSClient

MAX_SUBJECT = 100  # SNS: printable ASCII, under 100 characters


def subject(alert: Alert) -> str:
    text = f"{alert.detail_type}: {alert.customer_id}"
    return text if len(text) < MAX_SUBJECT else text[: MAX_SUBJECT - 2] + "~"


class SnsAlertTopic:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self._topic = topic_arn

    def publish(self, alert: Alert, body: bytes) -> SendResult:
        """Publish the alert's JSON body, with `detailType`, `customerId` and `eventId` as message attributes (for
        subscription filter policies) and a subject for email subscribers."""
        try:
            self._client.publish(
                TopicArn=self._topic,
                Subject=subject(alert),
                Message=body.decode(),
                MessageAttributes={
                    "detailType": {"DataType": "String", "StringValue": alert.detail_type},
                    "customerId": {"DataType": "String", "StringValue": alert.customer_id},
                    "eventId": {"DataType": "String", "StringValue": alert.event_id},
                },
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            return SendResult(ok=False, reason="publish_failed", error=code)
        except BotoCoreError as error:
            return SendResult(ok=False, reason="publish_failed", error=type(error).__name__)
        return SendResult.success()
