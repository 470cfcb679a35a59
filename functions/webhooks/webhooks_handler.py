"""Webhook endpoints (API Gateway REST, AWS_IAM): account-level endpoints and their secrets, each wallet's webhook
secret, deliveries and resends; a role of its own (it creates secrets and puts resends on the alert queue)."""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from prepaid.edge.http import resolver, serve
from prepaid.routes import webhooks

logger = Logger()
metrics = Metrics()
# It publishes no metric, by design; Powertools' documented way to keep that out of the logs.
warnings.filterwarnings("ignore", "No application metrics to publish*")
app = resolver()
app.include_router(webhooks.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return serve(app, event, context)
