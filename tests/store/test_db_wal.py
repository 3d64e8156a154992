"""The SQLite WAL stays bounded when messages overlap (store/db.py, `_WalBound`).

SQLite restarts its WAL only when a writer begins while every frame has been copied back and no
reader uses the WAL. Two messages in flight (one reading while the other commits) seldom leave
that moment, so without help the WAL grows with every commit. These tests replay that
interleaving with a second, raw connection holding a read snapshot across each commit, and a
short read in between (the pool check-in at which the bound can act without waiting).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from koppelpunt.store import db
from koppelpunt.store.db import SQLITE_JOURNAL_SIZE_LIMIT, create_engine, session_factory

MIB = 2**20
ROUNDS = 24
BLOB = MIB  # per commit: 256 pages, past the 1,000-page autocheckpoint every 4 commits


def _wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


class _CheckpointSpy:
    """Tells the loop when a RESTART checkpoint begins (it runs in the connection's thread),
    and counts them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.began = asyncio.Event()
        self.count = 0
        loop = asyncio.get_running_loop()
        original = db._restart_checkpoint_in

        def spying(resting_ms: int, raw: Any) -> None:
            self.count += 1
            loop.call_soon_threadsafe(self.began.set)
            original(resting_ms, raw)

        monkeypatch.setattr(db, "_restart_checkpoint_in", spying)


async def _overlapping_commits(
    engine: AsyncEngine,
    path: Path,
    *,
    reader_ends: Literal["before_quiet_checkin", "after_commit", "during_checkpoint"],
    spy: _CheckpointSpy | None = None,
) -> int:
    """ROUNDS commits of BLOB bytes, each made while another connection holds a read
    snapshot taken before it (as the other message's reads do); returns the largest WAL.

    Each commit returns its connection to the pool (the check-in at which the bound acts)
    while the reader still reads. Then the reader ends:
      before_quiet_checkin  after the commit, and another short request uses the pool (a
                            check-in at a quiet moment);
      after_commit          after the commit, and nothing else: every check-in met the read;
      during_checkpoint     0.05 s into the check-in's checkpoint (the other message finishing
                            while this one returns its connection); needs `spy`. A round
                            without a checkpoint ends the read after the commit.
    The moments are set by the steps themselves, not by timing."""
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(text("CREATE TABLE blobs (b BLOB)"))
    largest = 0
    async with aiosqlite.connect(path, isolation_level=None) as reader:

        async def end_read(committed: asyncio.Event) -> None:
            if reader_ends == "during_checkpoint":
                assert spy is not None
                waits = [asyncio.create_task(e.wait()) for e in (spy.began, committed)]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for wait in waits:
                    wait.cancel()
                if spy.began.is_set():
                    await asyncio.sleep(0.05)
            else:
                await committed.wait()
            await reader.execute("COMMIT")

        for _ in range(ROUNDS):
            session = sessions()
            committed = asyncio.Event()
            if spy is not None:
                spy.began.clear()
            try:
                await reader.execute("BEGIN")
                await (await reader.execute("SELECT count(*) FROM blobs")).fetchall()
                await session.execute(
                    text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": BLOB}
                )
                ending = asyncio.create_task(end_read(committed))
                await session.commit()
                committed.set()
                await ending
            finally:
                await session.close()
            if reader_ends == "before_quiet_checkin":
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            largest = max(largest, _wal_size(path))
    return largest


async def _largest_wal(
    path: Path,
    *,
    reader_ends: Literal[
        "before_quiet_checkin", "after_commit", "during_checkpoint"
    ] = "before_quiet_checkin",
    spy: _CheckpointSpy | None = None,
) -> int:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        largest = await _overlapping_commits(engine, path, reader_ends=reader_ends, spy=spy)
        async with engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM blobs"))
    finally:
        await engine.dispose()
    assert count == ROUNDS  # every commit kept
    return largest


class TestWalBound:
    @pytest.fixture(autouse=True)
    def small_limits(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(db, "SQLITE_WAL_RESTART_BYTES", 2 * MIB)
        monkeypatch.setattr(db, "SQLITE_JOURNAL_SIZE_LIMIT", MIB)
        monkeypatch.setattr(db, "SQLITE_WAL_RESTART_WAIT_MS", 0)

    async def test_overlapping_commits_grow_the_wal_without_the_bound(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The scenario is real: with the bound out of reach the WAL grows with every commit."""
        monkeypatch.setattr(db, "SQLITE_WAL_RESTART_BYTES", 2**62)
        largest = await _largest_wal(tmp_path / "k.db")
        assert largest > ROUNDS * BLOB * 3 // 4

    async def test_overlapping_commits_keep_the_wal_bounded(self, tmp_path: Path) -> None:
        """With the bound the WAL is restarted at a quiet check-in: it stays near the limit."""
        largest = await _largest_wal(tmp_path / "k.db")
        assert largest < db.SQLITE_WAL_RESTART_BYTES + 3 * BLOB

    async def test_without_waiting_a_busy_moment_is_missed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each check-in meets the other connection's read: without a wait none restarts,
        though every one tries."""
        spy = _CheckpointSpy(monkeypatch)
        largest = await _largest_wal(tmp_path / "k.db", reader_ends="after_commit", spy=spy)
        assert largest > ROUNDS * BLOB * 3 // 4
        assert spy.count > ROUNDS // 2

    async def test_the_checkpoint_waits_for_the_other_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the wait, the check-in outlasts the other connection's read and restarts."""
        monkeypatch.setattr(db, "SQLITE_WAL_RESTART_WAIT_MS", 5_000)
        spy = _CheckpointSpy(monkeypatch)
        largest = await _largest_wal(tmp_path / "k.db", reader_ends="during_checkpoint", spy=spy)
        assert largest < db.SQLITE_WAL_RESTART_BYTES + 3 * BLOB

    async def test_rolled_back_session_is_left_as_before(self, tmp_path: Path) -> None:
        """A session closed without commit is rolled back as before, and the busy timeout
        is the connection's resting one again after a checkpoint on the same connection: 0,
        as statements run on the loop's thread (a wait happens in aiosqlite's thread)."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
        sessions = session_factory(engine)
        try:
            async with sessions.begin() as session:  # 3 MiB: past the bound at check-in
                await session.execute(text("CREATE TABLE blobs (b BLOB)"))
                await session.execute(
                    text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": 3 * MIB}
                )
            async with sessions() as session:
                await session.execute(text("INSERT INTO blobs VALUES (randomblob(10))"))
            async with engine.connect() as connection:
                count = await connection.scalar(text("SELECT count(*) FROM blobs"))
                timeout = await connection.scalar(text("PRAGMA busy_timeout"))
        finally:
            await engine.dispose()
        assert count == 1
        assert timeout == 0

    async def test_the_checkpoint_runs_in_the_connection_thread(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """It may wait and copies the WAL back: not on the event loop's thread, where the
        connection's statements run."""
        ran: list[str] = []
        original = aiosqlite.Connection._execute

        async def recording(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
            ran.append(repr(fn))
            return await original(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", recording)
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
        try:
            async with session_factory(engine).begin() as session:  # past the bound
                await session.execute(text("CREATE TABLE blobs (b BLOB)"))
                await session.execute(
                    text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": 3 * MIB}
                )
        finally:
            await engine.dispose()
        assert any("_restart_checkpoint_in" in fn for fn in ran)

    async def test_connection_returned_inside_a_driver_transaction_is_left_alone(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A connection back with a driver-level transaction still open is not checkpointed
        (SQLite would refuse inside a transaction): the pool rolls it back, without an error."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE blobs (b BLOB)"))
                await connection.execute(
                    text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": 3 * MIB}
                )
            with caplog.at_level(logging.ERROR, logger="sqlalchemy.pool"):
                async with engine.connect() as connection:
                    raw = (await connection.get_raw_connection()).driver_connection
                    assert raw is not None
                    await raw.execute("BEGIN")
                    await raw.execute("INSERT INTO blobs VALUES (randomblob(10))")
            async with engine.connect() as connection:
                count = await connection.scalar(text("SELECT count(*) FROM blobs"))
        finally:
            await engine.dispose()
        assert count == 1
        assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]


class TestJournalSizeLimit:
    async def test_every_pooled_connection_limits_the_wal_file(self, tmp_path: Path) -> None:
        """Each connection the pool opens (here two at once) sets journal_size_limit."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
        try:
            async with engine.connect() as first, engine.connect() as second:
                limits = [
                    await c.scalar(text("PRAGMA journal_size_limit")) for c in (first, second)
                ]
        finally:
            await engine.dispose()
        assert limits == [SQLITE_JOURNAL_SIZE_LIMIT, SQLITE_JOURNAL_SIZE_LIMIT]
