"""Database fixtures on a real database: SQLite by default, PostgreSQL when asked.

Set KOPPELPUNT_DATABASE_URL=postgresql+asyncpg://user:pw@host:port/db to run against
PostgreSQL: the session then creates its own database `koppelpunt_test_<random>` on that server
(the user needs CREATEDB; without it the given database itself is used), migrates it once, and
empties every table before each test. Without the variable each test gets a SQLite file in its
tmp_path, copied from one migrated template (migrating per test would cost more than the test).

Import with `from tests.db_fixtures import *` in a conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from koppelpunt.store.db import create_engine, session_factory, upgrade
from koppelpunt.store.tables import metadata

__all__ = [
    "DATABASE_URL_ENV",
    "database_url",
    "empty_database_url",
    "engine",
    "is_postgres",
    "postgres_only",
    "session",
    "sqlite_template",
    "test_database",
]

DATABASE_URL_ENV = "KOPPELPUNT_DATABASE_URL"


def is_postgres() -> bool:
    """Whether this test run uses PostgreSQL (KOPPELPUNT_DATABASE_URL is set)."""
    return bool(os.environ.get(DATABASE_URL_ENV))


postgres_only = pytest.mark.skipif(
    not is_postgres(),
    reason="needs PostgreSQL (row locks, concurrent writers): set KOPPELPUNT_DATABASE_URL",
)


def _admin_engine(url: str) -> AsyncEngine:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


async def _create_database(server_url: str, prefix: str) -> str | None:
    """Create a uniquely named database next to `server_url`'s; None without CREATEDB."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(server_url)
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        if "permission denied" in str(exc).lower():
            return None
        raise
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# Tries of DROP DATABASE, a second apart: see _drop_database.
DROP_ATTEMPTS = 30


async def _drop_database(server_url: str, url: str) -> None:
    """Drop a database this session created.

    FORCE ends our own leftover sessions, but not an autovacuum worker that PostgreSQL started
    on the freshly migrated database: it belongs to no role, so the test role may not signal
    it ("must be a member of the role whose process is being terminated"; a superuser's
    session would be refused with another message, and is not waited for), and it ends by
    itself within seconds. So that refusal is tried again (bench/run.py does the same).
    """
    name = make_url(url).database
    admin = _admin_engine(server_url)
    try:
        for attempt in range(1, DROP_ATTEMPTS + 1):
            try:
                async with admin.connect() as connection:
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            except DBAPIError as exc:
                if "pg_signal_backend" not in str(exc) or attempt == DROP_ATTEMPTS:
                    raise
                await asyncio.sleep(1)
    finally:
        await admin.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def test_database() -> AsyncIterator[str | None]:
    """PostgreSQL: the migrated database shared by this test session. SQLite: None."""
    server_url = os.environ.get(DATABASE_URL_ENV)
    if not server_url:
        yield None
        return
    url = await _create_database(server_url, "koppelpunt_test")
    if url is None:
        await upgrade(server_url)
        yield server_url
        return
    try:
        await upgrade(url)
        yield url
    finally:
        await _drop_database(server_url, url)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A migrated SQLite file, copied for each test (None when PostgreSQL is used)."""
    if is_postgres():
        return None
    path = tmp_path_factory.mktemp("db-template") / "koppelpunt.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(
    test_database: str | None, sqlite_template: Path | None, tmp_path: Path
) -> AsyncIterator[str]:
    """The URL of a migrated database that is empty at the start of this test."""
    if test_database is None:
        assert sqlite_template is not None
        path = tmp_path / "koppelpunt.db"
        shutil.copy(sqlite_template, path)  # with its mode: 0600, as the service makes it
        yield f"sqlite+aiosqlite:///{path}"
        return
    admin = create_async_engine(test_database, poolclass=NullPool)
    try:
        async with admin.begin() as connection:
            names = ", ".join(table.name for table in metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await admin.dispose()
    yield test_database


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database without any tables (for migration tests)."""
    server_url = os.environ.get(DATABASE_URL_ENV)
    if not server_url:
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty' / 'koppelpunt.db'}"
        return
    url = await _create_database(server_url, "koppelpunt_empty")
    if url is None:
        pytest.skip("the PostgreSQL user may not CREATE DATABASE")
    try:
        yield url
    finally:
        await _drop_database(server_url, url)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on this test's database, disposed afterwards."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session on this test's database; the test commits what it wants to keep."""
    async with session_factory(engine)() as session:
        yield session
