"""`koppelpunt gemeenten import | list`: a newer RvIG table replaces the packaged one."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koppelpunt.config import Settings
from koppelpunt.pipeline.gemeenten import COL_CODE, COL_EINDE, COL_INGANG, COL_NAAM, COL_NIEUW
from koppelpunt.runtime import Runtime
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.verwerkingenlog import StoredLine, list_lines

PACKAGED = Path(__file__).resolve().parents[2] / "data" / "rvig-tabel33-gemeenten.csv"
HEADER = f"{COL_CODE},{COL_NAAM},{COL_NIEUW},{COL_INGANG},{COL_EINDE}\n"

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    from koppelpunt.cli.main import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test's own migrated database (SQLite or PostgreSQL), for the CLI too."""
    monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", database_url)
    return database_url


def newer_table(tmp_path: Path) -> Path:
    """The packaged table plus a (fictional) herindeling per 2026-01-01: Ameland → Noardeast."""
    lines = PACKAGED.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        if line.startswith('"0060"'):  # Ameland
            line = '"0060","Ameland","1970","","20260101"'
        out.append(line)
    path = tmp_path / "tabel33-2026.csv"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def loaded(url: str) -> Runtime:
    async def run() -> Runtime:
        rt = Runtime.build(Settings(database_url=url))
        await rt.load_gemeenten()
        await rt.close()
        return rt

    return asyncio.run(run())


def logged_imports(url: str) -> list[StoredLine]:
    """The verwerkingenlog lines of `gemeenten import` (an operator action)."""

    async def run() -> list[StoredLine]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                return await list_lines(session, name_prefix="beheer.gemeenten_import")
        finally:
            await engine.dispose()

    return asyncio.run(run())


class TestImport:
    def test_newer_table_replaces_the_packaged_one(self, tmp_path: Path, db: str) -> None:
        """After an import the runtime (service, CLI) uses the imported table, not the file."""
        assert loaded(db).gemeenten.resolve("0060", date(2026, 6, 1)) == "0060"
        code, out, _ = invoke("gemeenten", "import", str(newer_table(tmp_path)))
        assert code == 0, out
        assert "imported as table 1" in out
        assert "1 newly ended" in out
        rt = loaded(db)
        assert rt.gemeenten.resolve("0060", date(2026, 6, 1)) == "1970"
        assert rt.gemeenten.resolve("0060", date(2025, 6, 1)) == "0060"
        assert "import 1" in rt.gemeenten_source
        (line,) = logged_imports(db)
        assert line.actor is not None and line.actor.startswith("cli:")
        assert (line.attributes["tabel"], line.attributes["bron"]) == (1, "tabel33-2026.csv")

    def test_reimport_is_a_no_op(self, tmp_path: Path, db: str) -> None:
        """Importing the table already in use stores nothing new."""
        path = newer_table(tmp_path)
        assert invoke("gemeenten", "import", str(path))[0] == 0
        code, out, _ = invoke("gemeenten", "import", str(path))
        assert code == 0
        assert "already the one in use" in out

    def test_utf16_as_rvig_publishes_it(self, tmp_path: Path, db: str) -> None:
        """RvIG publishes UTF-16LE with a BOM: accepted as is."""
        path = tmp_path / "utf16.csv"
        path.write_bytes(newer_table(tmp_path).read_text(encoding="utf-8").encode("utf-16"))
        code, out, _ = invoke("gemeenten", "import", str(path))
        assert code == 0, out

    def test_every_error_with_its_line_and_nothing_imported(self, tmp_path: Path, db: str) -> None:
        """Bad rows are all reported as FILE:LINE: reason; exit 1; the table in use is kept."""
        path = tmp_path / "bad.csv"
        path.write_text(
            HEADER
            + '"0000","Onbekend","","",""\n'
            + '"0363","Amsterdam","","",""\n'
            + '"363","Kort","","",""\n'
            + '"0599","Rotterdam","","","20261301"\n'
            + '"0014","Groningen","9999","","20200101"\n'
            + '"0363","Dubbel","","",""\n',
            encoding="utf-8",
        )
        code, _, err = invoke("gemeenten", "import", str(path))
        assert code == 1
        assert f"{path}:4: gemeentecode '363' is not 4 digits" in err
        assert f"{path}:5: 99.99 Datum einde: '20261301' is not a date YYYYMMDD" in err
        assert f"{path}:6: nieuwe code 9999 is not in the table" in err
        assert f"{path}:7: gemeentecode 0363 also on line 3" in err
        assert "nothing imported" in err
        assert loaded(db).gemeenten_source.endswith("rvig-tabel33-gemeenten.csv")

    def test_missing_columns(self, tmp_path: Path, db: str) -> None:
        """A file that is not Tabel 33 names the missing columns on line 1."""
        path = tmp_path / "x.csv"
        path.write_text("code,naam\n0363,Amsterdam\n", encoding="utf-8")
        code, _, err = invoke("gemeenten", "import", str(path))
        assert code == 1
        assert f"{path}:1: missing columns" in err


