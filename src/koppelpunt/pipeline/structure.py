"""Structural limits, checked on the parsed tree before any XSD validator sees it.

Why: the validators' cost depends on the shape of a message, not only on its size. xmlschema
describes all attributes of an element for each attribute error (a 19 KB prognose with 2,000
attributes on its root took 14 s to refuse, ~n^2.7); libxml2 computes a path for every issue,
which costs the issue's position among its siblings; lxml copies and xmlschema walks an
element's namespaces, all of them. What the schemas can never accept is refused here first:

- element or attribute names longer than `max_name_length` characters;
- more than `max_elements_per_record` elements in one child of the root (a record, or a head
  element such as <school>; ours have at most 15);
- more than `max_attributes` attributes on one element, and attributes the schemas do not
  declare (ours declare none; the four `xsi:` attributes XML Schema allows everywhere are
  left to the validators);
- more than `max_namespace_declarations` namespace declarations on one element.

Every check is a count or a search that libxml2 runs in C (XPath), or a regular expression over
the bytes, and each runs only when a cheaper count says it can find something: refusing costs
about what parsing did (tests/api/test_hostile_server.py measures it). The issues name element,
line and rule (never a value), at most `max_issues` of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from koppelpunt.model import ValidationIssue
from koppelpunt.pipeline.xml_report import element_path, shown_name

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# The attributes XML Schema allows on every element of an instance (XSD 1.0 §3.2.7).
XSI_ATTRIBUTES = frozenset(
    (XSI_NS, name) for name in ("type", "nil", "schemaLocation", "noNamespaceSchemaLocation")
)
STRUCTURE_PREFIX = "structuur niet toegestaan: "
# "xmlns" as it appears in the bytes of the encodings libxml2 detects by itself; the count of
# these is at least the number of namespace declarations.
_XMLNS_PATTERNS = frozenset(
    "xmlns".encode(encoding)
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
# A run of bytes that may belong to a name, starting where such a run starts (so that the search
# is linear): a name longer than the limit is such a run, in an ASCII-compatible encoding.
_NAME_BYTES = rb"[^\s<>/=\"'&;]"
# Anything in a tag but a namespace declaration, without backtracking (possessive).
_OTHER = rb"(?:[^<>x]++|x(?!mlns[:=]))*+"
_PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Limits on the shape of a message (settings `KOPPELPUNT_XML_*`; docs/beheer.md)."""

    max_attributes: int = 8
    max_namespace_declarations: int = 16
    max_name_length: int = 128
    max_elements_per_record: int = 64
    # xmlschema's detailed report runs only for messages up to this many elements, attributes
    # and namespace declarations together, and is abandoned (libxml2's report instead) when an
    # issue takes it longer than this many seconds.
    detailed_report_max_nodes: int = 2_000
    detailed_report_max_seconds: float = 0.5


@dataclass(frozen=True, slots=True)
class AttributeRule:
    """Which attributes a schema can accept besides the xsi ones: the `declared` (namespace,
    name) pairs, or any attribute at all when the schema has an attribute wildcard."""

    declared: frozenset[tuple[str, str]] = frozenset()
    any_allowed: bool = False
    # XPath steps that select the attributes refused here: those in a namespace no allowed
    # attribute has (one comparison each: the cheap test, and the attacker's usual case), and
    # those in such a namespace but with another name.
    foreign: str = field(init=False, default="")
    unknown: str = field(init=False, default="")

    def __post_init__(self) -> None:
        allowed = sorted(XSI_ATTRIBUTES | self.declared)
        if any("'" in ns or "'" in name for ns, name in allowed):
            raise ValueError("a namespace with a quote cannot be spelled in XPath")
        namespaces = " or ".join(
            f"namespace-uri() = '{ns}'" for ns in sorted({n for n, _ in allowed})
        )
        names = " or ".join(
            f"(namespace-uri() = '{ns}' and local-name() = '{name}')" for ns, name in allowed
        )
        object.__setattr__(self, "foreign", f"@*[not({namespaces})]")
        object.__setattr__(self, "unknown", f"@*[{namespaces}][not({names})]")


