"""Checking a routing rules directory with every problem named by file and field.

`load_rules` (rules.py) refuses a bad directory with one message; `check_rules` is for people
editing rules (`koppelpunt rules check DIR`): it reports every problem, each with the file it is
in and the dotted field path, and returns the RuleSet when there is none. `rules_json_schema`
is the JSON Schema of the merged rule set (routing_rules/schema.json, for editors and review).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from koppelpunt.pipeline.rules import RuleSet


@dataclass(frozen=True, slots=True)
class RuleIssue:
    file: str  # file name within the directory; "" for the directory as a whole
    field: str  # dotted path, e.g. leeftijd.jonger_dan; "" for the file as a whole
    message: str

    def location(self, directory: Path) -> str:
        path = str(directory / self.file) if self.file else str(directory)
        return f"{path}: {self.field}" if self.field else path


def check_rules(directory: Path) -> tuple[RuleSet | None, list[RuleIssue]]:
    """Validate every *.yaml in `directory` as one RuleSet; all problems, never the first only."""
    if not directory.is_dir():
        return None, [RuleIssue("", "", "is not a directory")]
    files = sorted(directory.glob("*.yaml"))
    if not files:
        return None, [RuleIssue("", "", "contains no *.yaml rule files")]
    issues: list[RuleIssue] = []
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in files:
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            issues.append(RuleIssue(path.name, where, f"not valid YAML: {problem}"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(RuleIssue(path.name, "", f"cannot be read: {exc}"))
            continue
        if not isinstance(content, dict):
            issues.append(RuleIssue(path.name, "", "expected a mapping at the top level"))
            continue
        for key, value in content.items():
            key = str(key)
            if key in merged:
                issues.append(RuleIssue(path.name, key, f"already defined in {origin[key]}"))
                continue
            merged[key] = value
            origin[key] = path.name
    try:
        rules = RuleSet.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            file = origin.get(loc[0], "") if loc else ""
            issues.append(RuleIssue(file, ".".join(loc), err["msg"]))
        return None, issues
    issues.extend(_semantic_issues(rules, origin))
    return (None, issues) if issues else (rules, [])


def _semantic_issues(rules: RuleSet, origin: dict[str, str]) -> list[RuleIssue]:
    """What the models accept but cannot be meant: a peildatum like 31 April."""
    issues = []
    for name in ("aanmelddatum", "teldatum"):
        dag = getattr(rules.peildata, name)
        try:
            date(2001, dag.maand, dag.dag)  # 2001: not a leap year, so 29 February is refused
        except ValueError:
            issues.append(
                RuleIssue(
                    origin.get("peildata", ""),
                    f"peildata.{name}",
                    f"{dag.dag}-{dag.maand} is not a day that exists every year",
                )
            )
    return issues


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rules directory's merged content (all files together)."""
    schema: dict[str, Any] = _stable(RuleSet.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$comment"] = (
        "Generated from koppelpunt.pipeline.rules.RuleSet by `koppelpunt rules schema`; "
        "the *.yaml files of a rules directory together must match it. Do not edit by hand."
    )
    return schema


def _stable(value: Any, in_default: bool = False) -> Any:
    """Sort lists inside `default` values: a frozenset default has no order of its own."""
    if isinstance(value, dict):
        return {k: _stable(v, in_default or k == "default") for k, v in value.items()}
    if isinstance(value, list):
        items = [_stable(v, in_default) for v in value]
        if in_default and all(isinstance(v, str) for v in items):
            return sorted(items)
        return items
    return value
