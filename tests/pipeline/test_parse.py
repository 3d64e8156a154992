"""Parsing, validation and normalisation of inbound messages."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
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
    SchemaRegistry,
    element_path,
    hardened_parser,
    parse_message,
)
from tests.strategies import (
    aanmeldstatus_berichten,
    aanmeldstatus_tree,
    mutated_documents,
    prognose_berichten,
    prognose_tree,
    to_xml,
)

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
CASES = sorted(CASES_DIR.glob("*.expected.yaml"))


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
        """Above DETAILED_MAX_RECORDS libxml2's report is used, with the same paths and lines."""
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
