"""The local stack's faster moto answers as moto does."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws
from moto.sqs.models import sqs_backends

from prepaid_local import moto_speed
from prepaid_local.stack import _deleted_in_process, _received_in_process
from prepaid_local.template import Resolver


def test_queue_attributes_read_one_by_one_are_motos() -> None:
    # Given a FIFO queue with a redrive policy, a policy and messages in every state, and a plain queue
    moto_speed.speed_up_moto()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dead = sqs.create_queue(QueueName="dead.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 3})
        policy = json.dumps({"Version": "2012-10-17", "Statement": []})
        fifo = sqs.create_queue(
            QueueName="work.fifo",
            Attributes={"FifoQueue": "true", "RedrivePolicy": redrive, "Policy": policy},
        )["QueueUrl"]
        plain = sqs.create_queue(QueueName="plain", Attributes={"DelaySeconds": "0"})["QueueUrl"]
        for n in range(3):
            sqs.send_message(QueueUrl=fifo, MessageBody=str(n), MessageGroupId=str(n), MessageDeduplicationId=str(n))
        sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=1)
        sqs.send_message(QueueUrl=plain, MessageBody="later", DelaySeconds=60)
        backend = sqs_backends["123456789012"]["us-east-1"]
        for url in (dead, fifo, plain):
            queue = backend.get_queue(url.rsplit("/", 1)[1])
            # When its attributes are read one by one, and all at once through the API
            lazy = {name: queue.attributes[name] for name in queue.attributes}
            answered = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            # Then they are moto's own, names and values
            assert lazy == getattr(queue, moto_speed.MOTO_ATTRIBUTES)
            assert answered == {
                k: str(v) for k, v in getattr(queue, moto_speed.MOTO_ATTRIBUTES).items() if v is not None
            }


def test_visible_messages_are_motos_and_a_fifo_queue_lists_them_group_by_group() -> None:
    # Given a plain queue with a delayed, an in-flight and two visible messages, and a FIFO queue whose groups
    # interleave (a1 b1 a2 c1 b2), one of them (c) with a message in flight
    moto_speed.speed_up_moto()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
        for body in ("taken", "one", "two"):
            sqs.send_message(QueueUrl=plain, MessageBody=body)
        sqs.send_message(QueueUrl=plain, MessageBody="later", DelaySeconds=60)
        sqs.receive_message(QueueUrl=plain, MaxNumberOfMessages=1)
        fifo = sqs.create_queue(QueueName="work.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for n, group in enumerate(["c", "a", "b", "a", "c", "b"]):
            sqs.send_message(
                QueueUrl=fifo, MessageBody=f"{group}{n}", MessageGroupId=group, MessageDeduplicationId=str(n)
            )
        first = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=1)["Messages"]
        backend = sqs_backends["123456789012"]["us-east-1"]

        # When the visible messages are listed
        plain_queue, fifo_queue = backend.get_queue("plain"), backend.get_queue("work.fifo")

        # Then the plain queue's are moto's own, in moto's order
        assert [m.body for m in plain_queue.messages] == [
            m.body for m in getattr(plain_queue, moto_speed.MOTO_MESSAGES)
        ]
        assert [m.body for m in plain_queue.messages] == ["one", "two"]
        # and the FIFO queue's are moto's, group by group, each group in its order
        assert first[0]["Body"] == "c0"
        assert sorted(m.body for m in fifo_queue.messages) == sorted(
            m.body for m in getattr(fifo_queue, moto_speed.MOTO_MESSAGES)
        )
        assert [m.body for m in fifo_queue.messages] == ["a1", "a3", "b2", "b5", "c4"]
        # And a receive of ten takes a group's messages together, skipping the group in flight, as SQS does
        taken = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in taken] == ["a1", "a3", "b2", "b5"]


def test_a_poll_in_process_receives_what_the_api_receives() -> None:
    # Given a FIFO queue holding a message with string and binary attributes, a trace header and a group
    moto_speed.speed_up_moto()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="work.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "0"})[
            "QueueUrl"
        ]
        sqs.send_message(
            QueueUrl=url,
            MessageBody='{"a": 1}',
            MessageGroupId="g",
            MessageDeduplicationId="d",
            MessageAttributes={
                "text": {"DataType": "String", "StringValue": "v"},
                "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
            MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}},
        )
        resolver = Resolver({})
        # When it is received through the API, then (its visibility timeout 0) by the stack's poll in process
        through_api = sqs.receive_message(
            QueueUrl=url,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )["Messages"]
        in_process = _received_in_process(resolver, url, 10, 0)
        # Then both hold the same message, field for field, but for what a second receipt changes
        assert in_process is not None and len(in_process) == len(through_api) == 1
        changed = {"ReceiptHandle"}
        first, second = through_api[0], in_process[0]
        assert {k: v for k, v in second.items() if k not in changed | {"Attributes"}} == {
            k: v for k, v in first.items() if k not in changed | {"Attributes"}
        }
        assert second["Attributes"] | {"ApproximateReceiveCount": "1"} == first["Attributes"]
        assert second["Attributes"]["ApproximateReceiveCount"] == "2"
        assert first["Attributes"]["AWSTraceHeader"] == "Root=1-abc"
        # And deleting in process deletes it
        assert _deleted_in_process(resolver, url, [{"Id": "0", "ReceiptHandle": second["ReceiptHandle"]}])
        assert "Messages" not in sqs.receive_message(QueueUrl=url)
