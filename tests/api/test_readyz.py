"""/readyz on the real server: 503 while the database answers reads but refuses writes.

SQLite: another connection holds the write lock (the "database is locked" every writer then
gets). PostgreSQL: new transactions are read only (as on a standby after a failover) and the
service's connections are ended, so its next ones are read only too. In both the database
still answers `SELECT 1`, which is all /readyz checked before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import make_url, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from koppelpunt.config import Settings
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.tables import heartbeat
from tests.db_fixtures import is_postgres
from tests.http_server import serving
from tests.resilience.test_resilience import database_down

pytestmark = pytest.mark.kafka


class refusing_writes:
    """The database answers reads and refuses every write (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._down = database_down(url)

    async def __aenter__(self) -> None:
        if not is_postgres():
            await self._down.__aenter__()  # the write lock, held by another connection
            return
        await self._admin("SET default_transaction_read_only = on")

    async def __aexit__(self, *exc: object) -> None:
        if not is_postgres():
            await self._down.__aexit__(*exc)
            return
        await self._admin("RESET default_transaction_read_only")

    async def _admin(self, setting: str) -> None:
        name = make_url(self.url).database
        engine = create_async_engine(
            make_url(self.url).set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
        )
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'ALTER DATABASE "{name}" {setting}'))
                # The service's open sessions keep the old default: end them.
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
        finally:
            await engine.dispose()


async def _serve(settings: Settings) -> AsyncIterator[str]:
    async with serving(settings) as port:
        yield f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(loop_scope="session")
async def server(settings: Settings) -> AsyncIterator[str]:
    """The app on a real HTTP server; the write probe is not cached and waits 0.5 s."""
    probing = settings.model_copy(
        update={"readiness_write_interval_seconds": 0, "readiness_write_timeout_seconds": 0.5}
    )
    async for url in _serve(probing):
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def cached_server(settings: Settings) -> AsyncIterator[str]:
    """The app with a write-probe result kept for an hour."""
    async for url in _serve(settings.model_copy(update={"readiness_write_interval_seconds": 3600})):
        yield url


async def _beats(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(heartbeat.c.beat_at)))
    finally:
        await engine.dispose()


class TestReadyzWhileDatabaseRefusesWrites:
    async def test_503_while_writes_are_refused_and_200_after(
        self, server: str, settings: Settings
    ) -> None:
        """Reads work, writes are refused: /readyz says 503 (database still answers,
        databaseWritable false, Retry-After); writable again: 200."""
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            before = await client.get("/readyz")
            assert before.status_code == 200, before.text
            async with refusing_writes(settings.database_url):
                during = await client.get("/readyz")
                assert during.status_code == 503, during.text
                body = during.json()
                # The relay's own state (publishing, relayError) is beside the point here.
                assert {
                    k: body[k] for k in ("status", "database", "databaseWritable", "kafka")
                } == {
                    "status": "unavailable",
                    "database": True,
                    "databaseWritable": False,
                    "kafka": True,
                }
                assert int(during.headers["Retry-After"]) > 0
            for _ in range(100):  # PostgreSQL: the pool replaces its ended connections
                after = await client.get("/readyz")
                if after.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert after.status_code == 200, after.text

    async def test_probe_result_is_reused_within_the_interval(
        self, cached_server: str, settings: Settings
    ) -> None:
        """Probes in quick succession write the heartbeat once, not once per probe."""
        async with httpx.AsyncClient(base_url=cached_server, timeout=30) as client:
            for _ in range(5):
                assert (await client.get("/readyz")).status_code == 200
        beats = await _beats(settings.database_url)
        assert len(beats) == 1
        async with httpx.AsyncClient(base_url=cached_server, timeout=30) as client:
            assert (await client.get("/readyz")).status_code == 200
        assert await _beats(settings.database_url) == beats
