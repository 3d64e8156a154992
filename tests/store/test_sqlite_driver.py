"""The SQLite adapter that runs a statement and fetches its rows on the event loop's thread.

Checked against real SQLite files: the results SQLAlchemy sees are the stock adapter's, errors
are classified the same, a statement costs no call into aiosqlite's thread, and a statement
that meets another writer's lock waits in that thread, not on the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from koppelpunt.store import sqlite_driver
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.sqlite_driver import InlineCursor, InlineDBAPI
from tests.ticker import Ticker


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, n INTEGER)")
        )
    yield engine
    await engine.dispose()


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every function aiosqlite runs in a connection's thread, by name."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    yield calls


async def test_sqlite_engines_use_the_inline_cursor(engine: AsyncEngine) -> None:
    assert isinstance(engine.dialect.dbapi, InlineDBAPI)
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, aiosqlite.Connection)
        assert isinstance(raw.dbapi_connection.cursor(), InlineCursor)  # type: ignore[union-attr]


async def test_a_statement_is_no_call_into_the_connection_thread(
    engine: AsyncEngine, thread_calls: list[str]
) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # the checkout's own calls happen first
        thread_calls.clear()
        rows = (
            await connection.execute(text("SELECT id, name FROM t WHERE n > :n"), {"n": 0})
        ).all()
        await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        await connection.execute(
            text("INSERT INTO t (name, n) VALUES (:name, :n)"),
            [{"name": "b", "n": 2}, {"name": "c", "n": 3}],
        )
    assert rows == []
    # the stock adapter: cursor, execute, fetchall, close per statement (4 + 3 + 3 calls);
    # only the pool's rollback of the transaction left open goes to the thread
    assert thread_calls == ["rollback"]


async def test_statements_run_on_the_loop_thread(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        sqlite = raw.driver_connection._conn  # type: ignore[union-attr]
        sqlite.create_function("thread_ident", 0, threading.get_ident)
        ident = await connection.scalar(text("SELECT thread_ident()"))
    assert ident == threading.get_ident()


# ~1 ms of SQLite's time on this machine, no I/O
_BUSY_STATEMENT = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) "
    "SELECT count(*) FROM c"
)


async def _ticks_during(engine: AsyncEngine, statements: int | None, seconds: float) -> int:
    """How often a task that only yields ran while one connection ran statements on the loop
    (`statements` of them, or as many as fit in `seconds`)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # checked out before the ticker starts
        async with Ticker(0) as ticker:
            start, deadline = ticker.ticks, time.monotonic() + seconds
            run = 0
            while (run < statements) if statements is not None else (time.monotonic() < deadline):
                assert await connection.scalar(_BUSY_STATEMENT) == 5000
                run += 1
            return ticker.ticks - start


async def test_a_long_run_of_statements_gives_the_loop_its_turns(engine: AsyncEngine) -> None:
    """Statements on the loop never suspend their task: without a break a message of
    thousands of records held the loop for its whole transaction. Once the loop has not come
    round for LOOP_SLICE_SECONDS, the next statement goes to the thread and the loop runs."""
    assert sqlite_driver.LOOP_SLICE_SECONDS <= 0.05
    # 0.3 s of statements: dozens of slices
    assert await _ticks_during(engine, None, 0.3) >= 5


