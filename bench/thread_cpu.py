"""CPU per record of each thread of the receive path: the event loop against aiosqlite's threads.

    python -m bench.thread_cpu [records-per-message] [messages] [senders] [pupils]
                                          (defaults: 2000 22 2 60000, the year phase's shape)

Posts aanmeldstatus messages through the ASGI app in-process (SQLite in a temp dir, no broker,
relay off, as bench/profile_receive.py) from `senders` concurrent senders and reads each
thread's CPU time from /proc/self/task. The event loop thread runs all Python work (HTTP,
parse, decide, pupil state, rendering, SQLAlchemy); each pooled connection's aiosqlite thread
runs SQLite's C code with the GIL released. When the wall time per record equals the sum of
the threads' CPU, the two never overlap: the process uses one core, whatever the machine has
(bench/ROUNDS.md, fifth round).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from bench import generate as gen
from bench import harness
from bench.run import fill_register, make_database
from koppelpunt.api.app import create_app
from koppelpunt.logging import configure_logging
from koppelpunt.runtime import frozen_heap, thawed_heap


def thread_cpu() -> dict[tuple[str, str], float]:
    """CPU seconds (user + system) of each thread of this process, by (tid, name)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[tuple[str, str], float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[(tid, name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


async def main(per_message: int, count: int, senders: int, pupils: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url, _ = await make_database(tmp)
        people = gen.pupils(pupils)
        await fill_register(url, gen.register_rows(people))
        settings = harness.receive_only_settings(url, tmp)
        configure_logging("WARNING", True)
        statuses = gen.statuses(people, per_message * count)
        messages = gen.status_messages(statuses, per_message, "threads")
        main_tid = str(os.getpid())
        async with LifespanManager(create_app(settings), startup_timeout=60) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                for m in messages[:2]:  # warm-up
                    await client.post(m.path, content=m.body, headers=harness.auth_for(m.path))
                todo = iter(messages[2:])
                # as `koppelpunt serve` does after start-up (runtime.frozen_heap)
                thresholds = frozen_heap()
                before = thread_cpu()
                t0 = time.perf_counter()

                async def sender() -> None:
                    for m in todo:
                        r = await client.post(
                            m.path, content=m.body, headers=harness.auth_for(m.path)
                        )
                        assert r.status_code == 202, r.text

                await asyncio.gather(*(sender() for _ in range(senders)))
                wall = time.perf_counter() - t0
                after = thread_cpu()
                thawed_heap(thresholds)
    records = (len(messages) - 2) * per_message
    print(f"{records:,} records, {senders} senders: wall {1000 * wall / records:.3f} ms per record")
    total = 0.0
    used = sorted(((cpu - before.get(key, 0.0), key) for key, cpu in after.items()), reverse=True)
    for seconds, (tid, _) in used:
        if seconds < 0.01:
            continue
        total += seconds
        kind = "event loop (Python)" if tid == main_tid else "aiosqlite thread (SQLite)"
        print(f"  {1000 * seconds / records:.3f} ms per record  {kind}")
    print(f"  {1000 * total / records:.3f} ms per record  all threads")


if __name__ == "__main__":
    defaults = [2000, 22, 2, 60000]
    args = [int(a) for a in sys.argv[1:5]]
    asyncio.run(main(*(args + defaults[len(args) :])))
