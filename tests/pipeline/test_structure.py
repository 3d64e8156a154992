"""Shapes no schema accepts are refused before any validator sees them, by element, line and
rule; each limit refuses one past it and accepts what it allows."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from koppelpunt.config import Settings
from koppelpunt.model import Invalid, Parsed, Soort
from koppelpunt.pipeline.parse import SchemaRegistry, XmlLimits, parse_message
from koppelpunt.pipeline.structure import STRUCTURE_PREFIX
from koppelpunt.runtime import xml_limits
from tests.hostile import aanmeldstatus, attributes, declarations, prognose

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def limited(schemas: SchemaRegistry, **limits: int | float) -> SchemaRegistry:
    return dataclasses.replace(schemas, limits=dataclasses.replace(schemas.limits, **limits))


def refused(body: bytes, schemas: SchemaRegistry, soort: Soort = Soort.PROGNOSE) -> Invalid:
    outcome = parse_message(body, soort, schemas)
    assert isinstance(outcome, Invalid), outcome
    assert outcome.issues[0].reason.startswith(STRUCTURE_PREFIX), outcome.issues
    return outcome


class TestAttributes:
    def test_an_undeclared_attribute_is_refused_where_it_is(self, schemas: SchemaRegistry) -> None:
        """The schemas declare no attributes: one on a record names that record and line."""
        outcome = refused(
            prognose(root="", leerling="").replace(b"<leerling>", b'<leerling a="1">'), schemas
        )
        (issue,) = outcome.issues
        assert (issue.path, issue.line) == ("/prognoses/leerling[1]", 6)
        assert "attribuut a op <leerling>" in issue.reason

    def test_the_attribute_bomb_is_one_issue_with_its_count(self, schemas: SchemaRegistry) -> None:
        """Issue 21's 2,000 attributes on the root: one issue, not 2,000."""
        outcome = refused(prognose(root=attributes(2_000)), schemas)
        assert [i.path for i in outcome.issues] == ["/prognoses"]
        assert "(2000 attributen)" in outcome.issues[0].reason

    def test_xsi_attributes_are_left_to_the_validators(self, schemas: SchemaRegistry) -> None:
        """xsi:schemaLocation is allowed on any element of any XSD instance."""
        root = f' {XSI} xsi:schemaLocation="urn:vva:prognose:1 prognose.xsd"'
        assert isinstance(parse_message(prognose(root=root), Soort.PROGNOSE, schemas), Parsed)

    def test_an_unknown_xsi_attribute_is_refused(self, schemas: SchemaRegistry) -> None:
        outcome = refused(prognose(root=f' {XSI} xsi:other="1"'), schemas)
        assert "attribuut other op <prognoses>" in outcome.issues[0].reason

    def test_a_schema_with_an_attribute_wildcard_gets_the_count_limit(self, tmp_path: Path) -> None:
        """Where a schema allows any attribute, KOPPELPUNT_XML_MAX_ATTRIBUTES still bounds it."""
        shutil.copytree(SCHEMAS_DIR, tmp_path / "schemas")
        xsd = tmp_path / "schemas" / "prognose.xsd"
        text = xsd.read_text()
        leerling = text.index('<xs:complexType name="Leerling">')
        end = text.index("</xs:complexType>", leerling)
        xsd.write_text(text[:end] + '<xs:anyAttribute processContents="skip"/>' + text[end:])
        schemas = SchemaRegistry.load(tmp_path / "schemas", XmlLimits(max_attributes=8))
        record = (
            "<leerling{}><bsn>999993653</bsn><geboortedatum>2010-05-13</geboortedatum>"
            "<onderwijssoort>vmbo-tl</onderwijssoort></leerling>"
        )
        assert isinstance(
            parse_message(prognose(record.format(attributes(8))), Soort.PROGNOSE, schemas), Parsed
        )
        outcome = refused(prognose(record.format(attributes(9))), schemas)
        assert "<leerling> heeft 9 attributen; hoogstens 8" in outcome.issues[0].reason


class TestElementsPerRecord:
    def test_one_past_the_limit_is_refused(self, schemas: SchemaRegistry) -> None:
        """A leerling of 4 elements plus 60 others is 64 elements: allowed by the limit (and
        refused by the XSD); one more is refused before it."""
        at_limit = parse_message(prognose(leerling="<x/>" * 60), Soort.PROGNOSE, schemas)
        assert isinstance(at_limit, Invalid)
        assert not at_limit.issues[0].reason.startswith(STRUCTURE_PREFIX)
        outcome = refused(prognose(leerling="<x/>" * 61), schemas)
        assert [i.path for i in outcome.issues] == ["/prognoses/leerling[1]"]
        assert "<leerling> bevat 65 elementen; hoogstens 64" in outcome.issues[0].reason

    def test_a_head_element_counts_too(self, schemas: SchemaRegistry) -> None:
        body = prognose().replace(b"<brin>25LX</brin>", b"<brin>25LX</brin>" + b"<x/>" * 70)
        assert [i.path for i in refused(body, schemas).issues] == ["/prognoses/school"]

    def test_the_limit_is_a_setting(self, schemas: SchemaRegistry) -> None:
        outcome = refused(
            prognose(leerling="<x/>" * 3), limited(schemas, max_elements_per_record=6)
        )
        assert "hoogstens 6" in outcome.issues[0].reason


