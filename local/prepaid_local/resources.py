"""Create the template's resources in moto (tables, buses, queues), and resolve each function's settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prepaid_local.async_invoke import DEFAULT_MAX_AGE, DEFAULT_RETRIES, AsyncConfig, Destination
from prepaid_local.template import Resolver, resources

_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "StreamSpecification",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)


@dataclass
class FunctionSpec:
    """What the local stack needs to run one `AWS::Serverless::Function`."""

    logical_id: str
    code_uri: str
    handler: str
    environment: dict[str, str]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeout: int = 3
    memory_mb: int = 128  # what the cost model bills (Lambda's default when the template sets none)
    async_config: AsyncConfig = field(default_factory=AsyncConfig)  # when invoked asynchronously (rules, schedules)


def create_resources(clients: Any, template: dict[str, Any], stack_name: str = "local") -> Resolver:
    """Create every table, event bus and queue of the template; return a resolver that knows their names.

    `clients(service)` returns a boto3 client for a service (pointed at moto).
    """
    resolver = Resolver(template, stack_name=stack_name)
    region, account = resolver.region, resolver.account

    for logical, resource in resources(template, "AWS::SQS::Queue").items():
        # the redrive policy names other queues: it is set in a second pass, once every queue exists
        props = resolver.resolve({k: v for k, v in resource.get("Properties", {}).items() if k != "RedrivePolicy"})
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        name = props.get("QueueName", f"{stack_name}-{logical}" + (".fifo" if fifo else ""))
        created = {k: str(props[k]).lower() for k in ("FifoQueue", "ContentBasedDeduplication") if k in props}
        url = clients("sqs").create_queue(QueueName=name, Attributes=created)["QueueUrl"]
        resolver.physical[logical] = url
        resolver.attributes[(logical, "Arn")] = f"arn:aws:sqs:{region}:{account}:{name}"
        resolver.attributes[(logical, "QueueName")] = name
        resolver.attributes[(logical, "QueueUrl")] = url
    for logical, resource in resources(template, "AWS::SQS::Queue").items():
        props = resolver.resolve(resource.get("Properties", {}))
        attributes = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod") if k in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        if attributes:
            clients("sqs").set_queue_attributes(QueueUrl=resolver.physical[logical], Attributes=attributes)

    for logical, resource in resources(template, "AWS::DynamoDB::Table").items():
        props = resolver.resolve(resource.get("Properties", {}))
        name = props.get("TableName", f"{stack_name}-{logical}")
        params = {k: props[k] for k in _TABLE_KEYS if k in props}
        if "StreamSpecification" in params:
            params["StreamSpecification"] = {"StreamEnabled": True, **params["StreamSpecification"]}
        table = clients("dynamodb").create_table(TableName=name, **params)["TableDescription"]
        resolver.physical[logical] = name
        resolver.attributes[(logical, "Arn")] = table["TableArn"]
        if "LatestStreamArn" in table:
            resolver.attributes[(logical, "StreamArn")] = table["LatestStreamArn"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            clients("dynamodb").update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    for logical, resource in resources(template, "AWS::Events::EventBus").items():
        props = resolver.resolve(resource.get("Properties", {}))
        arn = clients("events").create_event_bus(Name=props["Name"])["EventBusArn"]
        resolver.physical[logical] = props["Name"]
        resolver.attributes[(logical, "Arn")] = arn
        resolver.attributes[(logical, "Name")] = props["Name"]

    for logical, resource in resources(template, "AWS::IAM::Role").items():
        # Nothing checks permissions locally; the role exists for the ARNs that name it.
        name = resource.get("Properties", {}).get("RoleName", f"{stack_name}-{logical}")
        resolver.physical[logical] = name
        resolver.attributes[(logical, "Arn")] = f"arn:aws:iam::{account}:role/{name}"

    for logical, resource in resources(template, "AWS::SecretsManager::Secret").items():
        # A generated secret, as CloudFormation makes one; its Ref is its ARN.
        props = resolver.resolve(resource.get("Properties", {}))
        generate = props.get("GenerateSecretString", {})
        value = (
            props.get("SecretString")
            or clients("secretsmanager").get_random_password(
                PasswordLength=int(generate.get("PasswordLength", 32)),
                ExcludePunctuation=bool(generate.get("ExcludePunctuation", False)),
            )["RandomPassword"]
        )
        name = props.get("Name", f"{stack_name}-{logical}")
        arn = clients("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
        resolver.physical[logical] = arn
        resolver.attributes[(logical, "Id")] = arn

    for logical, resource in resources(template, "AWS::SNS::Topic").items():
        # Its Ref is its ARN. Subscriptions are the deployer's business (tests subscribe queues themselves). Only
        # its name is read: its KMS key, like the alarms that publish to it, is not modelled locally.
        name = resolver.resolve(resource.get("Properties", {}).get("TopicName", f"{stack_name}-{logical}"))
        arn = clients("sns").create_topic(Name=name)["TopicArn"]
        resolver.physical[logical] = arn
        resolver.attributes[(logical, "TopicArn")] = arn
        resolver.attributes[(logical, "TopicName")] = name

    for logical, resource in resources(template, "AWS::S3::Bucket").items():
        # Its Ref is its name. Only its name is read: encryption, versioning and its policy are not modelled locally.
        name = resolver.resolve(resource.get("Properties", {}).get("BucketName", f"{stack_name}-{logical}".lower()))
        clients("s3").create_bucket(Bucket=name)
        resolver.physical[logical] = name
        resolver.attributes[(logical, "Arn")] = f"arn:aws:s3:::{name}"

    for logical in resources(template, "AWS::Serverless::LayerVersion"):
        resolver.physical[logical] = f"arn:aws:lambda:{region}:{account}:layer:{stack_name}-{logical}:1"
    for logical, resource in resources(template, "AWS::Serverless::Function").items():
        name = resolver.resolve(resource["Properties"].get("FunctionName", f"{stack_name}-{logical}"))
        resolver.physical[logical] = name
        resolver.attributes[(logical, "Arn")] = f"arn:aws:lambda:{region}:{account}:function:{name}"
    for logical in resources(template, "AWS::Serverless::Api"):
        resolver.physical[logical] = f"{stack_name}{logical.lower()}"
    return resolver


def functions(template: dict[str, Any], resolver: Resolver) -> dict[str, FunctionSpec]:
    """Every function with its code folder, handler, environment (Globals merged, Refs resolved) and events."""
    defaults = template.get("Globals", {}).get("Function", {})
    base_env = defaults.get("Environment", {}).get("Variables", {})
    specs = {}
    standalone = {
        str(resolver.resolve(r["Properties"]["FunctionName"])): r["Properties"]
        for r in resources(template, "AWS::Lambda::EventInvokeConfig").values()
    }
    for logical, resource in resources(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        env = {**base_env, **props.get("Environment", {}).get("Variables", {})}
        invoke_config = props.get("EventInvokeConfig", defaults.get("EventInvokeConfig"))
        invoke_config = standalone.get(resolver.physical[logical], invoke_config)
        specs[logical] = FunctionSpec(
            logical_id=logical,
            code_uri=props["CodeUri"],
            handler=props["Handler"],
            environment={k: str(resolver.resolve(v)) for k, v in env.items()},
            events=props.get("Events", {}),
            timeout=int(props.get("Timeout", defaults.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
            async_config=_async_config(
                logical,
                resolver.resolve(invoke_config or {}),
                resolver.resolve(props.get("DeadLetterQueue", defaults.get("DeadLetterQueue")) or {}),
            ),
        )
    return specs


def _async_config(logical: str, invoke: dict[str, Any], dead_letter: dict[str, Any]) -> AsyncConfig:
    """SAM's `EventInvokeConfig` and `DeadLetterQueue` of a function (or Lambda's defaults)."""
    destinations = invoke.get("DestinationConfig", {})

    def destination(which: str) -> Destination | None:
        spec = destinations.get(which)
        if not spec:
            return None
        if spec.get("Type") not in ("SQS", "EventBridge", "Lambda") or not spec.get("Destination"):
            raise ValueError(f"{logical}: the local stack sends {which} to an SQS, EventBridge or Lambda ARN given")
        return Destination(spec["Type"], spec["Destination"])

    if dead_letter and dead_letter.get("Type") != "SQS":
        raise ValueError(f"{logical}: the local stack supports SQS dead-letter queues only")
    return AsyncConfig(
        retries=int(invoke.get("MaximumRetryAttempts", DEFAULT_RETRIES)),
        max_age=timedelta(seconds=int(invoke.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE.total_seconds()))),
        on_success=destination("OnSuccess"),
        on_failure=destination("OnFailure"),
        dead_letter_queue=dead_letter.get("TargetArn"),
    )


def layer_paths(template: dict[str, Any]) -> list[str]:
    """Folders of the layers built from source, as Lambda would put them on `sys.path`."""
    return [r["Properties"]["ContentUri"] for r in resources(template, "AWS::Serverless::LayerVersion").values()]