@dataclass(frozen=True, slots=True)
class Shape:
    """Counts of a parsed message, each from one pass of libxml2 in C."""

    elements: int
    attributes: int
    root_children: int
    declarations_bound: int | None  # at least the namespace declarations; None: unknown

    @classmethod
    def of(cls, root: etree._Element, body: bytes) -> Shape:
        return cls(
            elements=int(_number(root.xpath("count(//*)"))),
            attributes=int(_number(root.xpath("count(//@*)"))),
            root_children=len(root),
            declarations_bound=_xmlns_upper_bound(root, body),
        )

    @property
    def nodes(self) -> int:
        """Elements, attributes and namespace declarations: what xmlschema walks."""
        bound = self.declarations_bound
        return self.elements + self.attributes + (bound if bound is not None else 1 << 30)


def structure_issues(
    root: etree._Element,
    body: bytes,
    shape: Shape,
    limits: XmlLimits,
    attributes: AttributeRule,
    max_issues: int,
) -> list[ValidationIssue]:
    """What the schemas can never accept; empty when the shape is acceptable."""
    checks = (_long_names, _crowded_records, _attribute_issues, _crowded_namespaces)
    for check in checks:
        found = check(root, body, shape, limits, attributes)
        if found:
            return [
                ValidationIssue(
                    STRUCTURE_PREFIX + reason, line=_line(elem), path=element_path(elem)
                )
                for elem, reason in found[:max_issues]
            ]
    return []


_Found = list[tuple[etree._Element, str]]
# More issues than a report shows are never looked for.
_FIRST = 100
# Elements with too many namespace declarations are found by position, each position one more
# comparison for every element: the first ten are reported.
_FIRST_CROWDED = 10


def _long_names(
    root: etree._Element, body: bytes, shape: Shape, limits: XmlLimits, _: AttributeRule
) -> _Found:
    n = limits.max_name_length
    run = re.compile(rb"(?<!" + _NAME_BYTES + rb")" + _NAME_BYTES + rb"{%d}" % (n + 1))
    # In another encoding the names are looked for in libxml2's UTF-8 serialisation.
    text = body if _ascii_compatible(root) else etree.tostring(root)
    if not _search_in_pieces(run, text, n + 1):
        return []  # no run of name bytes that long: no name that long
    found: _Found = []
    for elem in _first(root, "//*[string-length(name()) > $n]", n=n):
        length = len(etree.QName(elem).localname)
        found.append((elem, f"een elementnaam van {length} tekens; hoogstens {n}"))
    for elem in _first(root, "//*[@*[string-length(name()) > $n]]", n=n):
        found.append(
            (elem, f"<{shown_name(elem.tag)}> heeft een attribuutnaam van meer dan {n} tekens")
        )
    return found


def _crowded_records(
    root: etree._Element, _body: bytes, shape: Shape, limits: XmlLimits, _: AttributeRule
) -> _Found:
    n = limits.max_elements_per_record
    if shape.elements - 1 - shape.root_children < n:
        return []  # fewer elements below the root's children than one of them may hold
    found: _Found = []
    for elem in _first(root, "/*/*[count(descendant::*) >= $n]", n=n):
        count = int(_number(elem.xpath("count(descendant-or-self::*)")))
        found.append((elem, f"<{shown_name(elem.tag)}> bevat {count} elementen; hoogstens {n}"))
    return found


def _attribute_issues(
    root: etree._Element, _body: bytes, shape: Shape, limits: XmlLimits, rule: AttributeRule
) -> _Found:
    if shape.attributes == 0:
        return []
    n = limits.max_attributes
    found: _Found = []
    if not rule.any_allowed:
        refused = _first_attributes(root, f"//{rule.foreign}") or _first_attributes(
            root, f"//{rule.unknown}"
        )
        for elem, name in refused:
            count = int(_number(elem.xpath("count(@*)")))
            reason = (
                f"attribuut {shown_name(name)} op <{shown_name(elem.tag)}> kent het schema niet"
            )
            found.append((elem, reason + (f" ({count} attributen)" if count > 1 else "")))
        if found or len(rule.declared) + len(XSI_ATTRIBUTES) <= n:
            return found  # no element can carry more than n distinct allowed attributes
    if shape.attributes > n:
        # The (n+1)th attribute of an element. Attributes, not their elements, are selected:
        # libxml2 merges a parent step's results pairwise, which costs the square of their number.
        for elem, _name in _first_attributes(root, "//@*[position() = $n + 1]", n=n):
            count = int(_number(elem.xpath("count(@*)")))
            found.append(
                (elem, f"<{shown_name(elem.tag)}> heeft {count} attributen; hoogstens {n}")
            )
    return found


