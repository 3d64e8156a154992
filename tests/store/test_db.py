"""Engine settings, ping and error classification."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koppelpunt.store.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_CACHED_STATEMENTS,
    create_engine,
    is_unique_violation,
    ping,
    session_factory,
)
from koppelpunt.store.tables import beslissingen
from tests.db_fixtures import is_postgres

from .helpers import add_test_bericht


class TestCreateEngine:
    async def test_sqlite_creates_directory_and_sets_pragmas(self, tmp_path: Path) -> None:
        """A SQLite engine creates the file's directory and turns on WAL and foreign keys.

        Its connections do not wait for a lock on the event loop (busy timeout 0): a writer
        waits in the connection's thread, up to SQLITE_BUSY_TIMEOUT_MS (test_sqlite_driver)."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'k.db'}")
        try:
            async with engine.connect() as connection:
                mode = await connection.scalar(text("PRAGMA journal_mode"))
                fks = await connection.scalar(text("PRAGMA foreign_keys"))
                timeout = await connection.scalar(text("PRAGMA busy_timeout"))
        finally:
            await engine.dispose()
        assert (tmp_path / "var").is_dir()
        assert (mode, fks) == ("wal", 1)
        assert timeout == 0
        assert engine.dialect.dbapi.busy_timeout_ms == SQLITE_BUSY_TIMEOUT_MS  # type: ignore[union-attr]

    async def test_sqlite_keeps_a_small_statement_cache(self, tmp_path: Path) -> None:
        """Each SQLite connection is opened with a bounded prepared-statement cache (memory)."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
        seen: list[object] = []

        def on_connect(_d: object, _r: object, _a: object, params: dict[str, object]) -> None:
            seen.append(params.get("cached_statements"))

        event.listen(engine.sync_engine, "do_connect", on_connect)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
        assert seen == [SQLITE_CACHED_STATEMENTS] and SQLITE_CACHED_STATEMENTS < 128

    async def test_foreign_keys_enforced(self, session: AsyncSession) -> None:
        """A decision for a message that does not exist is refused on both backends."""
        with pytest.raises(IntegrityError) as caught:
            await session.execute(
                insert(beslissingen).values(
                    bericht_pk=999, record_index=0, uitkomst="gefilterd", rules_version="t"
                )
            )
        assert not is_unique_violation(caught.value)


class TestPing:
    async def test_ping_true(self, engine: AsyncEngine) -> None:
        """ping answers True for a reachable database."""
        assert await ping(engine)

    async def test_ping_false_when_unreachable(self) -> None:
        """ping answers False instead of raising when the server is down."""
        engine = create_engine("postgresql+asyncpg://nobody:x@127.0.0.1:1/nothing")
        try:
            assert not await ping(engine)
        finally:
            await engine.dispose()


class TestUniqueViolation:
    async def test_duplicate_bericht_id_is_unique_violation(self, engine: AsyncEngine) -> None:
        """A second message with the same bericht_id is recognised as a unique violation."""
        async with session_factory(engine)() as session:
            await add_test_bericht(session, "B-1")
            await session.commit()
        async with session_factory(engine)() as session:
            with pytest.raises(IntegrityError) as caught:
                await add_test_bericht(session, "B-1")
        assert is_unique_violation(caught.value)


class TestBackend:
    async def test_backend_matches_environment(self, engine: AsyncEngine) -> None:
        """The fixtures use PostgreSQL exactly when KOPPELPUNT_DATABASE_URL is set."""
        assert engine.dialect.name == ("postgresql" if is_postgres() else "sqlite")

    async def test_naive_datetime_refused(self, session: AsyncSession) -> None:
        """Storing a naive datetime is a bug and raises instead of guessing a zone."""
        with pytest.raises(StatementError, match="naive datetime"):
            await add_test_bericht(session, "B-2", received_at=datetime(2024, 1, 1))
