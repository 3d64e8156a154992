"""The RMC-regio table (bijlage C, 2012): names to codes, successor chains, conflicts."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rmc import (
    ALIASES,
    assign_regions,
    chain_regions,
    parse_overrides_csv,
    parse_rmc_csv,
)

DATA = Path(__file__).resolve().parents[2] / "data"
TABLE = GemeenteTable.load(DATA / "rvig-tabel33-gemeenten.csv")
RMC_TEXT = (DATA / "rmc-regios-bijlage-c-2012.csv").read_text(encoding="utf-8")
TODAY = date(2026, 12, 5)

# The mergers across a region border up to the packaged Tabel 33 (early 2024), worked out by
# hand from the chains: Weesp (regio 20) → Amsterdam (21); Haarlemmerliede (21) →
# Haarlemmermeer (25); Haaren (35) → Oisterwijk (36); Skarsterlân/Gaasterlân-Sleat/Lemsterland
# (5) and Boarnsterhim (6) → De Fryske Marren; Slochteren (1) + Menterwolde/Hoogezand-
# Sappemeer (3) → Midden-Groningen; Zederik/Leerdam (30) + Vianen (19) → Vijfheerenlanden.
EXPECTED_CONFLICTS = {
    "0363": [20, 21],
    "0394": [21, 25],
    "0824": [35, 36],
    "1940": [5, 6],
    "1952": [1, 3],
    "1961": [19, 30],
}


def rmc_table():  # type: ignore[no-untyped-def]
    table, issues = parse_rmc_csv(RMC_TEXT, TABLE)
    assert issues == []
    assert table is not None
    return table


class TestRealTable:
    def test_all_416_names_resolve_in_39_regions(self) -> None:
        table = rmc_table()
        assert len(table.entries) == 416
        assert sorted(table.regios) == list(range(1, 40))
        assert table.regios[21] == "Agglomeratie Amsterdam"

    def test_in_2012_every_gemeente_is_in_exactly_one_region(self) -> None:
        a = assign_regions(rmc_table(), TABLE, date(2012, 8, 1))
        assert a.conflicts == {} and a.uncovered == []
        assert sum(len(c) for c in a.members.values()) == len(TABLE.active(date(2012, 8, 1)))

    def test_today_every_active_gemeente_is_placed_or_listed(self) -> None:
        a = assign_regions(rmc_table(), TABLE, TODAY)
        placed = [code for codes in a.members.values() for code in codes]
        assert len(placed) == len(set(placed))
        listed = set(placed) | set(a.conflicts) | set(a.uncovered)
        assert listed == {g.code for g in TABLE.active(TODAY)}
        assert not set(placed) & set(a.conflicts)

    def test_conflicts_are_exactly_the_cross_border_chains(self) -> None:
        a = assign_regions(rmc_table(), TABLE, TODAY)
        assert a.conflicts == EXPECTED_CONFLICTS
        reached = chain_regions(rmc_table(), TABLE, TODAY)
        assert {c for c, r in reached.items() if len(r) > 1} == set(EXPECTED_CONFLICTS)

    def test_region_21_today(self) -> None:
        a = assign_regions(rmc_table(), TABLE, TODAY, {"0363": 21})
        assert "0384" in a.members[21]  # Diemen
        assert "0363" in a.members[21] and "0363" not in a.conflicts
        assert a.overridden == {"0363": 21}
        assert "0599" not in a.members[21]  # Rotterdam


class TestAliases:
    @pytest.mark.parametrize(("name", "code"), sorted(ALIASES.items()))
    def test_alias_names_a_code_whose_tabel33_name_differs(self, name: str, code: str) -> None:
        assert code in TABLE.gemeenten
        assert TABLE.gemeenten[code].naam != name

    def test_every_alias_is_used_by_the_regulation(self) -> None:
        names = {row["gemeente_naam_in_regeling"] for row in csv.DictReader(io.StringIO(RMC_TEXT))}
        assert set(ALIASES) <= names

    def test_the_typo_and_the_two_bergens(self) -> None:
        table = rmc_table()
        by = {(e.regio, e.naam): e.code for e in table.entries}
        assert by[(29, "Hellevloetsluis")] == "0530"
        assert by[(24, "Bergen (NH)")] == "0373"
        assert by[(38, "Bergen")] == "0893"


HEADER = "rmc_regio,rmc_regio_naam,gemeente_naam_in_regeling\n"


class TestParser:
    def test_every_broken_line_is_reported_with_its_number(self) -> None:
        text = HEADER + "1,Een,Haarlem\nx,Een,Haarlem\n2,Twee,Nergenshuizen\n1,Anders,Diemen\n"
        table, issues = parse_rmc_csv(text, TABLE)
        assert table is None
        assert [i.line for i in issues] == [3, 4, 5]
        assert "not a number" in issues[0].reason
        assert "Nergenshuizen" in issues[1].reason
        assert "also named" in issues[2].reason

    def test_a_gemeentecode_column_skips_the_name(self) -> None:
        text = "rmc_regio,rmc_regio_naam,gemeente_naam_in_regeling,gemeentecode\n1,Een,,GM0363\n"
        table, issues = parse_rmc_csv(text, TABLE)
        assert issues == [] and table is not None
        assert table.entries[0].code == "0363"

    @given(st.text(max_size=200))
    def test_arbitrary_text_never_raises(self, text: str) -> None:
        table, issues = parse_rmc_csv(text, TABLE)
        assert (table is None) == bool(issues)
        assert all(i.line >= 1 for i in issues)

    @given(
        st.lists(
            st.tuples(st.integers(1, 39), st.sampled_from(sorted(TABLE.gemeenten))),
            min_size=1,
            max_size=20,
            unique=True,
        )
    )
    def test_written_rows_parse_back(self, rows: list[tuple[int, str]]) -> None:
        text = "rmc_regio,rmc_regio_naam,gemeente_naam_in_regeling,gemeentecode\n" + "".join(
            f"{r},R{r},,{c}\n" for r, c in rows
        )
        table, issues = parse_rmc_csv(text, TABLE)
        assert issues == [] and table is not None
        assert [(e.regio, e.code) for e in table.entries] == rows


class TestOverrides:
    def test_override_settles_a_conflict(self) -> None:
        overrides, issues = parse_overrides_csv(
            "gemeentecode,rmc_regio,toelichting\nGM1961,30,besluit RMC 2019\n",
            TABLE,
            rmc_table().regios,
        )
        assert issues == [] and overrides == {"1961": 30}
        a = assign_regions(rmc_table(), TABLE, TODAY, overrides)
        assert "1961" in a.members[30] and "1961" not in a.conflicts

    def test_bad_override_lines(self) -> None:
        text = "gemeentecode,rmc_regio\nGM1961,30\n1961,19\nGM9998,1\nGM0363,40\n"
        overrides, issues = parse_overrides_csv(text, TABLE, rmc_table().regios)
        assert overrides is None
        assert [i.line for i in issues] == [3, 4, 5]


class TestSyncPlan:
    def test_joined_granted_left_revoked_other_region_kept(self) -> None:
        from koppelpunt.pipeline.rmc import plan_region_sync

        a = assign_regions(rmc_table(), TABLE, TODAY, {"0363": 21})
        region21 = tuple(f"GM{c}" for c in a.members[21])
        before = (*(c for c in region21 if c != "GM0384"), "GM9999")
        granted = {("bureau", 21): before, ("bureau", 20): ("GM0363",)}
        changes = {(c.naam, c.regio): c for c in plan_region_sync(granted, a)}
        assert changes[("bureau", 21)].grant == ("GM0384",)
        assert changes[("bureau", 21)].revoke == ("GM9999",)
        # GM0363 left regio 20 (override to 21) but the bureau still holds it through 21.
        assert changes[("bureau", 20)].revoke == ()
        assert plan_region_sync({("b", 21): region21}, a) == []
