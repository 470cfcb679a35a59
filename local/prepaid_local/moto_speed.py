"""moto, without the work it repeats on every request (the local stack's and the tests' moto, in this process).

- SQS builds every attribute of a queue (counting its messages one by one: visible, in flight, delayed) to read one
  of them: twice on every message sent to a FIFO queue and once on every other (ContentBasedDeduplication), and on
  every message received (MessageRetentionPeriod); so each request got slower as a queue grew, and a local stack
  that fell behind fell further behind. `Queue.attributes` is replaced by a mapping that computes an attribute when
  it is read: the same names and values.
- Every request of every service lists its response class's methods with `inspect.getmembers`; a class's methods
  do not change, so the list is kept.

- SQS lists a queue's visible messages on every receive asking each message for the time (twice): once is enough.

On the local stack these took a third of all the CPU. `speed_up_moto()` installs them (idempotent), and two fixes:

- SQS deletes a message once it is older than its queue's retention period. moto instead stops a receive at the
  first such message and leaves it in flight, so it blocks every message behind it for good; on the local stack,
  whose clock can jump days ahead, every queue holding a message from before the jump stopped. Before each
  receive, the messages past retention are deleted, as SQS does.
- A FIFO queue's receive "attempts to return as many messages with the same message group ID as possible" (SQS
  Developer Guide, FIFO delivery logic); moto returns the oldest visible messages whatever their group, so a batch
  of a FIFO queue's ten messages held ten customers' first messages, and their next ones waited for batches of their
  own. The visible messages of a FIFO queue are listed group by group (each group in its order, the groups in the
  order of their oldest message), so a receive takes a group's messages together, as SQS does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_PATCHED = "_prepaid_fast"
MOTO_ATTRIBUTES = "_prepaid_moto_attributes"
MOTO_MESSAGES = "_prepaid_moto_messages"


# attributes moto gives from what it keeps only when they are set (unset, they are base attributes, None)
_WHEN_SET = {"Policy": "policy", "RedrivePolicy": "redrive_policy"}


class _QueueAttributes(Mapping[str, Any]):
    """A queue's attributes as moto's `Queue.attributes` gives them (the same names, the same values), each one
    computed when it is read: the message counts among them scan every message of the queue."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def _names(self) -> list[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)
        names += queue.FIFO_ATTRIBUTES if queue.fifo_queue else []
        names += queue.KMS_ATTRIBUTES if queue.kms_master_key_id else []
        names += [name for name, kept in _WHEN_SET.items() if getattr(queue, kept) and name not in names]
        return names

    def __getitem__(self, name: str) -> Any:
        import json

        from moto.core.utils import camelcase_to_underscores

        if name not in self._names():
            raise KeyError(name)
        kept = getattr(self._queue, _WHEN_SET[name]) if name in _WHEN_SET else None
        if kept:
            return json.dumps(kept) if name == "RedrivePolicy" else kept
        value = getattr(self._queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


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
    from prepaid_local.moto_serial import SQS_LOCK

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with SQS_LOCK:  # whichever of the two wraps the other, the messages are not dropped during another call
            _drop_expired(self.get_queue(queue_name))
        return receive(self, queue_name, *args, **kwargs)

    return receive_message


def _visible_messages(queue: Any) -> list[Any]:
    """moto's `Queue.messages` (visible and not delayed), with the time read once, a FIFO queue's group by group."""
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    visible = [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]
    if not queue.fifo_queue:
        return visible
    groups: dict[str | None, list[Any]] = {}
    for message in visible:
        groups.setdefault(message.group_id, []).append(message)
    return [message for group in groups.values() for message in group]


def speed_up_moto() -> None:
    import functools

    from moto.core import responses, utils
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.receive_message, _PATCHED, False):
        return
    names = functools.cache(utils.method_names_from_class)
    setattr(responses, "method_names_from_class", names)  # noqa: B010 - the name responses.py calls
    receive_message = _with_expired_dropped(SQSBackend.receive_message)
    setattr(receive_message, _PATCHED, True)
    setattr(SQSBackend, "receive_message", receive_message)  # noqa: B010 - the name moto calls
    setattr(Queue, MOTO_ATTRIBUTES, Queue.attributes)  # moto's own, kept for the tests that compare the two
    setattr(Queue, "attributes", property(_QueueAttributes))  # noqa: B010 - the name moto reads
    setattr(Queue, MOTO_MESSAGES, Queue.messages)  # moto's own, kept for the tests that compare the two
    setattr(Queue, "messages", property(_visible_messages))  # noqa: B010 - the name moto reads
