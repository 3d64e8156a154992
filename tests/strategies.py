"""Hypothesis strategies shared by the whole test suite, one section per kind of value.

Strategies produce *model values* (see koppelpunt.model); the XML section turns them into
documents, so a property can compare what went in with what came out. Add new strategies to the
matching section (or a new one) rather than to a test module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import strategies as st
from lxml import etree

from koppelpunt.model import (
    AanmeldingDetails,
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Leerling,
    Opleiding,
    PrognoseBericht,
    PrognoseDetails,
    PrognoseRecord,
    School,
    SignaleringType,
    Soort,
    Status,
)
from koppelpunt.model import Signalering as SignaleringValue

# --- identifiers and codes -------------------------------------------------------------------

_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def _weighted(digits: str) -> int:
    return sum(int(d) * w for d, w in zip(digits, _WEIGHTS, strict=True))


def bsn_from_prefix(prefix: str) -> str | None:
    check = _weighted(prefix) % 11  # weight -1 on the last digit: it must equal the sum mod 11
    bsn = f"{prefix}{check}"
    return bsn if check < 10 and bsn != "000000000" else None


def _onderwijsnummer_from_prefix(prefix: str) -> str | None:
    check = (5 - _weighted(prefix)) % 11  # weight +1 on the last digit, sum mod 11 == 5
    return f"{prefix}{check}" if check < 10 else None


def digit_strings(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


bsns: st.SearchStrategy[str] = (
    digit_strings(8).map(bsn_from_prefix).filter(lambda b: b is not None).map(str)
)
onderwijsnummers: st.SearchStrategy[str] = (
    digit_strings(6)
    .map(lambda d: _onderwijsnummer_from_prefix("10" + d))
    .filter(lambda n: n is not None)
    .map(str)
)
brins = st.from_regex(r"[0-9]{2}[A-Z]{2}", fullmatch=True)
vestigingen = st.from_regex(r"[0-9]{2}", fullmatch=True)
crebos = st.from_regex(r"[0-9]{5}", fullmatch=True)
gemeentecodes = st.from_regex(r"GM[0-9]{4}", fullmatch=True)
schooljaren = st.integers(2000, 2098).map(lambda y: f"{y}-{y + 1}")
# xs:token 1-64, already collapsed so it round-trips unchanged; includes markup characters.
tokens = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._:<>&'\"-]{0,62}[A-Za-z0-9]?", fullmatch=True).map(
    lambda s: " ".join(s.split())
)

ONDERWIJSSOORTEN = ("vmbo-bb", "vmbo-kb", "vmbo-gl", "vmbo-tl", "havo", "vwo", "pro", "vso", "vavo")
DIPLOMAS = (
    "geen", "vmbo-bb", "vmbo-kb", "vmbo-gl", "vmbo-tl", "havo", "vwo",
    "mbo-1", "mbo-2", "mbo-3", "mbo-4", "pro",
)  # fmt: skip

# --- dates and moments -----------------------------------------------------------------------

geboortedata = st.dates(min_value=date(1990, 1, 1), max_value=date(2020, 12, 31))
statusdata = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
# Fixed offsets only: PEP 495 makes a ZoneInfo time in a DST fold unequal to the same instant in
# another zone, which would break round-trip equality for reasons that are not ours.
_ZONES = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=2)))
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from((*_ZONES, timezone(timedelta(hours=-5, minutes=-30)))),
)

# --- inbound records and berichten -----------------------------------------------------------

leerlingen = st.builds(
    Leerling,
    bsn=st.none(),
    onderwijsnummer=st.none(),
    geboortedatum=geboortedata,
).flatmap(
    lambda base: st.one_of(
        bsns.map(lambda b: Leerling(b, None, base.geboortedatum)),
        onderwijsnummers.map(lambda o: Leerling(None, o, base.geboortedatum)),
    )
)
opleidingen = st.builds(
    Opleiding, crebo=crebos, niveau=st.integers(1, 4), leerweg=st.sampled_from(("BOL", "BBL"))
)


@st.composite
def prognose_berichten(draw: st.DrawFn, max_records: int = 5) -> PrognoseBericht:
    n = draw(st.integers(1, max_records))
    records = tuple(
        PrognoseRecord(
            index=i,
            leerling=draw(leerlingen),
            onderwijssoort=draw(st.sampled_from(ONDERWIJSSOORTEN)),
            hoogste_diploma=draw(st.none() | st.sampled_from(DIPLOMAS)),
        )
        for i in range(n)
    )
    return PrognoseBericht(
        bericht_id=draw(tokens),
        verzonden=draw(aware_datetimes),
        school=School(brin=draw(brins), vestiging=draw(st.none() | vestigingen)),
        schooljaar=draw(schooljaren),
        records=records,
    )


@st.composite
def aanmeldstatus_berichten(draw: st.DrawFn, max_records: int = 5) -> AanmeldstatusBericht:
    n = draw(st.integers(1, max_records))
    records = tuple(
        AanmeldstatusRecord(
            index=i,
            aanmelding_id=draw(tokens),
            leerling=draw(leerlingen),
            instelling_brin=draw(brins),
            opleiding=draw(opleidingen),
            status=draw(st.sampled_from(Status)),
            statusdatum=draw(statusdata),
            hoogste_diploma=draw(st.none() | st.sampled_from(DIPLOMAS)),
            latende_school_brin=draw(st.none() | brins),
        )
        for i in range(n)
    )
    return AanmeldstatusBericht(
        bericht_id=draw(tokens), verzonden=draw(aware_datetimes), records=records
    )


# --- XML documents ---------------------------------------------------------------------------

PROGNOSE_NS = "urn:vva:prognose:1"
AANMELDSTATUS_NS = "urn:vva:aanmeldstatus:1"


class _Builder:
    """Builds elements in one namespace with lxml, so values are always escaped."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def root(self, name: str) -> etree._Element:
        return etree.Element(f"{{{self.ns}}}{name}", nsmap={None: self.ns})  # type: ignore[dict-item]

    def sub(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        elem = etree.SubElement(parent, f"{{{self.ns}}}{name}")
        elem.text = text
        return elem

    def leerling_id(self, parent: etree._Element, leerling: Leerling) -> None:
        if leerling.bsn is not None:
            self.sub(parent, "bsn", leerling.bsn)
        else:
            self.sub(parent, "onderwijsnummer", leerling.onderwijsnummer)
        self.sub(parent, "geboortedatum", leerling.geboortedatum.isoformat())


def prognose_tree(bericht: PrognoseBericht) -> etree._Element:
    b = _Builder(PROGNOSE_NS)
    root = b.root("prognoses")
    b.sub(root, "berichtId", bericht.bericht_id)
    b.sub(root, "verzonden", bericht.verzonden.isoformat())
    school = b.sub(root, "school")
    b.sub(school, "brin", bericht.school.brin)
    if bericht.school.vestiging is not None:
        b.sub(school, "vestiging", bericht.school.vestiging)
    b.sub(root, "schooljaar", bericht.schooljaar)
    for record in bericht.records:
        elem = b.sub(root, "leerling")
        b.leerling_id(elem, record.leerling)
        b.sub(elem, "onderwijssoort", record.onderwijssoort)
        if record.hoogste_diploma is not None:
            b.sub(elem, "hoogsteDiploma", record.hoogste_diploma)
    return root


def aanmeldstatus_tree(bericht: AanmeldstatusBericht) -> etree._Element:
    b = _Builder(AANMELDSTATUS_NS)
    root = b.root("aanmeldstatussen")
    b.sub(root, "berichtId", bericht.bericht_id)
    b.sub(root, "verzonden", bericht.verzonden.isoformat())
    for record in bericht.records:
        elem = b.sub(root, "aanmelding")
        b.sub(elem, "aanmeldingId", record.aanmelding_id)
        b.leerling_id(elem, record.leerling)
        b.sub(b.sub(elem, "instelling"), "brin", record.instelling_brin)
        opleiding = b.sub(elem, "opleiding")
        b.sub(opleiding, "crebo", record.opleiding.crebo)
        b.sub(opleiding, "niveau", str(record.opleiding.niveau))
        b.sub(opleiding, "leerweg", record.opleiding.leerweg)
        b.sub(elem, "status", record.status.value)
        b.sub(elem, "statusdatum", record.statusdatum.isoformat())
        if record.hoogste_diploma is not None:
            b.sub(elem, "hoogsteDiploma", record.hoogste_diploma)
        if record.latende_school_brin is not None:
            b.sub(b.sub(elem, "latendeSchool"), "brin", record.latende_school_brin)
    return root


def to_xml(root: etree._Element) -> bytes:
    """Serialise with declaration and one element per line, so line numbers mean something."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def find_path(root: etree._Element, path: str) -> etree._Element:
    """Resolve a path as `parse_message` reports it (`/prognoses/leerling[2]/bsn`)."""
    steps = path.strip("/").split("/")
    assert etree.QName(root).localname == steps[0]
    node = root
    for step in steps[1:]:
        name, _, position = step.partition("[")
        matches = [c for c in node if etree.QName(c).localname == name]
        node = matches[int(position.rstrip("]") or 1) - 1]
    return node


@dataclass(frozen=True)
class Mutation:
    """One field made invalid: where (a path relative to the message or its record) and how."""

    name: str
    path: str  # relative; `{record}` is replaced by the record's own path
    change: Callable[[str], str]


PROGNOSE_MUTATIONS: tuple[Mutation, ...] = (
    Mutation("brin lowercased", "/prognoses/school/brin", str.lower),
    Mutation(
        "schooljaar skips a year", "/prognoses/schooljaar", lambda s: f"{s[:5]}{int(s[:4]) + 2}"
    ),
    Mutation("verzonden without T", "/prognoses/verzonden", lambda s: s.replace("T", " ")),
    Mutation("onderwijssoort unknown", "{record}/onderwijssoort", lambda s: "mbo"),
    Mutation("geboortedatum month 13", "{record}/geboortedatum", lambda s: f"{s[:4]}-13-01"),
)
AANMELDSTATUS_MUTATIONS: tuple[Mutation, ...] = (
    Mutation("crebo 4 digits", "{record}/opleiding/crebo", lambda s: s[:4]),
    Mutation("niveau 5", "{record}/opleiding/niveau", lambda s: "5"),
    Mutation("leerweg lowercased", "{record}/opleiding/leerweg", str.lower),
    Mutation("status unknown", "{record}/status", lambda s: "ONBEKEND"),
    Mutation("instelling brin lowercased", "{record}/instelling/brin", str.lower),
    Mutation("aanmeldingId empty", "{record}/aanmeldingId", lambda s: "  "),
    Mutation("statusdatum 30 February", "{record}/statusdatum", lambda s: f"{s[:4]}-02-30"),
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[Soort, bytes, str, str]:
    """A valid message with exactly one field made invalid: (soort, body, path, mutation name)."""
    soort = draw(st.sampled_from(Soort))
    if soort is Soort.PROGNOSE:
        p = draw(prognose_berichten())
        root, records, mutations = prognose_tree(p), len(p.records), PROGNOSE_MUTATIONS
        record_path = "/prognoses/leerling[{}]"
    else:
        a = draw(aanmeldstatus_berichten())
        root, records, mutations = aanmeldstatus_tree(a), len(a.records), AANMELDSTATUS_MUTATIONS
        record_path = "/aanmeldstatussen/aanmelding[{}]"
    mutation = draw(st.sampled_from(mutations))
    position = draw(st.integers(1, records))
    path = mutation.path.format(record=record_path.format(position))
    elem = find_path(root, path)
    elem.text = mutation.change(elem.text or "")
    return soort, to_xml(root), path, mutation.name


# --- signaleringen ---------------------------------------------------------------------------

prognose_details = st.builds(
    PrognoseDetails,
    school=st.builds(School, brin=brins, vestiging=st.none() | vestigingen),
    schooljaar=schooljaren,
    onderwijssoort=st.sampled_from(ONDERWIJSSOORTEN),
)
aanmelding_details = st.builds(
    AanmeldingDetails,
    aanmelding_id=tokens,
    instelling_brin=brins,
    opleiding=opleidingen,
    status=st.sampled_from(Status),
    statusdatum=statusdata,
)
signaleringen = st.builds(
    SignaleringValue,
    signalering_id=tokens,
    type=st.sampled_from(SignaleringType),
    gemeentecode=gemeentecodes,
    aangemaakt=aware_datetimes,
    bsn=bsns,
    geboortedatum=geboortedata,
    prognose=st.none() | prognose_details,
    aanmeldingen=st.lists(aanmelding_details, max_size=3).map(tuple),
    peildatum=st.none() | statusdata,
    bron_bericht_id=st.none() | tokens,
    schooljaar=st.none() | schooljaren,
)


# --- pupil state: status deliveries ----------------------------------------------------------

_STATUS_DAYS = st.dates(min_value=date(2027, 2, 1), max_value=date(2027, 2, 10))


@st.composite
def status_deliveries(draw: st.DrawFn, bsn: str = "999990007") -> list[AanmeldstatusRecord]:
    """Statuses of 1-3 aanmeldingen of one pupil, each (status, statusdatum) once, in the order
    they were produced; a narrow date range makes equal statusdata (ties) common."""
    records: list[AanmeldstatusRecord] = []
    for n in range(draw(st.integers(1, 3))):
        facts = draw(
            st.lists(
                st.tuples(st.sampled_from(list(Status)), _STATUS_DAYS),
                min_size=1,
                max_size=5,
                unique=True,
            )
        )
        for status, day in facts:
            records.append(
                AanmeldstatusRecord(
                    index=len(records),
                    aanmelding_id=f"A-{n}",
                    leerling=Leerling(bsn, None, date(2010, 5, 13)),
                    instelling_brin="30RT",
                    opleiding=Opleiding("25180", 2, "BOL"),
                    status=status,
                    statusdatum=day,
                    hoogste_diploma=None,
                    latende_school_brin=None,
                )
            )
    return records
