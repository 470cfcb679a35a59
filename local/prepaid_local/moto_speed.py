"""moto, without the work it repeats on every request (the local stack's and the tests' moto, in this process).

- SQS builds every attribute of a queue (counting its messages one by one: visible, in flight, delayed) to read one
  of them: on every message sent (`_validate_message` reads ContentBasedDeduplication) and on every message received
  (`is_message_valid_based_on_retention_period` reads MessageRetentionPeriod). The replacements below read the one
  attribute they need and behave otherwise the same.
- Every request of every service lists its response class's methods with `inspect.getmembers`; a class's methods
  do not change, so the list is kept.

On the local stack these took a third of all the CPU. `speed_up_moto()` installs both (idempotent), and one fix:

- SQS deletes a message once it is older than its queue's retention period. moto instead stops a receive at the
  first such message and leaves it in flight, so it blocks every message behind it for good; on the local stack,
  whose clock can jump days ahead, every queue holding a message from before the jump stopped. Before each
  receive, the messages past retention are deleted, as SQS does.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_prepaid_fast"


def _validate_message(
    self: Any,
    queue: Any,
    message_body: str,
    delay_seconds: int,
    deduplication_id: str | None = None,
    group_id: str | None = None,
    validate_group_id: bool = True,
) -> None:
    from moto.sqs.exceptions import InvalidParameterValue, MissingParameter

    if queue.fifo_queue:
        content_based = str(getattr(queue, "content_based_deduplication", False)).lower()
        if content_based == "false" and not group_id:
            raise MissingParameter("MessageGroupId")
        if content_based == "false" and group_id and not deduplication_id:
            raise InvalidParameterValue(
                "The queue should either have ContentBasedDeduplication enabled or "
                "MessageDeduplicationId provided explicitly"
            )
        if delay_seconds > 0:
            raise InvalidParameterValue(
                f"Value {delay_seconds} for parameter DelaySeconds is invalid. Reason: "
                "The request include parameter that is not valid for this queue type."
            )
    if len(message_body) > queue.maximum_message_size:
        raise InvalidParameterValue(
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{queue.maximum_message_size} bytes."
        )
    if group_id is None and queue.fifo_queue:
        raise MissingParameter("MessageGroupId")


def _is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


def _drop_expired(queue: Any) -> None:
    from moto.core.utils import unix_time

    retention, now = int(queue.message_retention_period), unix_time()
    expired = [
        m for m in queue._messages if m.sent_timestamp is not None and m.sent_timestamp / 1000 + retention <= now
    ]
    for message in expired:
        queue._messages.remove(message)
        queue.pending_messages.discard(message)


def _with_expired_dropped(receive: Any) -> Any:
    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        _drop_expired(self.get_queue(queue_name))
        return receive(self, queue_name, *args, **kwargs)

    return receive_message


def speed_up_moto() -> None:
    import functools

    from moto.core import responses, utils
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend._validate_message, _PATCHED, False):
        return
    names = functools.cache(utils.method_names_from_class)
    setattr(responses, "method_names_from_class", names)  # noqa: B010 - the name responses.py calls
    for name, replacement in (
        ("_validate_message", _validate_message),
        ("is_message_valid_based_on_retention_period", _is_message_valid_based_on_retention_period),
        ("receive_message", _with_expired_dropped(SQSBackend.receive_message)),
    ):
        setattr(replacement, _PATCHED, True)
        setattr(SQSBackend, name, replacement)
