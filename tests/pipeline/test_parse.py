"""Parsing, validation and normalisation of inbound messages."""

from __future__ import annotations

import dataclasses
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from koppelpunt.errors import ConfigurationError
from koppelpunt.model import (
    AanmeldstatusBericht,
    Invalid,
    Parsed,
    PrognoseBericht,
    RecordRejection,
    Soort,
)
from koppelpunt.pipeline.parse import (
    SLICE_RECORDS,
    SchemaRegistry,
    element_path,
    hardened_parser,
    parse_message,
)
from tests.strategies import (
    aanmeldstatus_berichten,
    aanmeldstatus_tree,
    bsns,
    mutated_documents,
    prognose_berichten,
    prognose_tree,
    to_xml,
)

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
CASES = sorted(CASES_DIR.glob("*.expected.yaml"))
NINE_DIGITS_OR_MASK = re.compile(r"\d{9}|\*{9}")


def prognose(leerlingen: str, **head: str) -> bytes:
    """A prognose message around the given `<leerling>` elements; head fields overridable."""
    h = {
        "berichtId": "b-1",
        "verzonden": "2027-01-15T10:00:00+01:00",
        "brin": "25LX",
        "schooljaar": "2026-2027",
    } | head
    return (
        '<prognoses xmlns="urn:vva:prognose:1">\n'
        f"<berichtId>{h['berichtId']}</berichtId>\n<verzonden>{h['verzonden']}</verzonden>\n"
        f"<school><brin>{h['brin']}</brin></school>\n<schooljaar>{h['schooljaar']}</schooljaar>\n"
        f"{leerlingen}</prognoses>"
    ).encode()


def leerling(bsn: str = "999993653", geboortedatum: str = "2010-05-13") -> str:
    return (
        f"<leerling><bsn>{bsn}</bsn><geboortedatum>{geboortedatum}</geboortedatum>"
        "<onderwijssoort>vmbo-tl</onderwijssoort></leerling>\n"
    )


class TestCorpus:
    @pytest.mark.parametrize("expected_file", CASES, ids=lambda p: p.name.split(".")[0])
    def test_message_has_expected_outcome(
        self, expected_file: Path, schemas: SchemaRegistry
    ) -> None:
        """Each corpus message gives the outcome written in the .expected.yaml beside it."""
        expected: dict[str, Any] = yaml.safe_load(expected_file.read_text())
        name = expected_file.name.removesuffix(".expected.yaml")
        body = (expected_file.parent / expected.get("xml", f"{name}.xml")).read_bytes()

        outcome = parse_message(body, Soort(expected["soort"]), schemas)

        if expected["outcome"] == "parsed":
            assert isinstance(outcome, Parsed), outcome
            assert len(outcome.bericht.records) == expected["records"]
            assert [r.index for r in outcome.afgewezen] == expected["afgewezen"]
            kept = {r.index for r in outcome.bericht.records}
            assert kept.isdisjoint(expected["afgewezen"])
        else:
            assert isinstance(outcome, Invalid), outcome
            assert outcome.issues
            assert outcome.hostile is expected.get("hostile", False)
            if "paths" in expected:
                assert {i.path for i in outcome.issues} == set(expected["paths"])
            if "line" in expected:
                assert outcome.issues[0].line == expected["line"]
                assert outcome.issues[0].column is not None
            for issue in outcome.issues:  # places and rules only: nothing needed masking
                assert not NINE_DIGITS_OR_MASK.search(f"{issue.reason} {issue.path}"), issue
        if "bericht_id" in expected:
            got = outcome.bericht.bericht_id if isinstance(outcome, Parsed) else outcome.bericht_id
            assert got == expected["bericht_id"]

    def test_every_message_has_an_expected_outcome(self) -> None:
        """No corpus message lies around without an expected-outcome file."""
        messages = {p.name.removesuffix(".xml") for p in CASES_DIR.glob("*.xml")}
        expectations = {p.name.removesuffix(".expected.yaml") for p in CASES}
        assert messages <= expectations


class TestHardenedParser:
    def test_never_expands_entities(self) -> None:
        """A declared internal entity stays an unexpanded reference."""
        body = b'<!DOCTYPE r [<!ENTITY x "expanded">]><r>&x;</r>'
        root = etree.fromstring(body, hardened_parser())
        assert "expanded" not in etree.tostring(root).decode()

    def test_returns_a_fresh_parser_each_time(self) -> None:
        """Parsers are not shared, so concurrent requests cannot interfere."""
        assert hardened_parser() is not hardened_parser()


