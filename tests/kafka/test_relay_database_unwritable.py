"""The relay while the database refuses writes after a claim: no batch goes out twice.

The real broker and the real database: the relay claims, Kafka acknowledges, and only then
does the database stop taking writes (SQLite: another connection holds the write lock longer
than the busy timeout, so the UPDATE fails with "database is locked"; PostgreSQL: the database
refuses connections and the relay's is ended), so marking the batch published fails. The
records on Kafka are counted afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import select

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage, PublishResult
from koppelpunt.kafka.relay import OutboxRelay
from koppelpunt.runtime import Runtime
from koppelpunt.store import outbox
from koppelpunt.store.db import SQLITE_BUSY_TIMEOUT_MS
from koppelpunt.store.tables import verwerkingenlog
from tests.db_fixtures import is_postgres
from tests.kafka_fixtures import consume_all
from tests.operations.helpers import built, header, new_signalering, store
from tests.resilience.test_resilience import database_down

pytestmark = pytest.mark.kafka

# SQLite: the lock outlasts one busy timeout, so the first mark fails; PostgreSQL: a few
# seconds of refused connections.
OUTAGE_SECONDS = 3.0 if is_postgres() else SQLITE_BUSY_TIMEOUT_MS / 1000 + 2.0


class DatabaseDownAfterFirstPublish(KafkaPublisher):
    """The real publisher; once its first batch is acknowledged, the database goes down for
    OUTAGE_SECONDS (database_down: a real lock or a real refusal), before the relay marks."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.url = settings.database_url
        self.outage: asyncio.Task[None] | None = None
        self.over = asyncio.Event()
        self.publishes = 0

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[PublishResult]:
        results = await super().publish(messages)
        self.publishes += 1
        if self.outage is None:
            down = asyncio.Event()
            self.outage = asyncio.create_task(self._down(down))
            await down.wait()
        return results

    async def _down(self, down: asyncio.Event) -> None:
        async with database_down(self.url):
            down.set()
            await asyncio.sleep(OUTAGE_SECONDS)
        self.over.set()


async def _until_published(runtime: Runtime) -> None:
    for _ in range(600):
        async with runtime.sessions() as session:
            if not await outbox.backlog(session):
                return
        await asyncio.sleep(0.1)


class TestRelayWhileDatabaseUnwritable:
    async def test_a_batch_kafka_acknowledged_is_not_published_again(
        self, settings: Settings, kafka_bootstrap: str
    ) -> None:
        """Marking fails after Kafka acknowledged the batch: the relay backs off and records
        the batch once the database takes writes again; every id is on Kafka exactly once,
        with one `publiceren` line each."""
        async with built(settings) as runtime:
            items = [new_signalering(settings, n) for n in range(5)]
            await store(runtime, items)
            publisher = DatabaseDownAfterFirstPublish(settings)
            relay = OutboxRelay(settings, runtime.sessions, publisher, runtime.clock)
            running = asyncio.create_task(relay.run())
            try:
                async with asyncio.timeout(OUTAGE_SECONDS + 60):
                    await publisher.over.wait()
                await _until_published(runtime)
            finally:
                await relay.stop()
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            topic = topic_for(settings.topic_prefix, "GM0363")
            records = await consume_all(kafka_bootstrap, topic, expect=len(items))
            ids = [header(r, "ce_id") for r in records]
            assert sorted(ids) == sorted(i.signalering_id for i in items), (
                f"{len(ids)} records for {len(items)} signaleringen, "
                f"{publisher.publishes} publishes"
            )
            async with runtime.sessions() as session:
                lines = list(
                    await session.scalars(
                        select(verwerkingenlog.c.id).where(verwerkingenlog.c.name == "publiceren")
                    )
                )
            assert len(lines) == len(items)
