"""How the cost per record grows with the size of the SQLite database.

    python -m bench.scale_micro [records] [slice]          (defaults: 300000 50000)
    SCALE_PRAGMAS="cache_size=-2000;mmap_size=0" python -m bench.scale_micro …
    SCALE_DB=/path/to/file.db …                            (keep the database for inspection)
    SCALE_SENDERS=1 …                                      (default 2, as the year phase)

Fills a fresh SQLite database through the real receive path (the ASGI app in-process, as
bench/profile_receive.py; no broker, relay off) with the national year's shape: prognoses first,
then aanmeldstatussen, 2,000 records per message, pupils drawn from the full-scale population
(250,000), so the keys land where the real year puts them. Prints, per slice of `slice` records,
two senders in parallel (the year phase's; each message takes its own pooled connection),
wall and process CPU (all threads: aiosqlite's too) per record, the bytes read through syscalls
(SQLite's page cache misses go to the OS with pread), the database and WAL size and the RSS.

SCALE_PRAGMAS: extra PRAGMAs run on every new connection after the service's own, to compare
settings without editing the code (e.g. the old default `cache_size=-2000`).
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench import generate as gen
from bench import harness
from bench.run import fill_register
from koppelpunt.api.app import create_app
from koppelpunt.logging import configure_logging
from koppelpunt.store.db import upgrade

PUPILS = 250_000  # the full-scale bench population (bench/run.py)


def _extra_pragmas(dbapi_connection: Any, _record: Any) -> None:
    spec = os.environ.get("SCALE_PRAGMAS", "")
    cursor = dbapi_connection.cursor()
    try:
        for pragma in filter(None, (p.strip() for p in spec.split(";"))):
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _proc(name: str, field: str) -> int:
    for line in Path(f"/proc/self/{name}").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value.split()[0])
    return 0


def _sample() -> tuple[float, float, int, int, float]:
    """Wall, process CPU, bytes read and written through syscalls, system CPU."""
    return (
        time.perf_counter(),
        time.process_time(),
        _proc("io", "rchar"),
        _proc("io", "wchar"),
        resource.getrusage(resource.RUSAGE_SELF).ru_stime,
    )


def _size_mib(path: Path) -> float:
    return path.stat().st_size / 2**20 if path.exists() else 0.0


async def main(total: int, per_slice: int) -> None:
    keep = os.environ.get("SCALE_DB")
    with tempfile.TemporaryDirectory(prefix="koppelpunt-scale-") as tmpdir:
        tmp = Path(tmpdir)
        db = Path(keep) if keep else tmp / "koppelpunt.db"
        url = f"sqlite+aiosqlite:///{db}"
        await upgrade(url)
        people = gen.pupils(PUPILS)
        await fill_register(url, gen.register_rows(people))
        n_prognoses = total // 6  # the year's proportion: 2×10^5 prognoses to 10^6 statuses
        statuses = gen.statuses(people, total - n_prognoses)
        messages = list(
            gen.messages(
                people[:n_prognoses],
                statuses,
                batch=2000,
                prefix="scale",
                resend_rate=0,
                invalid_rate=0,
            )
        )
        del statuses
        settings = harness.receive_only_settings(url, tmp)
        configure_logging("WARNING", True)
        event.listen(Engine, "connect", _extra_pragmas)
        senders = int(os.environ.get("SCALE_SENDERS", "2"))
        pragmas = os.environ.get("SCALE_PRAGMAS", "")
        print(f"{len(messages)} messages, {total:,} records, {senders} senders, {pragmas=}")
        print(
            " records  wall ms/rec  cpu ms/rec  (sys)  read MiB/krec  written"
            "  db MiB  wal MiB  rss MiB"
        )
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
                done, n0 = 0, 0
                t0, c0, r0, w0, s0 = _sample()
                queue = iter(messages)

                def report() -> None:
                    nonlocal t0, c0, r0, w0, s0, n0
                    t1, c1, r1, w1, s1 = _sample()
                    n = done - n0
                    print(
                        f"{done:8,d}  {1000 * (t1 - t0) / n:10.3f}  {1000 * (c1 - c0) / n:10.3f}"
                        f"  {1000 * (s1 - s0) / n:5.3f}  {(r1 - r0) / 2**20 / n * 1000:13.2f}"
                        f"  {(w1 - w0) / 2**20 / n * 1000:7.2f}  {_size_mib(db):6.0f}"
                        f"  {_size_mib(db.with_name(db.name + '-wal')):7.0f}"
                        f"  {_proc('status', 'VmRSS') / 1024:7.0f}",
                        flush=True,
                    )
                    t0, c0, r0, w0, s0, n0 = t1, c1, r1, w1, s1, done

                async def sender() -> None:
                    nonlocal done
                    for m in queue:
                        r = await client.post(
                            m.path, content=m.body, headers=harness.auth_for(m.path)
                        )
                        assert r.status_code == 202, r.text
                        done += m.records
                        if done - n0 >= per_slice:
                            report()

                await asyncio.gather(*(sender() for _ in range(senders)))
                if done > n0:
                    report()
        print(f"peak RSS (VmHWM) {_proc('status', 'VmHWM') / 1024:.0f} MiB")
        event.remove(Engine, "connect", _extra_pragmas)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [300_000, 50_000][len(args) :])))