def _crowded_namespaces(
    root: etree._Element, _body: bytes, shape: Shape, limits: XmlLimits, _: AttributeRule
) -> _Found:
    n = limits.max_namespace_declarations
    if shape.declarations_bound is not None and shape.declarations_bound <= n:
        return []  # no element can declare more than the whole message has
    # libxml2 writes each declaration on the element that has it, and escapes < in text and
    # attribute values: in its serialisation every < starts a tag, and the declarations
    # between two of them belong to one element.
    text = etree.tostring(root)
    tag = re.compile(rb"<(?!/)" + _OTHER + rb"(?:xmlns[:=]" + _OTHER + rb"){%d}" % (n + 1))
    offenders: list[int] = []  # positions among all elements, 1-based, in document order
    counted_to, elements_before = 0, 0  # start tags in text[:counted_to]
    for start, end in _pieces_at_tags(text):
        for match in tag.finditer(text, start, end):
            opened = text.count(b"<", counted_to, match.start())
            elements_before += opened - text.count(b"</", counted_to, match.start())
            counted_to = match.start()
            offenders.append(elements_before + 1)
            if len(offenders) >= _FIRST_CROWDED:
                break
        if len(offenders) >= _FIRST_CROWDED:
            break
    if not offenders:
        return []
    wanted = " or ".join(f"position() = {p}" for p in offenders)
    found: _Found = []
    for elem in _list(root.xpath(f"(//*)[{wanted}]")):
        if isinstance(elem, etree._Element):
            reason = f"<{shown_name(elem.tag)}> declareert meer dan {n} namespaces; hoogstens {n}"
            found.append((elem, reason))
    return found


def _pieces_at_tags(text: bytes) -> Iterable[tuple[int, int]]:
    """(start, end) of pieces of about a megabyte that begin at a `<` (so no tag is cut): one
    regular expression search per piece, as Python's re keeps the GIL for a whole search."""
    start = 0
    while start < len(text):
        end = text.find(b"<", start + _PIECE)
        end = len(text) if end == -1 else end
        yield start, end
        start = end


def _search_in_pieces(pattern: re.Pattern[bytes], text: bytes, longest: int) -> bool:
    """pattern.search(text) is not None, for a pattern whose matches are at most `longest`
    bytes, in pieces of a megabyte: Python's re keeps the GIL for a whole search, and the event
    loop's thread waits for it meanwhile."""
    for start in range(0, len(text), _PIECE):
        if pattern.search(text, start, start + _PIECE + longest) is not None:
            return True
    return False


def _xmlns_upper_bound(root: etree._Element, body: bytes) -> int | None:
    """At least the number of namespace declarations in `body`, counted in its bytes; None
    when its encoding may spell "xmlns" in a way not counted."""
    patterns = set(_XMLNS_PATTERNS)
    encoding = root.getroottree().docinfo.encoding
    if encoding:
        try:
            patterns.add("xmlns".encode(encoding))
        except (LookupError, UnicodeError):
            return None
    return sum(body.count(pattern) for pattern in patterns)


def _ascii_compatible(root: etree._Element) -> bool:
    encoding = root.getroottree().docinfo.encoding or "utf-8"
    try:
        return "<a b='c'/>".encode(encoding) == b"<a b='c'/>"
    except (LookupError, UnicodeError):
        return False


def _first(root: etree._Element, query: str, **variables: Any) -> list[etree._Element]:
    """The first elements `query` selects, in document order (libxml2 does the filtering)."""
    found = root.xpath(f"({query})[position() <= $k]", k=_FIRST, **variables)
    return [e for e in _list(found) if isinstance(e, etree._Element)]


def _first_attributes(
    root: etree._Element, query: str, **variables: Any
) -> list[tuple[etree._Element, str]]:
    """(element, attribute name) of the first attributes `query` selects, one per element."""
    found = root.xpath(f"({query})[position() <= $k]", k=_FIRST, **variables)
    seen: set[etree._Element] = set()
    out: list[tuple[etree._Element, str]] = []
    for attribute in _list(found):
        if isinstance(attribute, etree._ElementUnicodeResult):
            elem = attribute.getparent()
            if elem is not None and elem not in seen:
                seen.add(elem)
                out.append((elem, str(attribute.attrname)))
    return out


def _list(result: object) -> list[object]:
    return list(result) if isinstance(result, list) else []


def _number(result: object) -> float:
    return result if isinstance(result, float) else 0.0


def _line(elem: etree._Element) -> int | None:
    line = elem.sourceline
    return line if isinstance(line, int) else None