class TestNames:
    def test_a_long_element_name_is_refused_and_shown_shortened(
        self, schemas: SchemaRegistry
    ) -> None:
        outcome = refused(prognose(leerling=f"<{'x' * 129}/>"), schemas)
        (issue,) = outcome.issues
        assert issue.path == "/prognoses/leerling[1]/" + "x" * 64 + "…"
        assert "een elementnaam van 129 tekens; hoogstens 128" in issue.reason

    def test_a_name_at_the_limit_goes_to_the_validators(self, schemas: SchemaRegistry) -> None:
        outcome = parse_message(prognose(leerling=f"<{'x' * 128}/>"), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Invalid)
        assert not outcome.issues[0].reason.startswith(STRUCTURE_PREFIX)

    def test_a_long_attribute_name_is_refused(self, schemas: SchemaRegistry) -> None:
        outcome = refused(prognose(root=f' {"y" * 200}="1"'), schemas)
        assert [i.path for i in outcome.issues] == ["/prognoses"]

    def test_long_names_are_found_in_utf16_too(self, schemas: SchemaRegistry) -> None:
        """The byte search that spares most messages the name check reads UTF-8; a UTF-16
        message is checked on libxml2's serialisation of it."""
        text = prognose(leerling=f"<{'x' * 200}/>").decode()
        body = ('<?xml version="1.0" encoding="UTF-16"?>\n' + text).encode("utf-16")
        assert [i.path for i in refused(body, schemas).issues] == [
            "/prognoses/leerling[1]/" + "x" * 64 + "…"
        ]


class TestNamespaceDeclarations:
    def test_too_many_on_one_record_are_refused_at_that_record(
        self, schemas: SchemaRegistry
    ) -> None:
        records = (
            "<leerling><bsn>999993653</bsn><geboortedatum>2010-05-13</geboortedatum>"
            "<onderwijssoort>vmbo-tl</onderwijssoort></leerling>\n"
        )
        crowded = records.replace("<leerling>", f"<leerling{declarations(17)}>")
        outcome = refused(prognose(records * 3 + crowded + records), schemas)
        assert [(i.path, i.line) for i in outcome.issues] == [("/prognoses/leerling[4]", 9)]
        assert "declareert meer dan 16 namespaces" in outcome.issues[0].reason

    def test_the_limit_itself_is_allowed(self, schemas: SchemaRegistry) -> None:
        """16 declarations on the root, one of them the message's own: accepted."""
        outcome = parse_message(prognose(root=declarations(15)), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed)

    def test_many_declarations_spread_over_elements_are_allowed(
        self, schemas: SchemaRegistry
    ) -> None:
        """The limit is per element: a sender that repeats xmlns on every record is fine."""
        records = (
            '<leerling xmlns="urn:vva:prognose:1"><bsn>999993653</bsn>'
            "<geboortedatum>2010-05-13</geboortedatum><onderwijssoort>vmbo-tl</onderwijssoort>"
            "</leerling>\n"
        ) * 300
        outcome = parse_message(prognose(records), Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed)
        assert len(outcome.bericht.records) == 300

    def test_too_many_in_utf16_are_refused(self, schemas: SchemaRegistry) -> None:
        text = prognose(root=declarations(40)).decode()
        body = ('<?xml version="1.0" encoding="UTF-16"?>\n' + text).encode("utf-16")
        assert [i.path for i in refused(body, schemas).issues] == ["/prognoses"]


class TestAanmeldstatus:
    def test_the_limits_hold_for_the_other_soort(self, schemas: SchemaRegistry) -> None:
        body = aanmeldstatus(f"<aanmelding{attributes(3)}/>")
        outcome = refused(body, schemas, Soort.AANMELDSTATUS)
        assert [i.path for i in outcome.issues] == ["/aanmeldstatussen/aanmelding[1]"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (prognose(root=attributes(100_000)), "/prognoses"),
        (prognose(leerling="<x/>" * 100_000), "/prognoses/leerling[1]"),
    ],
    ids=["100k-attributes", "100k-elements-in-a-record"],
)
def test_large_shapes_get_one_issue(body: bytes, path: str, schemas: SchemaRegistry) -> None:
    """Their size does not multiply the report."""
    assert [i.path for i in refused(body, schemas).issues] == [path]


def test_the_settings_are_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """KOPPELPUNT_XML_* reach the parse step: the runtime loads the schemas with them."""
    for name, value in {
        "KOPPELPUNT_XML_MAX_ATTRIBUTES": "5",
        "KOPPELPUNT_XML_MAX_NAMESPACE_DECLARATIONS": "3",
        "KOPPELPUNT_XML_MAX_NAME_LENGTH": "40",
        "KOPPELPUNT_XML_MAX_ELEMENTS_PER_RECORD": "20",
        "KOPPELPUNT_XML_DETAILED_REPORT_MAX_NODES": "7",
        "KOPPELPUNT_XML_DETAILED_REPORT_MAX_SECONDS": "0.25",
    }.items():
        monkeypatch.setenv(name, value)
    assert xml_limits(Settings()) == XmlLimits(
        max_attributes=5,
        max_namespace_declarations=3,
        max_name_length=40,
        max_elements_per_record=20,
        detailed_report_max_nodes=7,
        detailed_report_max_seconds=0.25,
    )
