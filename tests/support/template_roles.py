"""template.yaml after the SAM transform, and the IAM statements of its functions' roles, for tests about permissions.

The transform is the one `tests/packaging/test_template.py` runs (aws-sam-translator offline, CodeUri/ContentUri as
the S3 URIs `sam package` would make, an empty managed-policy map: the template names no managed policy by name);
test modules cannot import each other cleanly, so the few helpers live here.
"""

from __future__ import annotations

from typing import Any

import pytest
from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

from prepaid_local.template import load

REGION = "us-east-1"

Template = dict[str, Any]


class OfflinePolicies:
    """The managed-policy loader `transform` asks for; the real one lists policies through IAM."""

    def load(self) -> dict[str, str]:
        return {}


def transformed() -> Template:
    """template.yaml after the SAM transform, as CloudFormation would process it."""
    template = load()
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://packaged-artifacts/{props[key]}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", REGION)  # the translator resolves AWS::Region from a boto3 session
        result: Template = transform(template, {}, OfflinePolicies())
    return result


def function_ids() -> list[str]:
    """Every `AWS::Serverless::Function` of template.yaml (logical ids, which the transform keeps)."""
    return sorted(k for k, v in load()["Resources"].items() if v["Type"] == "AWS::Serverless::Function")


def of_type(cfn: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == kind}


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(cfn: Template, function: str) -> dict[str, Any]:
    """The AWS::IAM::Role resource a function runs with (one of the template's: SAM's generated role or another)."""
    role = cfn["Resources"][function]["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"{function} uses a role from outside the template"
    resource: dict[str, Any] = cfn["Resources"][role["Fn::GetAtt"][0]]
    return resource


def statements(role: dict[str, Any], cfn: Template) -> list[dict[str, Any]]:
    """Inline statements of a role, and of AWS::IAM::Policy resources attached to it (by `Ref` to its logical id)."""
    (role_id,) = [k for k, v in cfn["Resources"].items() if v is role]
    documents = [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
    documents += [
        p["Properties"]["PolicyDocument"]
        for p in of_type(cfn, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"].get("Roles", [])
    ]
    return [s for d in documents for s in listed(d["Statement"])]


def managed_policy_arns(role: dict[str, Any]) -> list[Any]:
    """The role's managed policies, as the template gives them (ARN strings, or intrinsic functions)."""
    return list(role["Properties"].get("ManagedPolicyArns", []))


def partition_keys(template: Template, physical: dict[str, str]) -> dict[str, str]:
    """Each table's partition key attribute by its local name, and each index's by `<table name>/index/<index>`
    (`physical`: the local stack's names by logical id), as `support.aws_calls.AwsCallRecorder` takes them."""

    def hash_key(schema: list[dict[str, str]]) -> str:
        (name,) = [k["AttributeName"] for k in schema if k["KeyType"] == "HASH"]
        return name

    found = {}
    for logical, table in of_type(template, "AWS::DynamoDB::Table").items():
        props, name = table["Properties"], physical[logical]
        found[name] = hash_key(props["KeySchema"])
        for index in [*props.get("GlobalSecondaryIndexes", []), *props.get("LocalSecondaryIndexes", [])]:
            found[f"{name}/index/{index['IndexName']}"] = hash_key(index["KeySchema"])
    return found
