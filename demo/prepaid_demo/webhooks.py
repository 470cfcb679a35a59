"""The demo's webhook receiver: what a SaaS would run to get its customers' alerts (docs/webhooks.md).

A small `http.server` on 127.0.0.1 (a free port, its own thread) that, for each `POST`:

- verifies the `Prepaid-Signature` header over the **raw** body exactly as the snippet in docs/webhooks.md does
  (HMAC-SHA256 of `"<t>.<body>"` with the signing secret, timestamp within 5 minutes), and answers 401 when it does
  not verify;
- dedupes on `Prepaid-Webhook-Id`: the first verified request of an id is kept, a later one is answered 200 and
  counted as a copy (a receiver that does the work once per id);
- answers fast (2xx within the sender's 5 s), and records what it got, for the demo to show.

Standard library only, so it reads as what a receiver would copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verify_prepaid_webhook(
    secret: str, body: bytes, signature: str, tolerance_seconds: int = 300, now: float | None = None
) -> bool:
    """True when `body` (the raw request body) was signed with `secret` less than `tolerance_seconds` ago.

    `signature` is the Prepaid-Signature header: "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>".
    The snippet of docs/webhooks.md, line for line, except that the time it compares against can be given (`now`, unix
    seconds): the demo's receiver uses the local stack's clock, which the demo moves forward.
    """
    try:
        fields = dict(part.strip().split("=", 1) for part in signature.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False  # too old (a replay) or too far in the future
    signed = str(timestamp).encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), fields.get("v1", "").encode())


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
    """One request the receiver got: the raw body and headers, whether its signature verified, what it answered."""

    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answered: int
    copies: int = 0  # later requests with the same Prepaid-Webhook-Id (answered 200, not kept again)

    @property
    def event_id(self) -> str:
        return self.headers.get("Prepaid-Webhook-Id", "")

    @property
    def attempt(self) -> str:
        return self.headers.get("Prepaid-Webhook-Attempt", "")

    def payload(self) -> dict[str, Any]:
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}

    @property
    def event_type(self) -> str:
        return str(self.payload().get("type") or self.headers.get("Prepaid-Event-Type", "?"))

    @property
    def customer_id(self) -> str:
        return str(self.payload().get("customerId", ""))


@dataclass
class WebhookReceiver:
    """A verifying, deduping webhook receiver on 127.0.0.1; `start()` it, point a wallet's `webhookUrl` at `url`.

    `now` gives the time (unix seconds) signatures are checked against: the real time by default.
    """

    secret: str
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
        """Handle one request; return the status to answer (200 kept or a copy, 401 bad signature, 404 wrong path)."""
        if path != self.path:
            return 404
        signature_ok = verify_prepaid_webhook(self.secret, body, headers.get("Prepaid-Signature", ""), now=self.now())
        delivery = Delivery(headers, body, signature_ok, answered=200 if signature_ok else 401)
        with self._lock:
            self.requests.append(delivery)
            if signature_ok:
                first = self.kept.setdefault(delivery.event_id, delivery)
                if first is not delivery:
                    first.copies += 1  # a redelivery: already handled, answer 2xx and do nothing
        return delivery.answered

    def rejected(self) -> list[Delivery]:
        """Requests whose signature did not verify."""
        with self._lock:
            return [d for d in self.requests if not d.signature_ok]

    def kept_ids(self) -> set[str]:
        with self._lock:
            return set(self.kept)
