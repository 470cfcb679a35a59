"""template.yaml as CloudFormation will deploy it (after the SAM transform), and as `sam build` packages it.

The transform runs offline with aws-sam-translator, the library CloudFormation's SAM transform is built on:
CodeUri/ContentUri become S3 URIs as `sam package` would make them, and the managed-policy map is empty (the
template names no managed policy by name; SAM's own defaults it adds by ARN).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from prepaid_local.template import ROOT, load
from support.template_roles import Template, function_ids, listed, of_type, role_of, statements, transformed

SAM = ROOT / ".venv-sam" / "bin" / "sam"
SAM_CACHE = ROOT / ".aws-sam" / "cache"
BUILD_PARENT = ROOT / ".aws-sam" / "test-build"
# What ApiFunction must never be able to do to the table: its writes are conditional puts in transactions.
FORBIDDEN_API_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:DeleteTable", "dynamodb:UpdateTable")
# The only routes without IAM: the customer dashboard, whose signed, expiring token is the credential (checked by
# DashboardFunction on every request; tests/integration/test_dashboard.py), and Stripe's webhook, whose signature
# with the endpoint's secret is (checked by the stripe library; tests/integration/test_stripe_payments.py).
PUBLIC_ROUTES = {
    ("/dashboard", "GET"),
    ("/dashboard/data", "GET"),
    ("/dashboard/cards", "GET"),
    ("/dashboard/quote", "GET"),
    ("/dashboard/checkout", "POST"),
    ("/payments/stripe/webhook", "POST"),
}
# Managed policies SAM attaches by default (logs; X-Ray with Tracing: Active; the stream poller's read access).
ALLOWED_MANAGED_POLICIES = {
    "ApiFunction": {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    },
}


@pytest.fixture(scope="module")
def cfn() -> Template:
    return transformed()


# -- API Gateway -------------------------------------------------------------------------------------------------


def test_every_api_method_but_options_the_dashboard_and_stripes_webhook_requires_iam(cfn: Template) -> None:
    # Given the REST APIs after the transform (SAM writes their methods into the OpenAPI Body, and any
    # AWS::ApiGateway::Method resource carries its own AuthorizationType)
    methods: list[tuple[str, str, str | None]] = []
    for logical, resource in of_type(cfn, "AWS::ApiGateway::Method").items():
        props = resource["Properties"]
        methods.append((logical, props["HttpMethod"], props.get("AuthorizationType")))
    for logical, api in of_type(cfn, "AWS::ApiGateway::RestApi").items():
        body = api["Properties"]["Body"]
        schemes = body.get("securityDefinitions", {})
        iam = {name for name, s in schemes.items() if s.get("x-amazon-apigateway-authtype") == "awsSigv4"}
        for path, item in body["paths"].items():
            for verb, operation in item.items():
                names = {name for requirement in operation.get("security", []) for name in requirement}
                methods.append((f"{logical} {path}", verb, "AWS_IAM" if names and names <= iam else str(names)))
    # Then every one of them (CORS preflights aside) is authorized by SigV4, and none is missing
    declared = [e for f in function_ids() for e in load()["Resources"][f]["Properties"].get("Events", {}).values()]
    assert len([m for m in methods if m[1].upper() != "OPTIONS"]) == sum(e["Type"] == "Api" for e in declared)
    # but the customer dashboard's routes and Stripe's webhook, which have no authorizer at all (SAM's `NONE`)
    public = [m for m in methods if m[1].upper() != "OPTIONS" and m[2] != "AWS_IAM"]
    assert {(m[0].split(" ", 1)[1], m[1].upper()) for m in public} == PUBLIC_ROUTES
    assert {m[2] for m in public} == {str({"NONE"})}


def test_api_gateway_invokes_the_function_with_its_own_permission(cfn: Template) -> None:
    # Given every Lambda proxy integration of the REST APIs
    integrations = [
        operation["x-amazon-apigateway-integration"]
        for api in of_type(cfn, "AWS::ApiGateway::RestApi").values()
        for item in api["Properties"]["Body"]["paths"].values()
        for operation in item.values()
    ]
    # Then none passes the caller's credentials on: API Gateway uses the function's resource policy
    assert [i.get("credentials") for i in integrations if "credentials" in i] == []


# -- functions ---------------------------------------------------------------------------------------------------


def test_every_function_runs_python312_on_arm64_traced_with_the_domain_layer(cfn: Template) -> None:
    # Given the Lambda functions after the transform
    functions = of_type(cfn, "AWS::Lambda::Function")
    layers = list(of_type(cfn, "AWS::Lambda::LayerVersion"))
    assert sorted(functions) == function_ids()
    assert len(layers) == 1
    # Then each runs the layer's runtime and architecture, with active tracing and the domain layer
    for logical, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.12", logical
        assert props["Architectures"] == ["arm64"], logical
        assert props["TracingConfig"] == {"Mode": "Active"}, logical
        assert {"Ref": layers[0]} in props["Layers"], logical


def test_the_layer_is_built_for_the_functions_runtime(cfn: Template) -> None:
    # Given the domain layer after the transform
    (layer,) = of_type(cfn, "AWS::Lambda::LayerVersion").values()
    # Then it declares the runtime and architecture the functions use
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_every_function_has_a_log_group_with_retention(cfn: Template) -> None:
    # Given the log groups after the transform
    groups = list(of_type(cfn, "AWS::Logs::LogGroup").values())
    for logical, function in of_type(cfn, "AWS::Lambda::Function").items():
        # Then each function's own log group (/aws/lambda/<name>, or its LoggingConfig's) keeps logs for a while
        own = {"Fn::Sub": f"/aws/lambda/${{{logical}}}"}
        configured = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        names = [name for name in (own, configured) if name is not None]
        found = [g for g in groups if g["Properties"].get("LogGroupName") in names]
        assert len(found) == 1, f"{logical} has no log group of its own"
        assert found[0]["Properties"].get("RetentionInDays"), f"{logical}'s log group keeps logs forever"


def test_the_api_function_cannot_delete_or_scan_the_table(cfn: Template) -> None:
    # Given every policy of ApiFunction's role
    role = role_of(cfn, "ApiFunction")
    allowed = [s for s in statements(role, cfn) if s.get("Effect") == "Allow"]
    # Then no statement allows by exclusion, and no action (wildcards included) reaches a delete or a scan
    assert [s for s in allowed if "NotAction" in s] == []
    actions = [a for s in allowed for a in listed(s.get("Action", []))]
    assert [a for a in actions if a.lower() in ("*", "dynamodb:*")] == []
    granted = [(a, f) for a in actions for f in FORBIDDEN_API_ACTIONS if fnmatchcase(f.lower(), a.lower())]
    assert granted == []
    # And it gets no managed policy beyond SAM's logging and tracing ones
    assert set(role["Properties"].get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED_POLICIES["ApiFunction"]


def test_the_dashboard_function_reads_and_writes_no_more_than_a_pending_card(cfn: Template) -> None:
    # Given every statement of DashboardFunction's role (it answers requests without IAM)
    role = role_of(cfn, "DashboardFunction")
    allowed = [s for s in statements(role, cfn) if s.get("Effect") == "Allow"]
    table = [s for s in allowed if any(str(a).startswith("dynamodb:") for a in listed(s.get("Action", [])))]
    # Then it reads wallet (with its card pages and notes), hourly-usage and catalog items, and writes only what a
    # purchase commits (a checkout's pending card), exactly as the purchase function's role words it
    assert sorted(listed(table[0]["Action"])) == ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"]
    assert table[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["W#*", "A#*", "CATALOG"]}}
    purchase = [
        s
        for s in statements(role_of(cfn, "PurchaseFunction"), cfn)
        if s.get("Sid") in ("Commit", "WriteWhatChangesOwe")
    ]
    assert table[1:] == purchase
    # And it reads the signing secret, nothing else of Secrets Manager, and nothing beyond SAM's managed policies
    secrets = [a for s in allowed for a in listed(s.get("Action", [])) if str(a).startswith("secretsmanager:")]
    assert set(secrets) <= {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    assert set(role["Properties"].get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED_POLICIES["ApiFunction"]


# -- storage and the outbox relay --------------------------------------------------------------------------------


def test_the_table_is_recoverable_encrypted_on_demand_and_streamed(cfn: Template) -> None:
    # Given the DynamoDB table after the transform
    (table,) = of_type(cfn, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    # Then it has point-in-time recovery, server-side encryption, on-demand billing and a stream of new images
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["StreamSpecification"]["StreamViewType"] in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    # And the data outlives a stack deletion
    assert (table.get("DeletionPolicy"), table.get("UpdateReplacePolicy")) == ("Retain", "Retain")


def test_the_publisher_reads_only_outbox_inserts_and_parks_what_it_cannot_publish(cfn: Template) -> None:
    # Given the event source mappings of the publisher
    mappings = [
        m["Properties"]
        for m in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "PublisherFunction"}
    ]
    assert len(mappings) == 1
    (mapping,) = mappings
    # Then it reads the table's stream, filtered to outbox inserts
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["WalletTable", "StreamArn"]}
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"itemType": {"S": ["outbox"]}}}}]
    # And records it gives up on go to a queue, reported per item
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert cfn["Resources"][destination["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


# -- sam build ---------------------------------------------------------------------------------------------------


def _python312_folder() -> Path | None:
    """The folder of a python3.12 to put first on PATH: `sam build` builds python3.12 with it (see TOOLING.md)."""
    candidates = [Path(sys.base_prefix) / "bin", *sorted(Path("/root/.pyenv/versions").glob("3.12*/bin"))]
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "python3.12").exists():
            return folder
    return None


class SamBuild:
    """`sam build` of template.yaml into a temporary folder, run on first use by a test (so a missing SAM CLI fails
    the test, not its setup) and removed at the end of the module.

    The folder sits in .aws-sam/test-build/ because `sam build --cached` keeps its build.toml (the hashes that let
    the next build reuse the layer's dependencies from .aws-sam/deps) beside the build folder: ~20 s on a fresh
    machine, ~3 s after.
    """

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._error: str | None = None

    def folder(self) -> Path:
        if self._folder is None and self._error is None:
            self._error = self._build()
        if self._error is not None:
            pytest.fail(self._error)
        assert self._folder is not None
        return self._folder

    def _build(self) -> str | None:
        if not SAM.exists():
            return f"the SAM CLI is not installed at {SAM.relative_to(ROOT)}: run `make sam-venv` first"
        python = _python312_folder()
        if python is None:
            return "sam build needs Python 3.12 (the functions' runtime) first on PATH; none found in pyenv or on PATH"
        BUILD_PARENT.mkdir(parents=True, exist_ok=True)
        self._folder = Path(tempfile.mkdtemp(prefix="build-", dir=BUILD_PARENT))
        path = f"{python}{os.pathsep}{os.environ['PATH']}"
        command = [
            str(SAM), "build",
            "--template-file", str(ROOT / "template.yaml"),
            "--build-dir", str(self._folder),
            "--cached", "--cache-dir", str(SAM_CACHE),
            "--parallel",
        ]  # fmt: skip
        started = time.monotonic()
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": path}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            return f"sam build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        print(f"sam build took {time.monotonic() - started:.1f} s")
        return None

    def remove(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sam_build() -> Iterator[SamBuild]:
    build = SamBuild()
    try:
        yield build
    finally:
        build.remove()


# What the python3.12 Lambda runtime brings (boto3 and what it depends on), as module or distribution names
RUNTIME_PROVIDES = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "python_dateutil",
    "six.py",
    "six",
    "urllib3",
}


@pytest.mark.packaging
def test_sam_build_packages_the_domain_layer_with_its_dependencies_for_arm64(sam_build: SamBuild) -> None:
    # Given the built layer (what Lambda mounts under /opt/python)
    site = sam_build.folder() / "DomainLayer" / "python"
    # Then it holds the domain package, its use cases and adapters
    for module in ("domain/wallet.py", "domain/price_book.py", "application/wallets.py", "adapters/dynamodb.py"):
        assert (site / "prepaid" / module).is_file(), f"prepaid/{module} is missing from the layer"
    # And its dependencies, with pydantic's compiled core built for CPython 3.12 on arm64
    for package in ("pydantic", "pydantic_core", "aws_lambda_powertools"):
        assert (site / package / "__init__.py").is_file(), f"{package} is missing from the layer"
    # And bytecode for Python 3.12 beside every module, never checked against the source (/opt is read-only on
    # Lambda: a module without it is compiled again at each cold start; a zip keeps times to 2 s)
    for module in ("prepaid/domain/wallet.py", "prepaid/assembly.py", "pydantic/main.py"):
        source = site / module
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        assert cached.is_file(), f"{module} has no bytecode in the layer"
        assert int.from_bytes(cached.read_bytes()[4:8], "little") == 0b01, f"{module}: not unchecked-hash bytecode"
    # And no X-Ray SDK: Lambda's active tracing traces each invocation, and the SDK's import was a quarter of a
    # cold start's import CPU (its recorder builds a sampler client at import)
    assert not (site / "aws_xray_sdk").exists()
    cores = [p.name for p in (site / "pydantic_core").glob("_pydantic_core.*.so")]
    assert cores == ["_pydantic_core.cpython-312-aarch64-linux-gnu.so"]
    # And nothing the runtime already has: a second botocore would shadow the runtime's
    # under the runtime's boto3, and was most of the layer
    brought = sorted(p.name for p in site.iterdir() if p.name.split("-")[0] in RUNTIME_PROVIDES)
    assert brought == []


@pytest.mark.packaging
@pytest.mark.parametrize("function", function_ids())
def test_sam_build_packages_each_function_with_its_handler(sam_build: SamBuild, function: str) -> None:
    # Given a function of the template and its build folder
    props = load()["Resources"][function]["Properties"]
    module = props["Handler"].rsplit(".", 1)[0]
    folder = sam_build.folder() / function
    # Then the handler's module is at its root, as Lambda imports it
    assert (folder / f"{module}.py").is_file(), f"{function}: {module}.py is not in its build"
    # And the function carries only its own code: its dependencies come from the layer
    assert not (folder / "pydantic").exists()
    assert not (folder / "prepaid").exists()
