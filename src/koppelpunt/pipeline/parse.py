"""Bytes in, `ParseOutcome` out: hardened parsing, XSD validation and normalisation.

One entry point, `parse_message`, so no caller can forget a step. The order matters:
1. parse with `hardened_parser()` (no DTD, no entities, no network, libxml2's size limits);
2. refuse any DOCTYPE (hostile) and a root element of the wrong soort;
3. validate with libxml2 (fast); only when that fails, ask xmlschema for every issue with its
   path (libxml2's own log for messages over DETAILED_MAX_RECORDS records: xmlschema is slow);
4. check what XSD 1.0 cannot (schooljaar), then normalise to model values with plain lxml
   (the hot path: xmlschema decoding is ~50x slower); records whose BSN or onderwijsnummer
   fails its check digit are rejected one by one, the rest of the message is kept.

Reasons are Dutch (the audience is Dutch); validator diagnostics are quoted as the library gives
them, after a Dutch prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import xmlschema
from lxml import etree

from koppelpunt.errors import ConfigurationError
from koppelpunt.model import (
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Invalid,
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
    ValidationIssue,
)
from koppelpunt.pipeline.checks import check_schooljaar, is_valid_bsn, is_valid_onderwijsnummer

PROGNOSE_NS = "urn:vva:prognose:1"
AANMELDSTATUS_NS = "urn:vva:aanmeldstatus:1"
SIGNALERING_NS = "urn:vva:signalering:1"

# An invalid 10,000-record message could yield 10,000+ issues; a sender fixes the first hundred.
MAX_ISSUES = 100
# xmlschema explains better than libxml2 but walks the whole document before yielding its first
# error (~0.5 s per 10,000 records, pure Python). Above this many records an invalid message gets
# libxml2's report (milliseconds, same paths), so invalid bodies cannot be used to burn CPU.
DETAILED_MAX_RECORDS = 1_000
# A `verzonden` without offset is read as Dutch local time: that is what a Dutch LAS means.
LOCAL_TZ = ZoneInfo("Europe/Amsterdam")
# Elements that repeat per record always get a position in a path, even when there is only one,
# so `/prognoses/leerling[1]/bsn` maps to record index 0 whatever the message size.
_RECORD_ELEMENTS = frozenset({"leerling", "aanmelding"})
# libxml2 errors that mean "someone tried entities or resource exhaustion", not a typo.
_HOSTILE_ERRORS = frozenset(
    {
        etree.ErrorTypes.ERR_UNDECLARED_ENTITY,
        etree.ErrorTypes.WAR_UNDECLARED_ENTITY,
        etree.ErrorTypes.ERR_ENTITY_LOOP,
        etree.ErrorTypes.ERR_RESOURCE_LIMIT,
    }
)
# A DOCTYPE anywhere in the bytes (UTF-8/ASCII-compatible or UTF-16) marks a failed parse hostile.
_DTD_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)
_DOCTYPE_REASON = "DOCTYPE is niet toegestaan: DTD's en entiteiten worden nooit verwerkt"
_LOCATION_SUFFIX = re.compile(r", line \d+, column \d+$")
_SCHOOLJAAR_SHAPE = re.compile(r"[0-9]{4}-[0-9]{4}")


def hardened_parser() -> etree.XMLParser:  # noqa: TID251 - the sanctioned factory
    """A fresh parser that never reads anything but the bytes it is given.

    Fresh per message because lxml parsers must not be shared between threads.
    """
    return etree.XMLParser(  # noqa: TID251 - this is the one place the parser is built
        resolve_entities=False,  # XXE / billion laughs: entities are never expanded
        no_network=True,  # never fetch a DTD, schema or entity over the network
        load_dtd=False,  # never read an external DTD (file or URL)
        dtd_validation=False,  # DTDs play no part: the XSD is the contract
        attribute_defaults=False,  # would need the DTD: nothing may add data to the message
        huge_tree=False,  # keep libxml2's limits: depth 256, 10 MB text node (deep nesting)
        remove_comments=True,  # carry no data; stripping them reads `12<!--x-->34` as the XSD does
        remove_pis=True,  # processing instructions carry no data for us: dropped, not refused
        strip_cdata=True,  # CDATA is just text
        collect_ids=False,  # xml:id is meaningless here; skip building the ID table
    )


# --- schemas -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """One XSD, compiled twice: libxml2 decides valid/invalid, xmlschema explains why."""

    namespace: str
    root: str
    fast: etree.XMLSchema
    detailed: xmlschema.XMLSchema

    @property
    def root_tag(self) -> str:
        return f"{{{self.namespace}}}{self.root}"


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """The three message schemas, loaded once at startup from one trusted directory."""

    prognose: LoadedSchema
    aanmeldstatus: LoadedSchema
    signalering: LoadedSchema

    @classmethod
    def load(cls, schemas_dir: Path) -> SchemaRegistry:
        """Compile `prognose.xsd`, `aanmeldstatus.xsd` and `signalering.xsd` from `schemas_dir`.

        Raises ConfigurationError (refuse to start) when a schema is missing or broken.
        """
        base = schemas_dir.resolve()
        return cls(
            prognose=_load_schema(base / "prognose.xsd", PROGNOSE_NS, "prognoses"),
            aanmeldstatus=_load_schema(
                base / "aanmeldstatus.xsd", AANMELDSTATUS_NS, "aanmeldstatussen"
            ),
            signalering=_load_schema(base / "signalering.xsd", SIGNALERING_NS, "signalering"),
        )

    def for_soort(self, soort: Soort) -> LoadedSchema:
        return self.prognose if soort is Soort.PROGNOSE else self.aanmeldstatus


def _load_schema(path: Path, namespace: str, root: str) -> LoadedSchema:
    try:
        fast = etree.XMLSchema(etree.parse(str(path), hardened_parser()))
        # sandbox: includes may only come from the schema's own directory; defuse: parse the XSDs
        # themselves without DTDs/entities too.
        detailed = xmlschema.XMLSchema(str(path), allow="sandbox", defuse="always")
    except (OSError, etree.LxmlError, xmlschema.XMLSchemaException) as exc:
        raise ConfigurationError(f"schema {path.name} kan niet geladen worden: {exc}") from exc
    if detailed.target_namespace != namespace:
        raise ConfigurationError(f"schema {path.name} heeft niet de namespace {namespace}")
    return LoadedSchema(namespace=namespace, root=root, fast=fast, detailed=detailed)


# --- entry point -------------------------------------------------------------------------------


def parse_message(
    body: bytes, soort: Soort, schemas: SchemaRegistry, *, max_issues: int = MAX_ISSUES
) -> ParseOutcome:
    """Parse, validate and normalise one message of the given soort.

    Never raises for bad input: not well-formed, hostile and invalid messages are `Invalid`.
    """
    schema = schemas.for_soort(soort)
    try:
        root = etree.fromstring(body, hardened_parser())
    except etree.XMLSyntaxError as exc:
        return _syntax_error(body, exc)

    docinfo = root.getroottree().docinfo
    # libxml2 keeps a DTD node for any DOCTYPE; `doctype` is missing from lxml-stubs.
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None:
        return Invalid((ValidationIssue(_DOCTYPE_REASON),), hostile=True)

    bericht_id = _bericht_id(root)
    if root.tag != schema.root_tag:
        qname = etree.QName(root)
        reason = (
            f"verwacht root-element <{schema.root}> in namespace {schema.namespace}, "
            f"gekregen <{qname.localname}> in namespace {qname.namespace or '(geen)'}"
        )
        issue = ValidationIssue(reason, line=_line(root), path=f"/{qname.localname}")
        return Invalid((issue,), bericht_id=bericht_id)

    issues: list[ValidationIssue] = []
    if not schema.fast.validate(root):
        issues.extend(_schema_issues(root, schema, max_issues))
    issues.extend(_content_issues(root, soort, schema.namespace))
    if issues:
        return Invalid(tuple(issues[:max_issues]), bericht_id=bericht_id)

    try:
        if soort is Soort.PROGNOSE:
            return _normalise_prognose(root, schema.namespace)
        return _normalise_aanmeldstatus(root, schema.namespace)
    except ValueError as exc:  # schema-valid but not representable (defensive; see Tijdstip)
        return Invalid((ValidationIssue(f"waarde niet te verwerken: {exc}"),), bericht_id)


def _syntax_error(body: bytes, exc: etree.XMLSyntaxError) -> Invalid:
    message = _LOCATION_SUFFIX.sub("", exc.msg or str(exc))
    line, column = exc.position if exc.position else (exc.lineno, None)
    if any(marker in body for marker in _DTD_MARKERS):
        reason, hostile = _DOCTYPE_REASON, True
    elif getattr(exc, "code", None) in _HOSTILE_ERRORS:
        reason, hostile = f"entiteit of parserlimiet geweigerd: {message}", True
    else:
        reason, hostile = f"XML is niet welgevormd: {message}", False
    return Invalid((ValidationIssue(reason, line=line, column=column),), hostile=hostile)


def _bericht_id(root: etree._Element) -> str | None:
    """berichtId as a collapsed token, or None when absent or not a valid token (1-64)."""
    text = root.findtext("{*}berichtId")
    token = " ".join(text.split()) if text else ""
    return token if 0 < len(token) <= 64 else None


# --- issues ------------------------------------------------------------------------------------


def element_path(elem: etree._Element) -> str:
    """XPath-like `/prognoses/leerling[3]/bsn`: local names, 1-based positions, no prefixes.

    A position is given for record elements and wherever siblings share the tag.
    """
    steps: list[str] = []
    node: etree._Element | None = elem
    while node is not None:
        parent = node.getparent()
        name = etree.QName(node).localname
        preceding = sum(1 for _ in node.itersiblings(node.tag, preceding=True))
        repeated = preceding > 0 or next(node.itersiblings(node.tag), None) is not None
        is_record = name in _RECORD_ELEMENTS and parent is not None and parent.getparent() is None
        steps.append(f"{name}[{preceding + 1}]" if repeated or is_record else name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _schema_issues(
    root: etree._Element, schema: LoadedSchema, max_issues: int
) -> list[ValidationIssue]:
    """Every XSD issue with its path: xmlschema's report, or libxml2's for large messages."""
    issues = (
        _xmlschema_issues(root, schema, max_issues) if len(root) <= DETAILED_MAX_RECORDS else []
    )
    return issues or _libxml2_issues(root, schema, max_issues)


def _xmlschema_issues(
    root: etree._Element, schema: LoadedSchema, max_issues: int
) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    try:
        # The tree is already parsed: allow="none" means xmlschema may not open anything at all.
        resource = xmlschema.XMLResource(root, allow="none", defuse="always")
        for error in schema.detailed.iter_errors(resource):
            issues.append(_from_xmlschema(error))
            if len(issues) >= max_issues:
                break
    except (xmlschema.XMLSchemaException, LookupError, ValueError, TypeError):
        # xmlschema gives up on some exotic input (an xsi:type naming an unknown type) that
        # libxml2 handles: the caller falls back to libxml2's own report.
        return []
    return issues


def _libxml2_issues(
    root: etree._Element, schema: LoadedSchema, max_issues: int
) -> list[ValidationIssue]:
    """libxml2's log of the failed validation; its paths (`/*/*[3]/*`) resolved to ours."""
    tree = root.getroottree()
    issues: list[ValidationIssue] = []
    entries: Iterable[Any] = schema.fast.error_log  # type: ignore[assignment]  # stubs: not iterable
    for entry in entries:
        found = tree.xpath(entry.path) if entry.path else []
        target = found[0] if isinstance(found, list) and found else None
        path = element_path(target) if isinstance(target, etree._Element) else None
        reason = f"voldoet niet aan het schema: {entry.message}"
        issues.append(ValidationIssue(reason, line=entry.line or None, path=path))
        if len(issues) >= max_issues:
            break
    return issues or [ValidationIssue("voldoet niet aan het schema")]


