"""Every route of the template under hostile path parameters, queries, headers and bodies: never a 5xx.

Property, per request: the function answers within its timeout (else API Gateway answers 504; see
`InvocationDeadlines`) and below 500; a 4xx carries exactly the contract's error body (`{"error": {"code",
"message", "details"?}}`; the dashboard page may answer an HTML page instead); and a refused request leaves the
table as it was. The routes are read from template.yaml (every `Api` event of every function), so a new route is
covered without editing this file. Each route is tried first with every edge value in every place of a valid
request (explicit examples, so every run tries them all), then with what hypothesis draws. A 500 is reported with
the exception the handler logged, so each distinct cause is reported on its own. Examples share one seeded stack
per route; each starts from the seeded table again (see `TableState`), so a failure reproduces when shrunk.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

import api_handler
import dashboard_handler
import purchase_handler
import webhooks_handler
from prepaid_local.stack import Stack
from prepaid_local.template import load
from property.strategies import (
    AUTHORIZATIONS,
    CARD,
    CURSOR,
    DECIMAL_FIELDS,
    DEEPLY_NESTED,
    DROP,
    IDEMPOTENCY_KEYS,
    JSON_TYPE,
    OTHER_CONTENT_TYPES,
    RAW_BODIES,
    SETTINGS,
    TOKEN,
    Body,
    InvocationDeadlines,
    Json,
    TableState,
    authorizations,
    bodies,
    changed_keys,
    edge_values,
    encode,
    field_of,
    header_values,
    idempotency_keys,
    json_paths,
    json_text,
    path_values,
    query_edge_values,
    query_pairs,
    replaced,
    shorten,
    wire_strings,
    with_content_type,
)
from support.aws import REGION

# Each route gets its edge requests first (`edge_requests`: every edge value in every place, some 2,100 in all),
# then what hypothesis draws: a base, and more for each field its bodies have and each query parameter it reads
# (`examples_for`: some 1,200 in all). The file takes about a minute on two busy cores.
BASE_EXAMPLES = 30
EXAMPLES_PER_FIELD = 10
EXAMPLES_PER_QUERY_PARAMETER = 15
MAX_EXAMPLES_PER_ROUTE = 200
UNKNOWN_ROUTE_EXAMPLES = 60


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # with `{param}` placeholders, as the template writes it
    function: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def template_routes() -> list[ApiRoute]:
    """Every `Type: Api` event of every function of template.yaml."""
    found = {
        ApiRoute(event["Properties"]["Method"].upper(), event["Properties"]["Path"], logical)
        for logical, resource in load()["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if event.get("Type") == "Api"
    }
    return sorted(found, key=lambda r: (r.path, r.method))


ROUTES = template_routes()
# A multipart body declared without base64 is one of the hostile requests: Powertools warns, then refuses it (4xx).
pytestmark = pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64:UserWarning")
HTML_PAGES = {"GET /dashboard"}  # answers HTML, so a refusal may be an HTML page
ENDPOINT = "@ENDPOINT@"  # the seeded webhook endpoint's id

# -- what valid requests look like (prepaid/edge/schemas.py, prepaid/routes) ---------------------------

RECENT = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
PRICE = {"amount": "1.00", "currency": "USD"}
PRICE_BOOK: dict[str, Json] = {
    "currency": "USD",
    "mode": "volume",
    "tiers": [
        {"upTo": "9999", "unitPrice": "0.010"},
        {"upTo": "99999", "unitPrice": "0.009"},
        {"upTo": None, "unitPrice": "0.008"},
    ],
}
RATE_CARD: dict[str, Json] = {
    "meters": {
        "api_calls": {"creditsPerUnit": "0.5"},
        "storage_gb": {"creditsPerUnit": "2", "dimension": "region", "prices": {"eu": "3", "us": "1.5"}},
    },
    "overrides": {"acme": {"api_calls": {"creditsPerUnit": "0.25", "dimension": "model", "prices": {"gpt-4": "1"}}}},
}


def usage_event(event_id: str, meter: str = "api_calls", quantity: str = "10") -> dict[str, Json]:
    return {"eventId": event_id, "customerId": "acme", "meter": meter, "quantity": quantity, "timestamp": RECENT}


VALID_BODIES: dict[str, list[Json]] = {
    "POST /wallets/{customerId}/purchases": [
        {
            "credits": "250.5",
            "price": {"amount": "2.50", "currency": "USD"},
            "expiresIn": "P30D",
            "priority": 10,
            "source": "promotion",
            "effectiveAt": "2025-01-01T00:00:00Z",
        },
        {"credits": "100", "price": PRICE, "expiresAt": "2099-01-01T00:00:00Z", "effectiveAt": "2025-01-01T00:00:00Z"},
        {"credits": "100"},
        {
            "credits": "40",
            "price": PRICE,
            "appliesTo": {"meters": ["api_calls", "storage_gb"]},
            "reference": "INV-42",
            "metadata": {"contract": "C-7", "region": "eu"},
        },
    ],
    "POST /wallets/{customerId}/adjustments": [
        {"credits": "+25", "reason": "goodwill", "expiresIn": "P30D", "priority": 5, "appliesTo": {"meters": ["x"]}},
        {"credits": "-5", "reason": "correction", "meter": "api_calls", "reference": "T-1", "metadata": {"k": "v"}},
    ],
    "PATCH /wallets/{customerId}/cards/{cardId}": [
        {"expiresAt": "2099-01-01T00:00:00Z", "priority": 3, "reason": "renewal", "metadata": {"k": "v"}},
        {"expiresAt": None, "reason": "no expiry"},
    ],
    "POST /wallets/{customerId}/authorize": [
        {"meter": "api_calls", "quantity": "10"},
        {"meter": "storage_gb", "quantity": "2.5", "dimensions": {"region": "eu"}},
    ],
    "PUT /wallets/{customerId}/settings": [
        {
            "thresholds": ["10", "50"],
            "autoRecharge": {"threshold": "10", "credits": "100", "price": PRICE, "maxPerDay": 2},
            "recurring": {"credits": "100", "price": PRICE, "dayOfMonth": 1, "expiresIn": "P30D"},
            "webhookUrl": "https://example.com/hook",
        },
        {},
    ],
    "PATCH /wallets/{customerId}/settings": [
        {"thresholds": ["20", "25%"], "webhookUrl": None},
        {
            "autoRecharge": {"threshold": "10", "credits": "100", "price": PRICE, "maxPerDay": 2},
            "recurring": {"credits": "100", "dayOfMonth": 1, "expiresIn": "P1M", "rollover": {"maxPercent": "50"}},
            "overagePolicy": "block",
        },
        {"autoRecharge": None, "recurring": None, "webhookUrl": "https://example.com/hook"},
        {},
    ],
    "PUT /price-book": [PRICE_BOOK, {**PRICE_BOOK, "mode": "graduated"}],
    "PUT /rate-card": [RATE_CARD],
    "POST /usage": [
        {"events": [usage_event("ev-1"), {**usage_event("ev-2", "storage_gb", "2.5"), "dimensions": {"region": "eu"}}]},
        {"events": [usage_event("ev-3")]},
    ],
    "POST /wallets/{customerId}/dashboard-links": [{"ttlSeconds": 900}, {}],
    "POST /wallets/{customerId}/cards/{cardId}/void": [
        {},
        {"reason": "ended", "reference": "CN-1", "metadata": {"a": "b"}},
    ],
    "POST /webhook-endpoints": [
        {"url": "https://example.com/hooks", "eventTypes": ["Balance Low", "Credits Purchased"], "description": "b"},
        {"url": "https://example.com/every-event"},
    ],
    "PATCH /webhook-endpoints/{endpointId}": [
        {"url": "https://example.com/other", "eventTypes": None, "description": "changed", "disabled": True},
        {"eventTypes": ["Balance Low"]},
        {},
    ],
}
KNOWN_QUERIES: dict[str, dict[str, list[str]]] = {
    "GET /quotes": {"credits": ["100", "10000", "250000"]},
    "GET /wallets/{customerId}/ledger": {
        "type": ["purchase", "usage"],
        "from": ["2025-01-01T00:00:00Z"],
        "to": ["2099-01-01T00:00:00Z"],
        "limit": ["1", "50"],
        "cursor": [CURSOR],
    },
    "GET /wallets/{customerId}/usage": {
        "meter": ["api_calls"],
        "from": [(datetime.now(UTC) - timedelta(days=2)).isoformat()],
        "to": [RECENT],
        "granularity": ["hour", "day"],
    },
    "GET /wallets/{customerId}/forecast": {"horizonDays": ["30", "1"]},
    "GET /reports/revenue": {"from": ["2025-01-01"], "to": ["2026-01-01"]},
    "GET /dashboard": {"token": [TOKEN]},
    "GET /dashboard/data": {"token": [TOKEN]},
    "GET /webhook-endpoints/{endpointId}/deliveries": {"limit": ["1", "100"], "cursor": [CURSOR]},
    "GET /wallets/{customerId}/webhook/deliveries": {"limit": ["1", "100"], "cursor": [CURSOR]},
}
REQUIRED_QUERIES = {"GET /reports/revenue": frozenset({"from", "to"})}
KNOWN_PATH_VALUES: dict[str, list[str]] = {
    "customerId": ["acme", "nobody", "A" * 128, "a.b:c@d-e"],
    "cardId": [CARD, "nope", "A" * 64],
    "endpointId": [ENDPOINT, "ep_" + "0" * 32, "nope"],
    "eventId": ["seed-1", "nope"],  # no delivery of either: a resend is refused
}
TOKEN_ROUTES = {"GET /dashboard", "GET /dashboard/data"}
IDEMPOTENT_ROUTES = {"POST /wallets/{customerId}/purchases", "POST /wallets/{customerId}/adjustments"}


def examples_for(route: ApiRoute) -> int:
    """More examples where there is more to make hostile: the fields of the route's bodies, its query parameters."""
    fields = {field_of(place) for body in VALID_BODIES.get(str(route), []) for place in json_paths(body)} - {""}
    wide = len(fields) * EXAMPLES_PER_FIELD + len(KNOWN_QUERIES.get(str(route), {})) * EXAMPLES_PER_QUERY_PARAMETER
    return min(MAX_EXAMPLES_PER_ROUTE, BASE_EXAMPLES + wide)


