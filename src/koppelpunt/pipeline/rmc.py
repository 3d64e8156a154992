"""The RMC-regio's (Regeling regionale aanpak voortijdig schoolverlaten, bijlage C) as pure values.

A region table lists, per region, the gemeenten as the regulation names them. Each name is
mapped to its RvIG Tabel 33 code: through the explicit alias list below where the regulation
spells it differently, otherwise by the exact name (a name that matches no code, or several, is
an error in the file, never a guess). Which gemeenten of today belong to a region then follows
from the successor chains of the gemeente table: a gemeente belongs to every region one of its
predecessors was named in. A gemeente reached from two regions (a merger across a region
border) is a conflict, settled only by an operator override; an active gemeente reached from
none is uncovered. Nothing here reads a file or a database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from koppelpunt.pipeline.gemeenten import GemeenteTable, TableIssue, normalise_code

COL_REGIO = "rmc_regio"
COL_REGIO_NAAM = "rmc_regio_naam"
COL_NAAM = "gemeente_naam_in_regeling"
COL_CODE = "gemeentecode"  # optional: a newer table that gives codes needs no name mapping

COL_OVERRIDE_CODE = "gemeentecode"
COL_OVERRIDE_REGIO = "rmc_regio"
COL_OVERRIDE_TOELICHTING = "toelichting"

# Names in bijlage C (2012) that differ from the RvIG Tabel 33 spelling -> Tabel 33 code.
# Checked one by one against Tabel 33; tests/pipeline/test_rmc.py keeps each entry honest
# (the code exists and its Tabel 33 name is not the regulation's name).
ALIASES: Mapping[str, str] = {
    "Het Bildt": "0063",  # het Bildt
    "Kollumerland c.a.": "0079",  # Kollumerland en Nieuwkruisland
    "Súdwest Fryslân": "1900",  # Súdwest-Fryslân
    "Tytjerksteradiel": "0737",  # Tytsjerksteradiel (the Frisian name since 1989)
    "Hengelo(O)": "0164",  # Hengelo (O)
    "Millingen a.d. Rijn": "0265",  # Millingen aan de Rijn
    "Noord-Oostpolder": "0171",  # Noordoostpolder
    "Edam/Volendam": "0385",  # Edam-Volendam
    "Haarlemmerliede c.a.": "0393",  # Haarlemmerliede en Spaarnwoude
    "’s-Gravenhage": "0518",  # 's-Gravenhage (typographic apostrophe in the regulation)
    "Hellevloetsluis": "0530",  # Hellevoetsluis: a typo in the regulation
    "Hendrik Ido Ambacht": "0531",  # Hendrik-Ido-Ambacht
    "Nieuw Lekkerland": "0571",  # Nieuw-Lekkerland
    "Oud Beijerland": "0584",  # Oud-Beijerland
    "Baarle Nassau": "0744",  # Baarle-Nassau
    "’s-Hertogenbosch": "0796",  # 's-Hertogenbosch
    "Mill en St.Hubert": "0815",  # Mill en Sint Hubert
    "St. Michielsgestel": "0845",  # Sint-Michielsgestel
    "St. Oedenrode": "0846",  # Sint-Oedenrode
    "Nuenen c.a.": "0820",  # Nuenen, Gerwen en Nederwetten
    "Bergen": "0893",  # Bergen (L), in regio 38; Bergen (NH) is named so in regio 24
    "St. Anthonis": "1702",  # Sint Anthonis (code 1691 of the same name ended in 1995)
    "Bergeyk": "1724",  # Bergeijk (code 0749, spelled Bergeyk, ended in 1999)
}


@dataclass(frozen=True, slots=True)
class RmcEntry:
    """One line of a region table: a gemeente named in a region, with its Tabel 33 code."""

    regio: int
    naam: str
    code: str
    line: int


@dataclass(frozen=True)
class RmcTable:
    regios: dict[int, str]  # number -> name
    entries: tuple[RmcEntry, ...]


def _code_for_name(name: str, by_name: Mapping[str, list[str]]) -> tuple[str | None, str | None]:
    """(code, None) or (None, reason)."""
    if name in ALIASES:
        return ALIASES[name], None
    codes = by_name.get(name, [])
    if not codes:
        return None, f"gemeente {name!r} is not in the gemeente table (and has no alias)"
    if len(codes) > 1:
        return None, f"gemeente {name!r} is ambiguous ({', '.join(codes)}); give its gemeentecode"
    return codes[0], None


def parse_rmc_csv(text: str, gemeenten: GemeenteTable) -> tuple[RmcTable | None, list[TableIssue]]:
    """Like _parse_rmc_csv, but a file that is not CSV at all is an issue too, not an error."""
    try:
        return _parse_rmc_csv(text, gemeenten)
    except csv.Error as exc:
        return None, [TableIssue(1, f"not a CSV file: {exc}")]


def _parse_rmc_csv(text: str, gemeenten: GemeenteTable) -> tuple[RmcTable | None, list[TableIssue]]:
    """Parse and check a region table, reporting every problem with its line (1 = header).

    Columns `rmc_regio` (a positive number), `rmc_regio_naam`, `gemeente_naam_in_regeling`,
    and optionally `gemeentecode` (4 digits or GMnnnn; when given, the name is not mapped).
    A region has one name; a gemeente is named once per region.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    missing = {COL_REGIO, COL_REGIO_NAAM, COL_NAAM} - set(reader.fieldnames or [])
    if missing:
        return None, [TableIssue(1, f"missing columns: {sorted(missing)}")]
    by_name: dict[str, list[str]] = {}
    for g in gemeenten.gemeenten.values():
        by_name.setdefault(g.naam, []).append(g.code)
    issues: list[TableIssue] = []
    regios: dict[int, str] = {}
    entries: list[RmcEntry] = []
    seen: dict[tuple[int, str], int] = {}
    for row in reader:
        lineno = reader.line_num
        if None in row:
            issues.append(TableIssue(lineno, "more fields than columns"))
            continue
        regio_text = (row.get(COL_REGIO) or "").strip()
        regio_naam = (row.get(COL_REGIO_NAAM) or "").strip()
        naam = (row.get(COL_NAAM) or "").strip()
        code_text = (row.get(COL_CODE) or "").strip()
        problems: list[str] = []
        regio: int | None = None
        if regio_text.isascii() and regio_text.isdigit() and 0 < int(regio_text) < 1000:
            regio = int(regio_text)
        else:
            problems.append(f"rmc_regio {regio_text!r} is not a number 1-999")
        if not regio_naam:
            problems.append("rmc_regio_naam is empty")
        elif regio is not None and regios.get(regio, regio_naam) != regio_naam:
            problems.append(f"regio {regio} is also named {regios[regio]!r}")
        if not naam and not code_text:
            problems.append("gemeente_naam_in_regeling is empty")
        code: str | None = None
        if code_text:
            code = normalise_code(code_text)
            if code is None:
                problems.append(f"gemeentecode {code_text!r} is not 4 digits")
        elif naam:
            code, reason = _code_for_name(naam, by_name)
            if reason:
                problems.append(reason)
        if code is not None and code not in gemeenten.gemeenten:
            problems.append(f"gemeentecode {code} is not in the gemeente table")
        elif code is not None and regio is not None and (regio, code) in seen:
            problems.append(f"gemeente {code} also in regio {regio} on line {seen[(regio, code)]}")
        if problems or regio is None or code is None:
            issues.extend(TableIssue(lineno, p) for p in problems)
            continue
        regios.setdefault(regio, regio_naam)
        seen[(regio, code)] = lineno
        entries.append(RmcEntry(regio, naam or gemeenten.gemeenten[code].naam, code, lineno))
    if not issues and not entries:
        issues.append(TableIssue(1, "region table is empty"))
    if issues:
        return None, issues
    return RmcTable(regios, tuple(entries)), []


