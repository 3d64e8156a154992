"""Bytes in, `ParseOutcome` out: hardened parsing, XSD validation and normalisation.

One entry point, `parse_message`, so no caller can forget a step. The order matters:
1. parse with `hardened_parser()` (no DTD, no entities, no network, libxml2's size limits);
2. refuse any DOCTYPE (hostile) and a root element of the wrong soort;
3. refuse shapes no schema accepts, found cheaply (structure.py: undeclared attributes, too many
   attributes, elements per record or namespace declarations, over-long names), so that no
   validator ever works on them;
4. validate with libxml2 (fast), a large message in slices of SLICE_RECORDS records (libxml2's
   cost per issue grows with the issue's position among its siblings); only when that fails,
   and only for a message of at most `detailed_report_max_nodes` nodes, ask xmlschema for a
   report with its paths, abandoned after `detailed_report_max_seconds` (libxml2's is used then);
5. check what XSD 1.0 cannot (schooljaar), then normalise to model values with plain lxml
   (the hot path: xmlschema decoding is ~50x slower); records whose BSN or onderwijsnummer
   fails its check digit are rejected one by one, the rest of the message is kept.

Reasons are Dutch (the audience is Dutch). They name element, line and rule, never a value
(xml_report.py); as a safety net every digit run of nine or more is masked in them.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import xmlschema
from lxml import etree
from xmlschema.validators import (
    XsdAnyAttribute,
    XsdAttribute,
    XsdElement,
    XsdGroup,
    XsdIdentity,
    XsdSimpleType,
)

from koppelpunt.errors import ConfigurationError
from koppelpunt.masking import mask_error_text
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
from koppelpunt.pipeline.structure import AttributeRule, Shape, XmlLimits, structure_issues
from koppelpunt.pipeline.xml_report import (
    SCHEMA_PREFIX,
    element_path,
    libxml2_reason,
    shortened,
    shown_name,
    xmlschema_reason,
)

__all__ = ["SchemaRegistry", "XmlLimits", "element_path", "hardened_parser", "parse_message"]

PROGNOSE_NS = "urn:vva:prognose:1"
AANMELDSTATUS_NS = "urn:vva:aanmeldstatus:1"
SIGNALERING_NS = "urn:vva:signalering:1"

# An invalid 10,000-record message could yield 10,000+ issues; a sender fixes the first hundred.
MAX_ISSUES = 100
# libxml2 validates a message with more records in slices of this many (each with the message's
# root and head): its cost per issue is the issue's position among its siblings, so one
# validation of 10,000 records with 11 issues each takes seconds, a slice milliseconds. A slice
# of a valid message costs what the whole did (a 10,000-record message: ~0.08 s against 0.04 s).
SLICE_RECORDS = 200
# A `verzonden` without offset is read as Dutch local time: that is what a Dutch LAS means.
LOCAL_TZ = ZoneInfo("Europe/Amsterdam")
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
# libxml2's syntax messages quote some of the input: bytes of a bad encoding, a namespace URI.
_QUOTED_BYTES = re.compile(r"\s*Bytes:( 0x[0-9A-Fa-f]{2})+")
_QUOTED_INPUT = re.compile(r"'[^'\n]*'")
_SYNTAX_REASON_LENGTH = 200
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
class RecordModel:
    """A root whose content is a fixed head of single elements, then `tag` up to `max_occurs`
    times, and nothing that relates one record to another (no identity constraints, no xs:ID):
    such a message is valid exactly when each slice of it (root, head, some records) is and
    there are at most `max_occurs` records, so it can be validated in slices."""

    tag: str
    max_occurs: int
    head: int  # elements before the first record


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """One XSD, compiled twice: libxml2 decides valid/invalid, xmlschema explains why."""

    namespace: str
    root: str
    fast: etree.XMLSchema
    detailed: xmlschema.XMLSchema
    path: Path
    attributes: AttributeRule = field(default_factory=AttributeRule)
    records: RecordModel | None = None

    @property
    def root_tag(self) -> str:
        return f"{{{self.namespace}}}{self.root}"


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """The three message schemas, loaded once at startup from one trusted directory, and the
    limits on a message's shape that apply before them."""

    prognose: LoadedSchema
    aanmeldstatus: LoadedSchema
    signalering: LoadedSchema
    limits: XmlLimits = field(default_factory=XmlLimits)

    @classmethod
    def load(cls, schemas_dir: Path, limits: XmlLimits | None = None) -> SchemaRegistry:
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
            limits=limits or XmlLimits(),
        )

    def for_soort(self, soort: Soort) -> LoadedSchema:
        return self.prognose if soort is Soort.PROGNOSE else self.aanmeldstatus


