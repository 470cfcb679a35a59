"""HTTP API (API Gateway REST, AWS_IAM): a wallet's reads, settings and dashboard links, the catalog, usage, and
the OpenAPI document of every route of the API (the purchase function's too)."""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid.edge.http import json_response, resolver, serve
from prepaid.routes import catalog, openapi_document, usage, wallets

logger = Logger()
metrics = Metrics()
# Reads and settings publish no metric, by design; Powertools' documented way to keep that out of the logs.
warnings.filterwarnings("ignore", "No application metrics to publish*")
app = resolver()
for router in (wallets.router, catalog.router, usage.router):
    app.include_router(router)


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[Any]:
    return json_response(openapi_document())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return serve(app, event, context)