# -- requests ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request to a route, with placeholders (`@CARD@`, `@TOKEN@`, `@CURSOR@`) for what the seeding made."""

    method: str
    route: str
    params: tuple[tuple[str, str], ...]
    encode_path: bool
    query: tuple[tuple[str, str], ...]
    encode_query: bool
    headers: tuple[tuple[str, str], ...]
    body: Body

    def path(self, known: Mapping[str, str]) -> str:
        path = self.route
        for name, value in self.params:
            path = path.replace("{" + name + "}", encode(_fill(value, known), fully=self.encode_path))
        return path

    def query_string(self, known: Mapping[str, str]) -> str:
        return "&".join(
            f"{encode(_fill(k, known), fully=self.encode_query)}={encode(_fill(v, known), fully=self.encode_query)}"
            for k, v in self.query
        )

    def header_map(self, known: Mapping[str, str]) -> dict[str, str]:
        headers = {name: _fill(value, known) for name, value in self.headers}
        if self.body.content_type is not None:
            headers[self.body.header] = self.body.content_type
        return headers

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis reports an example
        printer.text(repr(self))

    def __repr__(self) -> str:
        query = self.query_string({})
        url = _placeholders_shown(self.path({}) + ("?" + query if query else ""))
        return (
            f"{self.method} {shorten(url, 300)} "
            f"headers={{{', '.join(f'{k}: {shorten(v, 80)}' for k, v in self.header_map({}).items())}}} "
            f"body={self.body!r}"
        )