def _from_xmlschema(error: xmlschema.XMLSchemaValidationError) -> ValidationIssue:
    target = error.elem
    # "Unexpected child at position n": point at that child, not at its parent.
    index = getattr(error, "index", None)
    if isinstance(target, etree._Element) and isinstance(index, int) and index < len(target):
        target = target[index]
    if not isinstance(target, etree._Element):
        return ValidationIssue(f"voldoet niet aan het schema: {error.reason or error.message}")
    return ValidationIssue(
        f"voldoet niet aan het schema: {error.reason or error.message}",
        line=_line(target),
        path=element_path(target),
    )


def _content_issues(root: etree._Element, soort: Soort, ns: str) -> list[ValidationIssue]:
    """What XSD 1.0 cannot check: the two years of a schooljaar must follow each other."""
    if soort is not Soort.PROGNOSE:
        return []
    elem = root.find(f"{{{ns}}}schooljaar")
    text = (elem.text or "").strip() if elem is not None else ""
    if elem is None or not _SCHOOLJAAR_SHAPE.fullmatch(text) or check_schooljaar(text):
        return []  # absent or malformed: the XSD already reported it
    reason = f"schooljaar {text}: het tweede jaar moet het eerste plus één zijn"
    return [ValidationIssue(reason, line=_line(elem), path="/prognoses/schooljaar")]


