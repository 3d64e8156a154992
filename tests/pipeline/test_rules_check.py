"""`check_rules`: every problem in a rules directory, each with file and field; the schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from koppelpunt.pipeline.rules import load_rules
from koppelpunt.pipeline.rules_check import check_rules, rules_json_schema

RULES_DIR = Path(__file__).resolve().parents[2] / "routing_rules"


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    target.mkdir()
    for path in RULES_DIR.glob("*.yaml"):
        shutil.copy(path, target / path.name)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def issues_of(directory: Path) -> list[tuple[str, str, str]]:
    rules, issues = check_rules(directory)
    assert rules is None
    return [(i.file, i.field, i.message) for i in issues]


class TestCheckRules:
    def test_packaged_rules_are_valid(self) -> None:
        """The shipped routing_rules/ pass, and give the same RuleSet as load_rules."""
        rules, issues = check_rules(RULES_DIR)
        assert issues == []
        assert rules == load_rules(RULES_DIR)

    def test_every_error_with_file_and_field(self, candidate: Path) -> None:
        """Two wrong values in one file and an unknown type in another: all three reported."""
        edit(candidate / "filters.yaml", "jonger_dan: 23", "jonger_dan: -1")
        edit(candidate / "filters.yaml", 'version: "2026.1"', 'version: ""')
        edit(candidate / "signaleringen.yaml", "VERHUISD: true", "VERHUIST: true")
        found = issues_of(candidate)
        fields = {(file, field) for file, field, _ in found}
        assert ("filters.yaml", "leeftijd.jonger_dan") in fields
        assert ("filters.yaml", "version") in fields
        assert any(f == "signaleringen.yaml" and "VERHUIST" in fl for f, fl in fields)
        assert len(found) == 3

    def test_unknown_key_is_named(self, candidate: Path) -> None:
        """A key the rules do not know (a typo) is an error, not silently ignored."""
        (candidate / "extra.yaml").write_text("leeftijdd: {jonger_dan: 27}\n")
        assert [(f, fl) for f, fl, _ in issues_of(candidate)] == [("extra.yaml", "leeftijdd")]

    def test_key_in_two_files(self, candidate: Path) -> None:
        """A top-level key defined twice names both files."""
        (candidate / "zz.yaml").write_text("leeftijd: {jonger_dan: 27}\n")
        assert issues_of(candidate) == [("zz.yaml", "leeftijd", "already defined in filters.yaml")]

    def test_yaml_syntax_error_has_its_line(self, candidate: Path) -> None:
        """Broken YAML is reported with its line."""
        (candidate / "filters.yaml").write_text('version: "x"\nleeftijd: [\n')
        found = issues_of(candidate)
        assert found[0][0] == "filters.yaml"
        assert found[0][1].startswith("line ")

    def test_missing_required_section(self, candidate: Path) -> None:
        """A required section missing from every file is reported for the directory."""
        edit(candidate / "filters.yaml", "leeftijd:\n", "leeftijd_weg:\n")
        found = issues_of(candidate)
        assert ("", "leeftijd", "Field required") in found

    def test_peildatum_that_does_not_exist(self, candidate: Path) -> None:
        """31 April passes the number ranges but is no date: reported."""
        edit(candidate / "signaleringen.yaml", "{maand: 4, dag: 1}", "{maand: 4, dag: 31}")
        assert issues_of(candidate) == [
            (
                "signaleringen.yaml",
                "peildata.aanmelddatum",
                "31-4 is not a day that exists every year",
            )
        ]

    def test_not_a_directory(self, tmp_path: Path) -> None:
        """A missing directory is one clear problem."""
        assert issues_of(tmp_path / "nope") == [("", "", "is not a directory")]


class TestSchema:
    def test_schema_file_is_current(self) -> None:
        """routing_rules/schema.json equals the schema of the RuleSet model.

        Regenerate with `koppelpunt rules schema > routing_rules/schema.json`.
        """
        stored = json.loads((RULES_DIR / "schema.json").read_text(encoding="utf-8"))
        assert stored == rules_json_schema()

    def test_schema_names_the_sections(self) -> None:
        """The schema forbids unknown sections and requires version, leeftijd, startkwalificatie."""
        schema = rules_json_schema()
        assert schema["additionalProperties"] is False
        assert {"version", "leeftijd", "startkwalificatie"} <= set(schema["required"])
