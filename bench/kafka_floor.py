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

With `BENCH_KAFKA_NODES=3` the same on the local three-node cluster (topics of replication
factor 3, `min.insync.replicas` 2, acks=all; broker CPU summed over the nodes), and two more
figures, measured on either size:

- idle: the broker's CPU with nothing sent for IDLE_SECONDS (the followers' fetches and the
  quorum's heartbeats), which a per-record figure at a low rate contains too. Measured
  SETTLE_SECONDS after the topics were made: on three nodes the first 15 s after creating
  342 topics cost about one core (replicas and fetchers starting, the JIT), then it settles;
- one at a time: SINGLES publishes of one record, each awaited (the relay with one due
  signalering): the acknowledgement's latency, p50 and p99.
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
from bench.run import kafka_nodes, local_broker, percentile, replication

if TYPE_CHECKING:
    from koppelpunt.kafka.publisher import OutboundMessage

WARM_UP = 5_000
SETTLE_SECONDS = 30.0
IDLE_SECONDS = 20.0
SINGLES = 1_000


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

    nodes = kafka_nodes()
    factor, min_insync = replication(nodes)
    with (
        tempfile.TemporaryDirectory(prefix="koppelpunt-floor-") as tmpdir,
        local_broker(Path(tmpdir) / "kafka", nodes) as broker,
    ):
        settings = Settings(
            topic_prefix=PREFIX,
            topic_partitions=1,
            topic_replication_factor=factor,
            topic_min_insync_replicas=min_insync,
        )
        admin = admin_settings(settings)
        topics = [topic_for(PREFIX, "GM" + c) for c in gen.active_gemeenten()]
        await ensure_topics(admin, topics, 1, timeout=120)
        pids = broker.node_pids()
        assert len(pids) == nodes

        def broker_cpu() -> float:
            return sum(harness.cpu_seconds(pid) for pid in pids.values())

        await asyncio.sleep(SETTLE_SECONDS)
        bcpu0 = broker_cpu()
        await asyncio.sleep(IDLE_SECONDS)
        idle_cores = (broker_cpu() - bcpu0) / IDLE_SECONDS
        warm = build(WARM_UP, seed=0)
        messages = build(n, seed=1)
        size = sum(len(m.value) for m in messages) / n

        publisher = KafkaPublisher(settings)
        await publisher.start()
        try:
            for start in range(0, WARM_UP, batch):
                await publisher.publish(warm[start : start + batch])
            cpu0, bcpu0 = time.process_time(), broker_cpu()
            t0 = time.perf_counter()
            failed = 0
            for start in range(0, n, batch):
                chunk = messages[start : start + batch]
                results = await publisher.publish(chunk)
                failed += sum(1 for r in results if not r.ok)
            wall_p = time.perf_counter() - t0
            cpu_p = time.process_time() - cpu0
            bcpu_p = broker_cpu() - bcpu0
            singles = build(SINGLES, seed=2)
            waits: list[float] = []
            for message in singles:
                t0 = time.perf_counter()
                results = await publisher.publish([message])
                waits.append(time.perf_counter() - t0)
                failed += sum(1 for r in results if not r.ok)
        finally:
            await publisher.stop()
        if failed:
            raise SystemExit(f"{failed} messages not acknowledged")

        security = {k: v for k, v in client_kwargs(admin).items() if k != "bootstrap_servers"}
        reader = harness.SignaleringConsumer(broker.bootstrap, topics, security=security)
        read = WARM_UP + n + SINGLES  # the reader reads the warm-up and single records too
        cpu0, bcpu0 = time.process_time(), broker_cpu()
        t0 = time.perf_counter()
        await reader.start()
        try:
            if not await reader.wait_for(read, timeout=600):
                raise SystemExit(f"read only {reader.consumed.unique} of {read}")
        finally:
            wall_r = time.perf_counter() - t0
            cpu_r = time.process_time() - cpu0
            bcpu_r = broker_cpu() - bcpu0
            await reader.stop()

    def ms(cpu: float, records: int) -> float:
        return cpu * 1000 / records

    producer, broker_in = ms(cpu_p, n), ms(bcpu_p, n)
    reader_ms, broker_out = ms(cpu_r, read), ms(bcpu_r, read)
    total = producer + broker_in + reader_ms + broker_out
    p50, p99 = (1000 * percentile(waits, q) for q in (0.5, 0.99))
    print(f"kafka floor: {n:,} signaleringen of {size:,.0f} bytes, {len(topics)} topics,"
          f" batch {batch}, {nodes} node(s): RF {factor}, min ISR {min_insync},"
          " acks=all")  # fmt: skip
    print(f"  idle     broker {idle_cores:.3f} cores with nothing sent"
          f" ({IDLE_SECONDS:.0f} s)")  # fmt: skip
    print(f"  publish  {n / wall_p:9,.0f} records/s   producer {producer:.3f} ms/record,"
          f" broker {broker_in:.3f} ms/record")  # fmt: skip
    print(f"  read     {read / wall_r:9,.0f} records/s   reader   {reader_ms:.3f} ms/record,"
          f" broker {broker_out:.3f} ms/record")  # fmt: skip
    print(f"  singly   {SINGLES:,} publishes of one record: acknowledged after"
          f" p50 {p50:.1f} / p99 {p99:.1f} ms")  # fmt: skip
    print(f"  together {total:.3f} ms of CPU per record: 20,000 records/s need"
          f" {total * 20:.2f} cores for publishing and reading alone")  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [200_000, 1000][len(args) :])))
