"""The SQLite database and its -wal/-shm files are readable by the service's user only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from koppelpunt.store.db import create_engine, upgrade


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems run services with (0022: new files 0644)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(database: Path) -> dict[str, int]:
    """The mode of the database file and of its -wal and -shm (KeyError: missing)."""
    return {
        suffix: _mode(Path(f"{database}{suffix}"))
        for suffix in ("", "-wal", "-shm")
        if Path(f"{database}{suffix}").exists()
    }


async def _write_something(database: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS t (bsn TEXT)"))
            await connection.execute(text("INSERT INTO t VALUES ('999993653')"))
        # -wal and -shm exist while a connection is open: look at them before dispose.
        async with engine.connect() as connection:
            await connection.execute(text("SELECT count(*) FROM t"))
            assert _modes(database) == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    finally:
        await engine.dispose()


class TestSqliteFileModes:
    @pytest.mark.usefixtures("usual_umask")
    async def test_new_database_and_its_wal_and_shm_are_0600(self, tmp_path: Path) -> None:
        """A database the service creates, and the -wal/-shm SQLite adds, are 0600 although
        the umask would give 0644: they hold plaintext BSNs."""
        await _write_something(tmp_path / "var" / "k.db")

    @pytest.mark.usefixtures("usual_umask")
    async def test_migrating_a_new_database_makes_it_0600(self, tmp_path: Path) -> None:
        """`koppelpunt db upgrade` (the first thing `serve` does) creates the file 0600."""
        path = tmp_path / "k.db"
        await upgrade(f"sqlite+aiosqlite:///{path}")
        assert _mode(path) == 0o600

    async def test_existing_world_readable_database_is_made_private(self, tmp_path: Path) -> None:
        """A database left 0644 by an earlier version is made 0600 with its -wal/-shm."""
        path = tmp_path / "k.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        for suffix in _modes(path):
            os.chmod(f"{path}{suffix}", 0o644)
        await _write_something(path)
