"""The template's operations, as CloudFormation deploys them (after the SAM transform): alarms to the operations
topic for every dead-letter queue, every stream consumer's iterator age, every function's errors and throttles and
the API's 5xx; a dashboard of the pipeline; an output for every queue.

The expected queues and functions are derived from the template itself (what is a dead-letter target, what reads a
stream), so a dead-letter queue, stream consumer or function added without its alarm fails here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from prepaid_local.template import load
from support.template_roles import Template, listed, of_type, transformed

OPERATIONS_TOPIC = {"Ref": "OperationsTopic"}
# A floor under the derivation below: were it to find nothing (a renamed property), every check would pass vacuously.
KNOWN_DEAD_LETTER_QUEUES = {
    "UsageDeadLetterQueue",
    "DrawdownDeadLetterQueue",
    "OutboxDeadLetterQueue",
    "LifecycleDeadLetterQueue",
    "WebhookDeadLetterQueue",
}
KNOWN_STREAM_CONSUMERS = {"PublisherFunction", "RevenueFunction"}


@pytest.fixture(scope="module")
def cfn() -> Template:
    return transformed()


def _queue(cfn: Template, arn: Any) -> str | None:
    """The logical id of the template's SQS queue an ARN node names (`!GetAtt Queue.Arn`), else None."""
    if not isinstance(arn, dict) or "Fn::GetAtt" not in arn:
        return None
    logical, attribute = arn["Fn::GetAtt"]
    resource = cfn["Resources"].get(logical, {})
    return str(logical) if attribute == "Arn" and resource.get("Type") == "AWS::SQS::Queue" else None


def dead_letter_queues(cfn: Template) -> set[str]:
    """Every queue named a dead-letter queue, or that something dead-letters to: a queue's redrive policy, a
    function's DeadLetterConfig, an event source mapping's or async invoke config's OnFailure, a rule target's DLQ."""
    targets: list[Any] = []
    for resource in of_type(cfn, "AWS::SQS::Queue").values():
        targets.append(resource["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn"))
    for resource in of_type(cfn, "AWS::Lambda::Function").values():
        targets.append(resource["Properties"].get("DeadLetterConfig", {}).get("TargetArn"))
    for kind in ("AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"):
        for resource in of_type(cfn, kind).values():
            targets.append(resource["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"))
    for resource in of_type(cfn, "AWS::Events::Rule").values():
        targets += [t.get("DeadLetterConfig", {}).get("Arn") for t in resource["Properties"].get("Targets", [])]
    named = {q for q in of_type(cfn, "AWS::SQS::Queue") if "deadletter" in q.lower()}
    return named | {q for q in (_queue(cfn, t) for t in targets) if q is not None}


def stream_consumers(cfn: Template) -> set[str]:
    """Every function an event source mapping feeds from a DynamoDB table's stream."""
    consumers: set[str] = set()
    for mapping in of_type(cfn, "AWS::Lambda::EventSourceMapping").values():
        source = mapping["Properties"]["EventSourceArn"]
        if isinstance(source, dict) and listed(source.get("Fn::GetAtt", []))[1:] == ["StreamArn"]:
            consumers.add(mapping["Properties"]["FunctionName"]["Ref"])
    return consumers


def alarms_on(cfn: Template, namespace: str, metric: str, **dimensions: Any) -> list[dict[str, Any]]:
    """The properties of every alarm on one metric with exactly these dimensions."""
    wanted = sorted(dimensions.items())
    return [
        alarm["Properties"]
        for alarm in of_type(cfn, "AWS::CloudWatch::Alarm").values()
        if (alarm["Properties"].get("Namespace"), alarm["Properties"].get("MetricName")) == (namespace, metric)
        and sorted((d["Name"], d["Value"]) for d in alarm["Properties"].get("Dimensions", [])) == wanted
    ]


def _fires_above(alarm: dict[str, Any], threshold: float) -> bool:
    return bool(alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == threshold)


# -- alarms ------------------------------------------------------------------------------------------------------


def test_every_dead_letter_queue_alarms_as_soon_as_it_holds_a_message(cfn: Template) -> None:
    # Given every dead-letter queue of the transformed template, found by what dead-letters to it
    queues = dead_letter_queues(cfn)
    assert queues >= KNOWN_DEAD_LETTER_QUEUES
    # Then each has an alarm on its visible messages (what a redrive or a function's send leaves there) above 0
    for queue in sorted(queues):
        found = alarms_on(
            cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName={"Fn::GetAtt": [queue, "QueueName"]}
        )
        assert [a for a in found if _fires_above(a, 0) and a["Statistic"] == "Maximum"], f"{queue} has no alarm"
        # And an idle, empty queue (which SQS stops reporting) is no alarm
        assert {a["TreatMissingData"] for a in found} == {"notBreaching"}, queue


def test_every_stream_consumer_alarms_when_it_falls_behind(cfn: Template) -> None:
    # Given every function that reads the table's stream
    consumers = stream_consumers(cfn)
    assert consumers == KNOWN_STREAM_CONSUMERS
    # Then each has an alarm on its iterator age, above zero and within 15 minutes of lag
    for function in sorted(consumers):
        found = alarms_on(cfn, "AWS/Lambda", "IteratorAge", FunctionName={"Ref": function})
        assert len(found) == 1, f"{function} has no iterator age alarm"
        (alarm,) = found
        assert alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert 0 < alarm["Threshold"] <= 15 * 60 * 1000, function


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_any_error_and_any_throttle(cfn: Template, metric: str) -> None:
    # Given every Lambda function of the transformed template
    functions = sorted(of_type(cfn, "AWS::Lambda::Function"))
    # Then each has an alarm on the sum of that metric above 0
    missing = [
        f
        for f in functions
        if not [
            a
            for a in alarms_on(cfn, "AWS/Lambda", metric, FunctionName={"Ref": f})
            if _fires_above(a, 0) and a["Statistic"] == "Sum"
        ]
    ]
    assert missing == []