# --- normalisation (hot path: plain lxml, the document is known to be valid) -------------------


def _line(elem: etree._Element) -> int | None:
    line = elem.sourceline  # lxml-stubs leave this untyped
    return line if isinstance(line, int) else None


def _tijdstip(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=LOCAL_TZ)


@dataclass(frozen=True, slots=True)
class _Tags:
    """The qualified tags of one namespace, built once (not per field of every record)."""

    aanmelding: str
    bericht_id: str
    bsn: str
    hoogste_diploma: str
    leerling: str
    school: str
    schooljaar: str
    verzonden: str

    @classmethod
    def of(cls, ns: str) -> _Tags:
        return cls(
            aanmelding=f"{{{ns}}}aanmelding",
            bericht_id=f"{{{ns}}}berichtId",
            bsn=f"{{{ns}}}bsn",
            hoogste_diploma=f"{{{ns}}}hoogsteDiploma",
            leerling=f"{{{ns}}}leerling",
            school=f"{{{ns}}}school",
            schooljaar=f"{{{ns}}}schooljaar",
            verzonden=f"{{{ns}}}verzonden",
        )


_TAGS = {ns: _Tags.of(ns) for ns in (PROGNOSE_NS, AANMELDSTATUS_NS)}
_STATUSES = {status.value: status for status in Status}
_ONDERWIJSNUMMER_REDEN = (
    "onderwijsnummer voldoet niet aan de controle (begint met 10, elfproef rest 5)"
)