async def test_a_short_run_of_statements_keeps_the_loop(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within its slice a task keeps the loop: a small group's statements do not queue
    behind the loop's other work (the reason they run on the loop at all)."""
    monkeypatch.setattr(sqlite_driver, "LOOP_SLICE_SECONDS", 5.0)
    assert await _ticks_during(engine, 20, 0) == 0


async def test_a_statement_with_many_rows_or_parameters_runs_in_the_thread(
    engine: AsyncEngine, thread_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large message's bulk INSERTs and its reads of hundreds of pupils: SQLite works for
    milliseconds, so the loop is better off free meanwhile."""
    monkeypatch.setattr(sqlite_driver, "LOOP_SLICE_SECONDS", 5.0)  # only the size decides
    limit = sqlite_driver.THREAD_PARAMETERS
    insert = text("INSERT INTO t (name, n) VALUES (:name, :n)")
    count_in = text("SELECT count(*) FROM t WHERE n IN :ns").bindparams(
        bindparam("ns", expanding=True)
    )
    async with engine.begin() as connection:
        await connection.execute(text("SELECT 1"))
        thread_calls.clear()
        await connection.execute(insert, [{"name": f"a{i}", "n": i} for i in range(limit)])
        assert await connection.scalar(count_in, {"ns": list(range(limit))}) == limit
        assert thread_calls == []  # up to the limit: on the loop
        await connection.execute(insert, [{"name": f"b{i}", "n": i} for i in range(limit + 1)])
        assert thread_calls == ["_run_waiting"]
        assert await connection.scalar(count_in, {"ns": list(range(limit + 1))}) == 2 * limit + 1
        assert thread_calls == ["_run_waiting", "_run_waiting"]


async def test_a_locked_database_is_waited_for_in_the_thread_not_on_the_loop(
    engine: AsyncEngine, tmp_path: Path, thread_calls: list[str]
) -> None:
    """Another writer holds the lock: the INSERT waits without stopping the loop (a ticker
    keeps running), then goes through once the lock is free; the connection is back to not
    waiting on the loop (busy timeout 0)."""
    other = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def insert() -> int | None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO t (name, n) VALUES ('waited', 1)"))
            return await connection.scalar(text("PRAGMA busy_timeout"))

    try:
        async with Ticker(0.01) as ticker:
            inserting = asyncio.create_task(insert())
            await asyncio.sleep(0.3)
            assert not inserting.done()
            assert ticker.ticks >= 10
            other.execute("COMMIT")
            timeout = await asyncio.wait_for(inserting, 5)
    finally:
        other.close()
    assert "_run_waiting" in thread_calls
    assert timeout == 0
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["waited"]


async def test_a_lock_held_past_the_busy_timeout_is_an_operational_error(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """As with the stock adapter's busy timeout: the writer gives up ("database is locked")."""
    engine.dialect.dbapi.busy_timeout_ms = 100  # type: ignore[union-attr]
    other = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t (name, n) VALUES ('late', 1)"))
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_no_trip_to_commit_or_roll_back_without_a_transaction(
    engine: AsyncEngine, thread_calls: list[str]
) -> None:
    """After a commit, the pool's rollback at check-in stays in the loop; so do a read-only
    session's commit and rollbacks (sqlite3 has no transaction open for them)."""
    sessions = session_factory(engine)
    async with sessions() as session:
        await session.execute(text("SELECT 1"))  # the checkout's own calls happen first
        thread_calls.clear()
        await session.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        await session.commit()
    assert thread_calls == ["commit"]
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
        thread_calls.clear()
        await session.execute(text("SELECT count(*) FROM t"))
        await session.commit()
        await session.execute(text("SELECT count(*) FROM t"))
        await session.rollback()
    assert thread_calls == []


async def test_a_transaction_left_open_is_still_rolled_back_at_check_in(
    engine: AsyncEngine,
) -> None:
    """The skipped trips change nothing else: a session closed without commit loses its
    writes and leaves no lock behind (the next writer is not kept waiting)."""
    sessions = session_factory(engine)
    async with sessions() as session:
        await session.execute(text("INSERT INTO t (name, n) VALUES ('gone', 1)"))
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert not raw.driver_connection.in_transaction  # type: ignore[union-attr]
    async with sessions() as session:
        await session.execute(text("INSERT INTO t (name, n) VALUES ('kept', 2)"))
        await session.commit()
    async with sessions() as session:
        names = (await session.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["kept"]


async def test_results_rowcount_and_lastrowid(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        assert first.lastrowid == 1
        many = await connection.execute(
            text("INSERT INTO t (name, n) VALUES (:name, :n)"),
            [{"name": f"x{i}", "n": i} for i in range(5)],
        )
        assert many.rowcount == 5
        returned = await connection.execute(
            text("INSERT INTO t (name, n) VALUES ('r', 7) RETURNING id, name")
        )
        assert [tuple(r) for r in returned] == [(7, "r")]
        updated = await connection.execute(text("UPDATE t SET n = n + 1 WHERE n >= 3"))
        assert updated.rowcount == 3  # x3, x4 and r
        result = await connection.execute(text("SELECT name, n FROM t ORDER BY id"))
        assert list(result.keys()) == ["name", "n"]
        assert result.fetchone() == ("a", 1)
        assert result.fetchmany(2) == [("x0", 0), ("x1", 1)]
        assert [tuple(r) for r in result.fetchall()] == [("x2", 2), ("x3", 4), ("x4", 5), ("r", 8)]
        assert (await connection.execute(text("SELECT n FROM t WHERE 0"))).first() is None


async def test_streamed_results_keep_the_server_side_cursor(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO t (name, n) VALUES (:name, :n)"),
            [{"name": f"s{i}", "n": i} for i in range(250)],
        )
    async with engine.connect() as connection:
        streamed = await connection.stream(text("SELECT n FROM t ORDER BY n"))
        seen = [row.n async for row in streamed]
    assert seen == list(range(250))


async def test_errors_are_classified_as_with_the_stock_adapter(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (name, n) VALUES ('dup', 1)"))
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO t (name, n) VALUES ('dup', 2)"))
        await connection.rollback()
        with pytest.raises(OperationalError):
            await connection.execute(text("SELECT nope FROM t"))
        await connection.rollback()
        # the connection is still usable, and the rolled-back row is gone
        count = await connection.scalar(text("SELECT count(*) FROM t"))
    assert count == 0


async def test_rollback_discards_and_commit_keeps(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (name, n) VALUES ('gone', 1)"))
        await connection.rollback()
        await connection.execute(text("INSERT INTO t (name, n) VALUES ('kept', 1)"))
        await connection.commit()
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["kept"]


async def test_stock_adapter_when_the_internals_are_not_as_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later aiosqlite without `Connection._execute`: slower, not broken."""
    monkeypatch.delattr(aiosqlite.Connection, "_execute")
    assert sqlite_driver.inline_dbapi(15_000) is None
    monkeypatch.undo()
    monkeypatch.setattr(sqlite_driver, "_expected_internals", lambda: False)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}")
    try:
        assert not isinstance(engine.dialect.dbapi, InlineDBAPI)
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 41 + 1")) == 42
    finally:
        await engine.dispose()
