"""parse_message's normalisation: the positional fast path returns what the former one did.

The former implementation (one `find` per field, as of 01c78c3) is kept below verbatim as the
reference; a property compares the two on generated messages, valid or not, with records whose
check digits fail, with padded values, and on the realistic messages of bench/generate.py.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from bench import generate as gen
from koppelpunt.model import (
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Leerling,
    Opleiding,
    Parsed,
    ParseOutcome,
    PrognoseBericht,
    PrognoseRecord,
    RecordRejection,
    School,
    Soort,
    Status,
)
from koppelpunt.pipeline import parse
from koppelpunt.pipeline.checks import is_valid_bsn, is_valid_onderwijsnummer
from koppelpunt.pipeline.parse import SchemaRegistry, _tijdstip, parse_message
from tests.strategies import (
    _onderwijsnummer_from_prefix,
    aanmeldstatus_berichten,
    aanmeldstatus_tree,
    prognose_berichten,
    prognose_tree,
    to_xml,
)

# --- the former normalisation, verbatim (reference) ----------------------------------------


def _text(elem: etree._Element | None) -> str | None:
    return None if elem is None else (elem.text or "").strip()


def _token(elem: etree._Element) -> str:
    return " ".join((elem.text or "").split())


def _leerling(
    fields: dict[str, etree._Element], ns: str, index: int, path: str
) -> Leerling | RecordRejection:
    bsn = _text(fields.get(f"{{{ns}}}bsn"))
    onderwijsnummer = _text(fields.get(f"{{{ns}}}onderwijsnummer"))
    if bsn is not None and not is_valid_bsn(bsn):
        return RecordRejection(index, "bsn voldoet niet aan de elfproef", f"{path}/bsn")
    if onderwijsnummer is not None and not is_valid_onderwijsnummer(onderwijsnummer):
        reden = "onderwijsnummer voldoet niet aan de controle (begint met 10, elfproef rest 5)"
        return RecordRejection(index, reden, f"{path}/onderwijsnummer")
    geboortedatum = date.fromisoformat(_text(fields[f"{{{ns}}}geboortedatum"]) or "")
    return Leerling(bsn=bsn, onderwijsnummer=onderwijsnummer, geboortedatum=geboortedatum)


def _normalise_prognose(root: etree._Element, ns: str) -> Parsed:
    records: list[PrognoseRecord] = []
    afgewezen: list[RecordRejection] = []
    for index, elem in enumerate(root.iterchildren(f"{{{ns}}}leerling")):
        fields = {child.tag: child for child in elem}
        leerling = _leerling(fields, ns, index, f"/prognoses/leerling[{index + 1}]")
        if isinstance(leerling, RecordRejection):
            afgewezen.append(leerling)
            continue
        records.append(
            PrognoseRecord(
                index=index,
                leerling=leerling,
                onderwijssoort=_text(fields[f"{{{ns}}}onderwijssoort"]) or "",
                hoogste_diploma=_text(fields.get(f"{{{ns}}}hoogsteDiploma")),
            )
        )
    school = root.find(f"{{{ns}}}school")
    assert school is not None  # the XSD requires it
    bericht = PrognoseBericht(
        bericht_id=" ".join(root.findtext(f"{{{ns}}}berichtId", "").split()),
        verzonden=_tijdstip(root.findtext(f"{{{ns}}}verzonden", "").strip()),
        school=School(
            brin=school.findtext(f"{{{ns}}}brin", "").strip(),
            vestiging=_text(school.find(f"{{{ns}}}vestiging")),
        ),
        schooljaar=root.findtext(f"{{{ns}}}schooljaar", "").strip(),
        records=tuple(records),
    )
    return Parsed(bericht, tuple(afgewezen))


def _normalise_aanmeldstatus(root: etree._Element, ns: str) -> Parsed:
    records: list[AanmeldstatusRecord] = []
    afgewezen: list[RecordRejection] = []
    for index, elem in enumerate(root.iterchildren(f"{{{ns}}}aanmelding")):
        fields = {child.tag: child for child in elem}
        leerling = _leerling(fields, ns, index, f"/aanmeldstatussen/aanmelding[{index + 1}]")
        if isinstance(leerling, RecordRejection):
            afgewezen.append(leerling)
            continue
        opleiding = fields[f"{{{ns}}}opleiding"]
        latende_school = fields.get(f"{{{ns}}}latendeSchool")
        records.append(
            AanmeldstatusRecord(
                index=index,
                aanmelding_id=_token(fields[f"{{{ns}}}aanmeldingId"]),
                leerling=leerling,
                instelling_brin=fields[f"{{{ns}}}instelling"].findtext(f"{{{ns}}}brin", "").strip(),
                opleiding=Opleiding(
                    crebo=opleiding.findtext(f"{{{ns}}}crebo", "").strip(),
                    niveau=int(opleiding.findtext(f"{{{ns}}}niveau", "")),
                    leerweg=opleiding.findtext(f"{{{ns}}}leerweg", "").strip(),
                ),
                status=Status((fields[f"{{{ns}}}status"].text or "").strip()),
                statusdatum=date.fromisoformat(_text(fields[f"{{{ns}}}statusdatum"]) or ""),
                hoogste_diploma=_text(fields.get(f"{{{ns}}}hoogsteDiploma")),
                latende_school_brin=(
                    None
                    if latende_school is None
                    else latende_school.findtext(f"{{{ns}}}brin", "").strip()
                ),
            )
        )
    bericht = AanmeldstatusBericht(
        bericht_id=" ".join(root.findtext(f"{{{ns}}}berichtId", "").split()),
        verzonden=_tijdstip(root.findtext(f"{{{ns}}}verzonden", "").strip()),
        records=tuple(records),
    )
    return Parsed(bericht, tuple(afgewezen))


def reference_parse(body: bytes, soort: Soort, schemas: SchemaRegistry) -> ParseOutcome:
    """parse_message with the former normalisation swapped in (its front half is unchanged)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parse, "_normalise_prognose", _normalise_prognose)
        patch.setattr(parse, "_normalise_aanmeldstatus", _normalise_aanmeldstatus)
        return parse.parse_message(body, soort, schemas)