def _leerling(
    id_elem: etree._Element,
    geboortedatum_elem: etree._Element,
    tags: _Tags,
    index: int,
    path: str,
    dates: dict[str, date],
) -> Leerling | RecordRejection:
    """The pupil of one record from its bsn-or-onderwijsnummer and geboortedatum elements.

    `dates` memoises date.fromisoformat within one message (the same days recur).
    """
    nummer = (id_elem.text or "").strip()
    if id_elem.tag == tags.bsn:
        if not is_valid_bsn(nummer):
            return RecordRejection(index, "bsn voldoet niet aan de elfproef", f"{path}/bsn")
        bsn, onderwijsnummer = nummer, None
    else:
        if not is_valid_onderwijsnummer(nummer):
            return RecordRejection(index, _ONDERWIJSNUMMER_REDEN, f"{path}/onderwijsnummer")
        bsn, onderwijsnummer = None, nummer
    text = (geboortedatum_elem.text or "").strip()
    geboortedatum = dates.get(text)
    if geboortedatum is None:
        geboortedatum = dates[text] = date.fromisoformat(text)
    return Leerling(bsn=bsn, onderwijsnummer=onderwijsnummer, geboortedatum=geboortedatum)


# The record elements are XSD-valid here, so their children come in the schema's sequence:
# prognose <leerling>: (bsn | onderwijsnummer), geboortedatum, onderwijssoort, hoogsteDiploma?
# <aanmelding>: aanmeldingId, (bsn | onderwijsnummer), geboortedatum, instelling(brin),
# opleiding(crebo, niveau, leerweg), status, statusdatum, hoogsteDiploma?, latendeSchool(brin)?
# Reading them by position, with one tag test where the schema allows a choice, is several
# times cheaper than a find() per field.


