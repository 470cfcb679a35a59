"""POSTing a webhook with the standard library (no HTTP dependency in the layer).

One try per call, within one overall deadline: resolving the name, connecting, the TLS handshake, sending and
reading the status line and headers all share it, so a receiver that answers slowly, or drips its answer a byte at
a time, is a failed attempt (`timeout`) that the queue retries later, never a function stuck until its own timeout.
The response body is not read.

Where it connects: the URL is checked again (prepaid.domain.webhook_urls), the host is resolved once, every address
it resolves to must be allowed, and the connection goes to an address that was checked (no second lookup, so a
name cannot resolve to a public address for the check and to 169.254.169.254 for the connection). TLS is verified,
and SNI sent, against the URL's host; the Host header is the URL's. Redirects are not followed (a 3xx is a failed
attempt: a POST turned into a GET would "succeed" without delivering anything) and no proxy is used.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prepaid.application.webhooks import SendResult, WebhookRequest
from prepaid.domain.webhook_urls import WebhookTarget, WebhookUrlRefused, address_refusal, webhook_target

if TYPE_CHECKING:
    from collections.abc import Buffer, Iterable

    from _typeshed import ReadableBuffer, SupportsRead, WriteableBuffer

    _Sendable = SupportsRead[bytes] | Iterable[Buffer] | Buffer | str  # what HTTPConnection.send takes


class Deadline:
    """A point in time (monotonic clock) every step of one request must finish by."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left; `TimeoutError` once there are none (so no step starts after the deadline)."""
        left = self._end - self._clock()
        if left <= 0:
            raise TimeoutError("webhook deadline passed")
        return left

    @property
    def passed(self) -> bool:
        return self._clock() >= self._end


@dataclass(frozen=True)
class ResolvedAddress:
    """One getaddrinfo answer: what to open a socket with and connect it to."""

    family: socket.AddressFamily
    proto: int
    sockaddr: tuple[Any, ...]  # (ip, port) or (ip, port, flow info, scope id)

    @property
    def ip(self) -> str:
        return str(self.sockaddr[0])


class AddressRefused(Exception):
    """The host resolved to an address a webhook may not be sent to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve_checked(target: WebhookTarget, deadline: Deadline) -> list[ResolvedAddress]:
    """The host's addresses, looked up once within the deadline; `AddressRefused` if any is not allowed (a name
    with one private address among public ones is refused: which one a later lookup favours is not ours to say)."""
    addresses: list[ResolvedAddress] = []
    for address in _getaddrinfo_within(target.host, target.port, deadline):
        refusal = address_refusal(address.ip, local_http=target.local_http)
        if refusal:
            raise AddressRefused(refusal)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no IPv4 or IPv6 address")
    return addresses


def _getaddrinfo_within(host: str, port: int, deadline: Deadline) -> list[ResolvedAddress]:
    """getaddrinfo, given up at the deadline: a lookup cannot be interrupted, and the receiver may run the name
    server, so it runs in a daemon thread that is left to finish on its own if it is too slow."""
    answers: list[ResolvedAddress] = []
    errors: list[OSError] = []

    def look_up() -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except OSError as error:
            errors.append(error)
            return
        for family, _, proto, _, sockaddr in found:
            if family in (socket.AF_INET, socket.AF_INET6) and isinstance(sockaddr[0], str):
                answers.append(ResolvedAddress(family, proto, sockaddr))

    lookup = threading.Thread(target=look_up, name="webhook-dns", daemon=True)
    lookup.start()
    lookup.join(deadline.remaining())
    if lookup.is_alive():
        raise TimeoutError("webhook name lookup")
    if errors:
        raise errors[0]
    return answers


def _connected_socket(addresses: Sequence[ResolvedAddress], deadline: Deadline) -> socket.socket:
    """A TCP connection to the first of the checked addresses that accepts one, within the deadline."""
    last_error: OSError = ConnectionError("no address")
    for address in addresses:
        sock = socket.socket(address.family, socket.SOCK_STREAM, address.proto)
        try:
            sock.settimeout(deadline.remaining())  # one blocking call: bounded by what is left
            sock.connect(address.sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            last_error = error
            continue
        return sock
    raise last_error


def _send_within(sock: socket.socket, data: ReadableBuffer, deadline: Deadline) -> None:
    """sendall, each send given only the time left (SSLSocket.sendall gives each of its sends the whole timeout)."""
    view = memoryview(data).cast("B")
    while view:
        sock.settimeout(deadline.remaining())
        view = view[sock.send(view) :]


class _ReadsBeforeDeadline(io.RawIOBase):
    """The socket's bytes, each read given only the time left before the deadline: a receiver dripping a byte at a
    time gets no new timeout per byte."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to `addresses` (already checked), with the Host header of `host`; every step within `deadline`."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[ResolvedAddress], deadline: Deadline) -> None:
        super().__init__(host, port)
        self.addresses, self.deadline = addresses, deadline

    def connect(self) -> None:
        self.sock = _connected_socket(self.addresses, self.deadline)

    def send(self, data: _Sendable) -> None:
        _send_deadline_bound(self, data)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `addresses` (already checked) while TLS verifies, and SNI names, `host`; every step within
    `deadline`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        addresses: Sequence[ResolvedAddress],
        deadline: Deadline,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = context or ssl.create_default_context()
        super().__init__(host, port, context=self.tls)
        self.addresses, self.deadline = addresses, deadline

    def connect(self) -> None:
        sock = _connected_socket(self.addresses, self.deadline)
        try:
            # The handshake, under one socket timeout, is bounded as a whole by it (CPython's _ssl keeps a deadline).
            sock.settimeout(self.deadline.remaining())
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise

    def send(self, data: _Sendable) -> None:
        _send_deadline_bound(self, data)