def _load_schema(path: Path, namespace: str, root: str) -> LoadedSchema:
    try:
        fast = _compile(path)
        # sandbox: includes may only come from the schema's own directory; defuse: parse the XSDs
        # themselves without DTDs/entities too.
        detailed = xmlschema.XMLSchema(str(path), allow="sandbox", defuse="always")
    except (OSError, etree.LxmlError, xmlschema.XMLSchemaException) as exc:
        raise ConfigurationError(f"schema {path.name} kan niet geladen worden: {exc}") from exc
    if detailed.target_namespace != namespace:
        raise ConfigurationError(f"schema {path.name} heeft niet de namespace {namespace}")
    return LoadedSchema(
        namespace=namespace,
        root=root,
        fast=fast,
        detailed=detailed,
        path=path,
        attributes=_attribute_rule(detailed),
        records=_record_model(detailed, f"{{{namespace}}}{root}"),
    )


def _compile(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path), hardened_parser()))


def _attribute_rule(schema: xmlschema.XMLSchema) -> AttributeRule:
    declared = frozenset(
        (c.target_namespace if c.qualified or c.is_global() else "", c.local_name or "")
        for c in schema.iter_components(xsd_classes=(XsdAttribute,))
        if isinstance(c, XsdAttribute)
    )
    wildcard = any(True for _ in schema.iter_components(xsd_classes=(XsdAnyAttribute,)))
    if any("'" in ns for ns, _ in declared):
        # Such a namespace cannot be spelled in the XPath test: the count limit alone applies.
        return AttributeRule(any_allowed=True)
    return AttributeRule(declared=declared, any_allowed=wildcard)


def _record_model(schema: xmlschema.XMLSchema, root_tag: str) -> RecordModel | None:
    """The root's record element, when the schema has the shape that slices validate exactly."""
    root = schema.maps.elements.get(root_tag)
    content = getattr(getattr(root, "type", None), "content", None)
    if not isinstance(content, XsdGroup) or content.model != "sequence":
        return None
    if content.min_occurs != 1 or content.max_occurs != 1:
        return None
    particles = list(content)
    if not particles or not all(isinstance(p, XsdElement) for p in particles):
        return None
    *head, last = particles
    if any(p.min_occurs != 1 or p.max_occurs != 1 or p.name == last.name for p in head):
        return None
    if last.min_occurs != 1 or last.max_occurs is None or last.max_occurs < 2 or not last.name:
        return None
    if any(True for _ in schema.iter_components(xsd_classes=(XsdIdentity,))):
        return None
    simple = schema.iter_components(xsd_classes=(XsdSimpleType,))
    if any(isinstance(t, XsdSimpleType) and t.is_key() for t in simple):
        return None
    return RecordModel(last.name, last.max_occurs, len(head))


# lxml keeps a validator's issue log on the validator object: two threads validating with one
# would mix their logs. So each thread compiles its own (once, a few milliseconds).
_THREAD_VALIDATORS = threading.local()


def _validator(schema: LoadedSchema) -> etree.XMLSchema:
    cache: dict[int, tuple[LoadedSchema, etree.XMLSchema]] | None = getattr(
        _THREAD_VALIDATORS, "cache", None
    )
    if cache is None:
        cache = _THREAD_VALIDATORS.cache = {}
    entry = cache.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = cache[id(schema)] = (schema, _compile(schema.path))
    return entry[1]


# --- entry point -------------------------------------------------------------------------------


def parse_message(
    body: bytes, soort: Soort, schemas: SchemaRegistry, *, max_issues: int = MAX_ISSUES
) -> ParseOutcome:
    """Parse, validate and normalise one message of the given soort.

    Never raises for bad input: not well-formed, hostile and invalid messages are `Invalid`.
    """
    outcome = _parse(body, soort, schemas, max_issues)
    if isinstance(outcome, Invalid):
        return replace(outcome, issues=tuple(_masked(i) for i in outcome.issues))
    return outcome


