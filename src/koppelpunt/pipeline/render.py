"""Signalering value in, UTF-8 XML per schemas/signalering.xsd out.

Built with lxml element by element, never by string formatting, so a value can never change the
structure of the document. Pure: the caller publishes the bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lxml import etree

from koppelpunt.model import AanmeldingDetails, PrognoseDetails, Signalering
from koppelpunt.pipeline.parse import SIGNALERING_NS

# Qualified element names, built once (an f-string per element was a third of the cost).
_NAMES = (
    "signalering signaleringId type gemeentecode aangemaakt leerling bsn geboortedatum "
    "peildatum schooljaar prognose school brin vestiging onderwijssoort aanmeldstatus "
    "instelling opleiding crebo niveau leerweg status statusdatum aanmeldingId bron berichtId"
)
_Q = {name: f"{{{SIGNALERING_NS}}}{name}" for name in _NAMES.split()}
# The default namespace needs a None key, which lxml-stubs do not allow.
_NSMAP: Any = {None: SIGNALERING_NS}
_sub_element = etree.SubElement


def render_signalering(s: Signalering) -> bytes:
    """The signalering as an XML document; optional parts that are None or empty are left out.

    Raises ValueError for a naive `aangemaakt`: a moment without timezone is a programming fault.

    Fast path of `_build`, byte for byte the same document: each shape of signalering (which
    optional parts, how many aanmeldingen) is built once, element by element, with its texts
    blanked; a rendering copies that tree (in C) and sets the texts of its leaves in document
    order. Values only ever become element text, so they cannot change the structure.
    """
    shape, texts = _shape_and_texts(s)
    cached = _TEMPLATES.get(shape)
    if cached is None:
        cached = _template(s)
        if len(_TEMPLATES) < _MAX_TEMPLATES:
            _TEMPLATES[shape] = cached
    template, leaves = cached
    # copy.deepcopy's work without its Python dispatch (~1 µs); missing from lxml-stubs
    root: etree._Element = template.__deepcopy__(None)  # type: ignore[attr-defined]
    elements = list(root.iter())
    for index, text in zip(leaves, texts, strict=True):
        elements[index].text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# (shape) -> (tree with blank texts, positions of its leaves in document order). Shapes are few
# (optional parts × number of aanmeldingen); the bound only guards against odd input.
_TEMPLATES: dict[tuple[bool, bool, int, int, bool], tuple[etree._Element, tuple[int, ...]]] = {}
_MAX_TEMPLATES = 256


def _shape_and_texts(s: Signalering) -> tuple[tuple[bool, bool, int, int, bool], list[str]]:
    """The shape `_build` gives `s`, and the texts of its leaves in the order `_build` adds
    them (document order). Any change to `_build` must be mirrored here (tests compare)."""
    texts = [
        s.signalering_id,
        str(s.type),  # a StrEnum's str() is its value, without the slow enum property
        s.gemeentecode,
        _tijdstip(s.aangemaakt),
        s.bsn,
        s.geboortedatum.isoformat(),
    ]
    if s.peildatum is not None:
        texts.append(s.peildatum.isoformat())
    if s.schooljaar:
        texts.append(s.schooljaar)
    prognose = 0
    if s.prognose is not None:
        p = s.prognose
        texts.append(p.school.brin)
        prognose = 1
        if p.school.vestiging:
            texts.append(p.school.vestiging)
            prognose = 2
        texts.append(p.schooljaar)
        texts.append(p.onderwijssoort)
    for a in s.aanmeldingen:
        texts.append(a.instelling_brin)
        texts.append(a.opleiding.crebo)
        texts.append(str(a.opleiding.niveau))
        texts.append(a.opleiding.leerweg)
        texts.append(str(a.status))
        texts.append(a.statusdatum.isoformat())
        texts.append(a.aanmelding_id)
    if s.bron_bericht_id:
        texts.append(s.bron_bericht_id)
    shape = (
        s.peildatum is not None,
        bool(s.schooljaar),
        prognose,
        len(s.aanmeldingen),
        bool(s.bron_bericht_id),
    )
    return shape, texts


def _template(s: Signalering) -> tuple[etree._Element, tuple[int, ...]]:
    """`s` built element by element, its texts blanked (no value of `s` is kept)."""
    root = _build(s)
    leaves: list[int] = []
    for index, elem in enumerate(root.iter()):
        if len(elem) == 0:
            elem.text = ""
            leaves.append(index)
    return root, tuple(leaves)


def _build(s: Signalering) -> etree._Element:
    """The signalering document, element by element (the reference for the fast path)."""
    root = etree.Element(_Q["signalering"], nsmap=_NSMAP)
    _sub(root, "signaleringId", s.signalering_id)
    _sub(root, "type", s.type.value)
    _sub(root, "gemeentecode", s.gemeentecode)
    _sub(root, "aangemaakt", _tijdstip(s.aangemaakt))
    leerling = _sub_element(root, _Q["leerling"])
    _sub(leerling, "bsn", s.bsn)
    _sub(leerling, "geboortedatum", s.geboortedatum.isoformat())
    if s.peildatum is not None:
        _sub(root, "peildatum", s.peildatum.isoformat())
    if s.schooljaar:
        _sub(root, "schooljaar", s.schooljaar)
    if s.prognose is not None:
        _prognose(root, s.prognose)
    for aanmelding in s.aanmeldingen:
        _aanmelding(root, aanmelding)
    if s.bron_bericht_id:
        _sub(_sub_element(root, _Q["bron"]), "berichtId", s.bron_bericht_id)
    return root


def _sub(parent: etree._Element, name: str, text: str) -> etree._Element:
    elem = _sub_element(parent, _Q[name])
    elem.text = text
    return elem


def _tijdstip(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("aangemaakt heeft geen tijdzone")
    return moment.isoformat()


def _prognose(root: etree._Element, prognose: PrognoseDetails) -> None:
    elem = _sub_element(root, _Q["prognose"])
    school = _sub_element(elem, _Q["school"])
    _sub(school, "brin", prognose.school.brin)
    if prognose.school.vestiging:
        _sub(school, "vestiging", prognose.school.vestiging)
    _sub(elem, "schooljaar", prognose.schooljaar)
    _sub(elem, "onderwijssoort", prognose.onderwijssoort)


def _aanmelding(root: etree._Element, aanmelding: AanmeldingDetails) -> None:
    elem = _sub_element(root, _Q["aanmeldstatus"])
    _sub(_sub_element(elem, _Q["instelling"]), "brin", aanmelding.instelling_brin)
    opleiding = _sub_element(elem, _Q["opleiding"])
    _sub(opleiding, "crebo", aanmelding.opleiding.crebo)
    _sub(opleiding, "niveau", str(aanmelding.opleiding.niveau))
    _sub(opleiding, "leerweg", aanmelding.opleiding.leerweg)
    _sub(elem, "status", aanmelding.status.value)
    _sub(elem, "statusdatum", aanmelding.statusdatum.isoformat())
    _sub(elem, "aanmeldingId", aanmelding.aanmelding_id)
