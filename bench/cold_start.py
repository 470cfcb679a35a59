"""Cold start: the CPU each function's handler module takes to import, and what its first invocation adds by
building its first boto3 client, each in a fresh Python process, beside a baseline measured in the same run.

The baseline is the floor no handler avoids: Python with boto3, pydantic and Powertools' logger imported. Figures
are CPU time (`time.process_time()`), the median of `--repeat` fresh processes; Lambda bills the init phase and gives
it the function's share of a vCPU, so CPU here (one x86 core) stands for Graviton CPU, not for billed time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from prepaid_local.template import load, resources

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_ENV = {  # what the handler module sees at import on Lambda (no real credentials are used: nothing is sent)
    "AWS_LAMBDA_FUNCTION_NAME": "cold-start",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "cold-start",
    "AWS_SECRET_ACCESS_KEY": "cold-start",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "POWERTOOLS_SERVICE_NAME": "prepaid-credits",
}
PROBE = """
import json, sys, time
started = time.process_time()
{imports}
imported = time.process_time()
import boto3
boto3.client("dynamodb")
first_client = time.process_time()
print(json.dumps({{"import_ms": (imported - started) * 1000, "first_client_ms": (first_client - imported) * 1000,
                   "xray": "aws_xray_sdk" in sys.modules}}))
"""
BASELINE = "import boto3, pydantic\nfrom aws_lambda_powertools import Logger, Metrics"


def handlers() -> dict[str, tuple[str, str]]:
    """Each function of the template: (its code folder, its handler module)."""
    found = {}
    for logical_id, resource in resources(load(), "AWS::Serverless::Function").items():
        props = resource["Properties"]
        found[logical_id] = (str(props["CodeUri"]), str(props["Handler"]).rsplit(".", 1)[0])
    return found


def measure(code_uri: str | None, imports: str, repeat: int) -> dict[str, float | bool]:
    path = [str(ROOT / "layers" / "prepaid")] + ([str(ROOT / code_uri)] if code_uri else [])
    # bytecode allowed (an empty value turns the setting off): the layer ships it, so imports here use it too
    env = {**os.environ, **LAMBDA_ENV, "PYTHONPATH": os.pathsep.join(path), "PYTHONDONTWRITEBYTECODE": ""}
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", PROBE.format(imports=imports)], env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(done.stdout))
    return {
        "import_ms": statistics.median(r["import_ms"] for r in runs),
        "first_client_ms": statistics.median(r["first_client_ms"] for r in runs),
        "xray": any(r["xray"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--target-ms", type=float, default=400.0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    baseline = measure(None, BASELINE, args.repeat)
    rows = {name: measure(code, f"import {module}", args.repeat) for name, (code, module) in handlers().items()}
    print(f"Cold start: import CPU per function, median of {args.repeat} fresh processes (load {load_before:.2f})")
    print(f"| {'function':<32} | import ms | first client ms | X-Ray SDK |")
    print(
        f"| {'baseline: boto3, pydantic, logger':<32} | {baseline['import_ms']:9.0f} | "
        f"{baseline['first_client_ms']:15.0f} | {'-':9} |"
    )
    for name, row in rows.items():
        print(
            f"| {name:<32} | {row['import_ms']:9.0f} | {row['first_client_ms']:15.0f} | "
            f"{'yes' if row['xray'] else 'no':9} |"
        )
    worst = max(row["import_ms"] for row in rows.values())
    verdict = "met" if worst <= args.target_ms else "NOT met"
    print(
        f"worst import {worst:.0f} ms against {args.target_ms:.0f} ms: {verdict}; load after {os.getloadavg()[0]:.2f}"
    )
    print(
        json.dumps(
            {
                "cold_start_import_ms": {name: round(row["import_ms"]) for name, row in rows.items()},
                "baseline_import_ms": round(float(baseline["import_ms"])),
            }
        )
    )


if __name__ == "__main__":
    main()
