"""What Kafka alone costs per signalering on this machine: the floor under targets (3) and (4).

    python -m bench.kafka_floor [records] [batch]      # defaults 200000 1000

Why: (3) asks for 20,000 records/s end to end on 2 cores, which is 0.1 ms of CPU per record
for everything on the machine. Part of that is not koppelpunt's Python but publishing and
reading the signaleringen: the producer (aiokafka, as the relay uses it: `KafkaPublisher`),
the broker, and the reader that counts them in `make bench` (`harness.SignaleringConsumer`).
This measures that part with nothing else running: no HTTP, no database, no parsing.

Starts its own broker (dev/localkafka, SASL/SCRAM with ACLs, free ports, temp dir), creates
the 342 gemeente topics (one partition each, as `make bench`), builds `records` signaleringen
in memory (~1 KB XML payloads and the CloudEvents headers of bench/profile_relay.py, keyed by
BSN, gemeenten Zipf-weighted as in bench/generate.py), then, one after the other:

1. publishes them with `KafkaPublisher.publish` in calls of `batch` messages (the relay's
   best case: large batches, the producer warm, no database between the calls);
2. reads them all from the start with the bench's reader, after publication (the reader's
   best case: full fetches).

Each step's CPU per record: this process (producer, then reader) and the broker (/proc).
Best cases, so the sum is a lower bound of what publishing and reading cost in (3) and (4).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench import generate as gen
from bench import harness
from bench.profile_relay import PREFIX, headers_of, payload_of
from bench.run import local_broker

if TYPE_CHECKING:
    from koppelpunt.kafka.publisher import OutboundMessage

WARM_UP = 5_000


def build(n: int, seed: int) -> list[OutboundMessage]:
    """n OutboundMessages as the relay would hand them to the publisher."""
    from koppelpunt.kafka.admin import topic_for
    from koppelpunt.kafka.publisher import OutboundMessage

    rng = random.Random(seed)
    codes = gen.active_gemeenten()
    weights = gen.gemeente_weights(codes)
    now = datetime.now(UTC)
    messages: list[OutboundMessage] = []
    for i, code in enumerate(rng.choices(codes, weights=weights, k=n)):
        bsn = f"{100_000_000 + rng.randrange(250_000):09d}"
        messages.append(
            OutboundMessage(
                topic=topic_for(PREFIX, "GM" + code),
                key=bsn.encode(),
                value=payload_of(rng, bsn, "GM" + code),
                headers=headers_of(f"floor-{seed}-{i}", now),
                ref=i,
            )
        )
    return messages


async def main(n: int, batch: int) -> None:
    from koppelpunt.config import Settings
    from koppelpunt.kafka.access import admin_settings
    from koppelpunt.kafka.admin import client_kwargs, ensure_topics, topic_for
    from koppelpunt.kafka.publisher import KafkaPublisher

    with (
        tempfile.TemporaryDirectory(prefix="koppelpunt-floor-") as tmpdir,
        local_broker(Path(tmpdir) / "kafka") as broker,
    ):
        settings = Settings(topic_prefix=PREFIX, topic_partitions=1)
        admin = admin_settings(settings)
        topics = [topic_for(PREFIX, "GM" + c) for c in gen.active_gemeenten()]
        await ensure_topics(admin, topics, 1, timeout=120)
        broker_pid = broker.pid()
        assert broker_pid is not None
        warm = build(WARM_UP, seed=0)
        messages = build(n, seed=1)
        size = sum(len(m.value) for m in messages) / n

        publisher = KafkaPublisher(settings)
        await publisher.start()
        try:
            for start in range(0, WARM_UP, batch):
                await publisher.publish(warm[start : start + batch])
            cpu0, bcpu0 = time.process_time(), harness.cpu_seconds(broker_pid)
            t0 = time.perf_counter()
            failed = 0
            for start in range(0, n, batch):
                chunk = messages[start : start + batch]
                results = await publisher.publish(chunk)
                failed += sum(1 for r in results if not r.ok)
            wall_p = time.perf_counter() - t0
            cpu_p = time.process_time() - cpu0
            bcpu_p = harness.cpu_seconds(broker_pid) - bcpu0
        finally:
            await publisher.stop()
        if failed:
            raise SystemExit(f"{failed} messages not acknowledged")

        security = {k: v for k, v in client_kwargs(admin).items() if k != "bootstrap_servers"}
        reader = harness.SignaleringConsumer(broker.bootstrap, topics, security=security)
        read = WARM_UP + n  # the reader reads the warm-up records too
        cpu0, bcpu0 = time.process_time(), harness.cpu_seconds(broker_pid)
        t0 = time.perf_counter()
        await reader.start()
        try:
            if not await reader.wait_for(read, timeout=600):
                raise SystemExit(f"read only {reader.consumed.unique} of {read}")
        finally:
            wall_r = time.perf_counter() - t0
            cpu_r = time.process_time() - cpu0
            bcpu_r = harness.cpu_seconds(broker_pid) - bcpu0
            await reader.stop()

    def ms(cpu: float, records: int) -> float:
        return cpu * 1000 / records

    producer, broker_in = ms(cpu_p, n), ms(bcpu_p, n)
    reader_ms, broker_out = ms(cpu_r, read), ms(bcpu_r, read)
    total = producer + broker_in + reader_ms + broker_out
    print(f"kafka floor: {n:,} signaleringen of {size:,.0f} bytes, {len(topics)} topics,"
          f" batch {batch}")  # fmt: skip
    print(f"  publish  {n / wall_p:9,.0f} records/s   producer {producer:.3f} ms/record,"
          f" broker {broker_in:.3f} ms/record")  # fmt: skip
    print(f"  read     {read / wall_r:9,.0f} records/s   reader   {reader_ms:.3f} ms/record,"
          f" broker {broker_out:.3f} ms/record")  # fmt: skip
    print(f"  together {total:.3f} ms of CPU per record: 20,000 records/s need"
          f" {total * 20:.2f} cores for publishing and reading alone")  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [200_000, 1000][len(args) :])))
