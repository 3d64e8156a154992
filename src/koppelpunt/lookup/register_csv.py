"""Reading a woongemeente register CSV (`bsn,gemeentecode[,geldig_vanaf]`), row by row.

Pure: yields valid rows and line-numbered errors, so the CLI can import what is valid, report
what is not, and show progress on files of millions of lines without loading them whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from koppelpunt.pipeline.checks import is_valid_bsn
from koppelpunt.pipeline.gemeenten import GemeenteTable, normalise_code


@dataclass(frozen=True, slots=True)
class RegisterRow:
    bsn: str
    gemeentecode: str  # 4 digits, as in the BRP
    geldig_vanaf: date | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


def read_register(
    lines: Iterable[str], gemeenten: GemeenteTable
) -> Iterator[RegisterRow | RowError]:
    reader = csv.DictReader(lines)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "bsn" not in fields or "gemeentecode" not in fields:
        yield RowError(1, "header must be bsn,gemeentecode[,geldig_vanaf]")
        return
    reader.fieldnames = fields
    for row in reader:
        line = reader.line_num
        bsn = (row.get("bsn") or "").strip()
        code = (row.get("gemeentecode") or "").strip()
        vanaf = (row.get("geldig_vanaf") or "").strip()
        if not is_valid_bsn(bsn):
            yield RowError(line, "bsn is not 9 digits passing the elfproef")
            continue
        code4 = normalise_code(code)
        if code4 is None or gemeenten.get(code4) is None:
            yield RowError(line, f"gemeentecode {code!r} is not in the gemeente table")
            continue
        geldig_vanaf: date | None = None
        if vanaf:
            try:
                geldig_vanaf = date.fromisoformat(vanaf)
            except ValueError:
                yield RowError(line, f"geldig_vanaf {vanaf!r} is not a date (YYYY-MM-DD)")
                continue
        yield RegisterRow(bsn, code4, geldig_vanaf)