def _parse(body: bytes, soort: Soort, schemas: SchemaRegistry, max_issues: int) -> ParseOutcome:
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
            f"gekregen <{shown_name(qname.localname)}> in namespace "
            f"{shortened(qname.namespace) if qname.namespace else '(geen)'}"
        )
        issue = ValidationIssue(reason, line=_line(root), path=f"/{shown_name(qname.localname)}")
        return Invalid((issue,), bericht_id=bericht_id)

    limits = schemas.limits
    shape = Shape.of(root, body)
    structure = structure_issues(root, body, shape, limits, schema.attributes, max_issues)
    if structure:
        return Invalid(tuple(structure), bericht_id=bericht_id)

    issues = _libxml2_validate(root, schema, max_issues)
    if issues and shape.nodes <= limits.detailed_report_max_nodes:
        issues = _xmlschema_issues(root, schema, max_issues, limits) or issues
    issues.extend(_content_issues(root, soort, schema.namespace))
    if issues:
        return Invalid(tuple(issues[:max_issues]), bericht_id=bericht_id)

    try:
        if soort is Soort.PROGNOSE:
            return _normalise_prognose(root, schema.namespace)
        return _normalise_aanmeldstatus(root, schema.namespace)
    except ValueError:  # schema-valid but not representable (defensive; see Tijdstip)
        return Invalid((ValidationIssue("een waarde is niet te verwerken"),), bericht_id)


def _masked(issue: ValidationIssue) -> ValidationIssue:
    return replace(
        issue,
        reason=mask_error_text(issue.reason),
        path=mask_error_text(issue.path) if issue.path else issue.path,
    )


def _syntax_error(body: bytes, exc: etree.XMLSyntaxError) -> Invalid:
    message = _LOCATION_SUFFIX.sub("", exc.msg or str(exc))
    message = _QUOTED_INPUT.sub("'…'", _QUOTED_BYTES.sub("", message))
    if len(message) > _SYNTAX_REASON_LENGTH:
        message = message[:_SYNTAX_REASON_LENGTH] + "…"
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


def _libxml2_validate(
    root: etree._Element, schema: LoadedSchema, max_issues: int
) -> list[ValidationIssue]:
    """libxml2's issues with the message (none: valid), at most max_issues of them."""
    model = schema.records
    first = _first_record(root, model) if model is not None else None
    # A head of another length than the schema's fails the root's content model right there:
    # libxml2 then stops, so the whole message is validated at once.
    if model is None or first is None or first != model.head or len(root) - first <= SLICE_RECORDS:
        validator = _validator(schema)
        if validator.validate(root):
            return []
        issues = _libxml2_issues(validator, root, lambda found: found, max_issues)
        return issues or [ValidationIssue(SCHEMA_PREFIX.removesuffix(": "))]
    children = root.iterchildren()
    head = list(itertools.islice(children, first))
    issues = []
    attrib = {str(k): str(v) for k, v in root.attrib.items()}
    nsmap: Any = root.nsmap  # lxml-stubs: prefix None (the default namespace) not allowed
    while part := list(itertools.islice(children, SLICE_RECORDS)):
        piece = etree.Element(root.tag, attrib=attrib, nsmap=nsmap)
        piece.extend(copy.deepcopy(child) for child in head)
        piece.extend(copy.deepcopy(child) for child in part)
        validator = _validator(schema)
        if validator.validate(piece):
            continue
        # The root and the head are in every slice; their issues count with the first.
        to_original = _mapping(piece, root, None if issues else head, part)
        issues.extend(_libxml2_issues(validator, piece, to_original, max_issues - len(issues)))
        if len(issues) >= max_issues:
            return issues[:max_issues]
    local, uri = _local_and_uri(model.tag)
    records = root.xpath(f"count(*[{_SAME_TAG}])", local=local, uri=uri)
    if isinstance(records, float) and records > model.max_occurs:
        extra = _list(
            root.xpath(f"*[{_SAME_TAG}][$i]", i=model.max_occurs + 1, local=local, uri=uri)
        )
        if extra and isinstance(extra[0], etree._Element):
            name = shown_name(model.tag)
            reason = (
                f"{SCHEMA_PREFIX}meer dan {model.max_occurs} <{name}>-elementen; dat is het maximum"
            )
            issues.append(
                ValidationIssue(reason, line=_line(extra[0]), path=element_path(extra[0]))
            )
    return issues