def _send_deadline_bound(connection: PinnedHTTPConnection | PinnedHTTPSConnection, data: _Sendable) -> None:
    if connection.sock is None:
        connection.connect()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("webhook requests are sent from bytes")  # http.client sends head and body as bytes
    _send_within(connection.sock, data, connection.deadline)


def post_status(
    connection: PinnedHTTPConnection | PinnedHTTPSConnection, request_target: str, headers: dict[str, str], body: bytes
) -> int:
    """POST on `connection` and read the answer's status line and headers (not its body) within its deadline."""
    connection.request("POST", request_target, body=body, headers=headers)
    response = http.client.HTTPResponse(connection.sock, method="POST")
    plain_reader = response.fp  # reads with one timeout per read: replaced before anything is read
    response.fp = io.BufferedReader(_ReadsBeforeDeadline(connection.sock, connection.deadline))
    plain_reader.close()
    try:
        response.begin()  # the status line and headers (100 Continue answers skipped), no body
    finally:
        response.close()
    if connection.deadline.passed:  # the head came, but too late: not delivered
        raise TimeoutError("webhook deadline passed")
    return response.status


class HttpWebhookSender:
    """The alerting function's `WebhookSender`. `allow_local_http`: plain http to this machine (the local stack)."""

    def __init__(
        self,
        timeout_seconds: float = 5.0,
        *,
        allow_local_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout_seconds
        self._allow_local_http = allow_local_http
        self._clock = clock  # the deadline's (monotonic seconds)
        self._tls = ssl.create_default_context()  # certificates and host names verified; built once, shared

    def post(self, request: WebhookRequest) -> SendResult:
        try:
            target = webhook_target(request.url, allow_local_http=self._allow_local_http)
        except WebhookUrlRefused as refused:
            return SendResult(ok=False, reason="invalid_url", error=refused.reason, permanent=True)
        deadline = Deadline(self._timeout, self._clock)
        connection: PinnedHTTPConnection | PinnedHTTPSConnection | None = None
        try:
            addresses = resolve_checked(target, deadline)
            if target.local_http:
                connection = PinnedHTTPConnection(target.host, target.port, addresses=addresses, deadline=deadline)
            else:
                connection = PinnedHTTPSConnection(
                    target.host, target.port, addresses=addresses, deadline=deadline, context=self._tls
                )
            headers = {**request.headers, "Connection": "close"}
            status = post_status(connection, target.request_target, headers, request.body)
        except AddressRefused as refused:
            return SendResult(ok=False, reason="invalid_url", error=refused.reason, permanent=True)
        except TimeoutError as error:
            return SendResult(ok=False, reason="timeout", error=type(error).__name__)
        except (http.client.HTTPException, OSError) as error:
            if deadline.passed:  # e.g. the receiver hung up just as the time ran out: the time ran out
                return SendResult(ok=False, reason="timeout", error=TimeoutError.__name__)
            return SendResult(ok=False, reason="connection_error", error=type(error).__name__)
        finally:
            if connection is not None:
                connection.close()
        if 200 <= status < 300:
            return SendResult.success(status)
        return SendResult(ok=False, reason="http_status", status=status)  # 3xx included: redirects are not followed
