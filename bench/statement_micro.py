"""What one SQL statement costs the event loop on SQLite: trips to aiosqlite's thread, and
building the statement.

    python -m bench.statement_micro [statements]      (default 3000)

Prints wall time and event-loop CPU (thread time) per statement for:
- a SELECT through aiosqlite's cursor API as SQLAlchemy's stock adapter uses it (cursor,
  execute, fetchall, close: four trips to the connection's thread), against the same SELECT in
  one trip (store/sqlite_driver.py), and a trip that does nothing;
- the group commit's duplicate check through an AsyncSession: the statement built per call
  (as before the seventh round), built once with an expanding parameter, and as driver SQL.
The seventh round of bench/ROUNDS.md quotes these figures.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import bindparam, select

from koppelpunt.store.berichten import _STORED_COLUMNS
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.tables import berichten, metadata


async def _timed(label: str, n: int, step: Callable[[int], Awaitable[Any]]) -> None:
    for i in range(min(n, 200)):  # warm-up: statement caches, compiled cache
        await step(i)
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(n):
        await step(i)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    print(f"  {label:<52} wall {1e6 * wall / n:6.0f} µs   event loop CPU {1e6 * cpu / n:6.0f} µs")


async def trips(n: int, path: Path) -> None:
    print("aiosqlite, one SELECT by primary key:")
    async with aiosqlite.connect(path / "trips.db") as db:
        await db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        sql = "SELECT a, b FROM t WHERE a = ?"

        async def four(i: int) -> None:
            cursor = await db.cursor()
            await cursor.execute(sql, (i,))
            await cursor.fetchall()
            await cursor.close()

        def run(i: int) -> list[Any]:
            cursor = db._conn.cursor()
            try:
                cursor.execute(sql, (i,))
                return cursor.fetchall()
            finally:
                cursor.close()

        async def one(i: int) -> None:
            await db._execute(run, i)  # type: ignore[no-untyped-call]  # aiosqlite internal

        async def nothing(_: int) -> None:
            await db._execute(lambda: None)  # type: ignore[no-untyped-call]

        await _timed("cursor, execute, fetchall, close (4 trips)", n, four)
        await _timed("execute, fetch and close in one trip", n, one)
        await _timed("a trip that does nothing", n, nothing)


async def construction(n: int, path: Path) -> None:
    print("SQLAlchemy AsyncSession on SQLite (one-trip driver), duplicate check of one berichtId:")
    engine = create_engine(f"sqlite+aiosqlite:///{path / 'statements.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    prebuilt = select(*_STORED_COLUMNS).where(
        berichten.c.bericht_id.in_(bindparam("ids", expanding=True))
    )
    raw = (
        "SELECT id, bericht_id, soort, sender, sha256, receipt, received_at FROM berichten "
        "WHERE bericht_id IN (?)"
    )
    try:
        async with session_factory(engine)() as session:

            async def built(i: int) -> None:
                query = select(*_STORED_COLUMNS).where(berichten.c.bericht_id.in_([f"b{i}"]))
                (await session.execute(query)).all()

            async def once(i: int) -> None:
                (await session.execute(prebuilt, {"ids": [f"b{i}"]})).all()

            async def driver(i: int) -> None:
                connection = await session.connection()
                (await connection.exec_driver_sql(raw, (f"b{i}",))).all()

            await _timed("statement built per call", n, built)
            await _timed("statement built once, expanding parameter", n, once)
            await _timed("driver SQL (no compilation, no type processing)", n, driver)
    finally:
        await engine.dispose()


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        await trips(n, Path(tmpdir))
        await construction(n, Path(tmpdir))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
