"""Every file in events/ runs through the function the template wires it to, and is shaped as AWS sends it.

The samples are what `sam local invoke -e events/<file>.json` feeds a function. Each one is routed here by its
content, never by its name: an API event by its `resource` and `httpMethod` against the template's `Api` events, a
DynamoDB stream event to the function whose stream event source (and FilterCriteria) accepts it. So a sample cannot
point at a route the template does not have, and a new sample with no function or no scenario below fails the suite.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from moto.events.models import EventPattern

from prepaid_local.apigateway import Route, proxy_event
from prepaid_local.stack import Stack
from prepaid_local.template import ROOT
from support.aws import BusTap

EVENTS = ROOT / "events"
FILES = sorted(EVENTS.glob("*.json"))
STREAM_ARN = re.compile(r"^arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]+/stream/\S+$")

Event = dict[str, Any]


def load_event(name: str) -> Event:
    event: Event = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def is_api_event(event: Event) -> bool:
    return "httpMethod" in event and "requestContext" in event


def api_route(stack: Stack, event: Event) -> Route | None:
    """The template's `Api` event with exactly this resource and method (not merely a path that matches)."""
    method = str(event.get("httpMethod", "")).upper()
    return next(
        (r for r in stack.gateway.routes if r.path == event.get("resource") and r.method.upper() == method), None
    )


def route_authorizer(stack: Stack, route: Route) -> str:
    """The authorizer of a route: its `Api` event's own `Auth.Authorizer`, else its API's default."""
    (props,) = [
        e["Properties"]
        for e in stack.functions[route.function].events.values()
        if e.get("Type") == "Api"
        and (e["Properties"]["Path"], e["Properties"]["Method"].upper()) == (route.path, route.method.upper())
    ]
    api = stack.template["Resources"][props["RestApiId"]["Ref"]]["Properties"]
    return str(props.get("Auth", {}).get("Authorizer", api["Auth"]["DefaultAuthorizer"]))


def stream_function(stack: Stack, event: Event) -> str | None:
    """The function with a DynamoDB event source whose FilterCriteria let every record of the event through."""
    records = event.get("Records") or []
    if not records or any(r.get("eventSource") != "aws:dynamodb" for r in records):
        return None
    for logical, props in stack.event_sources("DynamoDB"):
        patterns = [EventPattern.load(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])]
        if all(not patterns or any(p.matches_event(r) for p in patterns) for r in records):
            return logical
    return None


def queue_function(stack: Stack, event: Event) -> str | None:
    """The function with an SQS event source on the queue every record came from (CloudFormation names a queue
    <stack>-<logical id>-<suffix>)."""
    records = event.get("Records") or []
    if not records or any(r.get("eventSource") != "aws:sqs" for r in records):
        return None
    for logical, props in stack.event_sources("SQS"):
        queue = props["Queue"]["Fn::GetAtt"][0]
        if all(f"-{queue}-" in r["eventSourceARN"].rsplit(":", 1)[1] for r in records):
            return logical
    return None


def target_function(stack: Stack, event: Event) -> str | None:
    if is_api_event(event):
        route = api_route(stack, event)
        return route.function if route else None
    return stream_function(stack, event) or queue_function(stack, event)


