"""Resilience tests: the service as real processes (`koppelpunt serve`, `koppelpunt relay`) on
the session's real broker and this test's real database, under a steady load, while parts fail.

The processes and the consumer come from bench/harness.py, which the benchmark uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import select

from bench import harness
from bench.harness import Process
from koppelpunt.kafka.admin import topic_for
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import berichten, signaleringen
from tests.kafka_fixtures import consume_all
from tests.messages import BSN, A, aanmeldstatus_xml

# Pupils of the load and their gemeenten: three topics, several pupils per topic.
PUPILS = {bsn: ("0363", "0599", "0344")[i % 3] for i, bsn in enumerate(BSN)}
GEMEENTEN = sorted({"GM" + code for code in PUPILS.values()})
STATUSES = ("AANGEMELD", "ONDERWIJSOVEREENKOMST_AANGEBODEN", "INGESCHREVEN")


@dataclass
class Cluster:
    """The processes of one test and what they share."""

    env: dict[str, str]
    tmp: Path
    database_url: str
    bootstrap: str
    topic_prefix: str
    processes: list[Process] = field(default_factory=list)
    # aiokafka arguments of the admin who reads the topics (None: the session broker's admin)
    reader: dict[str, Any] | None = None

    @property
    def topics(self) -> list[str]:
        return [topic_for(self.topic_prefix, g) for g in GEMEENTEN]

    def serve(self, *, port: int | None = None, **extra: str) -> Process:
        name = f"serve-{len(self.processes)}.log"
        p = harness.serve({**self.env, **extra}, self.tmp / name, port=port)
        self.processes.append(p)
        return p

    def relay(self, **extra: str) -> Process:
        p = harness.relay({**self.env, **extra}, self.tmp / f"relay-{len(self.processes)}.log")
        self.processes.append(p)
        return p

    def logs(self) -> str:
        """The tail of every process log, for a failing assertion's message."""
        out = []
        for p in self.processes:
            with contextlib.suppress(OSError):
                out.append(f"--- {p.log_file.name}\n" + p.log_file.read_text()[-3000:])
        return "\n".join(out)

    async def stored_ids(self) -> set[str]:
        """Every signalering id the database holds: what must reach Kafka."""
        engine = create_engine(self.database_url)
        try:
            async with session_factory(engine)() as session:
                return set((await session.scalars(select(signaleringen.c.signalering_id))).all())
        finally:
            await engine.dispose()

    async def ids_in_sending_order(self, sent_order: dict[str, list[str]]) -> dict[str, list[str]]:
        """Per BSN, the signalering ids of its messages in the order they were sent."""
        engine = create_engine(self.database_url)
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(berichten.c.bericht_id, signaleringen.c.signalering_id).join(
                        signaleringen, signaleringen.c.bericht_pk == berichten.c.id
                    )
                )
                by_bericht = {row.bericht_id: row.signalering_id for row in rows}
        finally:
            await engine.dispose()
        return {bsn: [by_bericht[b] for b in ids] for bsn, ids in sent_order.items()}

    async def stored_berichten(self) -> set[str]:
        engine = create_engine(self.database_url)
        try:
            async with session_factory(engine)() as session:
                return set((await session.scalars(select(berichten.c.bericht_id))).all())
        finally:
            await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """A registered set of pupils in this test's database; processes are stopped afterwards."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            await upsert_woonregister(session, [(b, g, None) for b, g in PUPILS.items()])
    finally:
        await engine.dispose()
    # Under `vva.signalering.`: the only prefix the service principal may create and write.
    prefix = f"vva.signalering.r{uuid.uuid4().hex[:8]}"
    env = harness.service_env(
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        senders_file=harness.write_senders(tmp_path / "senders.yaml"),
        topic_prefix=prefix,
        extra={
            "KOPPELPUNT_TOPIC_PARTITIONS": "1",
            "KOPPELPUNT_RELAY_POLL_SECONDS": "0.2",
            "KOPPELPUNT_RELAY_BACKOFF_BASE_SECONDS": "0.2",
            "KOPPELPUNT_RELAY_BACKOFF_MAX_SECONDS": "2",
            "KOPPELPUNT_LOG_LEVEL": "INFO",
        },
    )
    c = Cluster(env, tmp_path, database_url, kafka_bootstrap, prefix)
    try:
        yield c
    finally:
        for p in c.processes:
            p.stop(timeout=15)


def status_message(bericht_id: str, bsn: str, step: int) -> bytes:
    """Step `step` of one pupil's aanmelding: one status record, one signalering."""
    status = STATUSES[step % len(STATUSES)]
    return aanmeldstatus_xml(
        bericht_id,
        [A(aanmelding_id=f"{bericht_id}-a", bsn=bsn, status=status, statusdatum="2027-03-01")],
    )


