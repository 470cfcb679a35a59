"""The local stack's faster moto answers as moto does."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws
from moto.sqs.models import sqs_backends

from prepaid_local import moto_speed


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