class TestSchemaRegistry:
    def test_loads_the_three_schemas(self, schemas: SchemaRegistry) -> None:
        """Each schema knows its namespace and root element."""
        assert schemas.for_soort(Soort.PROGNOSE).root_tag == "{urn:vva:prognose:1}prognoses"
        assert schemas.for_soort(Soort.AANMELDSTATUS).root == "aanmeldstatussen"
        assert schemas.signalering.namespace == "urn:vva:signalering:1"

    def test_missing_directory_is_a_configuration_error(self, tmp_path: Path) -> None:
        """Without its schemas the service refuses to start."""
        with pytest.raises(ConfigurationError):
            SchemaRegistry.load(tmp_path / "missing")

    def test_include_from_outside_the_directory_is_refused(self, tmp_path: Path) -> None:
        """xmlschema's sandbox keeps every include inside the schemas directory."""
        inner = tmp_path / "schemas"
        shutil.copytree(SCHEMAS_DIR, inner)
        shutil.move(inner / "common.xsd", tmp_path / "common.xsd")
        for xsd in inner.glob("*.xsd"):
            text = xsd.read_text().replace(
                'schemaLocation="common.xsd"', 'schemaLocation="../common.xsd"'
            )
            xsd.write_text(text)
        with pytest.raises(ConfigurationError):
            SchemaRegistry.load(inner)


