"""The OpenAPI document tells the truth: the contract's error body for every error status, the SigV4 scheme where
the template asks IAM, stable operation ids, examples the API takes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from openapi_spec_validator import validate
from pydantic import BaseModel

from prepaid.edge import schemas
from prepaid.routes import openapi_document
from prepaid_local.template import load, resources

ERROR_BODY = {"$ref": "#/components/schemas/ErrorOut"}
# The ids clients are generated with: renaming one breaks every generated client, so they are pinned here
STABLE_IDS = {
    ("post", "/wallets/{customerId}/purchases"): "purchase",
    ("post", "/wallets/{customerId}/cards/{cardId}/void"): "void_card",
    ("post", "/wallets/{customerId}/cards/{cardId}/activate"): "activate_card",
    ("post", "/wallets/{customerId}/adjustments"): "adjust",
    ("patch", "/wallets/{customerId}/cards/{cardId}"): "change_card",
    ("get", "/wallets/{customerId}"): "read_wallet",
    ("post", "/wallets/{customerId}/authorize"): "authorize",
    ("get", "/wallets"): "list_wallets",
    ("get", "/wallets/{customerId}/cards"): "list_cards",
    ("put", "/wallets/{customerId}/settings"): "put_settings",
    ("get", "/wallets/{customerId}/ledger"): "read_ledger",
    ("get", "/wallets/{customerId}/usage"): "read_usage",
    ("get", "/wallets/{customerId}/forecast"): "read_forecast",
    ("post", "/wallets/{customerId}/dashboard-links"): "create_dashboard_link",
    ("get", "/quotes"): "quote",
    ("get", "/price-book"): "get_price_book",
    ("put", "/price-book"): "put_price_book",
    ("get", "/rate-card"): "get_rate_card",
    ("put", "/rate-card"): "put_rate_card",
    ("get", "/reports/revenue"): "revenue_report",
    ("post", "/usage"): "post_usage",
    ("post", "/payments/stripe/webhook"): "stripe_webhook",
    ("patch", "/wallets/{customerId}/settings"): "patch_settings",
    ("post", "/webhook-endpoints"): "create_webhook_endpoint",
    ("get", "/webhook-endpoints"): "list_webhook_endpoints",
    ("get", "/webhook-endpoints/{endpointId}"): "read_webhook_endpoint",
    ("patch", "/webhook-endpoints/{endpointId}"): "update_webhook_endpoint",
    ("delete", "/webhook-endpoints/{endpointId}"): "delete_webhook_endpoint",
    ("get", "/webhook-endpoints/{endpointId}/secret"): "read_webhook_endpoint_secret",
    ("get", "/webhook-endpoints/{endpointId}/deliveries"): "list_webhook_endpoint_deliveries",
    ("post", "/webhook-endpoints/{endpointId}/deliveries/{eventId}/resend"): "resend_webhook_endpoint_delivery",
    ("get", "/wallets/{customerId}/webhook/secret"): "read_wallet_webhook_secret",
    ("get", "/wallets/{customerId}/webhook/deliveries"): "list_wallet_webhook_deliveries",
    ("post", "/wallets/{customerId}/webhook/deliveries/{eventId}/resend"): "resend_wallet_webhook_delivery",
}


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(openapi_document())
    return loaded


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def unsigned_routes() -> set[tuple[str, str]]:
    """The template's `Api` events with no authorizer (SAM's `NONE`): no SigV4 on them."""
    functions = resources(load(), "AWS::Serverless::Function")
    events = [e["Properties"] for f in functions.values() for e in f["Properties"].get("Events", {}).values()]
    return {
        (e["Method"].lower(), e["Path"])
        for e in events
        if "Path" in e and e.get("Auth", {}).get("Authorizer") == "NONE"
    }


def json_schema(answer: dict[str, Any]) -> Any:
    return answer.get("content", {}).get("application/json", {}).get("schema")


def test_the_document_is_valid_openapi() -> None:
    # Given the document the API serves; When openapi-spec-validator reads it (every $ref resolved)
    # Then it raises nothing
    validate(document())


def test_no_error_is_documented_in_a_body_the_api_never_sends() -> None:
    # Given the document
    doc = document()
    # Then Powertools' validation bodies (`{"detail": [...]}`) are gone, from the components and every answer
    assert not {"HTTPValidationError", "ValidationError", "ResponseValidationError"} & set(doc["components"]["schemas"])
    assert '"detail"' not in json.dumps(doc)
    # And every error status of every operation is the contract's body, with an example of it
    for method, path, operation in operations(doc):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert json_schema(answer) == ERROR_BODY, (method, path, status)
                example = answer["content"]["application/json"]["example"]
                assert schemas.ErrorOut.model_validate(example).error.code, (method, path, status)


def test_every_operation_documents_its_success_and_the_errors_its_input_can_cause() -> None:
    for method, path, operation in operations(document()):
        statuses = set(operation["responses"])
        # Then one success, with the body the route returns
        successes = [s for s in statuses if s.startswith("2")]
        assert len(successes) == 1, (method, path, sorted(statuses))
        assert json_schema(operation["responses"][successes[0]]), (method, path)
        # And a route that takes input documents the 422 of a refused value
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in statuses, (method, path)
        # And a route that reads a JSON body: not JSON (400), too large (413), not declared JSON (415)
        if operation.get("requestBody"):
            assert {"400", "413", "415"} <= statuses, (method, path)
        # And a route on one wallet, other than those that create it, documents the unknown wallet's 404
        creates = path.endswith(("/purchases", "/settings"))
        if "{customerId}" in path and not creates:
            assert "404" in statuses, (method, path)
        # And throttling, which API Gateway may answer on any route
        assert "429" in statuses, (method, path)


def test_operation_ids_are_the_route_functions_names() -> None:
    # Given the operation ids of the document
    ids = {(method, path): operation["operationId"] for method, path, operation in operations(document())}
    # Then the known routes keep their ids, every id is unique, and none is Powertools' generated one
    # (`read_wallet_wallets__customerId__get`)
    assert {route: ids.get(route) for route in STABLE_IDS} == STABLE_IDS
    assert len(set(ids.values())) == len(ids)
    generated = {route: i for route, i in ids.items() if re.search(r"__|_(get|post|put|patch|delete)$", i)}
    assert generated == {}


def test_sigv4_is_the_scheme_of_every_route_the_template_signs() -> None:
    # Given the document and the template's routes without an authorizer
    doc, unsigned = document(), unsigned_routes()
    # Then the scheme is API Gateway's SigV4 description, required by default
    assert doc["components"]["securitySchemes"]["sigv4"] == {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "description": doc["components"]["securitySchemes"]["sigv4"]["description"],
        "x-amazon-apigateway-authtype": "awsSigv4",
    }
    assert doc["security"] == [{"sigv4": []}]
    # And a route the template leaves open says so (an empty security) and has no IAM refusal; the others inherit it
    documented_unsigned = set()
    for method, path, operation in operations(doc):
        if (method, path) in unsigned:
            documented_unsigned.add((method, path))
            assert operation["security"] == [], (method, path)
            assert "403" not in operation["responses"], (method, path)
        else:
            assert "security" not in operation, (method, path)
            assert "403" in operation["responses"], (method, path)
    assert ("post", "/payments/stripe/webhook") in documented_unsigned


def test_every_request_body_has_examples_the_api_takes() -> None:
    # Given the request bodies the operations name
    doc = document()
    named = set()
    for _, _, operation in operations(doc):
        body = json_schema(operation.get("requestBody", {}))
        for choice in [body, *(body or {}).get("anyOf", [])]:
            if choice and "$ref" in choice:
                named.add(choice["$ref"].rsplit("/", 1)[-1])
    assert named
    for name in sorted(named):
        # Then each has examples, and its own model takes every one of them
        examples = doc["components"]["schemas"][name].get("examples")
        assert examples, name
        model = getattr(schemas, name)
        assert issubclass(model, BaseModel)
        for example in examples:
            model.model_validate(example)