def _placeholders_shown(url: str) -> str:
    """A URL as reported, its placeholders as they are written (not percent-encoded)."""
    for placeholder in (CARD, TOKEN, CURSOR, ENDPOINT):
        url = url.replace(encode(placeholder, fully=True), placeholder)
    return url


def _fill(text: str, known: Mapping[str, str]) -> str:
    for placeholder, value in known.items():
        text = text.replace(placeholder, value)
    return text


PARTS = ("body", "query", "path", "headers")
HOSTILE_BODIES = {str(r): bodies(VALID_BODIES.get(str(r), [])) for r in ROUTES}
GOOD_BODIES = {
    str(r): st.sampled_from([Body(json.dumps(v)) for v in VALID_BODIES.get(str(r), [])] or [Body(None, None)])
    for r in ROUTES
}
HOSTILE_QUERIES = {str(r): query_pairs(KNOWN_QUERIES.get(str(r), {})) for r in ROUTES}
GOOD_QUERIES = {
    str(r): query_pairs(KNOWN_QUERIES.get(str(r), {}), REQUIRED_QUERIES.get(str(r), frozenset()), max_changes=0)
    for r in ROUTES
}
PATH_VALUES = {name: path_values(values) for name, values in KNOWN_PATH_VALUES.items()}
# The part of a request made hostile: the body four times and the query three times as often where the route
# reads them.
FOCUSES = {
    str(r): st.sampled_from(
        [
            *(["body"] * 4 if str(r) in VALID_BODIES else ["body"]),
            *(["query"] * 3 if str(r) in KNOWN_QUERIES else ["query"]),
            *(["path"] if r.params else []),
            "headers",
            "everything",
        ]
    )
    for r in ROUTES
}


