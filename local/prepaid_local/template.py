"""Read template.yaml: CloudFormation short-form tags and the few intrinsics the local stack resolves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


# libyaml's loader when PyYAML has it (five times faster; every test's stack reads the template)
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that keeps `!Ref X` as `{"Ref": X}`, `!GetAtt A.B` as `{"Fn::GetAtt": [A, B]}`, and so on."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type] # a MappingNode here
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    return template


@dataclass
class Resolver:
    """Resolve intrinsics against local names: a resource's Ref is `<stack>-<LogicalId>` unless it names itself."""

    template: dict[str, Any]
    stack_name: str = "local"
    region: str = "us-east-1"
    account: str = "123456789012"
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)  # (logical id, attribute) -> value

    def parameter(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.template["Parameters"][name].get("Default")
        if name in self.physical:
            return self.physical[name]
        raise KeyError(f"cannot resolve Ref {name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.parameter(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            return self.attributes[(logical, attribute)]
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            variables: dict[str, Any] = {}
            if isinstance(text, list):
                text, variables = text[0], {k: self.resolve(v) for k, v in text[1].items()}
            return _substitute(text, lambda name: variables[name] if name in variables else self._sub_name(name))
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.resolve(p)) for p in parts)
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub_name(self, name: str) -> str:
        if "." in name:
            logical, attribute = name.split(".", 1)
            return self.attributes[(logical, attribute)]
        return str(self.parameter(name))


def _substitute(text: str, lookup: Any) -> str:
    out, i = [], 0
    while i < len(text):
        start = text.find("${", i)
        if start < 0:
            out.append(text[i:])
            break
        end = text.index("}", start)
        out.append(text[i:start])
        out.append(str(lookup(text[start + 2 : end])))
        i = end + 1
    return "".join(out)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type, by logical id."""
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == kind}
