"""Micro-benchmark of the per-record row writers on 1,000 rows (CPU of this process).

    python -m bench.micro_bulk [rows] [repeats]

SQLite in a temp dir, or the PostgreSQL server of KOPPELPUNT_DATABASE_URL (a fresh database,
dropped afterwards). Each call runs in a transaction that is rolled back, so every repeat
writes into the same state. Prints the median process CPU (all threads: aiosqlite's too) and
wall time per call.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from koppelpunt.store import verwerkingenlog
from koppelpunt.store.berichten import BeslissingRow, add_bericht, add_beslissingen
from koppelpunt.store.db import create_engine, session_factory, upgrade
from koppelpunt.store.outbox import NewSignalering, add_signaleringen
from koppelpunt.store.verwerkingenlog import LogCipher, LogLine

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def _signaleringen(n: int) -> list[NewSignalering]:
    return [
        NewSignalering(
            signalering_id=f"{i:064x}",
            type="AANMELDSTATUS",
            gemeentecode="GM0363",
            bsn=f"{999000000 + i}",
            topic="vva.signalering.gm0363",
            payload=b"<signalering>" + b"x" * 600 + b"</signalering>",
            headers=[("ce_type", "nl.vva.aanmeldstatus"), ("ce_id", f"{i:064x}")],
            created_at=T0,  # as in receive: one clock reading per message
            bericht_pk=None,
        )
        for i in range(n)
    ]


def _lines(n: int) -> list[LogLine]:
    return [
        LogLine(
            trace_id="a" * 32,
            name="beslissen",
            start_time=T0,
            end_time=T0 + timedelta(milliseconds=i % 3),
            verwerkingsactiviteit="vva-signaleren-gemeenten",
            bsn=f"{999000000 + i // 3}",
            gemeentecode="GM0363",
            attributes={"berichtId": "B-1", "uitkomst": "doorgestuurd"},
        )
        for i in range(n)
    ]


async def _database(tmp: Path) -> tuple[str, Callable[[], Awaitable[None]]]:
    server = os.environ.get("KOPPELPUNT_DATABASE_URL")
    if not server:
        url = f"sqlite+aiosqlite:///{tmp / 'micro.db'}"
        await upgrade(url)

        async def nothing() -> None:
            return None

        return url, nothing
    name = f"koppelpunt_micro_{os.getpid()}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await upgrade(url)

    async def drop() -> None:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()

    return url, drop


async def main(rows: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        url, drop = await _database(Path(tmpdir))
        engine = create_engine(url)
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            pk = await add_bericht(
                session,
                bericht_id="B-micro",
                soort="aanmeldstatus",
                sender="bench",
                sha256="0" * 64,
                raw=b"<x/>",
                received_at=T0,
                receipt={},
            )
        cipher = LogCipher(os.urandom(32))
        items = _signaleringen(rows)
        lines = _lines(rows)
        beslissingen = [
            BeslissingRow(i, "doorgestuurd", None, None, "GM0363", "v1", f"{999000000 + i}")
            for i in range(rows)
        ]
        cases: dict[str, Callable[[AsyncSession], Awaitable[object]]] = {
            "add_signaleringen": lambda s: add_signaleringen(s, items),
            "verwerkingenlog.append": lambda s: verwerkingenlog.append(s, cipher, lines),
            "add_beslissingen": lambda s: add_beslissingen(s, pk, beslissingen),
        }
        try:
            for name, call in cases.items():
                cpu: list[float] = []
                wall: list[float] = []
                for _ in range(repeats):
                    async with sessions() as session:
                        await session.connection()  # the BEGIN is not part of the call
                        c0, w0 = time.process_time(), time.perf_counter()
                        await call(session)
                        cpu.append(time.process_time() - c0)
                        wall.append(time.perf_counter() - w0)
                        await session.rollback()
                print(
                    f"{name:24} {rows} rows: CPU {1000 * statistics.median(cpu):7.2f} ms, "
                    f"wall {1000 * statistics.median(wall):7.2f} ms (median of {repeats})"
                )
        finally:
            await engine.dispose()
            await drop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [1000, 15][len(args) :])))
