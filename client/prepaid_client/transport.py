"""One HTTP exchange with the API: signed with SigV4 for `execute-api` (the standard credential chain, through
botocore) unless unsigned, retried on 429 and 503 with backoff, the answer parsed with decimals kept exact."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session
from botocore.session import Session
from botocore.utils import get_environ_proxies

from prepaid_client.errors import Unreachable, error_from_answer

SERVICE = "execute-api"
RETRIED_STATUSES = frozenset({429, 503})  # throttled, or "send the same request again" (the contract's 503s)
DEFAULT_REGION = "us-east-1"
_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_MAX_BACKOFF_SECONDS = 8.0


class Sender(Protocol):
    """What sends a prepared request (botocore's URLLib3Session; a fake in tests)."""

    def send(self, request: AWSPreparedRequest) -> Any: ...


@dataclass(frozen=True)
class Reply:
    """A successful answer: its status, headers (lower-case names) and parsed JSON body (None when empty)."""

    status: int
    headers: Mapping[str, str]
    body: Any


def region_for(url: str, region: str | None = None) -> str:
    """The region to sign for: given, else the API's own host's (`<id>.execute-api.<region>.amazonaws.com`), else
    the standard configuration's (AWS_REGION, the profile), else us-east-1."""
    if region:
        return region
    found = _API_HOST.match(urlsplit(url).hostname or "")
    if found:
        return found.group(1)
    configured = Session().get_config_variable("region")
    return str(configured) if configured else DEFAULT_REGION


def default_credentials() -> Credentials | None:
    """The standard credential chain (environment, profile, SSO, container, instance); None when it finds none."""
    return Session().get_credentials()


class Transport:
    """Sends requests to one API base URL (a stage URL on AWS keeps its `/v1` prefix)."""

    def __init__(
        self,
        url: str,
        *,
        region: str,
        credentials: Credentials | None,
        max_retries: int = 3,
        timeout: int = 30,  # seconds
        sender: Sender | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.region = region
        self.credentials = credentials
        self.max_retries = max_retries
        self._sleep = sleep
        # Loopback (make local) never goes through a proxy; elsewhere the environment's proxy settings apply.
        host = urlsplit(self.url).hostname or ""
        proxies = {} if host in _LOOPBACK else get_environ_proxies(self.url)
        self._sender: Sender = sender or URLLib3Session(proxies=proxies, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request, retried on 429/503 (the same headers, so the same idempotency key); an error → ApiError."""
        kept = {name: str(value) for name, value in (query or {}).items() if value is not None}
        url = self.url + path + (f"?{urlencode(kept)}" if kept else "")
        sent = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
        attempt = 0
        while True:
            status, answer_headers, content = self._send_once(method, url, body, sent)
            if status in RETRIED_STATUSES and attempt < self.max_retries:
                self._sleep(self._backoff(attempt, answer_headers.get("retry-after")))
                attempt += 1
                continue
            parsed = _parse(content)
            if status >= 400:
                raise error_from_answer(status, parsed, content.decode("utf-8", "replace"))
            return Reply(status, answer_headers, parsed)

    def _send_once(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        if self.credentials is not None:  # signed afresh each attempt: a signature is valid for a few minutes
            SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(request)
        try:
            response = self._sender.send(request.prepare())
        except BotoCoreError as error:
            raise Unreachable(f"{method} {url}: {error}") from error
        answer_headers = {str(name).lower(): str(value) for name, value in response.headers.items()}
        return int(response.status_code), answer_headers, bytes(response.content or b"")

    @staticmethod
    def _backoff(attempt: int, retry_after: str | None) -> float:
        """The server's Retry-After (seconds) when it gives one, else exponential with full jitter."""
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after), _MAX_BACKOFF_SECONDS)
        return random.uniform(0, min(0.25 * 2**attempt, _MAX_BACKOFF_SECONDS))  # noqa: S311 - jitter, not secrecy


def _parse(content: bytes) -> Any:
    """JSON with every number that has a fraction as Decimal (never float); not JSON → None."""
    if not content:
        return None
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return None
