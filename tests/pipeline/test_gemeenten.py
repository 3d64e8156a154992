"""The RvIG gemeente table: codes, herindelingen, successor chains."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from koppelpunt.errors import ConfigurationError
from koppelpunt.pipeline.gemeenten import GemeenteTable, normalise_code

TABLE = Path(__file__).resolve().parents[2] / "data" / "rvig-tabel33-gemeenten.csv"


@pytest.fixture(scope="module")
def table() -> GemeenteTable:
    return GemeenteTable.load(TABLE)


class TestGemeenteTable:
    def test_bundled_table_has_342_gemeenten_in_2024(self, table: GemeenteTable) -> None:
        """The bundled copy holds the 342 gemeenten of early 2024 (see its SOURCE note)."""
        assert len(table.active(date(2024, 6, 1))) == 342

    @pytest.mark.parametrize("code", ["GM0363", "gm0363", "0363"])
    def test_code_spellings(self, code: str) -> None:
        """GM0363, gm0363 and 0363 are the same gemeente."""
        assert normalise_code(code) == "0363"

    def test_active_code_resolves_to_itself(self, table: GemeenteTable) -> None:
        """Amsterdam is routed to Amsterdam."""
        assert table.resolve("0363", date(2027, 1, 1)) == "0363"

    @pytest.mark.parametrize("code", ["0000", "1999", "9998"])
    def test_no_gemeente(self, table: GemeenteTable, code: str) -> None:
        """Onbekend, RNI and unknown codes are no gemeente to route to."""
        assert table.resolve(code, date(2027, 1, 1)) is None

    def test_dissolved_code_follows_successor(self, table: GemeenteTable) -> None:
        """Appingedam (0003) merged into Eemsdelta (1979) on 2021-01-01."""
        assert table.resolve("0003", date(2020, 12, 31)) == "0003"
        assert table.resolve("0003", date(2021, 1, 1)) == "1979"

    def test_chain_of_two_herindelingen(self, table: GemeenteTable) -> None:
        """A code replaced twice is followed to the gemeente that exists now."""
        first = table.gemeenten["0001"]
        assert first.nieuwe_code is not None
        middle = table.gemeenten[first.nieuwe_code]
        assert middle.nieuwe_code is not None, "0001 is a two-step chain in the table"
        assert table.resolve("0001", date(2026, 1, 1)) == table.resolve(
            middle.nieuwe_code, date(2026, 1, 1)
        )
        assert table.resolve("0001", date(2026, 1, 1)) is not None

    def test_replaceable_by_another_file(self, tmp_path: Path) -> None:
        """A newer table with a future herindeling is data, not code."""
        f = tmp_path / "t33.csv"
        f.write_text(
            "92.10 Gemeentecode,92.11 Omschrijving,92.12 Nieuwe code,99.98 Datum ingang,"
            "99.99 Datum einde\n"
            '"0000","Onbekend","","",""\n'
            '"0100","Oud","0200","","20270101"\n'
            '"0200","Nieuw","","20270101",""\n',
            encoding="utf-8",
        )
        t = GemeenteTable.load(f)
        assert t.resolve("0100", date(2026, 12, 31)) == "0100"
        assert t.resolve("0100", date(2027, 1, 1)) == "0200"

    def test_broken_table_is_refused(self, tmp_path: Path) -> None:
        """A file without the RvIG columns is a configuration error."""
        f = tmp_path / "bad.csv"
        f.write_text("code,naam\n0363,Amsterdam\n", encoding="utf-8")
        with pytest.raises(ConfigurationError):
            GemeenteTable.load(f)
