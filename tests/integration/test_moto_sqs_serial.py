"""moto's SQS is atomic per request on the local stack, as SQS is, and a long poll holds up no one."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto.sqs.models import sqs_backends

from support.aws import REGION
from support.waiting import eventually

GROUPS = 40
PER_GROUP = 10


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads often, so a race between two requests shows up in a short test."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def test_concurrent_receives_of_one_fifo_queue_take_each_message_once(
    aws: None, frequent_thread_switches: None
) -> None:
    # Given a FIFO queue holding 400 messages in 40 groups
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for n in range(GROUPS * PER_GROUP):
        group = str(n % GROUPS)
        sqs.send_message(QueueUrl=url, MessageBody=str(n), MessageGroupId=group, MessageDeduplicationId=str(n))
    taken: Counter[str] = Counter()
    lock = threading.Lock()

    def poller() -> None:
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            with lock:
                taken.update(m["Body"] for m in messages)
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    # When eight pollers receive and delete at once
    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(poller) for _ in range(8)]:
            done.result()  # Then none of their requests fails

    # And each message was taken exactly once, and none is left
    assert taken == Counter(str(n) for n in range(GROUPS * PER_GROUP))
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_waiting_receive_does_not_hold_up_the_send_it_waits_for(aws: None) -> None:
    # Given a receive waiting up to 20 s on an empty queue (moto's wait on the queue's signal)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", []))
        queue = sqs_backends["123456789012"][REGION].get_queue("work")
        # the receive is waiting (or, broken, has given up)
        eventually(lambda: waiting.done() or len(queue._messages_lock._waiters), every=0.01)  # type: ignore[attr-defined]
        # When a message is sent meanwhile
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        # Then the waiting receive takes it (a send held up until the wait ran out would leave it empty-handed)
        assert [m["Body"] for m in waiting.result()] == ["hello"]
