"""Test helpers over moto: the region, and a tap on the event bus."""

from __future__ import annotations

import json
from typing import Any

import boto3

from prepaid_local.stack import Stack

REGION = "us-east-1"


class BusTap:
    """Every event put on the bus, caught by a rule that sends them to a queue (as a subscriber would)."""

    def __init__(self, stack: Stack) -> None:
        self._sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        self.url = self._sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = stack.name("EventBus")
        events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": ["prepaid.credits"]}))
        events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            batch = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return self.seen
            for message in batch:
                self.seen.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [e for e in self.drain() if e["detail-type"] == detail_type]
