"""describe_database: which database a command reads, for people, without a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from koppelpunt.store.db import describe_database


def test_relative_sqlite_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    described = describe_database("sqlite+aiosqlite:///var/koppelpunt.db")
    assert described == f"SQLite {tmp_path.resolve() / 'var' / 'koppelpunt.db'}"


def test_postgresql_without_its_password() -> None:
    described = describe_database("postgresql+asyncpg://vva:geheim123@db.example:5432/koppelpunt")
    assert "geheim123" not in described
    assert "db.example:5432/koppelpunt" in described
    assert "vva" in described
