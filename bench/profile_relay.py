"""Profile the outbox relay in-process: claim, publish to the real broker, mark, log.

    python -m bench.profile_relay [signaleringen] [rounds] [--profile] [--batch N]

Starts its own broker (dev/localkafka, SASL/SCRAM with ACLs, free ports, temp dir), fills a
SQLite outbox with `signaleringen` rows (~1 KB payloads, spread Zipf-like over the 342 gemeente
topics, one partition each as in `make bench`, 500 per bericht), then times
`OutboxRelay.drain()` over them: CPU of this process (all threads, aiosqlite's too) and of the
broker (/proc), per signalering. Repeats fill + drain `rounds` times. With --profile, cProfile
over the drains prints where the relay's time goes.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench import generate as gen
from bench import harness
from bench.run import local_broker, make_database

PREFIX = "vva.signalering"  # the service principal may write only these topics (ACLs)
PER_BERICHT = 500

# Round trips to the database during the drains, by statement kind (machine-independent).
STATEMENTS: Counter[str] = Counter()


def _count_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
    words = statement.split()
    STATEMENTS[" ".join(words[:3])[:60] if words else "?"] += 1


def headers_of(ce_id: str, now: datetime) -> tuple[tuple[str, bytes], ...]:
    """The CloudEvents headers of a bench signalering (as the service's, with a dataschema)."""
    from koppelpunt.kafka.publisher import cloudevent_headers

    return cloudevent_headers(
        ce_id=ce_id,
        ce_type="nl.vva.signalering.aanmelding",
        ce_source="/koppelpunt",
        ce_time=now,
        extra={"ce_dataschema": "https://example.org/signalering.xsd"},
    )


def payload_of(rng: random.Random, bsn: str, code: str) -> bytes:
    filler = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=700))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><signalering><bsn>{bsn}</bsn>'
        f"<gemeentecode>{code}</gemeentecode><toelichting>{filler}</toelichting></signalering>"
    ).encode()


async def fill(url: str, n: int, round_no: int) -> None:
    """n signaleringen with their outbox rows, in berichten of PER_BERICHT."""
    from koppelpunt.kafka.admin import topic_for
    from koppelpunt.store.berichten import add_bericht
    from koppelpunt.store.db import create_engine, session_factory
    from koppelpunt.store.outbox import NewSignalering, add_signaleringen
    from koppelpunt.store.verwerkingenlog import new_trace_id

    rng = random.Random(round_no)
    codes = gen.active_gemeenten()
    weights = gen.gemeente_weights(codes)
    now = datetime.now(UTC)
    engine = create_engine(url)
    try:
        for start in range(0, n, PER_BERICHT):
            async with session_factory(engine).begin() as session:
                pk = await add_bericht(
                    session,
                    bericht_id=f"prof-{round_no}-{start}",
                    soort="aanmeldstatus",
                    sender="bench",
                    sha256="0" * 64,
                    raw=b"<x/>",
                    received_at=now,
                    receipt={},
                    trace_id=new_trace_id(),
                )
                items = []
                for i in range(start, min(n, start + PER_BERICHT)):
                    code = "GM" + rng.choices(codes, weights=weights)[0]
                    bsn = f"{100_000_000 + rng.randrange(250_000):09d}"
                    sid = f"sig-{round_no}-{i}"
                    headers = headers_of(sid, now)
                    items.append(
                        NewSignalering(
                            signalering_id=sid,
                            type="aanmelding",
                            gemeentecode=code,
                            bsn=bsn,
                            topic=topic_for(PREFIX, code),
                            payload=payload_of(rng, bsn, code),
                            headers=[(k, v.decode()) for k, v in headers],
                            created_at=now,
                            bericht_pk=pk,
                        )
                    )
                await add_signaleringen(session, items)
    finally:
        await engine.dispose()


async def main(n: int, rounds: int, profile: bool, batch: int) -> None:
    from koppelpunt.config import Settings
    from koppelpunt.kafka.access import admin_settings
    from koppelpunt.kafka.admin import ensure_topics, topic_for
    from koppelpunt.kafka.publisher import KafkaPublisher
    from koppelpunt.kafka.relay import OutboxRelay
    from koppelpunt.logging import configure_logging
    from koppelpunt.store.db import create_engine, session_factory

    with tempfile.TemporaryDirectory(prefix="koppelpunt-relay-") as tmpdir:
        tmp = Path(tmpdir)
        with local_broker(tmp / "kafka") as broker:
            os.environ.pop("KOPPELPUNT_DATABASE_URL", None)  # SQLite in tmp
            url, _ = await make_database(tmp)
            settings = Settings(
                database_url=url,
                topic_prefix=PREFIX,
                topic_partitions=1,
                relay_batch_size=batch,
            )
            admin = admin_settings(settings)
            topics = [topic_for(PREFIX, "GM" + c) for c in gen.active_gemeenten()]
            await ensure_topics(admin, topics, 1, timeout=120)
            configure_logging("INFO", True)
            engine = create_engine(url)
            publisher = KafkaPublisher(settings)
            relay = OutboxRelay(
                settings, session_factory(engine), publisher, clock=lambda: datetime.now(UTC)
            )
            broker_pid = broker.pid()
            try:
                await fill(url, 1000, -1)  # warm-up: producer, metadata, known topics
                await relay.drain()
                prof = cProfile.Profile() if profile else None
                published_total = 0
                for r in range(rounds):
                    await fill(url, n, r)
                    event.listen(Engine, "before_cursor_execute", _count_statement)
                    cpu0, bcpu0 = time.process_time(), harness.cpu_seconds(broker_pid)
                    t0 = time.perf_counter()
                    if prof is not None:
                        prof.enable()
                    published = await relay.drain()
                    if prof is not None:
                        prof.disable()
                    event.remove(Engine, "before_cursor_execute", _count_statement)
                    published_total += published
                    wall = time.perf_counter() - t0
                    cpu = time.process_time() - cpu0
                    bcpu = harness.cpu_seconds(broker_pid) - bcpu0
                    print(
                        f"round {r}: {published} published in {wall:.2f} s wall; "
                        f"relay CPU {cpu * 1000 / published:.3f} ms/signalering, "
                        f"broker CPU {bcpu * 1000 / published:.3f} ms/signalering",
                        file=sys.stderr,
                        flush=True,
                    )
                print(f"SQL statements per 1000 signaleringen (batch {batch}):", file=sys.stderr)
                for kind, count in STATEMENTS.most_common():
                    print(f"  {count * 1000 / published_total:8.1f}  {kind}", file=sys.stderr)
                if prof is not None:
                    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(30)
                    pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
            finally:
                await relay.stop()
                await engine.dispose()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    batch = 500
    if "--batch" in sys.argv:
        batch = int(sys.argv[sys.argv.index("--batch") + 1])
        args.remove(str(batch))
    asyncio.run(
        main(
            int(args[0]) if args else 5000,
            int(args[1]) if len(args) > 1 else 3,
            "--profile" in sys.argv,
            batch,
        )
    )
