"""The environment for running the handlers in-process against moto: fake credentials."""

REGION = "us-east-1"

MOTO_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",  # moto's DynamoDB Streams with botocore 1.44 (TOOLING.md)
    "POWERTOOLS_SERVICE_NAME": "prepaid-credits",
    "WEBHOOK_ALLOW_LOCAL_HTTP": "1",  # webhooks to receivers on 127.0.0.1 over plain http (never in the template)
}
