"""API Gateway REST proxy events, shaped as API Gateway sends them, and routing by the template's `Api` events."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

LOCAL_PRINCIPAL = {
    "accountId": "123456789012",
    "caller": "AIDALOCALPRINCIPAL",
    "user": "AIDALOCALPRINCIPAL",
    "userArn": "arn:aws:iam::123456789012:user/local",
    "accessKey": "AKIALOCAL",
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway resource path, such as /wallets/{customerId}
    function: str  # logical id

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() != self.method.upper() and self.method.upper() != "ANY":
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


def routes(functions: dict[str, Any]) -> list[Route]:
    """Every `Api` event of every function, static paths before templated ones, as API Gateway prefers."""
    found = [
        Route(event["Properties"]["Method"], event["Properties"]["Path"], logical)
        for logical, spec in functions.items()
        for event in spec.events.values()
        if event.get("Type") == "Api"
    ]
    return sorted(found, key=lambda r: (r.path.count("{"), -len(r.path)))


def proxy_event(
    method: str,
    route: Route,
    path: str,
    path_parameters: dict[str, str],
    query_string: str = "",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    stage: str = "v1",
    principal: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event."""
    headers = dict(headers or {})
    multi_headers = {k: [v] for k, v in headers.items()}
    pairs = parse_qsl(query_string, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for key, value in pairs:
        multi_query.setdefault(key, []).append(value)
    identity = {
        "cognitoIdentityPoolId": None,
        "cognitoIdentityId": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "sourceIp": "127.0.0.1",
        "principalOrgId": None,
        "userAgent": headers.get("User-Agent", headers.get("user-agent", "")),
        **(principal or LOCAL_PRINCIPAL),
    }
    now = time.time()
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "deploymentId": "local",
            "resourcePath": route.path,
            "httpMethod": method.upper(),
            "extendedRequestId": uuid.uuid4().hex,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": identity,
            "domainName": "localhost",
            "apiId": "local",
        },
        "body": body,
        "isBase64Encoded": False,
    }


# The status API Gateway gives a response type when the template does not set one, and its own message.
_DEFAULT_STATUS = {"MISSING_AUTHENTICATION_TOKEN": 403, "REQUEST_TOO_LARGE": 413, "INTEGRATION_FAILURE": 502}
_MESSAGES = {
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "REQUEST_TOO_LARGE": "Request Too Long",
    "INTEGRATION_FAILURE": "Internal server error",
}


@dataclass(frozen=True)
class GatewayResponse:
    """One of the API's `GatewayResponses`: what API Gateway answers itself for a response type."""

    status: int | None = None
    template: str | None = None  # the application/json response template
    headers: dict[str, str] = field(default_factory=dict)


def gateway_responses(template: dict[str, Any]) -> dict[str, GatewayResponse]:
    """The `GatewayResponses` of the template's (one) REST API, by response type."""
    found: dict[str, GatewayResponse] = {}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        for kind, spec in resource.get("Properties", {}).get("GatewayResponses", {}).items():
            headers = spec.get("ResponseParameters", {}).get("Headers", {})
            found[kind] = GatewayResponse(
                status=int(spec["StatusCode"]) if "StatusCode" in spec else None,
                template=spec.get("ResponseTemplates", {}).get("application/json"),
                headers={name: str(value).strip("'") for name, value in headers.items()},
            )
    return found


def gateway_answer(responses: dict[str, GatewayResponse], kind: str, request_id: str = "local") -> dict[str, Any]:
    """What API Gateway answers for a response type (a proxy answer): the template's response for that type, else
    its DEFAULT_4XX or DEFAULT_5XX, else API Gateway's own `{"message": ...}`."""
    status = _DEFAULT_STATUS.get(kind, 500)
    own = responses.get(kind)
    fallback = responses.get("DEFAULT_5XX" if (own.status if own and own.status else status) >= 500 else "DEFAULT_4XX")
    chosen = own if own is not None and own.template is not None else fallback
    status = own.status if own is not None and own.status is not None else status
    message = _MESSAGES.get(kind, kind.replace("_", " ").capitalize())
    if chosen is None or chosen.template is None:
        body = json.dumps({"message": message})
    else:
        body = chosen.template.replace("$context.error.messageString", json.dumps(message))
        body = body.replace("$context.error.responseType", kind).replace("$context.requestId", request_id)
    headers = {"Content-Type": "application/json", **(fallback.headers if fallback else {})}
    headers |= own.headers if own is not None else {}
    return {"statusCode": status, "headers": headers, "body": body}


@dataclass
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: Any


class Gateway:
    """API Gateway's REST proxy integration over `invoke(function logical id, event)`."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Callable[[str, dict[str, Any]], Any],
        responses: dict[str, GatewayResponse] | None = None,
    ) -> None:
        self.routes = routes
        self.invoke = invoke  # also for callers that invoke a function directly (a bus event, in tests)
        self.responses = responses or {}

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def proxy(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
        body: str | None = None,
        base64_body: bool = False,
    ) -> dict[str, Any]:
        """A request as received → the handler's answer as it returns it (headers and body untouched)."""
        found = self.route(method, path)
        if found is None:  # an unknown path, or a method the path does not have
            return gateway_answer(self.responses, "MISSING_AUTHENTICATION_TOKEN")
        route, params = found
        event = proxy_event(method, route, path, params, query, headers, body)
        event["isBase64Encoded"] = base64_body
        answer: dict[str, Any] = self.invoke(route.function, event)
        return answer

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> ApiAnswer:
        """A client's request (a JSON body is sent as application/json) → status, headers and parsed body."""
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        all_headers = {"Content-Type": "application/json", **(headers or {})} if text is not None else headers
        answer = self.proxy(method, path, query=query, headers=all_headers, body=text)
        raw = answer.get("body")
        try:
            parsed = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            parsed = raw
        out_headers = {
            k: v[-1] if isinstance(v, list) else v for k, v in (answer.get("multiValueHeaders") or {}).items()
        }
        out_headers.update(answer.get("headers") or {})
        return ApiAnswer(answer["statusCode"], out_headers, parsed)