class TestParseMessage:
    def test_verzonden_without_offset_is_amsterdam_time(self, schemas: SchemaRegistry) -> None:
        """A naive verzonden is Dutch local time: +01:00 in winter, +02:00 in summer."""
        for moment, offset in (("2027-01-15T10:00:00", 1), ("2027-06-15T10:00:00", 2)):
            outcome = parse_message(prognose(leerling(), verzonden=moment), Soort.PROGNOSE, schemas)
            assert isinstance(outcome, Parsed)
            assert outcome.bericht.verzonden.utcoffset() == timedelta(hours=offset)

    def test_utc_verzonden_keeps_its_instant(self, schemas: SchemaRegistry) -> None:
        """An explicit Z is honoured."""
        body = prognose(leerling(), verzonden="2027-01-15T09:00:00.5Z")
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed)
        assert outcome.bericht.verzonden == datetime(2027, 1, 15, 9, 0, 0, 500000, UTC)

    def test_tokens_collapse_and_values_are_trimmed(self, schemas: SchemaRegistry) -> None:
        """Whitespace the XSD ignores (token, date) is ignored by the normaliser too."""
        body = prognose(leerling(geboortedatum=" 2010-05-13\n"), berichtId="  b   1 ")
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed)
        assert outcome.bericht.bericht_id == "b 1"
        assert outcome.bericht.records[0].leerling.geboortedatum.isoformat() == "2010-05-13"

    def test_rejected_record_names_reason_and_path(self, schemas: SchemaRegistry) -> None:
        """A BSN failing the elfproef rejects that record with its path; the rest is kept."""
        body = prognose(leerling() + leerling(bsn="999993654") + leerling(bsn="999990019"))
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed)
        assert outcome.afgewezen == (
            RecordRejection(1, "bsn voldoet niet aan de elfproef", "/prognoses/leerling[2]/bsn"),
        )
        assert [r.index for r in outcome.bericht.records] == [0, 2]

    def test_issues_carry_line_numbers(self, schemas: SchemaRegistry) -> None:
        """Schema issues point at the line of the offending element."""
        body = prognose(leerling() + leerling(bsn="12"))
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert [(i.line, i.path) for i in outcome.issues] == [(7, "/prognoses/leerling[2]/bsn")]
        assert outcome.issues[0].reason.startswith("voldoet niet aan het schema")

    def test_issues_are_capped(self, schemas: SchemaRegistry) -> None:
        """A message with thousands of errors reports at most max_issues of them."""
        body = prognose(leerling(bsn="1") * 50)
        outcome = parse_message(body, Soort.PROGNOSE, schemas, max_issues=10)
        assert isinstance(outcome, Invalid)
        assert len(outcome.issues) == 10

    def test_schema_and_schooljaar_issues_are_reported_together(
        self, schemas: SchemaRegistry
    ) -> None:
        """The schooljaar check runs even when the XSD already failed."""
        body = prognose(leerling(bsn="1"), schooljaar="2026-2028")
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert {i.path for i in outcome.issues} == {
            "/prognoses/leerling[1]/bsn",
            "/prognoses/schooljaar",
        }

    def test_a_wrong_namespace_is_named(self, schemas: SchemaRegistry) -> None:
        """The sender sees which namespace it used (shortened when long), not a part of it."""
        body = prognose(leerling()).replace(b"urn:vva:prognose:1", b"urn:vva:prognose:2")
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert outcome.issues[0].reason.endswith("in namespace urn:vva:prognose:2")

    def test_overlong_bericht_id_is_not_reported(self, schemas: SchemaRegistry) -> None:
        """An invalid berichtId is not echoed back as if it identified the message."""
        outcome = parse_message(prognose(leerling(), berichtId="x" * 65), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert outcome.bericht_id is None

    def test_falls_back_to_libxml2_when_xmlschema_gives_up(self, schemas: SchemaRegistry) -> None:
        """An xsi:type naming an unknown type still yields an issue with a path."""
        body = prognose(leerling()).replace(
            b"<berichtId>",
            b'<berichtId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
            b' xsi:type="xs:string">',
        )
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert [i.path for i in outcome.issues] == ["/prognoses/berichtId"]

    def test_ten_thousand_records(self, schemas: SchemaRegistry) -> None:
        """The largest legal message parses completely (hot path: plain lxml)."""
        outcome = parse_message(prognose(leerling() * 10_000), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed)
        assert len(outcome.bericht.records) == 10_000
        assert outcome.bericht.records[-1].index == 9_999

    def test_large_invalid_message_reports_every_issue_by_path(
        self, schemas: SchemaRegistry
    ) -> None:
        """A large message gets libxml2's report (validated in slices), with the paths and lines."""
        records = leerling() * 5_000 + leerling(bsn="1") + leerling() * 4_000 + leerling(bsn="2")
        outcome = parse_message(prognose(records, brin="25lx"), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert [(i.path, i.line) for i in outcome.issues] == [
            ("/prognoses/school/brin", 4),
            ("/prognoses/leerling[5001]/bsn", 5_006),
            ("/prognoses/leerling[9002]/bsn", 9_007),
        ]

    def test_more_than_ten_thousand_records_is_invalid(self, schemas: SchemaRegistry) -> None:
        """The 10,001st record is reported by path."""
        outcome = parse_message(prognose(leerling() * 10_001), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert [i.path for i in outcome.issues] == ["/prognoses/leerling[10001]"]


class TestElementPath:
    def test_records_are_always_indexed(self) -> None:
        """A lone record still gets [1], so a path always maps to a record index."""
        root = etree.fromstring(prognose(leerling()))
        assert element_path(root[4][0]) == "/prognoses/leerling[1]/bsn"

    def test_repeated_siblings_are_indexed_and_prefixes_dropped(self) -> None:
        """Same-tag siblings get 1-based positions; namespace prefixes never appear."""
        root = etree.fromstring(b'<p:a xmlns:p="urn:x"><p:b/><p:c/><p:c/></p:a>')
        assert [element_path(e) for e in root] == ["/a/b", "/a/c[1]", "/a/c[2]"]


class TestProperties:
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(bericht=prognose_berichten())
    def test_valid_prognose_round_trips(
        self, bericht: PrognoseBericht, schemas: SchemaRegistry
    ) -> None:
        """Any valid prognose parses back to exactly the values it was built from."""
        outcome = parse_message(to_xml(prognose_tree(bericht)), Soort.PROGNOSE, schemas)
        assert outcome == Parsed(bericht)

    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(bericht=aanmeldstatus_berichten())
    def test_valid_aanmeldstatus_round_trips(
        self, bericht: AanmeldstatusBericht, schemas: SchemaRegistry
    ) -> None:
        """Any valid aanmeldstatus message parses back to exactly the values it was built from."""
        outcome = parse_message(to_xml(aanmeldstatus_tree(bericht)), Soort.AANMELDSTATUS, schemas)
        assert outcome == Parsed(bericht)

    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(case=mutated_documents())
    def test_one_mutated_field_is_reported_at_its_path(
        self, case: tuple[Soort, bytes, str, str], schemas: SchemaRegistry
    ) -> None:
        """A valid message with one field made invalid is Invalid, with that field's path."""
        soort, body, path, _mutation = case
        outcome = parse_message(body, soort, schemas)
        assert isinstance(outcome, Invalid)
        assert not outcome.hostile
        assert path in {i.path for i in outcome.issues}


def without_slices(schemas: SchemaRegistry) -> SchemaRegistry:
    """The same schemas, but every message validated whole (as before slicing)."""
    return dataclasses.replace(
        schemas,
        prognose=dataclasses.replace(schemas.prognose, records=None),
        aanmeldstatus=dataclasses.replace(schemas.aanmeldstatus, records=None),
    )


def with_limits(schemas: SchemaRegistry, **limits: Any) -> SchemaRegistry:
    return dataclasses.replace(schemas, limits=dataclasses.replace(schemas.limits, **limits))


@st.composite
def sliced_messages(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A prognose of more records than one slice, with a few fields or elements gone wrong;
    and whether an element is out of place among the records."""
    count = draw(st.integers(SLICE_RECORDS + 1, 3 * SLICE_RECORDS + 7))
    kinds = st.sampled_from(sorted(BREAKAGES))
    bad = draw(st.dictionaries(st.integers(0, count - 1), kinds, max_size=6))
    records = "".join(BREAKAGES[bad[i]] if i in bad else leerling() for i in range(count))
    head = draw(st.sampled_from([{}, {"brin": "25lx"}, {"schooljaar": "2026"}]))
    return prognose(records, **head), "stranger" in bad.values()


BREAKAGES = {
    "bsn": leerling(bsn="12"),
    "datum": leerling(geboortedatum="2010-13-01"),
    "extra": leerling().replace("</leerling>", "<x/></leerling>"),
    "missing": "<leerling><bsn>999993653</bsn></leerling>\n",
    "stranger": "<vreemd/>\n",
}


class TestSlicedValidation:
    """libxml2 validates a message of many records in slices of SLICE_RECORDS: the verdict and
    the report are those of one validation of the whole."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=sliced_messages())
    def test_slices_report_what_the_whole_does(
        self, case: tuple[bytes, bool], schemas: SchemaRegistry
    ) -> None:
        """Same verdict, same issues; where an element is out of place among the records,
        libxml2 stops reading the whole there, and the slices report the records after it too."""
        body, out_of_place = case
        libxml2_only = with_limits(schemas, detailed_report_max_nodes=0)
        sliced = parse_message(body, Soort.PROGNOSE, libxml2_only)
        whole = parse_message(body, Soort.PROGNOSE, without_slices(libxml2_only))
        assert type(sliced) is type(whole)
        if isinstance(sliced, Invalid) and isinstance(whole, Invalid):
            got = [(i.path, i.line, i.reason) for i in sliced.issues]
            expected = [(i.path, i.line, i.reason) for i in whole.issues]
            if out_of_place:
                assert set(expected) <= set(got)
            else:
                assert got == expected

    def test_many_issues_deep_in_a_long_list_cost_no_more_than_a_slice(
        self, schemas: SchemaRegistry
    ) -> None:
        """The 10,000th record of a message with 40,000 issues is reported by path; only the
        first slices are read (each issue's path costs its position within a slice)."""
        records = leerling() * 9_999 + leerling(bsn="x", geboortedatum="x")
        outcome = parse_message(prognose(records), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert [i.path for i in outcome.issues] == [
            "/prognoses/leerling[10000]/bsn",
            "/prognoses/leerling[10000]/geboortedatum",
        ]


class TestReportBudget:
    def test_xmlschema_explains_a_small_message(self, schemas: SchemaRegistry) -> None:
        """xmlschema reports both the pattern and the type of a wrong date; libxml2 one."""
        body = prognose(leerling(geboortedatum="2010-5-13"))
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert len(outcome.issues) == 2

    def test_above_the_node_budget_libxml2_reports(self, schemas: SchemaRegistry) -> None:
        body = prognose(leerling(geboortedatum="2010-5-13"))
        outcome = parse_message(
            body, Soort.PROGNOSE, with_limits(schemas, detailed_report_max_nodes=5)
        )
        assert isinstance(outcome, Invalid)
        assert [i.reason for i in outcome.issues] == [
            "voldoet niet aan het schema: <geboortedatum> is geen geldige waarde van het type Datum"
        ]

    def test_out_of_time_libxml2_reports(self, schemas: SchemaRegistry) -> None:
        """xmlschema is abandoned when an issue takes it longer than the budget."""
        body = prognose(leerling(geboortedatum="2010-5-13"))
        budget = with_limits(schemas, detailed_report_max_seconds=1e-9)
        outcome = parse_message(body, Soort.PROGNOSE, budget)
        assert isinstance(outcome, Invalid)
        assert len(outcome.issues) == 1


class TestConcurrentValidation:
    def test_threads_get_their_own_issues(self, schemas: SchemaRegistry) -> None:
        """Large messages are parsed in worker threads, several at once: libxml2's issue log
        is per validator, so each thread validates with its own."""
        bodies = {
            "/prognoses/leerling[150]/bsn": prognose(leerling() * 149 + leerling(bsn="1")),
            "/prognoses/leerling[3]/geboortedatum": prognose(
                leerling() * 2 + leerling(geboortedatum="2010-13-01") + leerling() * 150
            ),
        }
        libxml2_only = with_limits(schemas, detailed_report_max_nodes=0)

        def paths(body: bytes) -> list[str | None]:
            outcome = parse_message(body, Soort.PROGNOSE, libxml2_only)
            assert isinstance(outcome, Invalid)
            return [i.path for i in outcome.issues]

        work = [path for path in bodies for _ in range(40)]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda path: (path, paths(bodies[path])), work))
        assert all(got == [path] for path, got in results)


# A value the sender wrote anywhere must not come back: this one is unique to the test.
MARKER = "Ⓜ"
CONTENT = re.compile(rf"{MARKER}|\d{{9}}|\*{{9}}")


@st.composite
def content_in_a_leaf(draw: st.DrawFn) -> tuple[Soort, bytes, str]:
    """A valid message whose one leaf holds a BSN among other text: (soort, body, value)."""
    soort = draw(st.sampled_from(Soort))
    if soort is Soort.PROGNOSE:
        root = prognose_tree(draw(prognose_berichten()))
    else:
        root = aanmeldstatus_tree(draw(aanmeldstatus_berichten()))
    leaves = [e for e in root.iter() if len(e) == 0]
    leaf = draw(st.sampled_from(leaves))
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
    value = draw(text) + MARKER + draw(st.sampled_from(["", " ", "0"])) + draw(bsns) + draw(text)
    leaf.text = value
    return soort, to_xml(root), value


class TestNoContentInReasons:
    @settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
    @given(case=content_in_a_leaf(), detailed=st.booleans())
    def test_a_value_never_comes_back(
        self, case: tuple[Soort, bytes, str], detailed: bool, schemas: SchemaRegistry
    ) -> None:
        """Whatever a field holds, the reasons name element, line and rule: neither value nor
        a nine-digit run (nor the mask that would hide one) is in them, whoever reports."""
        soort, body, _value = case
        reports = schemas if detailed else with_limits(schemas, detailed_report_max_nodes=0)
        outcome = parse_message(body, soort, reports)
        assume(isinstance(outcome, Invalid))  # a berichtId may hold any token
        assert isinstance(outcome, Invalid)
        for issue in outcome.issues:
            assert not CONTENT.search(f"{issue.reason} {issue.path}"), issue
            assert issue.path is not None and issue.line is not None, issue

    def test_a_bsn_with_a_space_in_a_large_message(self, schemas: SchemaRegistry) -> None:
        """Issue 21: over 1,000 records libxml2's own text came back, with the BSN in it."""
        records = leerling() * 1_000 + leerling(bsn=" 999993653")
        outcome = parse_message(prognose(records), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert [(i.path, i.reason) for i in outcome.issues] == [
            (
                "/prognoses/leerling[1001]/bsn",
                "voldoet niet aan het schema: <bsn> voldoet niet aan het patroon [0-9]{9}",
            )
        ]

    def test_a_bsn_in_a_date_field(self, schemas: SchemaRegistry) -> None:
        """Issue 21: "Invalid datetime string '999993653'" came back from xmlschema."""
        outcome = parse_message(
            prognose(leerling(geboortedatum="999993653")), Soort.PROGNOSE, schemas
        )
        assert isinstance(outcome, Invalid)
        assert all("999993653" not in i.reason for i in outcome.issues)
        assert {i.path for i in outcome.issues} == {"/prognoses/leerling[1]/geboortedatum"}