def answer_of(raw: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Status, headers (single-valued) and parsed body of a Lambda proxy answer."""
    headers = {k: v[-1] for k, v in (raw.get("multiValueHeaders") or {}).items()}
    headers.update(raw.get("headers") or {})
    body = raw.get("body")
    is_json = headers.get("Content-Type", "application/json").startswith("application/json")
    return raw["statusCode"], headers, json.loads(body) if body and is_json else body


def sent_body(event: Event) -> Any:
    return json.loads(event["body"])


def tiers(book: dict[str, Any]) -> list[tuple[Decimal | None, Decimal]]:
    """Price-book tiers by value: the service answers amounts in their shortest form ("0.010" as "0.01")."""
    return [(None if t["upTo"] is None else Decimal(t["upTo"]), Decimal(t["unitPrice"])) for t in book["tiers"]]


# -- seeds: what must exist before a sample can succeed ------------------------------------------------------------


def _as_is(stack: Stack, event: Event) -> Event:
    return event


def _purchase(stack: Stack, customer_id: str) -> dict[str, Any]:
    body = {"credits": "1000", "price": {"amount": "10.00", "currency": "USD"}}
    answer = stack.api("POST", f"/wallets/{customer_id}/purchases", body)
    assert answer.status == 201, answer.body
    purchase: dict[str, Any] = answer.body
    return purchase


def _funded_wallet(stack: Stack, event: Event) -> Event:
    _purchase(stack, event["pathParameters"]["customerId"])
    return event


def _funded_wallet_and_its_card(stack: Stack, event: Event) -> Event:
    """Buy a card, then point the sample at it: card ids are made by the service, the file's is a placeholder."""
    card_id = _purchase(stack, event["pathParameters"]["customerId"])["card"]["cardId"]
    event = copy.deepcopy(event)
    placeholder = event["pathParameters"]["cardId"]
    event["pathParameters"]["cardId"] = card_id
    event["path"] = event["path"].replace(f"/cards/{placeholder}/", f"/cards/{card_id}/")
    event["requestContext"]["path"] = event["requestContext"]["path"].replace(placeholder, card_id)
    return event


def _price_book(stack: Stack, event: Event) -> Event:
    """The price book the PUT sample stores, stored through the API."""
    answer = stack.api("PUT", "/price-book", sent_body(load_event("api_put_price_book")))
    assert answer.status == 200, answer.body
    return event


# -- checks of the answer beyond its status ------------------------------------------------------------------------


def _purchased(stack: Stack, event: Event, body: Any) -> None:
    assert body["card"]["credits"] == sent_body(event)["credits"]
    assert body["card"]["price"] == sent_body(event)["price"]
    # The sample's Idempotency-Key is read: the same event again is a replay, not a second card.
    status, headers, again = answer_of(stack.invoke("PurchaseFunction", event))
    assert (status, headers.get("Idempotent-Replayed"), again) == (201, "true", body)


def _wallet_read(stack: Stack, event: Event, body: Any) -> None:
    assert body["customerId"] == event["pathParameters"]["customerId"]
    assert body["balance"] == "1000"


def _card_voided(stack: Stack, event: Event, body: Any) -> None:
    assert body["card"]["cardId"] == event["pathParameters"]["cardId"]
    assert body["card"]["status"] == "voided"
    assert body["balance"] == "0"


def _settings_stored(stack: Stack, event: Event, body: Any) -> None:
    assert body["customerId"] == event["pathParameters"]["customerId"]
    assert body["settings"]["webhookUrl"] == sent_body(event)["webhookUrl"]


def _quoted(stack: Stack, event: Event, body: Any) -> None:
    assert body["credits"] == event["queryStringParameters"]["credits"]
    assert body["price"]["currency"] == sent_body(load_event("api_put_price_book"))["currency"]


def _price_book_shown(stack: Stack, event: Event, body: Any) -> None:
    stored = sent_body(load_event("api_put_price_book"))
    assert (body["currency"], body["mode"], tiers(body)) == (stored["currency"], stored["mode"], tiers(stored))


def _price_book_replaced(stack: Stack, event: Event, body: Any) -> None:
    assert body["version"] == 1
    assert body["mode"] == "volume"
    assert tiers(body) == tiers(sent_body(event))


def _openapi_document(stack: Stack, event: Event, body: Any) -> None:
    assert body["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in body["paths"].items() for method in item}
    # the API of the SaaS backend (the customer dashboard's public routes are another function's, not in it)
    server = api_route(stack, event)
    assert server is not None
    declared = {
        (r.path, r.method.upper())
        for r in stack.gateway.routes
        if r.path != "/openapi.json" and r.function == server.function
    }
    assert declared <= documented


def _dashboard_link(stack: Stack, event: Event, body: Any) -> None:
    # the link is on the host and stage the request came through
    host, stage = event["headers"]["Host"], event["requestContext"]["stage"]
    assert body["url"] == f"https://{host}/{stage}/dashboard#token={body['token']}"
    left = datetime.fromisoformat(body["expiresAt"]) - datetime.now(UTC)
    assert timedelta(seconds=sent_body(event)["ttlSeconds"] - 5) < left <= timedelta(seconds=900)


def _dashboard_page(stack: Stack, event: Event, body: Any) -> None:
    # the static page: its token stays in the link's fragment, and the page's script sends it to dashboard/data
    assert 'id="balance"' in body
    assert "location.hash" in body


def _stripe_event_refused(stack: Stack, event: Event, body: Any) -> None:
    # the sample's signature is not made with this stack's webhook secret (Stripe makes it with the endpoint's):
    # the stripe library refuses it before the event is read, and no card changes
    assert body["error"]["code"] == "webhook_refused"
    assert stack.api("GET", f"/wallets/{sent_body(event)['data']['object']['metadata']['customerId']}").status == 404


@dataclass(frozen=True)
class ApiCase:
    status: int
    seed: Callable[[Stack, Event], Event] = _as_is
    check: Callable[[Stack, Event, Any], None] | None = None
    content_type: str = "application/json"


API_CASES: dict[str, ApiCase] = {
    "purchase_card": ApiCase(201, check=_purchased),
    "api_read_wallet": ApiCase(200, _funded_wallet, _wallet_read),
    "purchase_void_card": ApiCase(200, _funded_wallet_and_its_card, _card_voided),
    "api_put_settings": ApiCase(200, check=_settings_stored),
    "api_quote": ApiCase(200, _price_book, _quoted),
    "api_get_price_book": ApiCase(200, _price_book, _price_book_shown),
    "api_put_price_book": ApiCase(200, check=_price_book_replaced),
    "api_openapi": ApiCase(200, check=_openapi_document),
    "api_dashboard_link": ApiCase(201, _funded_wallet, _dashboard_link),
    # the token in a static file cannot be signed with the stack's secret, generated when the stack is made
    "dashboard_page": ApiCase(200, check=_dashboard_page, content_type="text/html"),
    "stripe_webhook_event": ApiCase(400, check=_stripe_event_refused),
}
STREAM_CASES = {"publisher_outbox_insert"}
# SQS samples: their shapes and runs through their handlers are in test_local_event_shapes.py and test_alerting.py
SQS_CASES = {"ingest_usage_batch", "drawdown_rated_usage", "alerting_webhook_batch"}


# -- every file is mapped ------------------------------------------------------------------------------------------


def test_every_sample_event_has_a_scenario() -> None:
    # Given the sample events on disk
    names = {path.stem for path in FILES}
    # Then each has a scenario here, and each scenario its file
    assert names, f"no sample events in {EVENTS}"
    assert names == set(API_CASES) | STREAM_CASES | SQS_CASES


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_sample_event_reaches_a_function_of_the_template(stack: Stack, path: Path) -> None:
    # Given a sample event as `sam local invoke -e` would read it
    event = json.loads(path.read_text())
    # When it is routed by its content against the template
    function = target_function(stack, event)
    # Then a function of the template takes it
    assert function in stack.functions, (
        f"{path.name}: no function of template.yaml takes this event (an API event needs a resource and "
        f"httpMethod of an Api event; a stream event needs a DynamoDB event source whose filters accept it)"
    )


# -- API Gateway samples -------------------------------------------------------------------------------------------

API_FILES = [p for p in FILES if is_api_event(json.loads(p.read_text()))]


@pytest.mark.parametrize("path", API_FILES, ids=[p.stem for p in API_FILES])
def test_api_sample_event_is_consistent_with_its_route(stack: Stack, path: Path) -> None:
    # Given an API sample and the template route it names
    event = json.loads(path.read_text())
    route = api_route(stack, event)
    assert route is not None
    stage = stack.template["Parameters"]["StageName"]["Default"]
    context = event["requestContext"]
    # Then its path fits the route with exactly its path parameters, as API Gateway would have matched it
    assert route.match(event["httpMethod"], event["path"]) == (event["pathParameters"] or {})
    assert (context["resourcePath"], context["httpMethod"]) == (event["resource"], event["httpMethod"])
    assert (context["stage"], context["path"]) == (stage, f"/{stage}{event['path']}")
    # And its multi-value fields say the same as the single-value ones
    assert event["multiValueHeaders"] == {k: [v] for k, v in (event["headers"] or {}).items()}
    query = event["queryStringParameters"]
    assert event["multiValueQueryStringParameters"] == ({k: [v] for k, v in query.items()} if query else None)
    # And it was signed with SigV4 by an IAM principal, or, on a public route (the customer dashboard), by nobody
    if route_authorizer(stack, route) == "AWS_IAM":
        assert event["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        assert context["identity"]["userArn"].startswith("arn:aws:iam::")
    else:
        assert route_authorizer(stack, route) == "NONE"
        assert not event["headers"].get("Authorization", "").startswith("AWS4-HMAC-SHA256")
        assert context["identity"]["userArn"] is None
    # And its body is JSON text, sent with its content type
    assert event["isBase64Encoded"] is False
    if event["body"] is not None:
        assert event["headers"]["Content-Type"] == "application/json"
        json.loads(event["body"])


@pytest.mark.parametrize("path", API_FILES, ids=[p.stem for p in API_FILES])
def test_api_sample_event_has_the_shape_the_local_stack_builds(stack: Stack, path: Path) -> None:
    # Given an API sample, and the event the local stack builds for the same request
    sample = json.loads(path.read_text())
    route = api_route(stack, sample)
    assert route is not None
    query = urlencode(sample["queryStringParameters"] or {})
    built = proxy_event(
        sample["httpMethod"],
        route,
        sample["path"],
        sample["pathParameters"] or {},
        query,
        sample["headers"],
        sample["body"],
    )
    # Then both have the same fields, at the top, in the request context and in the caller's identity
    assert set(sample) == set(built)
    assert set(sample["requestContext"]) == set(built["requestContext"])
    assert set(sample["requestContext"]["identity"]) == set(built["requestContext"]["identity"])


@pytest.mark.parametrize("name", list(API_CASES))
def test_api_sample_event_runs_through_its_handler(stack: Stack, name: str) -> None:
    # Given what the sample needs stored first, and the function its route names in the template
    case = API_CASES[name]
    event = load_event(name)
    route = api_route(stack, event)
    assert route is not None, f"{name}: not a route of template.yaml"
    event = case.seed(stack, event)
    # When Lambda invokes that function with the sample
    status, headers, body = answer_of(stack.invoke(route.function, event))
    # Then it answers with the route's status, in JSON (or the page's HTML)
    assert status == case.status, body
    assert headers.get("Content-Type", "").startswith(case.content_type)
    if case.check is not None:
        case.check(stack, event, body)


# -- DynamoDB stream samples ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_stream_sample_event_is_what_the_table_stream_delivers(stack: Stack, name: str) -> None:
    # Given a stream sample and the event source that takes it
    event = load_event(name)
    function = stream_function(stack, event)
    assert function is not None, f"{name}: no DynamoDB event source of template.yaml accepts it"
    (props,) = [p for logical, p in stack.event_sources("DynamoDB") if logical == function]
    table = stack.template["Resources"][props["Stream"]["Fn::GetAtt"][0]]["Properties"]
    # Then each record is an outbox insert as the table's stream hands it to Lambda
    for record in event["Records"]:
        image = record["dynamodb"]["NewImage"]
        assert record["eventName"] == "INSERT"
        assert STREAM_ARN.match(record["eventSourceARN"])
        assert record["dynamodb"]["StreamViewType"] == table["StreamSpecification"]["StreamViewType"]
        assert record["dynamodb"]["Keys"] == {"PK": image["PK"], "SK": image["SK"]}
        assert image["PK"]["S"] == f"O#{image['eventId']['S']}"
        assert (image["SK"]["S"], image["itemType"]["S"]) == ("OUTBOX", "outbox")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", image["occurredAt"]["S"])
        assert json.loads(image["detail"]["S"])["eventId"] == image["eventId"]["S"]
        assert int(image["ttl"]["N"]) > record["dynamodb"]["ApproximateCreationDateTime"]


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_stream_sample_event_is_published_on_the_bus(stack: Stack, bus: BusTap, name: str) -> None:
    # Given a stream sample and the function its event source names in the template
    event = load_event(name)
    function = stream_function(stack, event)
    assert function is not None
    # When Lambda invokes that function with the sample
    answer = stack.invoke(function, event)
    # Then no record failed
    assert answer == {"batchItemFailures": []}
    # And each outbox item is on the bus, with its detail type and its detail as stored
    images = [r["dynamodb"]["NewImage"] for r in event["Records"]]
    published = [(e["source"], e["detail-type"], e["detail"]) for e in bus.drain()]
    expected = [("prepaid.credits", i["detailType"]["S"], json.loads(i["detail"]["S"])) for i in images]
    assert published == expected
