"""The reason of one XSD issue, in Dutch, without the content of the message.

A reason names the element (and attribute), and the rule it breaks: a pattern, the allowed
values, a length, a type, or the elements expected there. It never quotes a value from the
message: the value of a `<bsn>` or of a date field in the wrong place is a BSN. The validators'
own texts do quote values ("The value ' 999993653' is not accepted by the pattern...",
"Invalid datetime string '999993653'"), so value issues are composed here from the rule
alone: for libxml2 from the tail of its message, which libxml2 fills from the schema, and for
xmlschema from the failing facet or type. Structural issues name only elements and
attributes; their texts are taken over where they are known to, and otherwise the issue is
described by its kind.

Names come from the sender too (an element may be called anything): they are shortened to
SHOWN_NAME_LENGTH characters, and the parse step masks digit runs in every reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import xmlschema
from lxml import etree
from xmlschema.validators import (
    XsdEnumerationFacets,
    XsdFacet,
    XsdFractionDigitsFacet,
    XsdGroup,
    XsdLengthFacet,
    XsdMaxExclusiveFacet,
    XsdMaxInclusiveFacet,
    XsdMaxLengthFacet,
    XsdMinExclusiveFacet,
    XsdMinInclusiveFacet,
    XsdMinLengthFacet,
    XsdPatternFacets,
    XsdSimpleType,
    XsdTotalDigitsFacet,
)

# Longer element and attribute names are cut in reasons and paths (the schemas' names are short).
SHOWN_NAME_LENGTH = 64
SCHEMA_PREFIX = "voldoet niet aan het schema: "
# Elements that repeat per record always get a position in a path, even when there is only one,
# so `/prognoses/leerling[1]/bsn` maps to record index 0 whatever the message size.
RECORD_ELEMENTS = frozenset({"leerling", "aanmelding"})
_SAME_TAG = "local-name() = $local and namespace-uri() = $uri"

_LIBXML2_SUBJECT = re.compile(
    r"Element '(?P<element>[^']*)'(?:, attribute '(?P<attribute>[^']*)')?: (?P<rest>.*)", re.S
)
_NAMES = r"\( (?P<names>[^()]*) \)"


def shown_name(name: str) -> str:
    """The local part of an (expanded or prefixed) XML name, shortened for a reason or path."""
    return shortened(name.rpartition("}")[2].rpartition(":")[2])


def shortened(text: str) -> str:
    """At most SHOWN_NAME_LENGTH characters of a name or namespace from the message."""
    return text if len(text) <= SHOWN_NAME_LENGTH else text[:SHOWN_NAME_LENGTH] + "…"


def element_path(elem: etree._Element) -> str:
    """XPath-like `/prognoses/leerling[3]/bsn`: local names, 1-based positions, no prefixes.

    A position is given for record elements and wherever siblings share the tag. Positions are
    counted by libxml2 (XPath `count()`), so a path deep in a long list costs microseconds.
    """
    steps: list[str] = []
    node: etree._Element | None = elem
    while node is not None:
        parent = node.getparent()
        qname = etree.QName(node)
        name = shown_name(qname.localname)
        if parent is None:
            steps.append(name)
            break
        preceding = node.xpath(
            f"count(preceding-sibling::*[{_SAME_TAG}])",
            local=qname.localname,
            uri=qname.namespace or "",
        )
        position = int(preceding) + 1 if isinstance(preceding, float) else 1
        repeated = position > 1 or next(node.itersiblings(node.tag), None) is not None
        is_record = name in RECORD_ELEMENTS and parent.getparent() is None
        steps.append(f"{name}[{position}]" if repeated or is_record else name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _names(text: str | None) -> str:
    return ", ".join(shown_name(n.strip()) for n in (text or "").split(",") if n.strip())


def _expected(names: str | None) -> str:
    shown = _names(names)
    return f"; verwacht: {shown}" if shown else ""


def _values(text: str) -> str:
    return ", ".join(v.strip().strip("'") for v in text.split(","))


# --- libxml2 -----------------------------------------------------------------------------------

_Compose = Callable[[re.Match[str], str, str], str]

# (tail of libxml2's message after "Element 'x'[, attribute 'a']: ", composer(match, subject,
# element)). Structural tails are matched whole; a value tail only from where the schema's rule
# begins (what precedes it quotes the value and is never used). libxml2's texts: xmlschemas.c.
_LIBXML2_RULES: tuple[tuple[re.Pattern[str], _Compose], ...] = (
    (
        re.compile(rf"This element is not expected\.(?: Expected is (?:one of )?{_NAMES}\.)?"),
        lambda m, s, e: f"{s} is hier niet toegestaan{_expected(m['names'])}",
    ),
    (
        re.compile(rf"Missing child element\(s\)\. Expected is (?:one of )?{_NAMES}\."),
        lambda m, s, e: f"in {s} ontbreekt een element{_expected(m['names'])}",
    ),
    (
        re.compile(
            r"Character content other than whitespace is not allowed because the content "
            r"type is 'element-only'\."
        ),
        lambda m, s, e: f"{s} mag geen tekst bevatten, alleen elementen",
    ),
    (
        re.compile(r"Element content is not allowed, because the (?:content )?type.*simple.*\."),
        lambda m, s, e: f"{s} mag geen elementen bevatten",
    ),
    (
        re.compile(r"The attribute '(?P<a>[^']*)' is not allowed\."),
        lambda m, s, e: f"attribuut {shown_name(m['a'])} is niet toegestaan op {e}",
    ),
    (
        re.compile(r"The attribute '(?P<a>[^']*)' is required but missing\."),
        lambda m, s, e: f"attribuut {shown_name(m['a'])} ontbreekt op {e}",
    ),
    (
        re.compile(r"No matching global declaration available for the validation root\."),
        lambda m, s, e: f"{s} is geen berichtelement van dit schema",
    ),
    (
        re.compile(r".*is not accepted by the pattern '(?P<rule>[^']*)'\.", re.S),
        lambda m, s, e: f"{s} voldoet niet aan het patroon {m['rule']}",
    ),
    (
        re.compile(r".*is not an element of the set \{(?P<rule>[^{}]*)\}\.", re.S),
        lambda m, s, e: f"{s} is niet een van de toegestane waarden ({_values(m['rule'])})",
    ),
    (
        re.compile(r".*exceeds the allowed maximum length of '(?P<rule>\d+)'\.", re.S),
        lambda m, s, e: f"{s} is langer dan {m['rule']} tekens",
    ),
    (
        re.compile(r".*underruns the allowed minimum length of '(?P<rule>\d+)'\.", re.S),
        lambda m, s, e: f"{s} is korter dan {m['rule']} tekens",
    ),
    (
        re.compile(r".*differs from the allowed length of '(?P<rule>\d+)'\.", re.S),
        lambda m, s, e: f"{s} is niet precies {m['rule']} tekens lang",
    ),
    (
        re.compile(r".*is less than the minimum value allowed \('(?P<rule>[^']*)'\)\.", re.S),
        lambda m, s, e: f"{s} is kleiner dan het minimum {m['rule']}",
    ),
    (
        re.compile(r".*is greater than the maximum value allowed \('(?P<rule>[^']*)'\)\.", re.S),
        lambda m, s, e: f"{s} is groter dan het maximum {m['rule']}",
    ),
    (
        re.compile(r".*must be (?P<way>greater|less) than '(?P<rule>[^']*)'\.", re.S),
        lambda m, s, e: (
            f"{s} moet {'groter' if m['way'] == 'greater' else 'kleiner'} zijn dan {m['rule']}"
        ),
    ),
    (
        re.compile(
            r".*is not a valid value of the (?:local )?(?:atomic|list|union) type"
            r"(?: '(?P<type>[^']*)')?\.",
            re.S,
        ),
        lambda m, s, e: (
            f"{s} is geen geldige waarde van het type {shown_name(m['type'])}"
            if m["type"]
            else f"{s} is geen geldige waarde van zijn type"
        ),
    ),
)


def libxml2_reason(message: str, kind: str) -> str:
    """Reason for one entry of libxml2's validation log; `kind` is its error type's name."""
    subject_match = _LIBXML2_SUBJECT.fullmatch(message.strip())
    if subject_match is None:
        return f"{SCHEMA_PREFIX}{kind}"
    element = f"<{shown_name(subject_match['element'])}>"
    attribute = subject_match["attribute"]
    subject = f"attribuut {shown_name(attribute)} van {element}" if attribute else element
    rest = subject_match["rest"].strip()
    for pattern, compose in _LIBXML2_RULES:
        match = pattern.fullmatch(rest)
        if match is not None:
            return SCHEMA_PREFIX + compose(match, subject, element)
    return f"{SCHEMA_PREFIX}{subject} ({kind})"


# --- xmlschema ---------------------------------------------------------------------------------


def xmlschema_reason(error: xmlschema.XMLSchemaValidationError, element: str | None) -> str:
    """Reason for one xmlschema error about `element` (its name, or None when unknown)."""
    subject = f"<{shown_name(element)}>" if element else "het bericht"
    if isinstance(error, xmlschema.XMLSchemaChildrenValidationError):
        expected = _expected(",".join(error.expected_tags))
        if error.invalid_tag is not None:
            child = shown_name(error.invalid_tag)
            return f"{SCHEMA_PREFIX}<{child}> is hier niet toegestaan{expected}"
        return f"{SCHEMA_PREFIX}in {subject} ontbreekt een element{expected}"
    validator = error.validator
    if isinstance(validator, XsdFacet):
        return SCHEMA_PREFIX + _facet_rule(validator, subject)
    if isinstance(validator, XsdSimpleType):
        type_name = validator.local_name or (
            validator.base_type.local_name if validator.base_type is not None else None
        )
        if type_name:
            return f"{SCHEMA_PREFIX}{subject} is geen geldige waarde van het type {type_name}"
        return f"{SCHEMA_PREFIX}{subject} is geen geldige waarde van zijn type"
    if isinstance(validator, XsdGroup) and error.reason and "character data" in error.reason:
        return f"{SCHEMA_PREFIX}{subject} mag geen tekst bevatten, alleen elementen"
    # Structural rules of elements and attributes (nillable, attribute not allowed, ...):
    # xmlschema names these by element and attribute names, never by a value.
    return f"{SCHEMA_PREFIX}{subject}: {error.reason}" if error.reason else SCHEMA_PREFIX + subject


def _facet_rule(facet: XsdFacet, subject: str) -> str:
    if isinstance(facet, XsdPatternFacets):
        return f"{subject} voldoet niet aan het patroon {' of '.join(facet.regexps)}"
    if isinstance(facet, XsdEnumerationFacets):
        allowed = ", ".join(str(v) for v in _iterable(facet.enumeration))
        return f"{subject} is niet een van de toegestane waarden ({allowed})"
    value = getattr(facet, "value", None)
    phrases: tuple[tuple[type[XsdFacet], str], ...] = (
        (XsdMaxLengthFacet, f"is langer dan {value} tekens"),
        (XsdMinLengthFacet, f"is korter dan {value} tekens"),
        (XsdLengthFacet, f"is niet precies {value} tekens lang"),
        (XsdMinInclusiveFacet, f"is kleiner dan het minimum {value}"),
        (XsdMaxInclusiveFacet, f"is groter dan het maximum {value}"),
        (XsdMinExclusiveFacet, f"moet groter zijn dan {value}"),
        (XsdMaxExclusiveFacet, f"moet kleiner zijn dan {value}"),
        (XsdTotalDigitsFacet, f"heeft meer dan {value} cijfers"),
        (XsdFractionDigitsFacet, f"heeft meer dan {value} cijfers achter de komma"),
    )
    for kind, phrase in phrases:
        if isinstance(facet, kind):
            return f"{subject} {phrase}"
    tag = facet.elem.tag if facet.elem is not None else "facet"
    return f"{subject} voldoet niet aan de regel {shown_name(str(tag))}"


def _iterable(value: Any) -> Iterable[Any]:
    return value if isinstance(value, (list, tuple)) else ()
