"""Rendering signaleringen to XML."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from lxml import etree

from koppelpunt.model import (
    AanmeldingDetails,
    Opleiding,
    PrognoseDetails,
    School,
    Signalering,
    SignaleringType,
    Status,
)
from koppelpunt.pipeline import render
from koppelpunt.pipeline.parse import SIGNALERING_NS, SchemaRegistry, hardened_parser
from koppelpunt.pipeline.render import render_signalering
from tests.strategies import signaleringen

NS = {"s": SIGNALERING_NS}


def minimal(**overrides: object) -> Signalering:
    values: dict[str, object] = {
        "signalering_id": "sig-1",
        "type": SignaleringType.NIET_AANGEMELD,
        "gemeentecode": "GM0363",
        "aangemaakt": datetime(2027, 4, 2, 6, 0, tzinfo=ZoneInfo("Europe/Amsterdam")),
        "bsn": "999993653",
        "geboortedatum": date(2010, 5, 13),
    } | overrides
    return Signalering(**values)  # type: ignore[arg-type]


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, hardened_parser())


class TestRenderSignalering:
    @settings(max_examples=150)
    @given(signalering=signaleringen)
    def test_every_signalering_is_schema_valid(
        self, signalering: Signalering, schemas: SchemaRegistry
    ) -> None:
        """Whatever the values, the output validates against signalering.xsd."""
        root = parse(render_signalering(signalering))
        assert schemas.signalering.fast.validate(root), schemas.signalering.fast.error_log
        assert root.findtext("s:signaleringId", namespaces=NS) == signalering.signalering_id
        assert root.findtext("s:leerling/s:bsn", namespaces=NS) == signalering.bsn
        assert len(root.findall("s:aanmeldstatus", namespaces=NS)) == len(signalering.aanmeldingen)

    def test_minimal_signalering_leaves_optional_parts_out(self, schemas: SchemaRegistry) -> None:
        """None and empty optional fields produce no element at all."""
        root = parse(render_signalering(minimal(schooljaar="", bron_bericht_id=None)))
        assert [etree.QName(e).localname for e in root] == [
            "signaleringId",
            "type",
            "gemeentecode",
            "aangemaakt",
            "leerling",
        ]
        assert schemas.signalering.fast.validate(root)

    def test_full_signalering_in_schema_order(self, schemas: SchemaRegistry) -> None:
        """Every optional part appears, in the order signalering.xsd prescribes."""
        aanmelding = AanmeldingDetails(
            aanmelding_id="28DE-1",
            instelling_brin="28DE",
            opleiding=Opleiding("25604", 4, "BOL"),
            status=Status.INGETROKKEN,
            statusdatum=date(2027, 3, 12),
        )
        s = minimal(
            type=SignaleringType.GEEN_PLAATSING,
            peildatum=date(2027, 3, 12),
            schooljaar="2026-2027",
            prognose=PrognoseDetails(School("25LX", "01"), "2026-2027", "vmbo-tl"),
            aanmeldingen=(aanmelding, aanmelding),
            bron_bericht_id="MBO-1",
        )
        root = parse(render_signalering(s))
        assert schemas.signalering.fast.validate(root), schemas.signalering.fast.error_log
        names = [etree.QName(e).localname for e in root]
        assert names[5:] == [
            "peildatum",
            "schooljaar",
            "prognose",
            "aanmeldstatus",
            "aanmeldstatus",
            "bron",
        ]
        assert root.findtext("s:prognose/s:school/s:vestiging", namespaces=NS) == "01"
        assert root.findtext("s:aanmeldstatus/s:opleiding/s:niveau", namespaces=NS) == "4"

    def test_declaration_encoding_and_timezone(self) -> None:
        """UTF-8 with an XML declaration; aangemaakt carries its offset."""
        xml = render_signalering(minimal())
        assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
        assert b"<aangemaakt>2027-04-02T06:00:00+02:00</aangemaakt>" in xml

    def test_markup_in_values_stays_text(self) -> None:
        """A value containing markup is escaped, never interpreted."""
        s = minimal(bron_bericht_id="</bron><x>&amp;")
        root = parse(render_signalering(s))
        assert root.findtext("s:bron/s:berichtId", namespaces=NS) == "</bron><x>&amp;"

    def test_naive_aangemaakt_is_a_fault(self) -> None:
        """A moment without timezone cannot be rendered unambiguously: ValueError."""
        with pytest.raises(ValueError, match="tijdzone"):
            render_signalering(minimal(aangemaakt=datetime(2027, 4, 2, 6, 0)))

    def test_any_offset_is_kept(self) -> None:
        """A non-Dutch offset is written as given, not converted."""
        moment = datetime(2027, 4, 2, 6, 0, tzinfo=timezone(timedelta(hours=-5)))
        assert b"2027-04-02T06:00:00-05:00" in render_signalering(minimal(aangemaakt=moment))


class TestDerivedTypesRender:
    def test_every_derived_type_is_schema_valid(self) -> None:
        """Each derived type, as derive.py builds it, renders to XSD-valid XML."""
        from datetime import UTC, date, datetime
        from pathlib import Path

        from lxml import etree

        from koppelpunt.model import AanmeldstatusRecord as Rec
        from koppelpunt.model import Leerling, Opleiding, School, Status
        from koppelpunt.pipeline import derive
        from koppelpunt.pipeline.gemeenten import GemeenteTable
        from koppelpunt.pipeline.leerlingen import PrognoseFact, PupilState, add_status
        from koppelpunt.pipeline.render import render_signalering
        from koppelpunt.pipeline.rules import load_rules

        root = Path(__file__).resolve().parents[2]
        xsd = etree.XMLSchema(etree.parse(str(root / "schemas" / "signalering.xsd")))
        rules = load_rules(root / "routing_rules")
        gemeenten = GemeenteTable.load(root / "data" / "rvig-tabel33-gemeenten.csv")
        now = datetime(2027, 10, 2, tzinfo=UTC)
        bsn = "999990007"
        state = PupilState(
            bsn,
            date(2010, 5, 13),
            None,
            (PrognoseFact("2026-2027", School("25LX", "01"), "vmbo-tl", now),),
        )
        state, applied = add_status(
            state,
            Rec(
                0,
                "A-1",
                Leerling(bsn, None, date(2010, 5, 13)),
                "30RT",
                Opleiding("25180", 2, "BOL"),
                Status.INGETROKKEN,
                date(2027, 3, 1),
                None,
                None,
            ),
            1,
        )
        made = [derive.geen_plaatsing(state, applied, rules, "GM0363", now)]
        for day in (date(2027, 4, 1), date(2027, 10, 1)):
            for c in derive.candidates([state], rules, day):
                made.append(derive.peildatum_signalering(c, state, "GM0363", rules, now))
        moved, _ = derive.moves(
            state,
            bsn,
            state.geboortedatum,
            derive.LastGemeente("GM0363", date(2027, 3, 1)),
            "GM0599",
            date(2027, 10, 1),
            gemeenten,
            rules,
            now,
            now.date(),
        )
        made.extend(moved)
        types = set()
        for s in made:
            assert s is not None
            xsd.assertValid(etree.fromstring(render_signalering(s)))
            types.add(s.type.value)
        assert types == {"GEEN_PLAATSING", "NIET_INGESCHREVEN", "OVERDRACHT", "VERHUISD"}


def built(s: Signalering) -> bytes:
    """The reference: the document built element by element."""
    return etree.tostring(render._build(s), xml_declaration=True, encoding="UTF-8")


class TestRenderFastPath:
    @settings(max_examples=300)
    @given(signalering=signaleringen)
    def test_byte_identical_to_the_element_by_element_build(self, signalering: Signalering) -> None:
        """The template copy renders exactly the bytes the element-by-element build does."""
        assert render_signalering(signalering) == built(signalering)

    def test_same_shape_other_values(self) -> None:
        """Two signaleringen of one shape share a template, each with its own values."""
        first = minimal(bron_bericht_id="B-1")
        second = minimal(bron_bericht_id="B-2&<", bsn="999990007", signalering_id="sig-2")
        assert render_signalering(first) == built(first)
        assert render_signalering(second) == built(second)
        assert render_signalering(first) == built(first)

    def test_templates_keep_no_values(self) -> None:
        """The cached trees hold blank texts only: no BSN stays in memory after rendering."""
        render_signalering(minimal(bsn="999993653", peildatum=date(2027, 3, 1)))
        for template, leaves in render._TEMPLATES.values():
            texts = [e.text for e in template.iter() if len(e) == 0]
            assert texts == [""] * len(leaves)
