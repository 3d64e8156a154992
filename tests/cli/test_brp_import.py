"""`koppelpunt brp import`: upsert valid rows, report invalid ones with their line numbers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koppelpunt.cli.main import app
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.register import find_woonregister
from tests.messages import BSN


def _rows(database_url: str) -> dict[str, list[tuple[object, str]]]:
    async def read() -> dict[str, list[tuple[object, str]]]:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                return dict(await find_woonregister(session, BSN[:4]))
        finally:
            await engine.dispose()

    return asyncio.run(read())


class TestBrpImport:
    def test_imports_valid_rows_and_reports_invalid_ones(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Valid rows land (GM0363 and 0363 alike); bad ones are named by line; exit code 1."""
        url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
        monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", url)
        csv = tmp_path / "register.csv"
        csv.write_text(
            "bsn,gemeentecode,geldig_vanaf\n"
            f"{BSN[0]},GM0363,\n"
            f"{BSN[1]},0599,2026-08-01\n"
            "123456789,0363,\n"  # elfproef fails: line 4
            f"{BSN[2]},9876,\n"  # no such gemeente: line 5
            f"{BSN[3]},0363,gisteren\n",  # bad date: line 6
            encoding="utf-8",
        )
        assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
        result = CliRunner().invoke(app, ["brp", "import", str(csv)])
        assert result.exit_code == 1, result.output
        assert "imported 2 rows, 3 invalid rows skipped" in result.output
        for line in (4, 5, 6):
            assert f"{csv}:{line}:" in result.output
        rows = _rows(url)
        assert rows[BSN[0]][0][1] == "0363"
        assert rows[BSN[1]][0][1] == "0599"
        assert BSN[2] not in rows

    def test_help_explains_the_file_format(self) -> None:
        """--help says what the CSV looks like."""
        result = CliRunner().invoke(app, ["brp", "import", "--help"])
        assert result.exit_code == 0
        assert "geldig_vanaf" in result.output
