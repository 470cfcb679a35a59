"""The HTTP routes, one router per function that serves them; the OpenAPI document covers them all."""

from __future__ import annotations

import json
from functools import cache

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

TITLE = "prepaid-credits"
VERSION = "0.1.0"
# API Gateway's own description of IAM auth in OpenAPI: the SigV4 `Authorization` header
SIGV4 = APIKey(
    name="Authorization",
    in_=APIKeyIn.header,
    description="AWS Signature Version 4 for the service execute-api (IAM auth on every route but Stripe's webhook)",
    openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
)
# Powertools' own validation error bodies (`{"detail": ...}`), which this API never sends: every route documents the
# contract's `{"error": ...}` for the statuses it answers
POWERTOOLS_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
POWERTOOLS_422 = {"$ref": "#/components/schemas/HTTPValidationError"}


@cache
def openapi_document() -> str:
    """One OpenAPI document for the API function's routes and the purchase function's (built once, from the
    routers' own types)."""
    # imported here, not at the top: a function importing one router module must not pay for the others
    from prepaid.routes import cards, catalog, payments, usage, wallets, webhooks

    documented = APIGatewayRestResolver(enable_validation=True)
    for router in (cards.router, wallets.router, catalog.router, usage.router, payments.router, webhooks.router):
        documented.include_router(router)
    document = json.loads(
        documented.get_openapi_json_schema(
            title=TITLE, version=VERSION, security_schemes={"sigv4": SIGV4}, security=[{"sigv4": []}]
        )
    )
    # Powertools adds its 422 to every route; a route that can answer 422 documents its own in its place
    for operation in (o for item in document["paths"].values() for o in item.values()):
        unprocessable = operation["responses"].get("422", {})
        if unprocessable.get("content", {}).get("application/json", {}).get("schema") == POWERTOOLS_422:
            del operation["responses"]["422"]
    for name in POWERTOOLS_SCHEMAS:
        document["components"]["schemas"].pop(name, None)
    return json.dumps(document, indent=2)
