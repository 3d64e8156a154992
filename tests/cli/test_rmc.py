"""`koppelpunt rmc import | list`: the packaged bijlage C until an import, conflicts, overrides."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.verwerkingenlog import list_lines

DATA = Path(__file__).resolve().parents[2] / "data"
PACKAGED = DATA / "rmc-regios-bijlage-c-2012.csv"

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    from koppelpunt.cli.main import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", database_url)
    return database_url


def logged_imports(url: str) -> int:
    """The verwerkingenlog lines of `rmc import` (an operator action)."""

    async def run() -> int:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                return len(await list_lines(session, name_prefix="beheer.rmc_import"))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def listed(*extra: str) -> dict:  # type: ignore[type-arg]
    code, out, err = invoke("rmc", "list", "--json", *extra)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


class TestList:
    def test_packaged_table_before_any_import(self, db: str) -> None:
        data = listed("--datum", "2024-06-01")
        assert data["bron"].endswith("rmc-regios-bijlage-c-2012.csv")
        assert len(data["regios"]) == 39
        regio21 = next(r for r in data["regios"] if r["rmcRegio"] == 21)
        codes = {g["gemeentecode"] for g in regio21["gemeenten"]}
        assert "GM0384" in codes and "GM0599" not in codes
        conflicts = {c["gemeentecode"]: c["rmcRegios"] for c in data["conflicten"]}
        assert conflicts["GM0363"] == [20, 21]
        assert set(conflicts) == {"GM0363", "GM0394", "GM0824", "GM1940", "GM1952", "GM1961"}
        assert data["zonderRegio"] == []
        placed = [g["gemeentecode"] for r in data["regios"] for g in r["gemeenten"]]
        assert len(placed) + len(conflicts) == 342  # every active gemeente on 2024-06-01

    def test_text_output(self, db: str) -> None:
        code, out, _ = invoke("rmc", "list", "--datum", "2024-06-01")
        assert code == 0
        assert "21\tAgglomeratie Amsterdam" in out
        assert "GM0363\tAmsterdam\tregio's 20, 21" in out
        assert "# uncovered (in no region): 0" in out


class TestImport:
    def test_broken_line_is_refused_with_its_number(self, db: str, tmp_path: Path) -> None:
        lines = PACKAGED.read_text(encoding="utf-8").splitlines()
        lines[99] = "17,Flevoland,Nergenshuizen"  # line 100 of the file
        path = tmp_path / "regios.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        code, _, err = invoke("rmc", "import", str(path))
        assert code == 1
        assert f"{path}:100: gemeente 'Nergenshuizen' is not in the gemeente table" in err
        assert "nothing imported" in err
        assert listed()["bron"].endswith("rmc-regios-bijlage-c-2012.csv")

    def test_broken_override_refuses_both(self, db: str, tmp_path: Path) -> None:
        overrides = tmp_path / "overrides.csv"
        overrides.write_text("gemeentecode,rmc_regio\nGM0363,21\nGM0394,77\n", encoding="utf-8")
        code, _, err = invoke("rmc", "import", str(PACKAGED), "--overrides", str(overrides))
        assert code == 1
        assert f"{overrides}:3: rmc_regio '77' is not a region" in err
        assert listed()["bron"].endswith("rmc-regios-bijlage-c-2012.csv")

    def test_overrides_settle_conflicts_and_newest_import_is_used(
        self, db: str, tmp_path: Path
    ) -> None:
        overrides = tmp_path / "overrides.csv"
        overrides.write_text(
            "gemeentecode,rmc_regio,toelichting\nGM0363,21,Weesp bij Amsterdam\n",
            encoding="utf-8",
        )
        code, out, err = invoke("rmc", "import", str(PACKAGED), "--overrides", str(overrides))
        assert code == 0, err
        assert "imported as region table 1" in out
        assert logged_imports(db) == 1
        data = listed("--datum", "2024-06-01")
        assert data["bron"].startswith("import 1")
        regio21 = next(r for r in data["regios"] if r["rmcRegio"] == 21)
        assert {"gemeentecode": "GM0363", "naam": "Amsterdam", "override": True} in regio21[
            "gemeenten"
        ]
        assert "GM0363" not in {c["gemeentecode"] for c in data["conflicten"]}
        again = invoke("rmc", "import", str(PACKAGED), "--overrides", str(overrides))
        assert again[0] == 0 and "already the one in use" in again[1]
        # Without the overrides it is another table: imported, and the conflict is back.
        assert "imported as region table 2" in invoke("rmc", "import", str(PACKAGED))[1]
        assert "GM0363" in {c["gemeentecode"] for c in listed()["conflicten"]}
