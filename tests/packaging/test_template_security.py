"""template.yaml's trust boundaries as CloudFormation deploys them: who may send to each queue and put events on the
bus, what each function's role allows, and the deployment's hygiene (deletion protection, retained secrets,
reserved concurrency, access logs, what traces keep, the gateway's own answers).

moto enforces none of this, so it is read off the template: the resource policies with their parameters and
conditions evaluated for a given deployment, and the roles after the SAM transform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import pytest

from prepaid_local.template import ROOT, load
from support.template_roles import Template, function_ids, listed, of_type, role_of, statements, transformed

PRODUCER = "arn:aws:iam::123456789012:role/billing-meter"
OPERATOR = "arn:aws:iam::123456789012:role/on-call"
SOMEONE = "arn:aws:iam::123456789012:role/anything-else"


@pytest.fixture(scope="module")
def cfn() -> Template:
    return transformed()


@pytest.fixture(scope="module")
def template() -> Template:
    return load()


# -- evaluating a resource policy for one deployment ------------------------------------------------------------------


class Deployment:
    """The template's intrinsics resolved for given parameter values; a resource's ARN stands as `<LogicalId>.Arn`."""

    def __init__(self, template: Template, **parameters: Any) -> None:
        self.template = template
        declared = template.get("Parameters", {})
        self.parameters = {name: spec.get("Default") for name, spec in declared.items()} | parameters
        for name, spec in declared.items():
            if spec.get("Type") == "CommaDelimitedList" and isinstance(self.parameters[name], str):
                self.parameters[name] = self.parameters[name].split(",")
        self.conditions = {name: self.value(c) for name, c in template.get("Conditions", {}).items()}

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(n) for n in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return self.parameters[node["Ref"]] if node["Ref"] in self.parameters else f"{node['Ref']}.Ref"
        if set(node) == {"Fn::GetAtt"}:
            logical, attribute = node["Fn::GetAtt"]
            return f"{logical}.{attribute}"
        if set(node) == {"Fn::Join"}:
            separator, parts = node["Fn::Join"]
            joined = [self.value(p) for p in self.value_list(parts)]
            return separator.join(str(p) for p in joined)
        if set(node) == {"Fn::Split"}:
            separator, text = node["Fn::Split"]
            return str(self.value(text)).split(separator)
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return self.value(when_true if self.conditions[name] else when_false)
        if set(node) == {"Fn::Equals"}:
            left, right = (self.value(v) for v in node["Fn::Equals"])
            return left == right
        if set(node) == {"Fn::Not"}:
            return not self.value(node["Fn::Not"][0])
        if set(node) == {"Fn::Or"}:
            return any(self.value(n) for n in node["Fn::Or"])
        if set(node) == {"Condition"}:
            return self.conditions[node["Condition"]]  # conditions are resolved in the order they are declared
        return {k: self.value(v) for k, v in node.items()}

    def value_list(self, node: Any) -> list[Any]:
        resolved = self.value(node)
        return resolved if isinstance(resolved, list) else [resolved]

    def role_arn(self, function: str) -> str:
        return f"{function}Role.Arn"

    def denied(
        self,
        policy_document: Mapping[str, Any],
        action: str,
        principal: str,
        resource: str | None = None,
        **context: str,
    ) -> bool:
        """Whether an explicit Deny of the document applies to `principal` doing `action` (what the resource policy
        adds to whatever the principal's own IAM policies allow); on `resource` (`<LogicalId>.Arn`) when given, for
        a policy shared by several queues."""
        for statement in listed(self.value(policy_document["Statement"])):
            if statement["Effect"] != "Deny":
                continue
            if not any(fnmatchcase(action, a) for a in listed(statement["Action"])):
                continue
            if resource is not None and resource not in listed(statement.get("Resource", resource)):
                continue
            if all(self._holds(op, tests, principal, context) for op, tests in statement.get("Condition", {}).items()):
                return True
        return False

    @staticmethod
    def _holds(operator: str, tests: Mapping[str, Any], principal: str, context: Mapping[str, str]) -> bool:
        for key, expected in tests.items():
            actual = principal if key == "aws:PrincipalArn" else context.get(key)
            values = [str(v) for v in listed(expected)]
            if operator == "ArnNotEquals":
                if actual in values:
                    return False
            elif operator == "BoolIfExists":
                if actual is not None and actual not in values:
                    return False
            elif operator == "ForAnyValue:StringEquals":
                if actual not in values:
                    return False
            else:
                raise AssertionError(f"the test cannot evaluate {operator}: teach it, do not skip it")
        return True


def queue_policy(template: Template, queue: str) -> Mapping[str, Any]:
    (document,) = [
        r["Properties"]["PolicyDocument"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": queue} in r["Properties"]["Queues"]
    ]
    return dict(document)


AS_A_PRINCIPAL = {"aws:PrincipalIsAWSService": "false"}
AS_A_SERVICE = {"aws:PrincipalIsAWSService": "true"}


# -- 1. who may send usage ---------------------------------------------------------------------------------------


def test_only_screening_may_send_to_the_drawdown_queue(template: Template) -> None:
    # Given the deployment with its defaults, and one naming an operator for redrives
    plain, operated = Deployment(template), Deployment(template, QueueOperatorArns=OPERATOR)
    policy = queue_policy(template, "DrawdownQueue")
    # Then the roles that screen usage (ingest, and the API's POST /usage) may send, and anyone else is denied,
    # whatever its own IAM policies allow
    for deployment in (plain, operated):
        for screening in ("IngestFunction", "ApiFunction"):
            assert not deployment.denied(policy, "sqs:SendMessage", deployment.role_arn(screening), **AS_A_PRINCIPAL)
        for other in ("PurchaseFunction", "DrawdownFunction", "AlertingFunction"):
            assert deployment.denied(policy, "sqs:SendMessage", deployment.role_arn(other), **AS_A_PRINCIPAL)
        assert deployment.denied(policy, "sqs:SendMessage", SOMEONE, **AS_A_PRINCIPAL)
    # And the named operator may (a redrive of its dead-letter queue), only where named
    assert plain.denied(policy, "sqs:SendMessage", OPERATOR, **AS_A_PRINCIPAL)
    assert not operated.denied(policy, "sqs:SendMessage", OPERATOR, **AS_A_PRINCIPAL)
    # And Lambda's poller still receives and deletes (only sending is restricted)
    assert not plain.denied(policy, "sqs:ReceiveMessage", SOMEONE, **AS_A_PRINCIPAL)


def test_the_usage_queue_takes_the_named_producers_and_operators_only(template: Template) -> None:
    # Given deployments naming nobody, a producer and an operator, only a producer, only an operator
    plain = Deployment(template)
    both = Deployment(template, UsageProducerArns=PRODUCER, QueueOperatorArns=OPERATOR)
    producers = Deployment(template, UsageProducerArns=PRODUCER)
    operators = Deployment(template, QueueOperatorArns=OPERATOR)
    policy = queue_policy(template, "UsageQueue")
    # Then no function of the stack sends to it (POST /usage goes straight to the drawdown queue), nor anyone else
    for deployment in (plain, both, producers, operators):
        for function in ("ApiFunction", "IngestFunction", "DrawdownFunction"):
            assert deployment.denied(policy, "sqs:SendMessage", deployment.role_arn(function), **AS_A_PRINCIPAL)
        assert deployment.denied(policy, "sqs:SendMessage", SOMEONE, **AS_A_PRINCIPAL)
    # And each named principal sends where it is named, and nowhere else
    assert [
        d.denied(policy, "sqs:SendMessage", PRODUCER, **AS_A_PRINCIPAL) for d in (plain, both, producers, operators)
    ] == [True, False, False, True]
    assert [
        d.denied(policy, "sqs:SendMessage", OPERATOR, **AS_A_PRINCIPAL) for d in (plain, both, producers, operators)
    ] == [True, False, True, False]
    # And Lambda's poller still receives (only sending is restricted)
    assert not both.denied(policy, "sqs:ReceiveMessage", SOMEONE, **AS_A_PRINCIPAL)


@pytest.mark.parametrize(
    ("queue", "senders"),
    [
        ("UsageDeadLetterQueue", {"IngestFunction", "DrawdownFunction"}),
        ("DrawdownDeadLetterQueue", {"IngestFunction", "DrawdownFunction"}),
        ("WebhookQueue", {"AlertingFunction", "WebhooksFunction"}),  # WebhooksFunction: resends
        ("WebhookDeadLetterQueue", {"AlertingFunction"}),
        ("LifecycleDeadLetterQueue", {"ExpiryFunction", "AutoRechargeFunction", "RecurringFunction", "ExportFunction"}),
        ("OutboxDeadLetterQueue", {"PublisherFunction", "RevenueFunction"}),
    ],
)  # fmt: skip
def test_every_other_queue_takes_only_the_functions_that_send_to_it(
    template: Template, queue: str, senders: set[str]
) -> None:
    deployment = Deployment(template)
    policy = queue_policy(template, queue)
    arn = f"{queue}.Arn"  # some policies hold several queues: each statement is read for this one's ARN
    for function in function_ids():
        denied = deployment.denied(policy, "sqs:SendMessage", deployment.role_arn(function), arn, **AS_A_PRINCIPAL)
        assert denied is (function not in senders), function
    assert deployment.denied(policy, "sqs:SendMessage", SOMEONE, arn, **AS_A_PRINCIPAL)
    # (EventBridge delivering the alert rule's events is a service, not a principal of the account)
    assert not deployment.denied(policy, "sqs:SendMessage", "events.amazonaws.com", **AS_A_SERVICE)


def test_every_queue_has_a_policy(template: Template) -> None:
    policies = of_type(template, "AWS::SQS::QueuePolicy").values()
    covered = {q["Ref"] for p in policies for q in p["Properties"]["Queues"]}
    assert covered == set(of_type(template, "AWS::SQS::Queue"))


# -- 3. who may put prepaid.credits events ----------------------------------------------------------------------------


def test_only_the_publisher_may_put_prepaid_credits_events_on_the_bus(template: Template) -> None:
    deployment = Deployment(template)
    (policy,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Events::EventBusPolicy"]
    assert policy["EventBusName"] == {"Ref": "EventBus"}
    document = {"Statement": [policy["Statement"]]}
    ours = {"events:source": "prepaid.credits"}
    assert not deployment.denied(document, "events:PutEvents", deployment.role_arn("PublisherFunction"), **ours)
    for function in set(function_ids()) - {"PublisherFunction"}:
        assert deployment.denied(document, "events:PutEvents", deployment.role_arn(function), **ours), function
    assert deployment.denied(document, "events:PutEvents", SOMEONE, **ours)
    # And other sources on the bus (e.g. Lambda's destinations) are not this policy's business
    assert not deployment.denied(document, "events:PutEvents", SOMEONE, **{"events:source": "lambda"})


# -- 8. roles ----------------------------------------------------------------------------------------------------


def role_statements(cfn: Template, function: str) -> list[dict[str, Any]]:
    return [s for s in statements(role_of(cfn, function), cfn) if s.get("Effect") == "Allow"]


@pytest.mark.parametrize("function", function_ids())
def test_each_role_is_the_functions_own_with_no_managed_policy(cfn: Template, function: str) -> None:
    role = role_of(cfn, function)
    assert role["Properties"].get("ManagedPolicyArns", []) == []
    assert role["Properties"].get("PermissionsBoundary") is None
    # and no other function runs with it
    shared = [f for f in function_ids() if f != function and role_of(cfn, f) is role]
    assert shared == []


@pytest.mark.parametrize("function", function_ids())
def test_no_statement_reaches_every_resource_but_x_rays(cfn: Template, function: str) -> None:
    for statement in role_statements(cfn, function):
        if "*" in listed(statement["Resource"]):
            # X-Ray has no resource-level permissions: its two write actions are the only "*"
            assert sorted(listed(statement["Action"])) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]


@pytest.mark.parametrize("function", function_ids())
def test_table_items_are_reached_by_their_key_prefixes(cfn: Template, function: str) -> None:
    for statement in role_statements(cfn, function):
        actions = listed(statement["Action"])
        stream = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams")
        item_actions = [a for a in actions if a.startswith("dynamodb:") and a not in stream]
        if not item_actions or "/index/" in json.dumps(statement["Resource"]):
            continue  # stream reads, and the index query (its key is the day of the month)
        keys = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        assert keys, f"{function} {statement.get('Sid')}: table access without dynamodb:LeadingKeys"
        assert "*" not in keys


def test_no_role_grants_what_no_handler_calls(cfn: Template) -> None:
    granted = {a for f in function_ids() for s in role_statements(cfn, f) for a in listed(s["Action"])}
    assert "dynamodb:ConditionCheckItem" not in granted
    assert not {a for a in granted if a.endswith(":*") or a == "*"}
    assert not {a for a in granted if re.match(r"dynamodb:(Scan|DeleteTable|UpdateTable)$", a)}
    # Nothing deletes an item but a removed webhook endpoint (the webhooks function's, on that partition alone):
    # the ledger, wallets, cards and events are never deleted by a handler.
    for function in function_ids():
        for statement in role_statements(cfn, function):
            if "dynamodb:DeleteItem" in listed(statement["Action"]):
                keys = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
                assert (function, keys) == ("WebhooksFunction", ["WH#ENDPOINTS"]), (function, statement)
    # BatchWriteItem also lets a caller delete, and IAM cannot tell its puts from its deletes. It is granted only
    # for writing what wallet changes owe, on keys the same role may already replace with PutItem (no new power
    # over them); no handler sends a DeleteRequest (the adapter builds PutRequests only).
    for function in function_ids():
        for statement in role_statements(cfn, function):
            if "dynamodb:BatchWriteItem" in listed(statement["Action"]):
                assert statement["Sid"] in ("WriteWhatChangesOwe", "WriteWhatCommitsOwe"), (function, statement)
                assert listed(statement["Action"]) == ["dynamodb:BatchWriteItem"]


def test_the_scheduler_role_is_passed_to_the_scheduler_only(cfn: Template) -> None:
    passes = [s for f in function_ids() for s in role_statements(cfn, f) if "iam:PassRole" in listed(s["Action"])]
    assert len(passes) == 1
    (statement,) = passes
    assert statement["Resource"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


# -- 9. hygiene --------------------------------------------------------------------------------------------------


def test_the_table_cannot_be_deleted_by_accident_and_the_secrets_outlive_the_stack(template: Template) -> None:
    (table,) = of_type(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    for logical, secret in of_type(template, "AWS::SecretsManager::Secret").items():
        assert (secret.get("DeletionPolicy"), secret.get("UpdateReplacePolicy")) == ("Retain", "Retain"), logical


def test_every_function_reserves_its_concurrency_unless_the_deployer_turns_it_off(cfn: Template) -> None:
    for logical, function in of_type(cfn, "AWS::Lambda::Function").items():
        reserved = function["Properties"].get("ReservedConcurrentExecutions")
        assert reserved is not None, logical
        assert reserved["Fn::If"][0] == "Reserved" and reserved["Fn::If"][2] == {"Ref": "AWS::NoValue"}, logical


def test_api_access_logs_leave_out_query_strings_and_headers(cfn: Template) -> None:
    (stage,) = of_type(cfn, "AWS::ApiGateway::Stage").values()
    log_format = stage["Properties"]["AccessLogSetting"]["Format"]
    fields = json.loads(log_format.replace("$", ""))
    assert "resourcePath" in fields
    used = set(re.findall(r"\$context\.[\w.]+", log_format))
    assert not {v for v in used if re.search(r"querystring|header|\.path$|authorizer|requestOverride", v, re.I)}


def test_the_gateways_own_answers_carry_the_contracts_error_body(template: Template) -> None:
    responses = template["Resources"]["Api"]["Properties"]["GatewayResponses"]
    assert {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"} <= set(responses)
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == 404
    for kind, response in responses.items():
        text = response["ResponseTemplates"]["application/json"]
        rendered = json.loads(
            text.replace("$context.error.messageString", '"a message"').replace("$context.error.responseType", kind)
        )
        assert set(rendered) == {"error"}, kind
        assert re.fullmatch(r"[a-z_]+", rendered["error"]["code"]), kind
        assert rendered["error"]["message"], kind


def test_make_test_runs_checkov_over_the_template() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ntemplate:", 1)[1].split("\n\n", 1)[0]
    assert "checkov -f template.yaml" in target
    assert re.search(r"^test: .*\btemplate\b|^test: .*\bpackaging\b", makefile, re.M)


def test_every_checkov_skip_says_why(template: Template) -> None:
    skips = [
        (logical, skip)
        for logical, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), logical
        assert len(skip.get("comment", "")) > 30, f"{logical} skips {skip['id']} without a reason"
