"""The demo's webhook receiver: what a SaaS would run to get its customers' events (docs/webhooks.md).

A small `http.server` on 127.0.0.1 (a free port, its own thread) that, for each `POST`:

- verifies it with the `standardwebhooks` library (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
  `webhook-signature` over the **raw** body, with the endpoint's `whsec_` secret, timestamp within 5 minutes), as
  README.md's receiver does, and answers 401 when it does not verify;
- dedupes on `webhook-id`: the first verified request of an id is kept, a later one is answered 200 and counted as
  a copy (a receiver that does the work once per id);
- answers fast (2xx within the sender's 5 s), and records what it got, for the demo to show.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError


class StackClockWebhook(Webhook):
    """`standardwebhooks`' `Webhook`, judging `webhook-timestamp` by another clock than this machine's.

    Only for the demo: the local stack signs with its own clock, which the demo moves forward (hours, days), while
    the library compares with this machine's real time, so every delivery after a move would look too new. The
    signature and the rule (within 5 minutes either way) stay the library's own; only "now" is the stack's. A real
    receiver calls `Webhook(secret).verify(body, headers)` as README.md shows.
    """

    def __init__(self, secret: str, now: Callable[[], float]) -> None:
        super().__init__(secret)
        self._now = now  # the clock to judge by, in unix seconds

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:  # noqa: N802 - the library's private check
        try:
            signed_at = float(timestamp_header)
        except ValueError:
            raise WebhookVerificationError("Invalid Signature Headers") from None
        lead = self._now() - time.time()  # how far the stack's clock runs ahead of this machine's
        # The library's own check, on the timestamp moved back by that lead: the same as judging it by the stack.
        super()._Webhook__verify_timestamp(repr(signed_at - lead))  # type: ignore[misc]  # mangled, so unseen
        return datetime.fromtimestamp(signed_at, tz=UTC)  # what was signed, unmoved: the signature covers it


def verifies(secret: str, body: bytes, headers: dict[str, str], now: Callable[[], float] = time.time) -> bool:
    """True when the library verifies the request with `secret`, its timestamp judged at `now()` (unix seconds)."""
    try:
        StackClockWebhook(secret, now).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, EmptyWebhookSecretError, ValueError):  # ValueError: a secret not in base64
        return False
    return True


class PostServer:
    """An HTTP server on 127.0.0.1, in its own thread, that hands each POST to `answer(path, headers, body)` and
    replies with the status it returns (no body). Port 0 takes a free one; `stop()` closes the port."""

    def __init__(self, answer: Callable[[str, dict[str, str], bytes], int], port: int = 0, name: str = "post") -> None:
        self._answer, self._name = answer, name
        self.port = port
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> PostServer:
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = answer(self.path, dict(self.headers.items()), body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # quiet: callers show what arrived
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=self._name, daemon=True).start()
        return self

    @property
    def running(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Delivery:
    """One request the receiver got: the raw body and headers, when it arrived (the stack's clock, unix seconds),
    whether it verified, what it answered."""

    headers: dict[str, str]
    body: bytes
    received_at: float
    verified: bool
    answered: int
    copies: int = 0  # later requests with the same webhook-id (answered 200, not kept again)

    def header(self, name: str) -> str:
        """A header's value, whatever the case it came in (HTTP header names are case-insensitive)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")

    @property
    def event_id(self) -> str:
        return self.header("webhook-id")

    @property
    def attempt(self) -> str:
        return self.header("Prepaid-Webhook-Attempt")

    def payload(self) -> dict[str, Any]:
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}

    @property
    def event_type(self) -> str:
        return str(self.payload().get("type") or self.header("Prepaid-Event-Type") or "?")

    @property
    def customer_id(self) -> str:
        return str(self.payload().get("customerId", ""))

    def verifies_with(self, secret: str) -> bool:
        """Whether `secret` verifies this request, as a receiver holding it would have judged it on arrival."""
        return verifies(secret, self.body, self.headers, now=lambda: self.received_at)


@dataclass
class WebhookReceiver:
    """A verifying, deduping webhook receiver on 127.0.0.1; `start()` it, point a webhook at `url`, and give it the
    endpoint's secret (`secret`: until it has one, it refuses every request).

    `now` gives the time (unix seconds) timestamps are judged by: the real time by default.
    """

    secret: str = ""
    path: str = "/webhooks/prepaid"
    now: Callable[[], float] = time.time
    requests: list[Delivery] = field(default_factory=list, init=False)  # every request, in arrival order
    kept: dict[str, Delivery] = field(default_factory=dict, init=False)  # event id → its first verified request
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: PostServer | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        port = self._server.port if self._server else 0
        return f"http://127.0.0.1:{port}{self.path}"

    def start(self) -> WebhookReceiver:
        self._server = PostServer(self.receive, name="demo-webhook-receiver").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start() if self._server is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        """Handle one request; return the status to answer (200 kept or a copy, 401 not verified, 404 wrong path)."""
        if path != self.path:
            return 404
        now = self.now()
        ok = verifies(self.secret, body, headers, now=lambda: now)
        delivery = Delivery(headers, body, received_at=now, verified=ok, answered=200 if ok else 401)
        with self._lock:
            self.requests.append(delivery)
            if ok:
                first = self.kept.setdefault(delivery.event_id, delivery)
                if first is not delivery:
                    first.copies += 1  # a redelivery: already handled, answer 2xx and do nothing
        return delivery.answered

    def rejected(self) -> list[Delivery]:
        """Requests that did not verify."""
        with self._lock:
            return [d for d in self.requests if not d.verified]

    def kept_ids(self) -> set[str]:
        with self._lock:
            return set(self.kept)
