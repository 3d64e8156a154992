"""The RvIG Landelijke Tabel 33 (gemeententabel) as a pure lookup value.

Every gemeentecode ever used, with its successor (`Nieuwe code`) and end date, so herindelingen
are data: a newer RvIG file replaces data/rvig-tabel33-gemeenten.csv (or is loaded with
`koppelpunt gemeenten import FILE`) without code changes.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from koppelpunt.errors import ConfigurationError

_CODE = re.compile(r"(?:GM)?([0-9]{4})", re.IGNORECASE)  # ASCII digits: \d also takes "٣"

COL_CODE = "92.10 Gemeentecode"
COL_NAAM = "92.11 Omschrijving"
COL_NIEUW = "92.12 Nieuwe code"
COL_INGANG = "99.98 Datum ingang"
COL_EINDE = "99.99 Datum einde"


def normalise_code(code: str) -> str | None:
    """'GM0363', 'gm0363' or '0363' -> '0363'; anything else -> None."""
    m = _CODE.fullmatch(code.strip())
    return m.group(1) if m else None


def cbs_code(code4: str) -> str:
    """'0363' -> 'GM0363' (the code used in topics and signaleringen)."""
    return f"GM{code4}"


@dataclass(frozen=True, slots=True)
class Gemeente:
    code: str  # 4 digits, as in the BRP
    naam: str
    nieuwe_code: str | None
    ingang: date | None
    einde: date | None

    def active_on(self, day: date) -> bool:
        return (self.ingang is None or self.ingang <= day) and (
            self.einde is None or day < self.einde
        )


def _parse_yyyymmdd(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    if len(value) != 8 or not value.isdigit():
        raise ValueError(f"{value!r} is not a date YYYYMMDD")
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYYMMDD") from None


@dataclass(frozen=True, slots=True)
class TableIssue:
    """One problem in a gemeente table file: 1-based line number (1 = header) and reason."""

    line: int
    reason: str


def decode_table_file(data: bytes) -> str:
    """The text of a gemeente table file: UTF-16 with BOM (as RvIG publishes it) or UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def parse_gemeente_csv(text: str) -> tuple[GemeenteTable | None, list[TableIssue]]:
    """Parse and check an RvIG Tabel 33 CSV, reporting every problem, not the first.

    Checks: the columns are there; each code is 4 digits and appears once; a name is given;
    dates are YYYYMMDD; a `Nieuwe code` is 4 digits, has an end date, and is itself in the
    table. Returns the table only when there is no issue.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = {COL_CODE, COL_NAAM, COL_NIEUW, COL_EINDE} - set(reader.fieldnames or [])
    if missing:
        return None, [TableIssue(1, f"missing columns: {sorted(missing)}")]
    issues: list[TableIssue] = []
    gemeenten: dict[str, Gemeente] = {}
    lines: dict[str, int] = {}
    for row in reader:
        lineno = reader.line_num
        code = (row.get(COL_CODE) or "").strip()
        nieuw = (row.get(COL_NIEUW) or "").strip() or None
        naam = (row.get(COL_NAAM) or "").strip()
        problems: list[str] = []
        if len(code) != 4 or not code.isdigit():
            problems.append(f"gemeentecode {code!r} is not 4 digits")
        elif code in gemeenten:
            problems.append(f"gemeentecode {code} also on line {lines[code]}")
        if not naam:
            problems.append("omschrijving is empty")
        if nieuw is not None and (len(nieuw) != 4 or not nieuw.isdigit()):
            problems.append(f"nieuwe code {nieuw!r} is not 4 digits")
        dates: dict[str, date | None] = {}
        for column in (COL_INGANG, COL_EINDE):
            try:
                dates[column] = _parse_yyyymmdd(row.get(column) or "")
            except ValueError as exc:
                problems.append(f"{column}: {exc}")
        if nieuw is not None and COL_EINDE in dates and dates[COL_EINDE] is None:
            problems.append("nieuwe code without datum einde")
        if problems:
            issues.extend(TableIssue(lineno, p) for p in problems)
            continue
        lines[code] = lineno
        gemeenten[code] = Gemeente(code, naam, nieuw, dates[COL_INGANG], dates[COL_EINDE])
    for code, gemeente in gemeenten.items():
        if gemeente.nieuwe_code is not None and gemeente.nieuwe_code not in gemeenten:
            issues.append(
                TableIssue(lines[code], f"nieuwe code {gemeente.nieuwe_code} is not in the table")
            )
    if not issues and len(gemeenten) < 2:
        issues.append(TableIssue(1, "gemeente table is empty"))
    if issues:
        return None, sorted(issues, key=lambda i: i.line)
    return GemeenteTable(gemeenten), []


@dataclass(frozen=True)
class GemeenteTable:
    gemeenten: dict[str, Gemeente]
    # Codes that exist in the table but are never a gemeente to route to (onbekend, RNI).
    geen_gemeente: frozenset[str] = frozenset({"0000", "1999"})

    @classmethod
    def from_csv_text(cls, text: str) -> GemeenteTable:
        """Parse an RvIG Tabel 33 CSV; raises ConfigurationError listing every problem."""
        table, issues = parse_gemeente_csv(text)
        if table is None:
            raise ConfigurationError(
                "gemeente table: " + "; ".join(f"line {i.line}: {i.reason}" for i in issues)
            )
        return table

    @classmethod
    def load(cls, path: Path) -> GemeenteTable:
        try:
            return cls.from_csv_text(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read gemeente table {path}: {exc}") from exc

    def get(self, code: str) -> Gemeente | None:
        code4 = normalise_code(code)
        return self.gemeenten.get(code4) if code4 else None

    def resolve(self, code: str, on: date) -> str | None:
        """The 4-digit code to route to on `on`, following herindelingen; None if none.

        A code that has ended on or before `on` is replaced by its successor, repeatedly (a
        code can be replaced twice). An ended code without successor, an unknown code, and the
        codes for onbekend (0000) and RNI (1999) give None.
        """
        code4 = normalise_code(code)
        seen: set[str] = set()
        while code4 is not None and code4 not in seen:
            seen.add(code4)
            gemeente = self.gemeenten.get(code4)
            if gemeente is None or code4 in self.geen_gemeente:
                return None
            if gemeente.einde is None or on < gemeente.einde:
                return code4
            code4 = gemeente.nieuwe_code
        return None

    def active(self, on: date) -> list[Gemeente]:
        """Gemeenten one can route to on `on` (excludes onbekend and RNI)."""
        return sorted(
            (
                g
                for g in self.gemeenten.values()
                if g.active_on(on) and g.code not in self.geen_gemeente
            ),
            key=lambda g: g.code,
        )

    def status(self, code: str, on: date) -> str:
        """A line for humans: 'actief', 'opgeheven per D → CODE NAAM', 'per D', …"""
        gemeente = self.gemeenten[code]
        if code in self.geen_gemeente:
            return "geen gemeente (niet routeerbaar)"
        if gemeente.ingang is not None and on < gemeente.ingang:
            return f"nieuw per {gemeente.ingang.isoformat()}"
        if gemeente.einde is None or on < gemeente.einde:
            if gemeente.einde is not None:
                return f"actief tot {gemeente.einde.isoformat()}"
            return "actief"
        text = f"opgeheven per {gemeente.einde.isoformat()}"
        successor = self.resolve(code, on)
        if successor is not None:
            text += f" → {successor} {self.gemeenten[successor].naam}"
        return text

    def opgeheven(self, code: str, on: date) -> bool:
        gemeente = self.gemeenten[code]
        return gemeente.einde is not None and gemeente.einde <= on