_SAME_TAG = "local-name() = $local and namespace-uri() = $uri"


def _local_and_uri(tag: str) -> tuple[str, str]:
    qname = etree.QName(tag)
    return qname.localname, qname.namespace or ""


def _first_record(root: etree._Element, model: RecordModel) -> int | None:
    """Index of the root's first record child (counted by libxml2), or None without one."""
    record = root.find(model.tag)
    if record is None:
        return None
    local, uri = _local_and_uri(model.tag)
    before = record.xpath("count(preceding-sibling::*)", local=local, uri=uri)
    return int(before) if isinstance(before, float) else None


def _list(result: object) -> list[object]:
    return list(result) if isinstance(result, list) else []


def _mapping(
    piece: etree._Element,
    root: etree._Element,
    head: Sequence[etree._Element] | None,
    part: Sequence[etree._Element],
) -> Callable[[etree._Element], etree._Element | None]:
    """From an element of a slice to the same element of the message; None for the root and
    the head when `head` is None (they were reported with the first slice)."""
    head_size = len(piece) - len(part)

    def to_original(found: etree._Element) -> etree._Element | None:
        indices: list[int] = []
        node = found
        while node is not piece:
            parent = node.getparent()
            if parent is None:
                return None
            indices.append(parent.index(node))
            node = parent
        if not indices or indices[-1] < head_size:
            if head is None:
                return None
            if not indices:
                return root
            target = head[indices.pop()]
        else:
            target = part[indices.pop() - head_size]
        while indices:
            target = target[indices.pop()]
        return target

    return to_original


def _libxml2_issues(
    validator: etree.XMLSchema,
    validated: etree._Element,
    to_original: Callable[[etree._Element], etree._Element | None],
    max_issues: int,
) -> list[ValidationIssue]:
    """libxml2's log of a failed validation; its paths (`/*/*[3]/*`) resolved to ours; issues
    whose element `to_original` maps to None are left out."""
    tree = validated.getroottree()
    issues: list[ValidationIssue] = []
    entries: Iterable[Any] = validator.error_log  # type: ignore[assignment]  # stubs: not iterable
    for entry in entries:
        found = tree.xpath(entry.path) if entry.path else []
        target = found[0] if isinstance(found, list) and found else None
        reason = libxml2_reason(entry.message or "", entry.type_name or "")
        if isinstance(target, etree._Element):
            original = to_original(target)
            if original is None:
                continue
            issues.append(
                ValidationIssue(reason, line=_line(original), path=element_path(original))
            )
        else:
            issues.append(ValidationIssue(reason, line=entry.line or None))
        if len(issues) >= max_issues:
            break
    return issues


def _xmlschema_issues(
    root: etree._Element, schema: LoadedSchema, max_issues: int, limits: XmlLimits
) -> list[ValidationIssue]:
    """xmlschema's report, or nothing when it gives up or runs out of its time."""
    issues: list[ValidationIssue] = []
    deadline = time.monotonic() + limits.detailed_report_max_seconds
    try:
        # The tree is already parsed: allow="none" means xmlschema may not open anything at all.
        resource = xmlschema.XMLResource(root, allow="none", defuse="always")
        for error in schema.detailed.iter_errors(resource):
            if time.monotonic() > deadline:
                return []
            issues.append(_from_xmlschema(error))
            if len(issues) >= max_issues:
                break
    except (xmlschema.XMLSchemaException, LookupError, ValueError, TypeError):
        # xmlschema gives up on some exotic input (an xsi:type naming an unknown type) that
        # libxml2 handles: the caller keeps libxml2's own report.
        return []
    return issues


def _from_xmlschema(error: xmlschema.XMLSchemaValidationError) -> ValidationIssue:
    target = error.elem
    # "Unexpected child at position n": point at that child, not at its parent.
    index = getattr(error, "index", None)
    if isinstance(target, etree._Element) and isinstance(index, int) and index < len(target):
        target = target[index]
    if not isinstance(target, etree._Element):
        return ValidationIssue(xmlschema_reason(error, None))
    element = error.elem.tag if isinstance(error.elem, etree._Element) else None
    return ValidationIssue(
        xmlschema_reason(error, element if isinstance(element, str) else None),
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
    reason = "<schooljaar>: het tweede jaar moet het eerste plus één zijn"
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
