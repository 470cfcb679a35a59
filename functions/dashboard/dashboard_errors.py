"""The one place where the dashboard's errors become HTTP: JSON for its data route, an HTML page for the page.

Refused tokens: a missing one is 401 `token_missing`, an expired one 401 `token_expired` (both with a
`WWW-Authenticate: Bearer` challenge), an altered or forged one 403 `invalid_token`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from dashboard_page import ERROR_POLICY, JSON_POLICY, error_page

from prepaid.domain import errors as domain

# Never stored, never sent on, never framed: the token is in the page's URL.
COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_MESSAGES: dict[type[domain.DomainError], tuple[HTTPStatus, Callable[[Any], str]]] = {
    domain.TokenMissing: (HTTPStatus.UNAUTHORIZED, lambda e: "a dashboard token is needed (Authorization: Bearer)"),
    domain.TokenExpired: (HTTPStatus.UNAUTHORIZED, lambda e: f"the dashboard link expired at {e.expired_at}"),
    domain.InvalidToken: (HTTPStatus.FORBIDDEN, lambda e: "the dashboard token is not valid"),
    domain.WalletNotFound: (HTTPStatus.NOT_FOUND, lambda e: "this dashboard's wallet does not exist"),
}


def headers(policy: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**COMMON_HEADERS, "Content-Security-Policy": policy, **(extra or {})}


def _refusal(status: HTTPStatus, code: str, message: str, *, page: bool) -> Response[Any]:
    extra = {}
    if status == HTTPStatus.UNAUTHORIZED:  # RFC 6750: no error attribute when no token was given
        detail = "" if code == "token_missing" else f', error="invalid_token", error_description="{code}"'
        extra["WWW-Authenticate"] = f'Bearer realm="dashboard"{detail}'
    if page:
        return Response(
            status_code=status.value,
            content_type="text/html; charset=utf-8",
            body=error_page(status.value, code, message),
            headers=headers(ERROR_POLICY, extra),
        )
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message}}),
        headers=headers(JSON_POLICY, extra),
    )


def domain_error_response(error: domain.DomainError, *, page: bool) -> Response[Any]:
    """Map a domain error by its class; an unmapped one is a bug, so it is a 500 like any other. No details:
    the page is public, so nothing about the wallet or the token leaks beyond the code."""
    for cls in type(error).__mro__:
        if cls in _MESSAGES:
            status, message = _MESSAGES[cls]
            return _refusal(status, error.code, message(error), page=page)
    return internal_error_response(page=page)


def internal_error_response(*, page: bool) -> Response[Any]:
    return _refusal(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; it has been logged", page=page)


def not_found_response() -> Response[Any]:
    return _refusal(HTTPStatus.NOT_FOUND, "route_not_found", "no such route", page=False)