def baseline(route: ApiRoute) -> Request:
    """The route's plain valid request: known ids, its required query parameters, its first valid body, a token."""
    key = str(route)
    valid = VALID_BODIES.get(key, [])
    required = REQUIRED_QUERIES.get(key, frozenset())
    return Request(
        method=route.method,
        route=route.path,
        params=tuple((name, KNOWN_PATH_VALUES.get(name, ["acme"])[0]) for name in route.params),
        encode_path=True,
        query=tuple((k, values[0]) for k, values in KNOWN_QUERIES.get(key, {}).items() if k in required),
        encode_query=True,
        headers=(("Authorization", f"Bearer {TOKEN}"),) if key in TOKEN_ROUTES else (),
        body=Body(json.dumps(valid[0])) if valid else Body(None, None),
    )


EDGE_PATH_VALUES = (
    " ",
    "..",
    "%2F",
    "a/b",
    "\n",
    "\x00",
    "\uff41\uff43\uff4d\uff45",
    "😀",
    "-acme",
    "a" * 129,
    "a" * 1025,
)
RAW_DECIMAL_TOKENS = ("NaN", "Infinity", "1e400", "1" + "0" * 5000, "-0")


def edge_requests(route: ApiRoute) -> list[Request]:
    """Every edge value in every place, one at a time, on the route's plain request, run as explicit examples
    before hypothesis draws its own: each place of each valid body (each edge value of its kind, and dropped,
    and its key written twice; decimals also as raw `NaN`, `1e400`, ... tokens), deeply nested and raw bodies,
    each known query parameter (each edge value, and repeated), each path parameter (encoded and not), each other
    content type (with the body, with an empty one), and each hostile idempotency key or authorization."""
    key, base = str(route), baseline(route)
    found: list[Request] = []

    def body(text: str | None, content_type: str | None = JSON_TYPE) -> None:
        found.append(replace(base, body=Body(text, content_type)))

    tried: set[tuple[str | int, ...]] = set()
    for valid in VALID_BODIES.get(key, []):
        for place in list(json_paths(valid))[1:]:
            field, shape = field_of(place), tuple(0 if isinstance(p, int) else p for p in place)
            if shape in tried:  # the same field in another example body, or another item of the same list
                continue
            tried.add(shape)
            for value in (*edge_values(field), DROP):
                body(json.dumps(replaced(valid, place, value)))
            if isinstance(place[-1], str):
                body(json_text(valid, place, twice=json.dumps(edge_values(field)[0])))
            if field in DECIMAL_FIELDS:
                for token in RAW_DECIMAL_TOKENS:
                    body(json_text(valid, place, raw=token))
    for text in (*DEEPLY_NESTED, *RAW_BODIES):
        body(text)
    for name, values in KNOWN_QUERIES.get(key, {}).items():
        others = tuple(pair for pair in base.query if pair[0] != name)
        for value in query_edge_values(name):
            found.append(replace(base, query=(*others, (name, value))))
        found.append(replace(base, query=(*others, (name, values[0]), (name, query_edge_values(name)[0]))))
    for name in route.params:
        for value in EDGE_PATH_VALUES:
            params = tuple((n, value if n == name else v) for n, v in base.params)
            found += [replace(base, params=params, encode_path=fully) for fully in (True, False)]
    for content_type in OTHER_CONTENT_TYPES:
        body(base.body.text, content_type)
        body("", content_type)
    if key in IDEMPOTENT_ROUTES:
        found += [replace(base, headers=(("Idempotency-Key", k),)) for k in IDEMPOTENCY_KEYS]
    if key in TOKEN_ROUTES:
        found += [replace(base, headers=(("Authorization", a),)) for a in AUTHORIZATIONS]
    return list(dict.fromkeys(found))