# --- the properties --------------------------------------------------------------------------


def _corrupt(number: str) -> str:
    """One digit changed: the elfproef (and DUO's variant) catch every single-digit change."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@st.composite
def documents(draw: st.DrawFn) -> tuple[Soort, bytes]:
    """A message as a sender might send it: some check digits wrong, some values padded."""
    soort = draw(st.sampled_from(Soort))
    if soort is Soort.PROGNOSE:
        root = prognose_tree(draw(prognose_berichten(max_records=8)))
    else:
        root = aanmeldstatus_tree(draw(aanmeldstatus_berichten(max_records=8)))
    for elem in root.iter():
        if len(elem) or elem.text is None:
            continue
        name = etree.QName(elem).localname
        if name in ("bsn", "onderwijsnummer") and draw(st.booleans()):
            elem.text = _corrupt(elem.text)
        if draw(st.integers(0, 9)) == 0:  # whitespace the XSD may collapse, or refuse
            elem.text = draw(st.sampled_from((" ", "\n  ", "\t"))) + elem.text + " "
    return soort, to_xml(root)


class TestNormalisation:
    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(document=documents())
    def test_returns_what_the_former_normalisation_did(
        self, schemas: SchemaRegistry, document: tuple[Soort, bytes]
    ) -> None:
        """Records, rejections (with reason and path) and Invalid outcomes are all equal."""
        soort, body = document
        assert parse_message(body, soort, schemas) == reference_parse(body, soort, schemas)

    def test_realistic_messages_are_equal(self, schemas: SchemaRegistry) -> None:
        """bench/generate.py's messages (2,000 records, both soorten) parse identically."""
        people = gen.pupils(4000)
        statuses = gen.statuses(people, 4000)
        bodies = [
            (Soort.AANMELDSTATUS, gen.aanmeldstatus_body("eq-a", statuses[:2000])),
            (Soort.AANMELDSTATUS, gen.aanmeldstatus_body("eq-b", statuses[2000:])),
            (Soort.PROGNOSE, gen.prognose_body("eq-p", people[:2000], "25LX")),
        ]
        for soort, body in bodies:
            outcome = parse_message(body, soort, schemas)
            assert isinstance(outcome, Parsed)
            assert len(outcome.bericht.records) == 2000
            assert outcome == reference_parse(body, soort, schemas)

    def test_rejections_and_every_optional_part(self, schemas: SchemaRegistry) -> None:
        """A bad BSN and a bad onderwijsnummer are rejected with their paths; an onderwijsnummer,
        hoogsteDiploma, latendeSchool and padded values land in their fields, as before."""
        onderwijsnummer = _onderwijsnummer_from_prefix("10123456")
        assert onderwijsnummer is not None

        def aanmelding(nummer: str, tail: str = "") -> str:
            tag = "bsn" if nummer.startswith("9") else "onderwijsnummer"
            return (
                f"<aanmelding><aanmeldingId> a  1 </aanmeldingId><{tag}>{nummer}</{tag}>"
                "<geboortedatum>2010-02-28</geboortedatum><instelling><brin>25LX</brin>"
                "</instelling><opleiding><crebo>25000</crebo><niveau> 04 </niveau>"
                "<leerweg>BBL</leerweg></opleiding><status>INGESCHREVEN</status>"
                f"<statusdatum>2027-03-01</statusdatum>{tail}</aanmelding>"
            )

        body = (
            '<?xml version="1.0"?><aanmeldstatussen xmlns="urn:vva:aanmeldstatus:1">'
            "<berichtId> b  1 </berichtId><verzonden>2027-03-02T09:00:00</verzonden>"
            + aanmelding("999993653")
            + aanmelding("999993654")
            + aanmelding(_corrupt(onderwijsnummer))
            + aanmelding(
                onderwijsnummer,
                "<hoogsteDiploma>vmbo-tl</hoogsteDiploma>"
                "<latendeSchool><brin>12AB</brin></latendeSchool>",
            )
            + aanmelding("999993653", "<latendeSchool><brin>12AB</brin></latendeSchool>")
            + "</aanmeldstatussen>"
        ).encode()
        outcome = parse_message(body, Soort.AANMELDSTATUS, schemas)
        assert outcome == reference_parse(body, Soort.AANMELDSTATUS, schemas)
        assert isinstance(outcome, Parsed) and isinstance(outcome.bericht, AanmeldstatusBericht)
        assert [(r.index, r.path) for r in outcome.afgewezen] == [
            (1, "/aanmeldstatussen/aanmelding[2]/bsn"),
            (2, "/aanmeldstatussen/aanmelding[3]/onderwijsnummer"),
        ]
        first, with_both, with_school = outcome.bericht.records
        assert first.aanmelding_id == "a 1" and first.opleiding.niveau == 4
        assert (first.hoogste_diploma, first.latende_school_brin) == (None, None)
        assert with_both.leerling == Leerling(None, onderwijsnummer, date(2010, 2, 28))
        assert (with_both.hoogste_diploma, with_both.latende_school_brin) == ("vmbo-tl", "12AB")
        assert (with_school.hoogste_diploma, with_school.latende_school_brin) == (None, "12AB")

    def test_prognose_without_vestiging(self, schemas: SchemaRegistry) -> None:
        """A school without vestiging, and records with and without hoogsteDiploma."""
        body = (
            b'<?xml version="1.0"?><prognoses xmlns="urn:vva:prognose:1"><berichtId>p</berichtId>'
            b"<verzonden>2027-01-15T10:00:00+01:00</verzonden><school><brin>25LX</brin></school>"
            b"<schooljaar>2026-2027</schooljaar>"
            b"<leerling><bsn>999993653</bsn><geboortedatum>2010-05-13</geboortedatum>"
            b"<onderwijssoort>havo</onderwijssoort><hoogsteDiploma>vmbo-tl</hoogsteDiploma>"
            b"</leerling><leerling><bsn>999993653</bsn><geboortedatum>2010-05-13</geboortedatum>"
            b"<onderwijssoort>havo</onderwijssoort></leerling></prognoses>"
        )
        outcome = parse_message(body, Soort.PROGNOSE, schemas)
        assert outcome == reference_parse(body, Soort.PROGNOSE, schemas)
        assert isinstance(outcome, Parsed) and isinstance(outcome.bericht, PrognoseBericht)
        assert outcome.bericht.school == School("25LX", None)
        assert [r.hoogste_diploma for r in outcome.bericht.records] == ["vmbo-tl", None]