class TestList:
    def test_default_lists_the_342_active_gemeenten(self, db: str) -> None:
        """Without options: every gemeente one can route to on the date, with its status."""
        code, out, _ = invoke("gemeenten", "list", "--datum", "2024-06-01")
        assert code == 0
        rows = [line.split("\t") for line in out.splitlines() if not line.startswith("#")]
        assert len(rows) == 342
        assert ["0363", "GM0363", "Amsterdam", "actief"] in rows
        assert all(r[0] not in {"0000", "1999"} for r in rows)

    def test_opgeheven_shows_the_final_successor(self, db: str) -> None:
        """--opgeheven lists dissolved codes with date and (chain-followed) successor."""
        code, out, _ = invoke("gemeenten", "list", "--opgeheven", "--datum", "2024-06-01")
        assert code == 0
        assert "0003\tGM0003\tAppingedam\topgeheven per 2021-01-01 → 1979 Eemsdelta" in out
        assert "\tactief" not in out

    def test_all_includes_onbekend_and_rni(self, db: str) -> None:
        """--all shows every code, including 0000 and 1999 as not routable."""
        code, out, _ = invoke("gemeenten", "list", "--all")
        assert code == 0
        assert "1999\tGM1999\t" in out and "niet routeerbaar" in out
        assert len([line for line in out.splitlines() if not line.startswith("#")]) == 1479

    def test_list_uses_the_imported_table(self, tmp_path: Path, db: str) -> None:
        """After an import, list shows its herindeling."""
        assert invoke("gemeenten", "import", str(newer_table(tmp_path)))[0] == 0
        code, out, _ = invoke("gemeenten", "list", "--opgeheven", "--datum", "2026-02-01")
        assert code == 0
        assert "0060\tGM0060\tAmeland\topgeheven per 2026-01-01 → 1970 Noardeast-Fryslân" in out
        assert "import 1" in out.splitlines()[0]

    def test_bad_date(self, db: str) -> None:
        """--datum that is not a date: usage error (exit 2)."""
        assert invoke("gemeenten", "list", "--datum", "1-4-2027")[0] == 2


class TestService:
    async def test_service_starts_with_the_newest_import(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """The API lifespan loads the newest imported table (a restart picks up an import)."""
        from datetime import UTC, datetime

        from asgi_lifespan import LifespanManager

        from koppelpunt.api.app import create_app
        from koppelpunt.store.db import create_engine, session_factory
        from koppelpunt.store.gemeenten import add_gemeentetabel

        text = newer_table(tmp_path).read_text(encoding="utf-8")
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine).begin() as session:
                await add_gemeentetabel(
                    session, csv_text=text, source="t.csv", aantal=1479,
                    imported_at=datetime.now(UTC),
                )  # fmt: skip
        finally:
            await engine.dispose()
        application = create_app(settings)
        async with LifespanManager(application, startup_timeout=60) as manager:
            rt = manager._state["runtime"]
            assert isinstance(rt, Runtime)
            assert rt.gemeenten.resolve("0060", date(2026, 6, 1)) == "1970"
