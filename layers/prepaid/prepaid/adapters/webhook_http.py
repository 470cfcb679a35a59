"""POSTing a webhook with the standard library (no HTTP dependency in the layer).

One try per call, with a short timeout on connecting and on each read, so a slow receiver is a failed attempt that
the queue retries later rather than a function stuck until its own timeout. Redirects are not followed (a POST
turned into a GET would "succeed" without delivering anything) and proxies from the environment are ignored.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any

from prepaid.application.webhooks import SendResult, WebhookRequest, webhook_url_allowed


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status: a failed attempt


class UrllibWebhookSender:
    def __init__(self, timeout_seconds: float = 5.0) -> None:
        self._timeout = timeout_seconds
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def post(self, request: WebhookRequest) -> SendResult:
        if not webhook_url_allowed(request.url):
            return SendResult(ok=False, reason="invalid_url", permanent=True)
        sent = urllib.request.Request(request.url, data=request.body, headers=request.headers, method="POST")  # noqa: S310 - https, or http to loopback only (checked above)
        try:
            with self._opener.open(sent, timeout=self._timeout) as answer:
                return SendResult.success(answer.status)  # 2xx: anything else raised HTTPError
        except urllib.error.HTTPError as error:
            error.close()
            return SendResult(ok=False, reason="http_status", status=error.code)
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                return SendResult(ok=False, reason="timeout", error=type(error.reason).__name__)
            return SendResult(ok=False, reason="connection_error", error=type(error.reason).__name__)
        except TimeoutError as error:
            return SendResult(ok=False, reason="timeout", error=type(error).__name__)
        except (http.client.HTTPException, OSError) as error:
            return SendResult(ok=False, reason="connection_error", error=type(error).__name__)