def parse_overrides_csv(
    text: str, gemeenten: GemeenteTable, regios: Mapping[int, str]
) -> tuple[dict[str, int] | None, list[TableIssue]]:
    """Like _parse_overrides_csv, but a file that is not CSV at all is an issue, not an error."""
    try:
        return _parse_overrides_csv(text, gemeenten, regios)
    except csv.Error as exc:
        return None, [TableIssue(1, f"not a CSV file: {exc}")]


def _parse_overrides_csv(
    text: str, gemeenten: GemeenteTable, regios: Mapping[int, str]
) -> tuple[dict[str, int] | None, list[TableIssue]]:
    """Parse an override file: `gemeentecode,rmc_regio[,toelichting]`, one gemeente per line.

    Each line puts a gemeente (4 digits or GMnnnn, in the gemeente table) in one region of the
    region table, whatever its successor chain says. Returns {code: regio} when there is no issue.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    missing = {COL_OVERRIDE_CODE, COL_OVERRIDE_REGIO} - set(reader.fieldnames or [])
    if missing:
        return None, [TableIssue(1, f"missing columns: {sorted(missing)}")]
    issues: list[TableIssue] = []
    overrides: dict[str, int] = {}
    lines: dict[str, int] = {}
    for row in reader:
        lineno = reader.line_num
        code_text = (row.get(COL_OVERRIDE_CODE) or "").strip()
        regio_text = (row.get(COL_OVERRIDE_REGIO) or "").strip()
        code = normalise_code(code_text)
        problems: list[str] = []
        if code is None:
            problems.append(f"gemeentecode {code_text!r} is not 4 digits or GMnnnn")
        elif code not in gemeenten.gemeenten:
            problems.append(f"gemeentecode {code} is not in the gemeente table")
        elif code in overrides:
            problems.append(f"gemeentecode {code} also on line {lines[code]}")
        if not (regio_text.isascii() and regio_text.isdigit() and int(regio_text) in regios):
            problems.append(f"rmc_regio {regio_text!r} is not a region of the region table")
        if problems or code is None:
            issues.extend(TableIssue(lineno, p) for p in problems)
            continue
        overrides[code] = int(regio_text)
        lines[code] = lineno
    if issues:
        return None, issues
    return overrides, []


@dataclass(frozen=True)
class RegionAssignment:
    """Where each active gemeente belongs on one date."""

    on: date
    regios: dict[int, str]
    members: dict[int, list[str]]  # regio -> sorted 4-digit codes (conflicts excluded)
    conflicts: dict[str, list[int]]  # code -> the regions its predecessors were named in
    uncovered: list[str]
    overridden: dict[str, int] = field(default_factory=dict)  # code -> regio, overrides applied

    def regio_of(self, code: str) -> int | None:
        for regio, codes in self.members.items():
            if code in codes:
                return regio
        return None


def chain_regions(table: RmcTable, gemeenten: GemeenteTable, on: date) -> dict[str, set[int]]:
    """For each gemeente of `on`, the regions in which one of its predecessors (or itself) is
    named: the end of each named code's successor chain on `on`."""
    reached: dict[str, set[int]] = {}
    for entry in table.entries:
        target = gemeenten.resolve(entry.code, on)
        if target is not None:
            reached.setdefault(target, set()).add(entry.regio)
    return reached


