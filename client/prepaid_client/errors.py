"""Typed errors: every refusal of the API is the contract's `{"error": {"code", "message", "details"?}}` body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PrepaidError(Exception):
    """Anything this client raises on purpose."""


class Unreachable(PrepaidError):
    """No HTTP answer at all: the server is down, the URL wrong, or the connection broke."""


class ApiError(PrepaidError):
    """An HTTP error answer, parsed: `status`, the contract's `code`, `message` and `details`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class NotFound(ApiError):
    """404: an unknown wallet, card or route (on AWS also an unsigned request)."""


class Conflict(ApiError):
    """409: the request cannot apply to the wallet as it is (a reused idempotency key, a card not voidable, ...)."""


class Invalid(ApiError):
    """400 or 422: the request itself is refused; `details` names the fields."""


class TooLarge(ApiError):
    """413: a body too big, or too many events in one request."""


class Throttled(ApiError):
    """429: still throttled after the client's retries."""


class ServerError(ApiError):
    """5xx: still failing after the client's retries (503), or an internal error."""


_BY_STATUS: dict[int, type[ApiError]] = {400: Invalid, 404: NotFound, 409: Conflict, 413: TooLarge, 422: Invalid}
_SNIPPET = 200  # how much of a body that is not the contract's to put in the message


def error_from_answer(status: int, body: Any, text: str = "") -> ApiError:
    """The typed error of an HTTP error answer; a body that is not the contract's keeps a snippet as message."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        code, message, details = error["code"], str(error.get("message", "")), error.get("details")
    else:
        code, message, details = f"http_{status}", text[:_SNIPPET] or "an answer without the contract's body", None
    if status == 429:
        kind: type[ApiError] = Throttled
    elif status >= 500:
        kind = ServerError
    else:
        kind = _BY_STATUS.get(status, ApiError)
    return kind(status, code, message, details)
