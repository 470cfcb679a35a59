"""The webhook sender (prepaid.adapters.webhook_http) against real servers on 127.0.0.1: what it sends, the one
overall deadline, where it connects (the addresses it checked, looked up once), and TLS against the URL's host.

No assertion here compares measured time with a bound (the suite runs on loaded machines): the deadline is shown by
what the sender reports and what the receiver saw. The few waits that have a bound only stop a broken test from
hanging, and are far longer than anything the test needs.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509  # (installed with moto)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from prepaid.adapters.webhook_http import (
    Deadline,
    HttpWebhookSender,
    PinnedHTTPSConnection,
    ResolvedAddress,
    post_status,
)
from prepaid.application.webhooks import SendResult, WebhookRequest

HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "prepaid-credits-webhooks/2",
    "webhook-id": "ev-1",
    "webhook-timestamp": "1795500000",
    "webhook-signature": "v1,YWJj",
}
BODY = b'{"id":"ev-1","type":"Balance Low"}'
# Generous: long enough for any loaded machine, where a test does not exercise the deadline itself.
ROOMY_TIMEOUT = 20.0
# How long a test waits for the receiver to see something at most; only a broken test ever waits that long.
SAFETY_WAIT = 30.0


# -- receivers --------------------------------------------------------------------------------------------------------


@dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records each POST and answers `status` (with `extra_headers`), or runs `behaviour` instead of answering."""

    status: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)
    behaviour: Callable[[BaseHTTPRequestHandler], None] | None = None
    received: list[Got] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(Got(self.path, dict(self.headers.items()), body))
                if receiver.behaviour is not None:
                    receiver.behaviour(self)
                    return
                self.send_response(receiver.status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # where a followed redirect would land
                receiver.received.append(Got(self.path, dict(self.headers.items()), b""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A server on 127.0.0.1 in its own thread; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="test-webhook-server", daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Drip:
    """Sends `answer` one byte every `every` seconds, and notes whether the sender hung up on it first."""

    answer: bytes
    every: float
    sent: int = 0
    closed: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            for index in range(len(self.answer)):
                handler.wfile.write(self.answer[index : index + 1])
                handler.wfile.flush()
                self.sent += 1
                time.sleep(self.every)
        except OSError:  # BrokenPipeError, ConnectionResetError: the sender closed the connection
            self.closed.set()
            return
        self.finished.set()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> list[tuple[str, int]]:
    """socket.getaddrinfo answering `answers[host]` (one list per lookup; the last repeats), other hosts as
    usual. Returns every lookup made, of any host."""
    real = socket.getaddrinfo
    lookups: list[tuple[str, int]] = []
    served: dict[str, int] = {}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        lookups.append((host, port))
        if host not in answers:
            return real(host, port, *args, **kwargs)
        rounds = answers[host]
        ips = rounds[min(served.get(host, 0), len(rounds) - 1)]
        served[host] = served.get(host, 0) + 1
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def request_to(url: str) -> WebhookRequest:
    return WebhookRequest(url, dict(HEADERS), BODY)


# -- what is sent -----------------------------------------------------------------------------------------------------


def test_with_the_local_flag_a_plain_http_post_to_this_machine_carries_the_headers_and_body() -> None:
    # Given a receiver on 127.0.0.1 that answers 204, and a sender with the local-http flag
    receiver = Receiver(status=204)
    with serving(receiver.handler()) as port:
        url = f"http://127.0.0.1:{port}/hooks/credits?token=t0ken"
        # When it POSTs a webhook there
        result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to(url))
    # Then it is delivered, with the receiver's status
    assert result == SendResult.success(204)
    # And the receiver got one POST: the URL's path and query, every header as given, the body, the URL's Host
    (got,) = receiver.received
    assert got.path == "/hooks/credits?token=t0ken"
    assert {k: got.headers[k] for k in HEADERS} == HEADERS
    assert got.headers["Host"] == f"127.0.0.1:{port}"
    assert got.headers["Content-Length"] == str(len(BODY))
    assert got.body == BODY


def test_without_the_local_flag_plain_http_to_this_machine_is_refused_unsent() -> None:
    # Given a receiver on 127.0.0.1, and a sender without the local-http flag (as deployed)
    receiver = Receiver()
    with serving(receiver.handler()) as port:
        # When it is asked to POST there over plain http
        result = HttpWebhookSender(ROOMY_TIMEOUT).post(request_to(f"http://127.0.0.1:{port}/h"))
    # Then it refuses for good (no retry) with the reason, and nothing reached the receiver
    assert result == SendResult(ok=False, reason="invalid_url", error="not_https", permanent=True)
    assert receiver.received == []


def test_a_redirect_is_a_failed_attempt_and_is_not_followed() -> None:
    # Given a receiver that answers 302 to another path of its own
    receiver = Receiver(status=302, extra_headers={"Location": "/elsewhere"})
    with serving(receiver.handler()) as port:
        # When a webhook is POSTed to it
        result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to(f"http://127.0.0.1:{port}/h"))
    # Then the attempt failed with the status, and the redirect was not followed
    assert result == SendResult(ok=False, reason="http_status", status=302)
    assert [got.path for got in receiver.received] == ["/h"]


def test_a_server_error_is_a_failed_attempt_with_its_status() -> None:
    receiver = Receiver(status=503)
    with serving(receiver.handler()) as port:
        result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to(f"http://127.0.0.1:{port}/h"))
    assert result == SendResult(ok=False, reason="http_status", status=503)