@dataclass
class Load:
    """A steady load of one-record messages; each is re-sent (same berichtId and bytes) until
    a receipt (202, or 200 for a resend of a stored one) comes back, as a sender must."""

    urls: list[str]
    pupils: list[str] = field(default_factory=lambda: list(PUPILS))
    count: int = 12
    receipts: dict[str, int] = field(default_factory=dict)
    sent_order: dict[str, list[str]] = field(default_factory=dict)  # bsn -> bericht ids
    retries: int = 0
    refused: list[tuple[str, int]] = field(default_factory=list)
    # {k: event}: before its message k each pupil waits for the event, which the test sets
    # once it has done what must happen at that point of the load: by construction, not timing.
    pauses: dict[int, asyncio.Event] = field(default_factory=dict)

    async def pupil(self, bsn: str, count: int, interval: float, deadline: float) -> None:
        """Send `count` messages for one pupil, one after the other (order per BSN)."""
        headers = harness.auth_for("/v1/aanmeldstatussen")
        async with httpx.AsyncClient(timeout=10) as client:
            for n in range(count):
                if n in self.pauses:
                    await self.pauses[n].wait()
                bericht_id = f"{bsn}-{n}"
                body = status_message(bericht_id, bsn, n)
                attempt = 0
                while True:
                    url = self.urls[(n + attempt) % len(self.urls)]
                    attempt += 1
                    try:
                        r = await client.post(
                            f"{url}/v1/aanmeldstatussen", content=body, headers=headers
                        )
                    except httpx.HTTPError:
                        r = None
                    if r is not None and r.status_code in (200, 202):
                        self.receipts[bericht_id] = r.status_code
                        self.sent_order.setdefault(bsn, []).append(bericht_id)
                        break
                    if r is not None and r.status_code not in (502, 503):
                        self.refused.append((bericht_id, r.status_code))
                        break
                    self.retries += 1
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no receipt for {bericht_id}")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(interval)

    async def until_receipts(self, n: int, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Wait until at least n receipts came back (the load is really running)."""
        async with asyncio.timeout(timeout):
            while len(self.receipts) < n:  # noqa: ASYNC110 - polls a plain dict
                await asyncio.sleep(0.05)

    @property
    def expected(self) -> set[str]:
        """The bericht ids this load sends."""
        return {f"{b}-{n}" for b in self.pupils for n in range(self.count)}

    async def run(self, interval: float, timeout: float = 120) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        await asyncio.gather(*(self.pupil(b, self.count, interval, deadline) for b in self.pupils))


async def consumed(
    cluster: Cluster,
    expect: int,
    timeout: float = 90,  # noqa: ASYNC109 - bounds a loop of consumers
) -> dict[str, list[tuple[str, str]]]:
    """Per topic, (bsn, ce_id) of every record in offset order, once `expect` records in all
    are there (or the timeout passed: the caller's assertion then says what is missing)."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[tuple[str, str]]] = {}
        for topic in cluster.topics:
            try:
                records = await consume_all(
                    cluster.bootstrap, topic, timeout=10, client=cluster.reader
                )
            except LookupError:
                records = []
            found[topic] = [
                (r.key.decode() if r.key else "", dict(r.headers)["ce_id"].decode())
                for r in records
            ]
        total = sum(len(v) for v in found.values())
        if total >= expect or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1)
