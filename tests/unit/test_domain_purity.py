"""The domain and the use cases import no AWS SDK: storage and publishing sit behind adapters."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "prepaid" / "prepaid"
PURE = sorted([*(PACKAGE / "domain").glob("*.py"), *(PACKAGE / "application").glob("*.py")])
FORBIDDEN = {"boto3", "botocore", "aws_lambda_powertools", "prepaid.adapters"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_there_are_pure_modules_to_check() -> None:
    assert len(PURE) >= 8


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.name)
def test_module_imports_no_aws_sdk(path: Path) -> None:
    bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {bad}"