@st.composite
def requests(draw: st.DrawFn, route: ApiRoute) -> Request:
    """A request to `route`. One part of it is hostile (its body, query, path parameters or headers) and the rest
    valid, so that most requests get past the other checks to the code under that part; or every part is hostile."""
    key = str(route)
    focus = draw(FOCUSES[key])
    hostile = {part: focus in (part, "everything") for part in PARTS}
    params = tuple(
        (name, draw(PATH_VALUES.get(name, PATH_VALUES["customerId"])) if hostile["path"] else known[0])
        for name in route.params
        for known in [KNOWN_PATH_VALUES.get(name, ["acme"])]
    )
    headers: list[tuple[str, str]] = []
    if key in IDEMPOTENT_ROUTES and draw(st.booleans()):
        headers.append(("Idempotency-Key", draw(idempotency_keys()) if hostile["headers"] else "order-1"))
    if key in TOKEN_ROUTES and (not hostile["headers"] or draw(st.booleans())):
        scheme = draw(st.sampled_from(("Authorization", "authorization"))) if hostile["headers"] else "Authorization"
        headers.append((scheme, draw(authorizations()) if hostile["headers"] else f"Bearer {TOKEN}"))
    if hostile["headers"] and draw(st.booleans()):  # a header no route reads
        headers.append((draw(st.sampled_from(("X-Forwarded-For", "User-Agent", "Accept"))), draw(header_values())))
    body = draw((HOSTILE_BODIES if hostile["body"] else GOOD_BODIES)[key])
    if hostile["headers"]:
        body = draw(with_content_type(body))
    return Request(
        method=route.method,
        route=route.path,
        params=params,
        encode_path=draw(st.booleans()),
        query=draw((HOSTILE_QUERIES if hostile["query"] else GOOD_QUERIES)[key]),
        encode_query=draw(st.booleans()),
        headers=tuple(headers),
        body=body,
    )


# -- answers -----------------------------------------------------------------------------------------------------------

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def contract_error_problem(text: str | None) -> str | None:
    """Why a body is not exactly `{"error": {"code": snake_case, "message": text, "details"?: ...}}`, or None."""
    try:
        body = json.loads(text or "")
    except ValueError:
        return f"not JSON: {shorten(text)}"
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return f"not an error object: {shorten(text)}"
    error = body["error"]
    if not set(error) <= {"code", "message", "details"}:
        return f"unexpected keys {sorted(set(error) - {'code', 'message', 'details'})}: {shorten(text)}"
    if not isinstance(error.get("code"), str) or not SNAKE_CASE.fullmatch(error["code"]):
        return f"code not a snake_case string: {shorten(text)}"
    if not isinstance(error.get("message"), str) or not error["message"].strip():
        return f"message not a non-empty string: {shorten(text)}"
    if "details" in error and not _one_detail_shape(error["details"]):
        return f"details not a list of {{reason, field?, ...}} objects: {shorten(text)}"
    return None


def _one_detail_shape(details: Any) -> bool:
    """The one shape of `details`: a non-empty list of objects, each with a string `reason` (and `field`, if any,
    a string)."""
    return (
        isinstance(details, list)
        and bool(details)
        and all(
            isinstance(d, dict) and isinstance(d.get("reason"), str) and isinstance(d.get("field", ""), str)
            for d in details
        )
    )


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str | None
    logged: tuple[BaseException, ...] = ()  # what the handler logged as unexpected while answering
    late: tuple[str, ...] = ()  # the functions that ran past their timeout while answering


