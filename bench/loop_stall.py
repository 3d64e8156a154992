"""How long one large message keeps a health check waiting: what a container's liveness probe
sees while the service stores a message of thousands of records.

    python -m bench.loop_stall [records-per-message ...]      (default: 1000 2000 10000)

Runs the service as a real `koppelpunt serve` process (SQLite in a temp dir, relay off, no
broker needed) and posts aanmeldstatus messages of each size one at a time, three of each,
while a `GET /livez` is due every 20 ms; each check is timed from when it was due to its
answer (a check that falls in a stall of the event loop waits for its end, as one from
outside would). The XSD allows 10,000 records per message.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import generate as gen
from bench import harness
from bench.run import fill_register, make_database, percentile

MESSAGES_PER_SIZE = 3


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url, _ = await make_database(tmp)
        people = gen.pupils(max(30_000, 2 * max(sizes)))
        await fill_register(url, gen.register_rows(people))
        env = harness.service_env(
            database_url=url,
            bootstrap=f"127.0.0.1:{harness.free_port()}",  # nobody listens: relay off
            senders_file=harness.write_senders(tmp / "senders.yaml"),
            topic_prefix="",
            extra={"KOPPELPUNT_RELAY_ENABLED": "false", "KOPPELPUNT_LOG_LEVEL": "WARNING"},
        )
        statuses = gen.statuses(people, sum(sizes) * MESSAGES_PER_SIZE + 1000)
        service = harness.serve(env, tmp / "serve.log")
        try:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as client:
                await service.wait_ready(path="/livez")
                warm = gen.status_messages(statuses[:1000], 1000, "warm")[0]
                await client.post(warm.path, content=warm.body, headers=harness.auth_for(warm.path))
                print("records  message ms  /livez ms p50 / p99 / max")
                offset = 1000
                for size in sizes:
                    chunk = statuses[offset : offset + size * MESSAGES_PER_SIZE]
                    offset += size * MESSAGES_PER_SIZE
                    for m in gen.status_messages(chunk, size, f"stall{size}"):
                        await _one(client, m)
        finally:
            service.stop()


async def _one(client: httpx.AsyncClient, m: gen.Message) -> None:
    health: list[float] = []
    done = asyncio.Event()

    async def health_probe() -> None:
        # one check due every 20 ms, timed from when it was due
        async with httpx.AsyncClient(base_url=str(client.base_url), timeout=60) as prober:
            due = time.perf_counter()
            while not done.is_set():
                due += 0.02
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                r = await prober.get("/livez")
                assert r.status_code == 200, r.text
                health.append(time.perf_counter() - due)

    probe = asyncio.create_task(health_probe())
    await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    r = await client.post(m.path, content=m.body, headers=harness.auth_for(m.path))
    elapsed = time.perf_counter() - t0
    done.set()
    await probe
    assert r.status_code == 202, r.text
    ms = [1000 * h for h in health]
    print(
        f"{m.records:7,}  {1000 * elapsed:10.0f}  "
        f"{percentile(ms, 0.5):6.1f} / {percentile(ms, 0.99):.0f} / {max(ms):.0f}"
    )


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [1000, 2000, 10000]))
