"""The hostile-input corpus: shapes that cost a validator more than their size suggests.

Small representatives are files in tests/cases (`<name>.xml` + `<name>.expected.yaml`, with
`status` and `max_seconds`); the large ones, up to the 10 MiB body limit, are built here by code.
Each has the status the server must answer and a time bound for that answer on the real server
(tests/api/test_hostile_server.py), measured while a health check runs beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from koppelpunt.model import Soort

CASES_DIR = Path(__file__).resolve().parent / "cases"
# Generated bodies stay just below the default KOPPELPUNT_MAX_BODY_BYTES (10 MiB).
LIMIT = 10 * 1024 * 1024 - 64 * 1024

_PROGNOSE_HEAD = (
    '<prognoses xmlns="urn:vva:prognose:1"{root}>\n<berichtId>hostile-1</berichtId>\n'
    "<verzonden>2027-01-15T10:00:00+01:00</verzonden>\n<school><brin>25LX</brin></school>\n"
    "<schooljaar>2026-2027</schooljaar>\n"
)
_LEERLING = (
    "<leerling{attributes}><bsn>999993653</bsn><geboortedatum>2010-05-13</geboortedatum>"
    "<onderwijssoort>vmbo-tl</onderwijssoort>{extra}</leerling>\n"
)
_AANMELDSTATUS_HEAD = (
    '<aanmeldstatussen xmlns="urn:vva:aanmeldstatus:1">\n<berichtId>hostile-1</berichtId>\n'
    "<verzonden>2027-01-15T10:00:00+01:00</verzonden>\n"
)
_BAD_AANMELDING = (
    "<aanmelding><aanmeldingId> </aanmeldingId><bsn>x</bsn><geboortedatum>x</geboortedatum>"
    "<instelling><brin>x</brin></instelling><opleiding><crebo>x</crebo><niveau>x</niveau>"
    "<leerweg>x</leerweg></opleiding><status>x</status><statusdatum>x</statusdatum>"
    "<hoogsteDiploma>x</hoogsteDiploma><latendeSchool><brin>x</brin></latendeSchool>"
    "</aanmelding>\n"
)


def prognose(records: str = "", *, root: str = "", leerling: str = "") -> bytes:
    """A prognose around `records` (default: one valid leerling, with `leerling` inside it)."""
    body = records or _LEERLING.format(attributes="", extra=leerling)
    return (_PROGNOSE_HEAD.format(root=root) + body + "</prognoses>").encode()


def aanmeldstatus(records: str) -> bytes:
    return (_AANMELDSTATUS_HEAD + records + "</aanmeldstatussen>").encode()


def attributes(count: int, name: str = "a") -> str:
    return "".join(f' {name}{i}="1"' for i in range(count))


def declarations(count: int, prefix: str = "p") -> str:
    return "".join(f' xmlns:{prefix}{i}="urn:x:{i}"' for i in range(count))


def _fill(unit: str, fixed: int) -> int:
    """How many `unit`s fit beside `fixed` bytes in a body within LIMIT."""
    return (LIMIT - fixed) // len(unit)


# libxml2 refuses a start tag over 10,000,000 bytes by itself: one tag stays below that.
_TAG = 9_500_000


def _in_one_tag(unit: str) -> int:
    return _TAG // len(unit)


@dataclass(frozen=True)
class Hostile:
    """One hostile message: how to build it, what to answer and how soon."""

    name: str
    soort: Soort
    build: Callable[[], bytes]
    status: int = 400
    max_seconds: float = 15.0


GENERATED: tuple[Hostile, ...] = (
    Hostile("root-attributes-100k", Soort.PROGNOSE, lambda: prognose(root=attributes(100_000))),
    Hostile(
        "root-attributes-max",
        Soort.PROGNOSE,
        lambda: prognose(root=attributes(_in_one_tag(' a100000="1"'))),
    ),
    Hostile(
        "record-attributes-max",
        Soort.PROGNOSE,
        lambda: prognose(
            _LEERLING.format(attributes=attributes(_in_one_tag(' a100000="1"')), extra="")
        ),
    ),
    Hostile(
        "record-elements-max",
        Soort.PROGNOSE,
        lambda: prognose(leerling="<x/>" * _fill("<x/>", 1_000)),
    ),
    Hostile(
        "root-elements-max",
        Soort.PROGNOSE,
        lambda: prognose(_LEERLING.format(attributes="", extra="") + "<x/>" * _fill("<x/>", 1_000)),
    ),
    Hostile(
        "every-element-an-attribute",
        Soort.AANMELDSTATUS,
        lambda: aanmeldstatus("<x a=''/>" * _fill("<x a=''/>", 1_000)),
    ),
    Hostile(
        "records-full-of-wrong-elements",
        Soort.AANMELDSTATUS,
        lambda: aanmeldstatus(
            ("<aanmelding>" + "<bsn>x</bsn>" * 62 + "</aanmelding>\n")
            * _fill("<aanmelding>" + "<bsn>x</bsn>" * 62 + "</aanmelding>\n", 1_000)
        ),
    ),
    Hostile(
        "every-field-invalid",
        Soort.AANMELDSTATUS,
        lambda: aanmeldstatus(_BAD_AANMELDING * _fill(_BAD_AANMELDING, 1_000)),
    ),
    Hostile(
        "long-element-names",
        Soort.PROGNOSE,
        lambda: prognose(leerling=f"<{'x' * 49_000}/>" * _fill(f"<{'x' * 49_000}/>", 1_000)),
    ),
    Hostile(
        "long-attribute-names",
        Soort.PROGNOSE,
        lambda: prognose(
            _LEERLING.format(
                attributes=attributes(_in_one_tag(f' {"y" * 40_000}100="1"'), "y" * 40_000),
                extra="",
            )
        ),
    ),
    Hostile(
        "root-namespace-declarations-max",
        Soort.PROGNOSE,
        lambda: prognose(root=declarations(_in_one_tag(' xmlns:p100000="urn:x:100000"'))),
    ),
    Hostile(
        "namespace-declarations-on-every-record",
        Soort.PROGNOSE,
        lambda: prognose(
            _LEERLING.format(attributes=declarations(17), extra="")
            * _fill(_LEERLING.format(attributes=declarations(17), extra=""), 1_000)
        ),
    ),
)


@dataclass(frozen=True)
class CorpusCase:
    """A file of tests/cases with its expected outcome."""

    name: str
    body: bytes
    expected: dict[str, Any]

    @property
    def soort(self) -> Soort:
        return Soort(self.expected["soort"])


def corpus() -> list[CorpusCase]:
    """Every tests/cases message with its .expected.yaml."""
    cases = []
    for expected_file in sorted(CASES_DIR.glob("*.expected.yaml")):
        expected: dict[str, Any] = yaml.safe_load(expected_file.read_text())
        name = expected_file.name.removesuffix(".expected.yaml")
        body = (CASES_DIR / expected.get("xml", f"{name}.xml")).read_bytes()
        cases.append(CorpusCase(name, body, expected))
    return cases


def timed_corpus() -> list[Hostile]:
    """The corpus files that carry a status and a time bound, as Hostile cases."""
    return [
        Hostile(
            c.name,
            c.soort,
            lambda body=c.body: body,  # type: ignore[misc]
            status=c.expected["status"],
            max_seconds=float(c.expected["max_seconds"]),
        )
        for c in corpus()
        if "max_seconds" in c.expected
    ]