def test_a_receiver_that_is_down_is_a_connection_error() -> None:
    # Given nothing listening on the port
    url = f"http://127.0.0.1:{free_port()}/h"
    # When a webhook is POSTed there
    result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to(url))
    # Then it is a failed attempt, to be retried (not permanent)
    assert result == SendResult(ok=False, reason="connection_error", error="ConnectionRefusedError")


def test_the_answers_body_is_not_read() -> None:
    # Given a receiver that answers 200 at once, then dribbles out a body it says is 10 MB long
    body = Drip(b"x" * 200, every=0.3)

    def answer_then_dribble(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10 * 1024 * 1024))
        handler.end_headers()
        body(handler)

    receiver = Receiver(behaviour=answer_then_dribble)
    with serving(receiver.handler()) as port:
        # When a webhook is POSTed to it
        result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to(f"http://127.0.0.1:{port}/h"))
        # Then it is delivered on the status line and headers: the sender hung up without waiting for the body
        assert result == SendResult.success(200)
        assert body.closed.wait(SAFETY_WAIT)
    assert not body.finished.is_set()


# -- one overall deadline ----------------------------------------------------------------------------------------------


def test_a_receiver_dripping_its_answer_is_cut_at_the_deadline_and_it_is_not_delivered() -> None:
    # Given a receiver that answers a complete 200 one byte every 0.3 s: over 40 s for the whole answer, and each
    # byte well within any per-read timeout
    answer = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"." * 100 + b"\r\nContent-Length: 0\r\n\r\n"
    drip = Drip(answer, every=0.3)
    receiver = Receiver(behaviour=drip)
    with serving(receiver.handler()) as port:
        # When a sender with a 1 s deadline POSTs to it
        sender = HttpWebhookSender(1.0, allow_local_http=True)
        result = sender.post(request_to(f"http://127.0.0.1:{port}/h"))
        # Then the receiver sees the connection closed under it, long before its answer is complete
        assert drip.closed.wait(SAFETY_WAIT)
    # And the attempt is a timeout, not a delivery (a per-read timeout would have taken the 200)
    assert result == SendResult(ok=False, reason="timeout", error="TimeoutError")
    assert not drip.finished.is_set()
    assert 0 < drip.sent < len(answer)
    assert len(receiver.received) == 1


def test_a_2xx_that_arrives_after_the_deadline_is_not_a_delivery() -> None:
    # Given a sender whose clock the receiver moves an hour on just before it answers 200 (the answer comes after
    # the deadline, deterministically)
    offset = [0.0]

    def clock() -> float:
        return time.monotonic() + offset[0]

    def late_200(handler: BaseHTTPRequestHandler) -> None:
        offset[0] = 3600.0
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    receiver = Receiver(behaviour=late_200)
    with serving(receiver.handler()) as port:
        # When the webhook is POSTed
        sender = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True, clock=clock)
        result = sender.post(request_to(f"http://127.0.0.1:{port}/h"))
    # Then the attempt is a timeout, though the receiver answered 200
    assert result == SendResult(ok=False, reason="timeout", error="TimeoutError")
    assert len(receiver.received) == 1


def test_the_deadline_covers_a_name_lookup_that_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a name server that never answers (the receiver may run its own)
    release = threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> list[Any]:
        release.wait(SAFETY_WAIT)
        raise socket.gaierror(socket.EAI_AGAIN, "gave up")

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        # When a webhook is POSTed to a name, with a 0.5 s deadline
        result = HttpWebhookSender(0.5).post(request_to("https://hooks.example.com/h"))
    finally:
        release.set()
    # Then it is a timeout (while the lookup is still stuck: the sender did not wait for it)
    assert result == SendResult(ok=False, reason="timeout", error="TimeoutError")


# -- where it connects ------------------------------------------------------------------------------------------------


class NoSockets:
    """Stands in for socket.socket: records any attempt to open one, and fails it."""

    def __init__(self) -> None:
        self.opened: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> socket.socket:
        self.opened.append(args)
        raise AssertionError("the sender opened a socket")


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["127.0.0.1"],
        ["::ffff:169.254.169.254"],
        ["fd00:ec2::254"],
        ["93.184.216.34", "10.0.0.5"],  # one private address among public ones is enough
    ],
    ids=str,
)
def test_a_host_resolving_to_a_private_address_is_refused_without_connecting(
    monkeypatch: pytest.MonkeyPatch, addresses: list[str]
) -> None:
    # Given a public-looking name that resolves to (among others) an address inside
    lookups = fake_dns(monkeypatch, {"hooks.example.com": [addresses]})
    no_sockets = NoSockets()
    monkeypatch.setattr(socket, "socket", no_sockets)
    # When a webhook is POSTed to it
    result = HttpWebhookSender(ROOMY_TIMEOUT).post(request_to("https://hooks.example.com/h"))
    # Then it is refused for good, with the reason, and no connection was even opened
    assert result == SendResult(ok=False, reason="invalid_url", error="private_address", permanent=True)
    assert no_sockets.opened == []
    assert lookups == [("hooks.example.com", 443)]