def _normalise_prognose(root: etree._Element, ns: str) -> Parsed:
    tags = _TAGS[ns]
    records: list[PrognoseRecord] = []
    afgewezen: list[RecordRejection] = []
    dates: dict[str, date] = {}
    for index, elem in enumerate(root.iterchildren(tags.leerling)):
        children = list(elem)
        leerling = _leerling(
            children[0], children[1], tags, index, f"/prognoses/leerling[{index + 1}]", dates
        )
        if isinstance(leerling, RecordRejection):
            afgewezen.append(leerling)
            continue
        records.append(
            PrognoseRecord(
                index=index,
                leerling=leerling,
                onderwijssoort=(children[2].text or "").strip(),
                hoogste_diploma=(children[3].text or "").strip() if len(children) > 3 else None,
            )
        )
    school = root.find(tags.school)
    assert school is not None  # the XSD requires it
    school_children = list(school)
    bericht = PrognoseBericht(
        bericht_id=" ".join(root.findtext(tags.bericht_id, "").split()),
        verzonden=_tijdstip(root.findtext(tags.verzonden, "").strip()),
        school=School(
            brin=(school_children[0].text or "").strip(),
            vestiging=(
                (school_children[1].text or "").strip() if len(school_children) > 1 else None
            ),
        ),
        schooljaar=root.findtext(tags.schooljaar, "").strip(),
        records=tuple(records),
    )
    return Parsed(bericht, tuple(afgewezen))


def _normalise_aanmeldstatus(root: etree._Element, ns: str) -> Parsed:
    tags = _TAGS[ns]
    records: list[AanmeldstatusRecord] = []
    afgewezen: list[RecordRejection] = []
    dates: dict[str, date] = {}
    for index, elem in enumerate(root.iterchildren(tags.aanmelding)):
        children = list(elem)
        leerling = _leerling(
            children[1],
            children[2],
            tags,
            index,
            f"/aanmeldstatussen/aanmelding[{index + 1}]",
            dates,
        )
        if isinstance(leerling, RecordRejection):
            afgewezen.append(leerling)
            continue
        crebo, niveau, leerweg = children[4]
        opleiding = Opleiding(
            crebo=(crebo.text or "").strip(),
            niveau=int(niveau.text or ""),
            leerweg=(leerweg.text or "").strip(),
        )
        status_text = (children[5].text or "").strip()
        status = _STATUSES.get(status_text) or Status(status_text)
        statusdatum_text = (children[6].text or "").strip()
        statusdatum = dates.get(statusdatum_text)
        if statusdatum is None:
            statusdatum = dates[statusdatum_text] = date.fromisoformat(statusdatum_text)
        hoogste_diploma = latende_school_brin = None
        for optional in children[7:]:
            if optional.tag == tags.hoogste_diploma:
                hoogste_diploma = (optional.text or "").strip()
            else:  # latendeSchool, the last one the schema allows
                latende_school_brin = (optional[0].text or "").strip()
        records.append(
            AanmeldstatusRecord(
                index=index,
                aanmelding_id=" ".join((children[0].text or "").split()),
                leerling=leerling,
                instelling_brin=(children[3][0].text or "").strip(),
                opleiding=opleiding,
                status=status,
                statusdatum=statusdatum,
                hoogste_diploma=hoogste_diploma,
                latende_school_brin=latende_school_brin,
            )
        )
    bericht = AanmeldstatusBericht(
        bericht_id=" ".join(root.findtext(tags.bericht_id, "").split()),
        verzonden=_tijdstip(root.findtext(tags.verzonden, "").strip()),
        records=tuple(records),
    )
    return Parsed(bericht, tuple(afgewezen))
