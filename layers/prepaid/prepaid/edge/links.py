"""Public URLs of the API, derived from the request that asks for them (dashboard links)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from prepaid.domain.errors import InvalidRequest

_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


def _header(event: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in (event.get("headers") or {}).items() if k.lower() == name), None)


def public_base_url(event: dict[str, Any]) -> str:
    """The URL the caller reached the API at, without the route: `https://<host>/<stage>` on API Gateway.

    API Gateway always sets `X-Forwarded-Proto`, and its `requestContext.path` is the path the client sent: the
    stage in front of the route on the execute-api host, the base path mapping on a custom domain. So the prefix
    is what `requestContext.path` has in front of the route's `path`. A request without `X-Forwarded-Proto` did not
    come through API Gateway's front door (the local stand-in of `make local`): plain HTTP, routes at the root.
    """
    context = event.get("requestContext") or {}
    host = _header(event, "host") or context.get("domainName") or ""
    if not _HOST.fullmatch(host):
        raise InvalidRequest(field="Host", reason="malformed")
    proto = (_header(event, "x-forwarded-proto") or "").split(",")[0].strip().lower()
    if proto not in ("https", "http"):
        return f"http://{host}"
    path, full = event.get("path") or "", context.get("path") or ""
    prefix = full[: -len(path)] if path and full.endswith(path) else ""
    return f"{proto}://{host}{prefix.rstrip('/')}"


def dashboard_url(event: dict[str, Any], token: str) -> str:
    """The page with the token in the URL's fragment: browsers never send a fragment, so the token is in no
    request line or access log; the page moves it out of the address bar and the history."""
    return f"{public_base_url(event)}/dashboard#{urlencode({'token': token})}"