def test_a_local_http_name_resolving_off_this_machine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the local flag, and "localhost" resolving to a VPC address
    fake_dns(monkeypatch, {"localhost": [["10.0.0.5"]]})
    no_sockets = NoSockets()
    monkeypatch.setattr(socket, "socket", no_sockets)
    # When a webhook is POSTed to http://localhost
    result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to("http://localhost:9001/h"))
    # Then it is refused unsent
    assert result == SendResult(ok=False, reason="invalid_url", error="not_loopback", permanent=True)
    assert no_sockets.opened == []


def test_the_connection_goes_to_the_address_that_was_checked_with_no_second_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a receiver on 127.0.0.1, and "localhost" resolving there on the first lookup but to 10.0.0.5 on any
    # later one (a rebinding name server)
    receiver = Receiver()
    with serving(receiver.handler()) as port:
        lookups = fake_dns(monkeypatch, {"localhost": [["127.0.0.1"], ["10.0.0.5"]]})
        # When a webhook is POSTed to http://localhost (the local flag: plain http to this machine)
        result = HttpWebhookSender(ROOMY_TIMEOUT, allow_local_http=True).post(request_to(f"http://localhost:{port}/h"))
    # Then it reached the receiver on the address checked, after one lookup (of any name) in all
    assert result == SendResult.success(200)
    assert lookups == [("localhost", port)]
    (got,) = receiver.received
    assert got.headers["Host"] == f"localhost:{port}"


def test_an_https_send_connects_to_the_checked_public_address_and_looks_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a name resolving to a public address first and to 127.0.0.1 afterwards, and sockets that record where
    # they connect (and are refused there)
    lookups = fake_dns(monkeypatch, {"hooks.example.test": [["93.184.216.34"], ["127.0.0.1"]]})
    connected: list[tuple[Any, ...]] = []

    class RecordingSocket:
        def __init__(self, family: int, kind: int, proto: int) -> None:
            self.family = family

        def settimeout(self, seconds: float | None) -> None:
            return

        def connect(self, address: tuple[Any, ...]) -> None:
            connected.append(address)
            raise ConnectionRefusedError

        def close(self) -> None:
            return

    monkeypatch.setattr(socket, "socket", RecordingSocket)
    # When a webhook is POSTed to it
    result = HttpWebhookSender(ROOMY_TIMEOUT).post(request_to("https://hooks.example.test/h"))
    # Then the one connection went to the address that was checked, after the one lookup
    assert result == SendResult(ok=False, reason="connection_error", error="ConnectionRefusedError")
    assert connected == [("93.184.216.34", 443)]
    assert lookups == [("hooks.example.test", 443)]


# -- TLS against the URL's host, at the pinned address ----------------------------------------------------------------


def tls_pair(tmp_path: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `host` from a fresh test CA, and a client context trusting only
    that CA (otherwise as ssl.create_default_context: certificates and host names verified)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook sender test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    return server, client


def test_tls_verifies_and_names_the_urls_host_while_connecting_to_the_pinned_address(tmp_path: Path) -> None:
    # Given an HTTPS receiver on 127.0.0.1 with a certificate for hooks.example.test, noting the SNI it is sent
    server_tls, client_tls = tls_pair(tmp_path, "hooks.example.test")
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _socket, name, _context: sni.append(name)
    receiver = Receiver()
    with serving(receiver.handler(), tls=server_tls) as port:
        pinned = [ResolvedAddress(socket.AF_INET, socket.IPPROTO_TCP, ("127.0.0.1", port))]

        def post_as(host: str) -> int:
            connection = PinnedHTTPSConnection(
                host, port, addresses=pinned, deadline=Deadline(ROOMY_TIMEOUT), context=client_tls
            )
            try:
                return post_status(connection, "/h?x=1", dict(HEADERS), BODY)
            finally:
                connection.close()

        # When a webhook for https://hooks.example.test:<port>/h?x=1 is POSTed on a connection pinned to 127.0.0.1
        status = post_as("hooks.example.test")
        # Then the certificate verified against the URL's host, which was also the SNI and the Host header
        assert status == 200
        assert sni == ["hooks.example.test"]
        (got,) = receiver.received
        assert (got.path, got.headers["Host"], got.body) == ("/h?x=1", f"hooks.example.test:{port}", BODY)
        # And when the same pinned address is used for a URL with another host, its certificate does not verify
        with pytest.raises(ssl.SSLCertVerificationError):
            post_as("other.example.test")
    assert len(receiver.received) == 1
