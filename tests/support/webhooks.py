"""A real webhook receiver on 127.0.0.1 for the alerting tests: it records every request it gets, and can be told
to answer 500, to be slow, or to be down (its port closed) for a while."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from prepaid.domain.alerts import ALERT_DETAIL_TYPES
from prepaid_demo.webhooks import PostServer
from prepaid_local.queue_messages import take_all
from prepaid_local.stack import Stack
from support.aws import REGION
from support.usage import Table


@dataclass
class Received:
    """One request as the receiver got it: headers (as sent), the raw body, and what it answered (None: it was
    too slow and the sender hung up, or it is still answering)."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None = None

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """`url` has a path and a query (a token, as real webhook URLs often do) that must never show up elsewhere."""

    PATH = "/hooks/credits?token=receiver-path-token"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: deque[tuple[str, float]] = deque()  # what to do with the next requests
        self._lock = threading.Lock()
        self._server = PostServer(self._answer, name="test-webhook-receiver")
        self.url = ""

    # -- behaviour -------------------------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._script.extend([("status", float(status))] * count)

    def slow_next(self, count: int, seconds: float) -> None:
        with self._lock:
            self._script.extend([("slow", seconds)] * count)

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> Receiver:
        """Up (again on the same port, once it had one)."""
        self._server.start()
        self.url = f"http://127.0.0.1:{self._server.port}{self.PATH}"
        return self

    def stop(self) -> None:
        """Down: the port is closed, so a POST is refused at once."""
        self._server.stop()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        got = Received(path, headers, body)
        with self._lock:
            self.received.append(got)
            action, value = self._script.popleft() if self._script else ("status", 200.0)
        if action == "slow":
            time.sleep(value)  # the sender may have hung up by now: `answered` stays None until this point
            value = 200.0
        got.answered = int(value)
        return got.answered

    # -- what arrived ----------------------------------------------------------------------------------------------

    def accepted(self) -> list[Received]:
        """Requests answered with a 2xx."""
        return [r for r in self.received if r.answered is not None and 200 <= r.answered < 300]

    def accepted_once_per_id(self) -> dict[str, Received]:
        """What a receiver that dedupes on `webhook-id` keeps: the first accepted request of each id."""
        kept: dict[str, Received] = {}
        for request in self.accepted():
            kept.setdefault(request.event_id, request)
        return kept


# -- the alerting side of the stack ------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPET_FUNCTION = "prepaid_event"


def readme_verifier() -> Callable[[str, bytes, dict[str, str]], Any]:
    """The receiver's check of README.md, run as written (`prepaid_event(secret, body, headers)`: the event, or
    None): the tests use the very code a receiver would copy, so the two cannot drift apart."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (snippet,) = [b for b in blocks if f"def {SNIPPET_FUNCTION}(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    verify: Callable[[str, bytes, dict[str, str]], Any] = namespace[SNIPPET_FUNCTION]
    return verify


@dataclass(frozen=True)
class DeadLetter:
    body: str
    attributes: dict[str, str]

    def envelope(self) -> Any:
        return json.loads(self.body)


class AlertSide:
    """The alerting queues, topic, secret and delivery records of a stack, read as an operator would."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue = stack.name("WebhookQueue")
        self.dead = stack.name("WebhookDeadLetterQueue")
        self.topic_arn = stack.name("AlertTopic")
        self._topic_queue: str | None = None

    def secret(self) -> str:
        """The deployment's webhook key (`aws secretsmanager get-secret-value --secret-id <arn>`): each wallet's
        secret is derived from it."""
        client = boto3.client("secretsmanager", region_name=REGION)
        value: str = client.get_secret_value(SecretId=self.stack.name("WebhookSigningSecret"))["SecretString"]
        return value

    def wallet_secret(self, customer_id: str) -> str:
        """A wallet's own `whsec_` secret, as `GET /wallets/{customerId}/webhook/secret` answers it."""
        answer = self.stack.api("GET", f"/wallets/{customer_id}/webhook/secret")
        assert answer.status == 200, answer.body
        secret: str = answer.body["secret"]
        return secret

    def subscribe_topic(self) -> None:
        """An account team's subscription: a queue subscribed to the alert topic."""
        url = self.sqs.create_queue(QueueName="account-team-alerts")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns", region_name=REGION).subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn)
        self._topic_queue = url

    def topic_messages(self) -> list[dict[str, Any]]:
        """SNS notifications the subscribed queue got (read and deleted)."""
        assert self._topic_queue is not None, "subscribe_topic() first"
        return [json.loads(m["Body"]) for m in self._drain(self._topic_queue)]

    def send(self, envelope: Any) -> None:
        """A message on the alert queue exactly as the rule delivers one: the body is the event's JSON envelope."""
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=json.dumps(envelope))

    def take_queued(self) -> list[dict[str, Any]]:
        """The alerts waiting on the alert queue (read and deleted, so no function gets them). The queue also
        carries every other event, for account-level endpoints: those are taken off and left out."""
        envelopes = [json.loads(m["Body"]) for m in self._drain(self.queue)]
        return [e for e in envelopes if e.get("detail-type") in ALERT_DETAIL_TYPES]

    def dead_letters(self) -> list[DeadLetter]:
        return [
            DeadLetter(m["Body"], {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()})
            for m in self._drain(self.dead)
        ]

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def delivery(self, event_id: str, channel: str = "WEBHOOK") -> dict[str, Any] | None:
        found = [i for i in Table(self.stack).query(f"D#{event_id}", channel)]
        return found[0] if found else None

    def _drain(self, url: str) -> list[Any]:
        return list(take_all(self.sqs, url, with_attributes=True))
