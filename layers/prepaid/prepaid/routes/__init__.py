"""The HTTP routes, one router per function that serves them; the OpenAPI document covers them all."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

TITLE = "prepaid-credits"
VERSION = "0.1.0"


@cache
def openapi_document() -> str:
    """One OpenAPI document for the API function's routes and the purchase function's (built once, from the
    routers' own types)."""
    # imported here, not at the top: a function importing one router module must not pay for the others
    from prepaid.routes import cards, catalog, payments, usage, wallets

    documented = APIGatewayRestResolver(enable_validation=True)
    for router in (cards.router, wallets.router, catalog.router, usage.router, payments.router):
        documented.include_router(router)
    return documented.get_openapi_json_schema(title=TITLE, version=VERSION)
