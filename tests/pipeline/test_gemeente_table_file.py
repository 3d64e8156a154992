"""Parsing and checking an RvIG Tabel 33 file (pure): every issue, with its line."""

from __future__ import annotations

import csv
import io
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from koppelpunt.pipeline.gemeenten import (
    COL_CODE,
    COL_EINDE,
    COL_INGANG,
    COL_NAAM,
    COL_NIEUW,
    Gemeente,
    decode_table_file,
    parse_gemeente_csv,
)

codes = st.integers(0, 9999).map(lambda n: f"{n:04d}")
days = st.dates(date(1900, 1, 1), date(2100, 12, 31))
names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(str.strip)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Gemeente]:
    keys = draw(st.lists(codes, min_size=2, max_size=30, unique=True))
    out: dict[str, Gemeente] = {}
    for code in keys:
        einde = draw(st.none() | days)
        nieuw = draw(st.none() | st.sampled_from(keys)) if einde is not None else None
        naam = draw(names)
        out[code] = Gemeente(code, naam.strip(), nieuw, draw(st.none() | days), einde)
    return out


def to_csv(gemeenten: dict[str, Gemeente]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow([COL_CODE, COL_NAAM, COL_NIEUW, COL_INGANG, COL_EINDE])
    for g in gemeenten.values():
        writer.writerow(
            [
                g.code,
                g.naam,
                g.nieuwe_code or "",
                g.ingang.strftime("%Y%m%d") if g.ingang else "",
                g.einde.strftime("%Y%m%d") if g.einde else "",
            ]
        )
    return buf.getvalue()


class TestParseGemeenteCsv:
    @given(tables())
    def test_round_trip(self, gemeenten: dict[str, Gemeente]) -> None:
        """Any well-formed table written as Tabel 33 CSV parses back to the same gemeenten."""
        table, issues = parse_gemeente_csv(to_csv(gemeenten))
        assert issues == []
        assert table is not None
        assert table.gemeenten == gemeenten

    @given(tables(), st.sampled_from(["12", "abcd", "03630"]))
    def test_a_bad_code_is_reported_on_its_line(
        self, gemeenten: dict[str, Gemeente], bad: str
    ) -> None:
        """Appending a row with a bad code: exactly that line is reported, no table."""
        text = to_csv(gemeenten) + f'"{bad}","X","","",""\n'
        table, issues = parse_gemeente_csv(text)
        assert table is None
        assert [(i.line, i.reason) for i in issues] == [
            (len(gemeenten) + 2, f"gemeentecode {bad!r} is not 4 digits")
        ]

    def test_nieuwe_code_needs_an_end_date(self) -> None:
        """A successor without datum einde is a contradiction in the file."""
        text = to_csv({"0001": Gemeente("0001", "A", None, None, None)})
        text += '"0002","B","0001","",""\n'
        _, issues = parse_gemeente_csv(text)
        assert [(i.line, i.reason) for i in issues] == [(3, "nieuwe code without datum einde")]

    def test_decode_utf16_and_utf8_bom(self) -> None:
        """UTF-16 with BOM (RvIG's own encoding) and UTF-8 with or without BOM decode alike."""
        text = "92.10 Gemeentecode\n0363\n"
        assert decode_table_file(text.encode("utf-16")) == text
        assert decode_table_file(text.encode("utf-8-sig")) == text
        assert decode_table_file(text.encode("utf-8")) == text
