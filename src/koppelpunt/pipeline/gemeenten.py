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

_CODE = re.compile(r"^(?:GM)?(\d{4})$", re.IGNORECASE)

COL_CODE = "92.10 Gemeentecode"
COL_NAAM = "92.11 Omschrijving"
COL_NIEUW = "92.12 Nieuwe code"
COL_INGANG = "99.98 Datum ingang"
COL_EINDE = "99.99 Datum einde"


def normalise_code(code: str) -> str | None:
    """'GM0363', 'gm0363' or '0363' -> '0363'; anything else -> None."""
    m = _CODE.match(code.strip())
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
    return date(int(value[0:4]), int(value[4:6]), int(value[6:8]))


@dataclass(frozen=True)
class GemeenteTable:
    gemeenten: dict[str, Gemeente]
    # Codes that exist in the table but are never a gemeente to route to (onbekend, RNI).
    geen_gemeente: frozenset[str] = frozenset({"0000", "1999"})

    @classmethod
    def from_csv_text(cls, text: str) -> GemeenteTable:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        missing = {COL_CODE, COL_NAAM, COL_NIEUW, COL_EINDE} - set(reader.fieldnames or [])
        if missing:
            raise ConfigurationError(f"gemeente table lacks columns: {sorted(missing)}")
        gemeenten: dict[str, Gemeente] = {}
        for lineno, row in enumerate(reader, start=2):
            try:
                code = row[COL_CODE].strip()
                if len(code) != 4 or not code.isdigit():
                    raise ValueError(f"gemeentecode {code!r}")
                nieuw = row[COL_NIEUW].strip() or None
                gemeenten[code] = Gemeente(
                    code=code,
                    naam=row[COL_NAAM].strip(),
                    nieuwe_code=nieuw,
                    ingang=_parse_yyyymmdd(row.get(COL_INGANG) or ""),
                    einde=_parse_yyyymmdd(row[COL_EINDE]),
                )
            except (ValueError, KeyError) as exc:
                raise ConfigurationError(f"gemeente table line {lineno}: {exc}") from exc
        if len(gemeenten) < 2:
            raise ConfigurationError("gemeente table is empty")
        return cls(gemeenten)

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
