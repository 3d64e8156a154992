"""The relay's wake-up across processes: NOTIFY on commit of outbox rows, LISTEN in the relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from koppelpunt.store import outbox
from koppelpunt.store.db import session_factory
from koppelpunt.store.outbox_listener import OutboxListener, asyncpg_dsn
from tests.db_fixtures import postgres_only
from tests.store.helpers import signalering

WAIT = 30.0  # a bound on waiting for an event, not a speed requirement


def test_the_dsn_is_the_url_without_the_driver() -> None:
    url = "postgresql+asyncpg://kp:p%40ss@db.example:5433/koppelpunt?ssl=require"
    assert asyncpg_dsn(url) == "postgresql://kp:p%40ss@db.example:5433/koppelpunt?ssl=require"


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.changed.set()

    async def more_than(self, n: int) -> int:
        async def wait() -> int:
            while self.count <= n:
                self.changed.clear()
                await self.changed.wait()
            return self.count

        return await asyncio.wait_for(wait(), WAIT)


@pytest_asyncio.fixture
async def listening(
    engine: AsyncEngine, database_url: str
) -> AsyncIterator[tuple[OutboxListener, Counter]]:
    counter = Counter()
    listener = OutboxListener(database_url, counter)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), WAIT)
        await counter.more_than(0)  # the pass it asks for on connecting
        yield listener, counter
    finally:
        await listener.stop()


async def commit_rows(engine: AsyncEngine, *ids: str, rollback: bool = False) -> None:
    async with session_factory(engine)() as session:
        await outbox.add_signaleringen(session, [signalering(i) for i in ids])
        await (session.rollback() if rollback else session.commit())


@postgres_only
class TestOutboxListener:
    async def test_a_commit_of_outbox_rows_wakes_the_listener_once(
        self, engine: AsyncEngine, listening: tuple[OutboxListener, Counter]
    ) -> None:
        """One notification per transaction, however many rows; a rolled-back transaction
        sends none (notifications arrive in commit order, so it would have come first)."""
        _, counter = listening
        before = counter.count
        await commit_rows(engine, "rolled-back", rollback=True)
        await commit_rows(engine, "n-1", "n-2", "n-3")
        assert await counter.more_than(before) == before + 1
        await asyncio.sleep(0.2)  # a stray second notification would arrive by now
        assert counter.count == before + 1

    async def test_rows_already_stored_notify_nobody(
        self, engine: AsyncEngine, listening: tuple[OutboxListener, Counter]
    ) -> None:
        """A transaction that adds no outbox row (every id stored before) does not notify."""
        _, counter = listening
        before = counter.count
        await commit_rows(engine, "once")
        after_first = await counter.more_than(before)
        await commit_rows(engine, "once")  # skipped: already stored
        await commit_rows(engine, "twice")
        assert await counter.more_than(after_first) == after_first + 1

    async def test_it_listens_again_after_its_connection_is_killed(
        self, engine: AsyncEngine, listening: tuple[OutboxListener, Counter]
    ) -> None:
        """A database restart or failover ends the LISTEN connection: the listener
        reconnects, asks for a pass (rows committed meanwhile) and hears later commits."""
        listener, counter = listening
        before = counter.count
        async with engine.connect() as connection:
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                )
            )
        assert killed == 1
        # nothing is committed meanwhile: the count moves when it has reconnected and asks
        # for a pass (rows committed while it was away)
        reconnected = await counter.more_than(before)
        assert listener.listening.is_set()
        await commit_rows(engine, "after-reconnect")
        assert await counter.more_than(reconnected) == reconnected + 1
