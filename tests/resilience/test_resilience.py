"""Parts fail under a steady load; every receipt holds and every signalering reaches Kafka.

Each test runs the service as real processes on the real broker and database, sends one-record
messages for several pupils (one after the other per pupil, pupils in parallel), breaks
something in the middle, and then compares the ce_ids on the topics with the signaleringen in
the database: equal sets, duplicates only as re-sends of the same id.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench import harness
from tests.db_fixtures import is_postgres
from tests.resilience.conftest import PUPILS, Cluster, Load, consumed, status_message

pytestmark = pytest.mark.kafka

MESSAGES_PER_PUPIL = 12  # Load's default count


def ids_of(found: dict[str, list[tuple[str, str]]]) -> list[str]:
    return [ce_id for records in found.values() for _, ce_id in records]


async def assert_all_delivered(cluster: Cluster, load: Load) -> dict[str, list[tuple[str, str]]]:
    """Every message got a receipt, is stored, and its signalering is on Kafka (no others)."""
    assert load.refused == []
    expected_berichten = load.expected
    assert set(load.receipts) == expected_berichten
    assert await cluster.stored_berichten() == expected_berichten
    stored = await cluster.stored_ids()
    assert len(stored) == len(expected_berichten)  # one signalering per message
    found = await consumed(cluster, expect=len(stored))
    ids = ids_of(found)
    assert set(ids) == stored, cluster.logs()
    return found


class TestBrokerOutage:
    async def test_broker_stopped_under_load_then_started_loses_nothing(
        self, cluster: Cluster, stoppable_broker: Any
    ) -> None:
        """Broker down mid-load: receipts keep coming; after the restart all ce_ids arrive."""
        service = cluster.serve()
        await service.wait_ready()
        # Half of each pupil's messages before the broker stops, a quarter while it is down,
        # the last quarter once it is up again.
        half, three_quarters = MESSAGES_PER_PUPIL // 2, MESSAGES_PER_PUPIL * 3 // 4
        broker_down, broker_up = asyncio.Event(), asyncio.Event()
        load = Load([service.base_url], pauses={half: broker_down, three_quarters: broker_up})
        sending = asyncio.create_task(load.run(interval=0.2))
        await load.until_receipts(len(PUPILS) * half)
        await asyncio.to_thread(stoppable_broker.stop)
        broker_down.set()
        await load.until_receipts(len(PUPILS) * three_quarters)
        during = len(load.receipts)
        await asyncio.to_thread(stoppable_broker.start, 120)
        broker_up.set()
        await sending
        assert len(PUPILS) <= during < len(PUPILS) * MESSAGES_PER_PUPIL  # really mid-load
        assert set(load.receipts.values()) == {202}  # the outage never cost a receipt
        await assert_all_delivered(cluster, load)


class TestServiceKilled:
    async def test_sigkill_mid_load_and_restart_loses_nothing(self, cluster: Cluster) -> None:
        """SIGKILL mid-load, restart on the same port: senders re-send, nothing is lost."""
        service = cluster.serve()
        await service.wait_ready()
        load = Load([service.base_url])
        sending = asyncio.create_task(load.run(interval=0.3))
        await load.until_receipts(len(PUPILS))
        before = len(load.receipts)
        service.kill()
        await asyncio.sleep(1)
        restarted = cluster.serve(port=service.port)
        await restarted.wait_ready()
        await sending
        assert before < len(PUPILS) * MESSAGES_PER_PUPIL and load.retries > 0  # mid-load
        await assert_all_delivered(cluster, load)


class TestDatabaseUnavailable:
    async def test_database_unavailable_answers_503_with_retry_after(
        self, cluster: Cluster
    ) -> None:
        """No database: 503 problem+json with Retry-After, no receipt stored; then 202."""
        service = cluster.serve()
        await service.wait_ready()
        bsn = next(iter(PUPILS))
        body = status_message("db-down-1", bsn, 0)
        headers = harness.auth_for("/v1/aanmeldstatussen")
        async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as client:
            async with database_down(cluster.database_url):
                r = await client.post("/v1/aanmeldstatussen", content=body, headers=headers)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["Retry-After"]) > 0
            assert "db-down-1" not in await cluster.stored_berichten()  # no false receipt
            again = await client.post("/v1/aanmeldstatussen", content=body, headers=headers)
            assert again.status_code == 202, again.text


class database_down:
    """SQLite: another connection holds the write lock (every writer times out, "database is
    locked"). PostgreSQL: the database refuses new connections and the service's are ended."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock: sqlite3.Connection | None = None

    async def __aenter__(self) -> None:
        parsed = make_url(self.url)
        if not is_postgres():
            self._lock = sqlite3.connect(str(parsed.database), isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")
            return
        await self._admin(
            f'ALTER DATABASE "{parsed.database}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{parsed.database}' AND pid <> pg_backend_pid()",
        )

    async def __aexit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            return
        await self._admin(f'ALTER DATABASE "{make_url(self.url).database}" ALLOW_CONNECTIONS true')

    async def _admin(self, *statements: str) -> None:
        # Connect to the server's maintenance database, not the one being closed.
        admin_url = make_url(self.url).set(database="postgres")
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()


scale_out_needs_postgres = pytest.mark.skipif(
    not is_postgres(),
    reason="scale-out needs PostgreSQL: several writers plus the relays' row and advisory "
    "locks; SQLite has one writer and runs one relay (docs/scaling.md). "
    "Set KOPPELPUNT_DATABASE_URL (.ci/run does).",
)


class TestScaleOut:
    @scale_out_needs_postgres
    async def test_two_apis_and_two_relays_keep_every_signalering_once_and_in_order(
        self, cluster: Cluster
    ) -> None:
        """2 API processes + 2 relays on one PostgreSQL: none lost, no second id for one
        signalering, and each pupil's signaleringen in sending order on its topic."""
        apis = [cluster.serve(KOPPELPUNT_RELAY_ENABLED="false") for _ in range(2)]
        # Small batches and few pupils: consecutive outbox rows often belong to one pupil and
        # the two relays would interleave them, were the shards not locked.
        relays = [cluster.relay(KOPPELPUNT_RELAY_BATCH_SIZE="2") for _ in range(2)]
        for api in apis:
            await api.wait_ready()
        load = Load([api.base_url for api in apis], pupils=list(PUPILS)[:3], count=40)
        await load.run(interval=0)
        assert all(r.proc is not None and r.proc.poll() is None for r in relays)
        found = await assert_all_delivered(cluster, load)
        # One stored id per message and equal sets: no signalering went out under a second id.
        assert set(load.sent_order) == set(load.pupils)
        stored_order = await cluster.ids_in_sending_order(load.sent_order)
        for topic, records in found.items():
            for bsn in {key for key, _ in records}:
                seen: list[str] = []
                for key, ce_id in records:
                    if key == bsn and ce_id not in seen:
                        seen.append(ce_id)
                assert seen == stored_order[bsn], f"order broken for a pupil on {topic}"

    @scale_out_needs_postgres
    async def test_a_relay_process_is_woken_by_the_api_commits(self, cluster: Cluster) -> None:
        """A relay in its own process that never polls (an hour between polls) still publishes
        every signalering: the API's commits NOTIFY it (store/outbox_listener.py)."""
        api = cluster.serve(KOPPELPUNT_RELAY_ENABLED="false")
        cluster.relay(KOPPELPUNT_RELAY_POLL_SECONDS="3600")
        await api.wait_ready()
        load = Load([api.base_url], pupils=list(PUPILS)[:3], count=10)
        await load.run(interval=0.05)
        await assert_all_delivered(cluster, load)