class LoggedErrors(logging.Handler):
    """The exceptions the handlers log (`logger.exception`) while they answer: what a 500 hides."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


def five_hundred(answer: Answer) -> AssertionError:
    """The failure for a 5xx, chained to the exception the handler logged, if any: hypothesis then tells 500s of
    different causes apart (it reports each distinct one) and the report shows where each was raised."""
    failure = AssertionError(f"{answer.status}: {shorten(answer.text, 400)}")
    if answer.logged:
        failure.__cause__ = failure.__context__ = answer.logged[-1]
    return failure


def answer_of(proxy: dict[str, Any]) -> Answer:
    headers = {k.lower(): v[-1] for k, v in (proxy.get("multiValueHeaders") or {}).items() if v}
    headers.update({k.lower(): v for k, v in (proxy.get("headers") or {}).items()})
    text = proxy.get("body")
    if proxy.get("isBase64Encoded") and isinstance(text, str):
        text = base64.b64decode(text).decode("utf-8", "replace")
    return Answer(int(proxy["statusCode"]), str(headers.get("content-type", "")), text)


# -- the seeded stack --------------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """A stack with a price book, a rate card, and a wallet `acme` funded with one card and a little usage."""

    stack: Stack
    table: TableState
    known: dict[str, str]  # placeholder → value
    items: dict[tuple[str, str], dict[str, Any]]  # the table once seeded
    logged: LoggedErrors

    def __repr__(self) -> str:
        return f"Seeded({self.known})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def restore(self) -> None:
        """The seeded state again: the table, and the seeded endpoint's secret if a DELETE scheduled its deletion
        (the table alone would bring back an endpoint whose secret is going: a state no request can make)."""
        self.table.restore(self.items)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        name = os.environ["WEBHOOK_ENDPOINT_SECRET_PREFIX"] + self.known[ENDPOINT]
        if secrets.describe_secret(SecretId=name).get("DeletedDate"):
            secrets.restore_secret(SecretId=name)

    def send(self, request: Request) -> Answer:
        """The request through the gateway, the function bounded by its timeout (`InvocationDeadlines`)."""
        self.logged.errors.clear()
        with InvocationDeadlines(self.stack) as deadlines:
            proxy = self.stack.proxy(
                request.method,
                request.path(self.known),
                query=request.query_string(self.known),
                headers=request.header_map(self.known) or None,
                body=_fill(request.body.text, self.known) if request.body.text is not None else None,
                base64_body=request.body.base64,
            )
        return replace(answer_of(proxy), logged=tuple(self.logged.errors), late=tuple(deadlines.late))


@pytest.fixture
def seeded(stack: Stack) -> Iterator[Seeded]:
    assert stack.api("PUT", "/price-book", PRICE_BOOK).status == 200
    assert stack.api("PUT", "/rate-card", RATE_CARD).status == 200
    bought = stack.api("POST", "/wallets/acme/purchases", {"credits": "1000", "price": PRICE})
    assert bought.status == 201, bought.body
    used = stack.api("POST", "/usage", {"events": [usage_event("seed-1"), usage_event("seed-2", "storage_gb", "3")]})
    assert used.status == 202 and len(used.body["accepted"]) == 2, used.body
    stack.pump_queues()
    page = stack.api("GET", "/wallets/acme/ledger", query="limit=1")
    assert page.status == 200 and page.body["nextCursor"], page.body
    link = stack.api("POST", "/wallets/acme/dashboard-links", {"ttlSeconds": 86_400})
    assert link.status == 201, link.body
    # a webhook endpoint, made after the queues were pumped: nothing is ever sent to it
    endpoint = stack.api("POST", "/webhook-endpoints", {"url": "https://example.com/hooks"})
    assert endpoint.status == 201, endpoint.body
    known = {CARD: bought.body["card"]["cardId"], TOKEN: link.body["token"], CURSOR: page.body["nextCursor"]}
    known[ENDPOINT] = endpoint.body["id"]
    table = TableState(stack)
    logged = LoggedErrors()
    handlers = (api_handler, purchase_handler, dashboard_handler, webhooks_handler)
    loggers = {logging.getLogger(handler.logger.name) for handler in handlers}
    for logger in loggers:
        logger.addHandler(logged)
    yield Seeded(stack, table, known, table.items(), logged)
    for logger in loggers:
        logger.removeHandler(logged)


# -- tests -------------------------------------------------------------------------------------------------------------


def test_the_routes_come_from_the_template() -> None:
    # Given the routes read from template.yaml
    names = {str(r) for r in ROUTES}
    # Then they are there, the purchase and the usage routes among them, with the functions that serve them
    assert len(ROUTES) >= 10
    assert {"POST /wallets/{customerId}/purchases", "POST /usage", "GET /dashboard", "POST /webhook-endpoints"} <= names
    assert all(r.function for r in ROUTES)
    # And every route this file knows a valid body or query for is one of them (a renamed route shows here)
    assert set(VALID_BODIES) | set(KNOWN_QUERIES) <= names


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_no_request_to_a_route_makes_a_5xx_and_a_refused_one_changes_nothing(seeded: Seeded, route: ApiRoute) -> None:
    """One seeded stack for the route; hypothesis sends it `examples_for(route)` requests."""

    @settings(SETTINGS, max_examples=examples_for(route))
    @given(request=requests(route))
    def each(request: Request) -> None:
        try:
            # When the request (valid or hostile in its body, query, path or headers) is sent
            answer = seeded.send(request)
            after = seeded.table.items()
            event(f"status {answer.status}")
            # Then the function finished within its timeout (else API Gateway answers 504), and it is never a 5xx
            assert not answer.late, f"{answer.late} ran past the function's timeout: {shorten(answer.text)}"
            if answer.status >= 500:
                raise five_hundred(answer)
            if answer.status >= 400:
                # And a refusal is the contract's error body (or, for the page, an HTML page)
                html = str(route) in HTML_PAGES and answer.content_type.startswith("text/html")
                problem = None if html else contract_error_problem(answer.text)
                assert problem is None, f"{answer.status} without the contract's error body: {problem}"
                # And it changed nothing
                changed = changed_keys(seeded.items, after)
                assert not changed, f"{answer.status} refusal changed the table: {changed}"
        finally:
            seeded.restore()

    # Given the seeded stack: a price book, a rate card, and `acme` with one card and some usage; and the edge
    # values in every place first, then what hypothesis draws
    for request in reversed(edge_requests(route)):
        each = example(request=request)(each)
    each()


METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
ODD_PATHS = (
    "/",
    "",
    "/wallets",
    "/wallets/",
    "/wallets/acme/",
    "/wallets//purchases",
    "/wallets/acme/cards//void",
    "/wallets/acme/purchases/extra",
    "/WALLETS/acme",
    "/v1/wallets/acme",
    "//wallets/acme",
    "/dashboard/",
    "/dashboard/data/x",
    "/nope",
    "/..",
)


def unrouted_paths() -> st.SearchStrategy[str]:
    """Paths of the template's routes (filled), odd variants of them, and random ones."""
    filled = st.sampled_from([re.sub(r"\{\w+\}", "acme", r.path) for r in ROUTES])
    return st.one_of(filled, st.sampled_from(ODD_PATHS), wire_strings().map(lambda s: "/" + s))


@settings(SETTINGS, max_examples=UNKNOWN_ROUTE_EXAMPLES)
@given(method=st.sampled_from(METHODS), path=unrouted_paths())
def test_an_unknown_route_or_method_answers_the_contracts_error_body(stack: Stack, method: str, path: str) -> None:
    # Given a method and path that no route of the template serves
    assume(stack.gateway.route(method, path) is None)
    # When it is requested
    answer = answer_of(stack.proxy(method, path))
    # Then the answer is a 4xx with the contract's error body (API Gateway's gateway responses)
    assert 400 <= answer.status < 500, f"{answer.status}: {shorten(answer.text)}"
    problem = contract_error_problem(answer.text)
    assert problem is None, f"{answer.status} without the contract's error body: {problem}"