def test_the_api_alarms_on_any_5xx_of_its_stage(cfn: Template) -> None:
    # Given each REST API (its name is its Name, else its OpenAPI title) and its stage
    for logical, api in of_type(cfn, "AWS::ApiGateway::RestApi").items():
        name = api["Properties"].get("Name", api["Properties"]["Body"]["info"]["title"])
        (stage,) = [
            s["Properties"]["StageName"]
            for s in of_type(cfn, "AWS::ApiGateway::Stage").values()
            if s["Properties"]["RestApiId"] == {"Ref": logical}
        ]
        # Then an alarm watches its stage's 5xx answers: none is expected (no request may cause one)
        found = alarms_on(cfn, "AWS/ApiGateway", "5XXError", ApiName=name, Stage=stage)
        assert [a for a in found if _fires_above(a, 0) and a["Statistic"] == "Sum"], f"{logical} has no 5xx alarm"


def test_every_alarm_notifies_the_operations_topic_when_it_fires_and_when_it_clears(cfn: Template) -> None:
    # Given every alarm of the transformed template
    alarms = of_type(cfn, "AWS::CloudWatch::Alarm")
    assert alarms
    # Then each notifies the operations topic, on ALARM and on OK
    for logical, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [OPERATIONS_TOPIC], logical
        assert alarm["Properties"]["OKActions"] == [OPERATIONS_TOPIC], logical
    # And names a metric of a resource of this stack, a parameter or the stack itself
    known = set(cfn["Resources"]) | set(cfn.get("Parameters", {})) | {"AWS::StackName"}
    for logical, alarm in alarms.items():
        for dimension in alarm["Properties"]["Dimensions"]:
            value = dimension["Value"]
            assert isinstance(value, dict), f"{logical}: {dimension['Name']} is written out, not a reference"
            assert listed(value.get("Ref") or value.get("Fn::GetAtt"))[0] in known, logical


def test_cloudwatch_may_encrypt_to_the_operations_topic(cfn: Template) -> None:
    # Given the operations topic (the AWS managed key of SNS cannot let CloudWatch publish: its policy is fixed)
    topic = cfn["Resources"]["OperationsTopic"]["Properties"]
    key_ref = topic["KmsMasterKeyId"]
    assert isinstance(key_ref, dict), "the topic must use a key whose policy names CloudWatch"
    key = cfn["Resources"][key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    # Then its key lets CloudWatch, for this account's alarms only, make and read data keys
    (grant,) = [
        s
        for s in listed(key["Properties"]["KeyPolicy"]["Statement"])
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert grant["Effect"] == "Allow"
    assert set(listed(grant["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # And an email subscription exists only when the deployer gives an address
    (subscription,) = of_type(cfn, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasOperationsEmail"
    assert subscription["Properties"]["TopicArn"] == OPERATIONS_TOPIC


# -- dashboard and outputs ---------------------------------------------------------------------------------------


def _dashboard_metrics(cfn: Template) -> list[list[Any]]:
    """Every metric row of the dashboard, with `${Name}` and `${Name.Attribute}` left as written."""
    (dashboard,) = of_type(cfn, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(cfn["Resources"]) | set(cfn.get("Parameters", {})) | {"AWS::Region", "AWS::StackName"}
    for placeholder in re.findall(r"\$\{([^}]+)\}", body):
        assert placeholder.split(".")[0] in names, f"the dashboard names {placeholder}, which the template has not"
    widgets = json.loads(body)["widgets"]
    return [row for w in widgets for row in w["properties"]["metrics"]]


def test_the_dashboard_shows_the_pipeline(cfn: Template) -> None:
    # Given the dashboard's metric rows
    rows = [tuple(r[:4]) for r in _dashboard_metrics(cfn)]
    # Then every queue's depth, and the pipeline queues' oldest message, are on it
    for queue in of_type(cfn, "AWS::SQS::Queue"):
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"${{{queue}.QueueName}}") in rows
    for queue in ("UsageQueue", "DrawdownQueue"):
        assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", f"${{{queue}.QueueName}}") in rows
    # And every stream consumer's iterator age, the drawdown's duration, errors and throttles
    for function in stream_consumers(cfn):
        assert ("AWS/Lambda", "IteratorAge", "FunctionName", f"${{{function}}}") in rows
    for metric in ("Duration", "Errors", "Throttles"):
        assert ("AWS/Lambda", metric, "FunctionName", "${DrawdownFunction}") in rows
    # And the API's latency and 5xx answers on its stage
    for metric in ("Latency", "5XXError"):
        assert ("AWS/ApiGateway", metric, "ApiName", "${AWS::StackName}") in rows


def test_every_queue_has_an_output() -> None:
    # Given the template's queues and outputs
    template = load()
    outputs = [o["Value"] for o in template["Outputs"].values()]
    # Then each queue's URL is an output (operators read and redrive with it)
    missing = [q for q in of_type(template, "AWS::SQS::Queue") if {"Ref": q} not in outputs]
    assert missing == []
