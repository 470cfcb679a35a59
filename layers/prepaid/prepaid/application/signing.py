"""Signed tokens: small JSON payloads a client carries and hands back (page cursors, dashboard links).

A token is `<payload, base64url>.<HMAC-SHA256 of it, base64url>`; the key is the deployment's signing secret.
Opening a token checks the signature in constant time before the payload is even parsed, so an altered token
is refused as a whole rather than half-read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Seals payloads into tokens and opens them again, for one purpose (tokens of another purpose fail)."""

    def __init__(self, key: bytes, purpose: str) -> None:
        if len(key) < 32:
            raise ValueError("a signing key needs at least 32 bytes")
        self._key = key
        self._purpose = purpose.encode()

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, self._purpose + b"\n" + body.encode(), hashlib.sha256).digest()

    def seal(self, payload: dict[str, Any]) -> str:
        body = _encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_encode(self._mac(body))}"

    def open(self, token: str) -> dict[str, Any] | None:
        """The payload of a token this signer sealed for this purpose; None for anything else (the caller says
        what that means: a bad cursor, a forged link)."""
        body, _, mac = token.partition(".")
        try:
            given = _decode(mac)
        except (binascii.Error, ValueError):
            return None
        if not body or not hmac.compare_digest(given, self._mac(body)):
            return None
        payload = json.loads(_decode(body))
        return payload if isinstance(payload, dict) else None
