"""Profile the receive path in-process (cProfile), without HTTP server, broker or load generator.

    python -m bench.profile_receive [records-per-message] [messages]
    BENCH_CPROFILE=off python -m bench.profile_receive …   (timing only, e.g. under py-spy)
    BENCH_CONCURRENCY=32 …   (32 messages in flight; KOPPELPUNT_RECEIVE_GROUP_SIZE=1 to compare)

Posts messages through the ASGI app (SQLite in a temp dir, no broker: the relay waits and stays
out of the profile) and prints where the CPU time of one message goes. Complements the py-spy
profile of the real service (BENCH_PROFILE) with a noise-free view of the hot path.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench import generate as gen
from bench import harness
from bench.run import fill_register, make_database, single_records
from koppelpunt.api.app import create_app
from koppelpunt.logging import configure_logging
from koppelpunt.runtime import frozen_heap, thawed_heap

# Round trips to the database, by statement kind: the machine-independent cost of a message.
STATEMENTS: Counter[str] = Counter()


def _count_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
    words = statement.split()
    kind = " ".join(words[:3]) if words else "?"
    STATEMENTS[kind[:60]] += 1


class _NoProfile:
    def enable(self) -> None: ...

    def disable(self) -> None: ...


async def main(per_message: int, count: int) -> None:
    # BENCH_CONCURRENCY=n: n messages in flight at once (the group commit needs company).
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "1"))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url, _ = await make_database(tmp)
        people = gen.pupils(max(2000, per_message * 3))
        await fill_register(url, gen.register_rows(people))
        # the receive path only (the relay has its own profile)
        settings = harness.receive_only_settings(url, tmp)
        configure_logging("INFO", True)  # as in production: one JSON line per message
        if per_message == 1:
            it = iter(single_records(people, "prof"))
            messages = [next(it) for _ in range(count)]
        else:
            statuses = gen.statuses(people, per_message * count)
            messages = gen.status_messages(statuses, per_message, "prof")
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                for m in messages[:5]:  # warm-up
                    await client.post(m.path, content=m.body, headers=harness.auth_for(m.path))
                # as `koppelpunt serve` does after start-up (runtime.frozen_heap)
                thresholds = frozen_heap()
                STATEMENTS.clear()
                event.listen(Engine, "before_cursor_execute", _count_statement)
                # BENCH_CPROFILE=off: time and count only, e.g. under py-spy (no double overhead)
                cprofile = os.environ.get("BENCH_CPROFILE", "on") != "off"
                profile = cProfile.Profile() if cprofile else _NoProfile()
                t0 = time.perf_counter()
                cpu0 = time.process_time()  # this process, all threads (aiosqlite's too)
                profile.enable()
                todo = iter(messages[5:])

                async def sender() -> None:
                    for m in todo:
                        r = await client.post(
                            m.path, content=m.body, headers=harness.auth_for(m.path)
                        )
                        assert r.status_code == 202, r.text

                await asyncio.gather(*(sender() for _ in range(concurrency)))
                profile.disable()
                thawed_heap(thresholds)
                cpu = time.process_time() - cpu0
                event.remove(Engine, "before_cursor_execute", _count_statement)
                elapsed = time.perf_counter() - t0
        n = len(messages) - 5
        per = 1000 * elapsed / n
        print(f"{n} messages of {per_message} records: {per:.2f} ms per message, "
              f"{per / per_message:.3f} ms per record ({concurrency} at a time)")  # fmt: skip
        print(
            f"process CPU {1000 * cpu / n:.2f} ms per message"
            " (with cProfile's overhead unless BENCH_CPROFILE=off)"
        )
        total = sum(STATEMENTS.values())
        print(f"{total / n:.1f} SQL statements per message (commits not counted):")
        for kind, k in STATEMENTS.most_common():
            print(f"  {k / n:6.2f}  {kind}")
        if not isinstance(profile, cProfile.Profile):
            return
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        if len(sys.argv) > 3:
            stats.print_callers(sys.argv[3])


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [1, 300][len(args) :])))
