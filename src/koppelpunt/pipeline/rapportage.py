"""The RMC-effectrapportage numbers as pure values: periods, age groups, small-cell masking.

The studiejaar (verslagperiode) runs from 1 August to 31 July; a young person's age counts on
1 August at its start (Regeling regionale aanpak voortijdig schoolverlaten). Counts below the
threshold are shown as `<N`, so no cell points at one or a few people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

LEEFTIJDSGROEPEN = ("onder18", "18tot23", "23plus", "onbekend")
ONBEKEND = "onbekend"
_SCHOOLJAAR = re.compile(r"([0-9]{4})-([0-9]{4})")


@dataclass(frozen=True, slots=True)
class Verslagperiode:
    schooljaar: str
    start: date  # 1 August: also the day the age counts
    end: date  # 1 August a year later (exclusive)

    @property
    def last_day(self) -> date:
        return date(self.end.year, 7, 31)

    def born_after_for_under(self, years: int) -> date:
        """Born after this date: younger than `years` on 1 August (start)."""
        return date(self.start.year - years, 8, 1)


def parse_schooljaar(text: str) -> Verslagperiode:
    """'2026-2027' -> 1 Aug 2026 .. 1 Aug 2027; ValueError otherwise."""
    m = _SCHOOLJAAR.fullmatch(text.strip())
    if not m or int(m.group(2)) != int(m.group(1)) + 1 or int(m.group(1)) < 1900:
        raise ValueError(f"{text!r} is not a schooljaar like 2026-2027")
    first = int(m.group(1))
    return Verslagperiode(text.strip(), date(first, 8, 1), date(first + 1, 8, 1))


def leeftijdsgroep(geboortedatum: date | None, periode: Verslagperiode) -> str:
    """The age group on 1 August of the verslagperiode (the same bounds the SQL uses)."""
    if geboortedatum is None:
        return ONBEKEND
    if geboortedatum > periode.born_after_for_under(18):
        return "onder18"
    if geboortedatum > periode.born_after_for_under(23):
        return "18tot23"
    return "23plus"


@dataclass(frozen=True, slots=True)
class Count:
    """One aggregate row from the store: no person in it."""

    gemeente: str | None  # GMnnnn; None for the region total (each person counted once)
    type: str
    leeftijd: str
    signaleringen: int
    jongeren: int


def mask(value: int, min_cell: int) -> int | str:
    """A count, or `<min_cell` when it is 1..min_cell-1 (0 stays 0: nobody to point at)."""
    return f"<{min_cell}" if 0 < value < min_cell else value


def _cells(rows: Iterable[Count], types: Iterable[str], min_cell: int) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, int]]] = {
        t: {m: dict.fromkeys(LEEFTIJDSGROEPEN, 0) for m in ("signaleringen", "jongeren")}
        for t in types
    }
    for r in rows:
        cell = table.setdefault(
            r.type,
            {m: dict.fromkeys(LEEFTIJDSGROEPEN, 0) for m in ("signaleringen", "jongeren")},
        )
        cell["signaleringen"][r.leeftijd] += r.signaleringen
        cell["jongeren"][r.leeftijd] += r.jongeren
    return {
        t: {
            measure: {
                **{g: mask(v, min_cell) for g, v in groups.items()},
                # A person has one birth date, so the groups add up to the distinct total.
                "totaal": mask(sum(groups.values()), min_cell),
            }
            for measure, groups in table[t].items()
        }
        for t in sorted(table)
    }


def build_report(
    *,
    regio: int,
    regio_naam: str,
    periode: Verslagperiode,
    gemeenten: Mapping[str, str],  # GMnnnn -> naam, the region's gemeenten
    counts: Iterable[Count],
    types: Iterable[str],
    min_cell: int,
) -> dict[str, Any]:
    """The report as JSON-ready data: per gemeente and for the region, per type, counts of
    signaleringen and of distinct young people per age group; small cells masked."""
    rows = list(counts)
    types = sorted(set(types))
    return {
        "rmcRegio": regio,
        "naam": regio_naam,
        "schooljaar": periode.schooljaar,
        "periode": {"van": periode.start.isoformat(), "totEnMet": periode.last_day.isoformat()},
        "leeftijdOp": periode.start.isoformat(),
        "leeftijdsgroepen": list(LEEFTIJDSGROEPEN),
        "drempel": min_cell,
        "gemeenten": [
            {
                "gemeentecode": code,
                "naam": naam,
                "cijfers": _cells((r for r in rows if r.gemeente == code), types, min_cell),
            }
            for code, naam in sorted(gemeenten.items())
        ],
        "totaal": _cells((r for r in rows if r.gemeente is None), types, min_cell),
    }


def report_csv_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """The report as CSV rows: gemeente, naam, type, maat, then one column per age group."""
    header = ["gemeentecode", "naam", "type", "maat", *LEEFTIJDSGROEPEN, "totaal"]
    out = [header]
    parts = [(g["gemeentecode"], g["naam"], g["cijfers"]) for g in report["gemeenten"]]
    parts.append(("totaal", report["naam"], report["totaal"]))
    for code, naam, cijfers in parts:
        for t, measures in cijfers.items():
            for measure, cells in measures.items():
                out.append(
                    [
                        code,
                        naam,
                        t,
                        measure,
                        *(str(cells[k]) for k in (*LEEFTIJDSGROEPEN, "totaal")),
                    ]
                )
    return out
