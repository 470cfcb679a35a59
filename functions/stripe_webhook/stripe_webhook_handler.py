"""Stripe's webhooks (API Gateway REST, no IAM: Stripe signs each delivery, and the stripe library verifies it):
a paid card is activated, a failed or abandoned one voided, each event applied once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid.edge.http import resolver, serve
from prepaid.routes import payments

logger = Logger()
metrics = Metrics()
app = resolver()
app.include_router(payments.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return serve(app, event, context)