def assign_regions(
    table: RmcTable,
    gemeenten: GemeenteTable,
    on: date,
    overrides: Mapping[str, int] | None = None,
) -> RegionAssignment:
    """Each gemeente active on `on` in exactly one region, or listed as conflict/uncovered."""
    overrides = overrides or {}
    reached = chain_regions(table, gemeenten, on)
    members: dict[int, list[str]] = {regio: [] for regio in table.regios}
    conflicts: dict[str, list[int]] = {}
    uncovered: list[str] = []
    overridden: dict[str, int] = {}
    for g in gemeenten.active(on):
        if g.code in overrides:
            members[overrides[g.code]].append(g.code)
            overridden[g.code] = overrides[g.code]
            continue
        regions = reached.get(g.code, set())
        if len(regions) == 1:
            members[next(iter(regions))].append(g.code)
        elif regions:
            conflicts[g.code] = sorted(regions)
        else:
            uncovered.append(g.code)
    return RegionAssignment(on, dict(table.regios), members, conflicts, uncovered, overridden)


def region_codes(assignment: RegionAssignment, regio: int) -> list[str]:
    """The topics' gemeentecodes (GMnnnn) of a region on the assignment's date."""
    return [f"GM{code}" for code in assignment.members.get(regio, [])]


@dataclass(frozen=True, slots=True)
class SyncChange:
    """What `access sync` does for one recorded region grant."""

    naam: str
    regio: int
    grant: tuple[str, ...]  # GMnnnn now in the region and not yet granted through it
    revoke: tuple[str, ...]  # GMnnnn granted through it that left, not covered otherwise
    now: tuple[str, ...]  # the region's gemeenten to record after the change


def plan_region_sync(
    granted: Mapping[tuple[str, int], tuple[str, ...]], assignment: RegionAssignment
) -> list[SyncChange]:
    """For each recorded (name, region) grant: the gemeenten to grant and to revoke so the
    principal reads exactly the region's gemeenten of the assignment's date. A gemeente that
    left one region but is in another region the same principal holds is not revoked."""
    covered: dict[str, set[str]] = {}
    for naam, regio in granted:
        covered.setdefault(naam, set()).update(region_codes(assignment, regio))
    changes: list[SyncChange] = []
    for (naam, regio), before in sorted(granted.items()):
        now = region_codes(assignment, regio)
        add = tuple(sorted(set(now) - set(before)))
        remove = tuple(sorted(set(before) - set(now) - covered[naam]))
        if add or remove or set(before) != set(now):
            changes.append(SyncChange(naam, regio, add, remove, tuple(sorted(now))))
    return changes
