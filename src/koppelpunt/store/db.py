"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event, text, update
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolResetState

from koppelpunt.errors import ConfigurationError
from koppelpunt.store._dialect import dialect_name
from koppelpunt.store.sqlite_driver import inline_dbapi, statements_on_loop
from koppelpunt.store.tables import heartbeat

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long a SQLite writer waits for another writer's lock before failing. Writes are short
# (one message per transaction), so waiting beats refusing the sender with a 500.
SQLITE_BUSY_TIMEOUT_MS = 15_000

# Prepared statements each pooled SQLite connection keeps (the driver's default is 128). The bulk
# INSERT … RETURNING statements have one VALUES row per record, so a new row count is a new, large
# statement: with 128 per connection they held hundreds of MiB (bench/ROUNDS.md, memory).
SQLITE_CACHED_STATEMENTS = 16

# The WAL file size above which a connection returned to the pool after a commit checkpoints
# in RESTART mode. SQLite restarts its WAL from the start only when a writer begins while every
# frame has been copied back and no reader still uses the WAL; with two messages in flight (one
# writing, the other reading) that moment never comes, so the WAL grew without bound (4.7 GB
# after 250,000 records, bench/scale_micro.py) and every page read searched and read it. A
# 2,000-record message writes up to ~100 MB of WAL, so this leaves room for two of them.
SQLITE_WAL_RESTART_BYTES = 256 * 2**20

# How long that checkpoint waits for the other connections' transactions to end: one message's
# transaction (~1 s for 2,000 records on a large database), with room to spare.
SQLITE_WAL_RESTART_WAIT_MS = 5_000

# What SQLite leaves of the WAL file after a restart (it is reused, not truncated, otherwise):
# keeps the file size a measure of the WAL in use, and the disk footprint bounded.
SQLITE_JOURNAL_SIZE_LIMIT = 64 * 2**20


def json_dumps(value: Any) -> str:
    """The JSON columns' encoder: orjson, because signalering headers and verwerkingenlog
    attributes are encoded several times per record on the hot path (bench/ROUNDS.md).
    Same JSON values as the json module; the text is compact and UTF-8 (not \\u-escaped)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:
        # orjson refuses lone surrogates (e.g. an argv decoded with surrogateescape); the json
        # module escapes them, so such a value is still stored rather than refused.
        return json.dumps(value)


def create_engine(url: str) -> AsyncEngine:
    """Build an async engine with the per-backend settings a long-running service needs."""
    parsed = make_url(url)
    json_codec: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(parsed.database)
        dbapi = (
            inline_dbapi(SQLITE_BUSY_TIMEOUT_MS)
            if parsed.get_driver_name() == "aiosqlite"
            else None
        )
        engine = _create_async_engine(
            url,
            **json_codec,
            **({"module": dbapi} if dbapi is not None else {}),
            connect_args={"cached_statements": SQLITE_CACHED_STATEMENTS},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        wal = _sqlite_wal_path(parsed.database)
        if wal is not None:
            event.listen(engine.sync_engine, "reset", _WalBound(wal))
        return engine
    return _create_async_engine(
        url,
        **json_codec,
        pool_size=10,
        max_overflow=20,
        # A connection dropped by a failover or an idle timeout is replaced, not handed out.
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _ensure_sqlite_dir(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    _ensure_private_sqlite_files(Path(database))


# The files of a SQLite database: all hold (or held) plaintext BSNs.
SQLITE_FILE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _ensure_private_sqlite_files(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it, and make an existing one 0600.

    SQLite creates its -wal, -shm and -journal files with the mode of the database file (not
    the umask), so creating the database file itself owner-only is enough for new ones. An
    empty file is a valid empty database. Files an earlier version left group- or
    world-readable are made owner-only, with a log line.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    for suffix in SQLITE_FILE_SUFFIXES:
        file = Path(f"{path}{suffix}")
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(mode & 0o700)
                log.warning("sqlite_file_made_private", file=file.name, mode=oct(mode & 0o700))
        except FileNotFoundError:
            continue


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (receipts, metrics) never block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # SQLite ignores foreign keys unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_resting_busy_timeout(dbapi_connection)}")
        cursor.execute(f"PRAGMA journal_size_limit={SQLITE_JOURNAL_SIZE_LIMIT}")
        # synchronous stays FULL (the default): a message is acknowledged only once it is on
        # disk, so NORMAL's risk of losing the last commits on power loss is not acceptable.
    finally:
        cursor.close()


def _resting_busy_timeout(dbapi_connection: Any) -> int:
    """SQLITE_BUSY_TIMEOUT_MS, or 0 where statements run on the event loop's thread: there
    SQLite must not sleep for another writer's lock (the statement waits in the connection's
    thread instead, up to SQLITE_BUSY_TIMEOUT_MS: store/sqlite_driver.py)."""
    return 0 if statements_on_loop(dbapi_connection) else SQLITE_BUSY_TIMEOUT_MS


def _restart_checkpoint(execute: Callable[[str], object], resting_ms: int) -> None:
    # The checkpoint waits for the transaction running now (the other message's, which took
    # the write lock as this one committed) and its readers; a shorter wait never finds the
    # gap with two messages in flight. Busy after all, SQLite still copies back what it can
    # (as PASSIVE) and a later check-in tries again.
    execute(f"PRAGMA busy_timeout={SQLITE_WAL_RESTART_WAIT_MS}")
    try:
        execute("PRAGMA wal_checkpoint(RESTART)")
    finally:
        execute(f"PRAGMA busy_timeout={resting_ms}")


def _restart_checkpoint_in(resting_ms: int, raw: sqlite3.Connection) -> None:
    _restart_checkpoint(raw.execute, resting_ms)


def _sqlite_wal_path(database: str | None) -> Path | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + "-wal")


class _WalBound:
    """Pool `reset` hook: once a connection is back from a finished transaction (the session
    returns it right after its commit) and the WAL file has outgrown SQLITE_WAL_RESTART_BYTES,
    run a RESTART checkpoint: it waits (up to SQLITE_WAL_RESTART_WAIT_MS) for the transaction
    running now, copies every frame back and makes the next writer start the WAL over. A stat
    per check-in; the checkpoint only when the WAL is large."""

    def __init__(self, wal: Path) -> None:
        self.wal = wal

    def __call__(
        self, dbapi_connection: Any, record: ConnectionPoolEntry | None, state: PoolResetState
    ) -> None:
        if not state.asyncio_safe or state.terminate_only or record is None:
            return  # being discarded: no I/O on it now
        driver = record.driver_connection
        if driver is None or driver.in_transaction:
            return  # a transaction still open is rolled back next; a checkpoint would fail
        try:
            if self.wal.stat().st_size <= SQLITE_WAL_RESTART_BYTES:
                return
        except FileNotFoundError:
            return
        resting = _resting_busy_timeout(dbapi_connection)
        if statements_on_loop(dbapi_connection):
            # It may wait seconds and copies the WAL back: in the connection's thread.
            dbapi_connection.run_in_thread(functools.partial(_restart_checkpoint_in, resting))
            return
        cursor = dbapi_connection.cursor()
        try:
            _restart_checkpoint(cursor.execute, resting)
        finally:
            cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose rows stay readable after commit (the handler builds its response then)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config built in code, so the installed package migrates without alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # Passed as an attribute, not a main option: ConfigParser would choke on '%' in passwords.
        config.attributes["url"] = url
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision`; safe to call on every start."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_on, url, revision)
    finally:
        await engine.dispose()


def _upgrade_on(connection: Connection, url: str, revision: str) -> None:
    config = alembic_config(url)
    # env.py uses this connection instead of opening its own event loop.
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def upgrade_sync(url: str, revision: str = "head", *, create: bool = False) -> None:
    """`upgrade` for synchronous callers (CLI, scripts); not from inside a running event loop.

    Only `create` (`koppelpunt db upgrade`, `serve`) may create a SQLite file: any other
    command run from the wrong directory would otherwise make an empty database next to it
    and report "nothing found" from there.
    """
    missing = None if create else missing_sqlite_file(url)
    if missing is not None:
        raise ConfigurationError(
            f"no database at {missing} (KOPPELPUNT_DATABASE_URL {url}): set "
            "KOPPELPUNT_DATABASE_URL, run this from the directory the service runs in, or "
            "create it with `koppelpunt db upgrade`"
        )
    asyncio.run(upgrade(url, revision))


def missing_sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite database file that does not exist yet, else None."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).resolve()
    return None if path.exists() else path


def describe_database(url: str) -> str:
    """The database `url` names, for people: a SQLite file as an absolute path (a relative
    one depends on the directory a command runs in), any other without its password."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and not database.startswith("file:"):
        if database == ":memory:":
            return "SQLite in memory"
        return f"SQLite {Path(database).resolve()}"
    return parsed.render_as_string(hide_password=True)


async def begin_write(session: AsyncSession) -> None:
    """SQLite: take the database's write lock now, for a transaction that reads what it then
    writes (BEGIN IMMEDIATE; it waits for another writer as any write does, store/sqlite_driver.py).

    The driver begins a transaction only at the first INSERT or UPDATE, and reads before it see
    each commit up to themselves: another writer could change what was read before this
    transaction writes. With the write lock taken first, the reads and the writes see one state
    of the database. It must come before the session's first write (sqlite3 begins a transaction
    there itself). PostgreSQL: nothing; its READ COMMITTED reads are serialised per pupil by
    store/leerlingen.py `lock_pupils`.
    """
    if dialect_name(session) == "sqlite":
        # The driver's SQL as is: nothing for SQLAlchemy to compile, on every receipt.
        connection = await session.connection()
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers; for the readiness probe, so never raises."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


class WriteProbe:
    """Whether the database takes writes now, for the readiness probe (/readyz).

    A database can answer `SELECT 1` and still refuse every write: a full disk, a read-only
    file or standby, a revoked privilege, a write lock another process holds. So the probe
    updates the one `heartbeat` row and commits, which reaches the disk (the WAL), waiting at
    most `timeout` seconds for the database and its write lock. The result is kept for
    `interval` seconds: however many load balancers and kubelets probe, the database sees at
    most one small commit per interval. Concurrent probes share one check.

    SQLite: the probe opens a connection of its own (stdlib sqlite3 through a synchronous
    engine, in a thread) whose busy timeout is `timeout`: the service's connections wait for a
    writer's lock up to SQLITE_BUSY_TIMEOUT_MS, far longer than a probe may take.
    PostgreSQL: the service's pool, with lock_timeout and statement_timeout set to `timeout`
    for the probe's transaction. Never raises.
    """

    def __init__(self, engine: AsyncEngine, *, timeout: float, interval: float) -> None:
        self._engine = engine
        self._timeout = timeout
        self._interval = interval
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._writable = False
        self._sqlite_engine: Engine | None = None
        url = engine.url
        database = url.database
        if (
            url.get_backend_name() == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
        ):
            self._sqlite_engine = create_sync_engine(
                f"sqlite:///{database}",
                poolclass=NullPool,  # a fresh connection per probe: it sees the file as it is now
                connect_args={"timeout": timeout},
            )

    async def writable(self) -> bool:
        async with self._lock:
            checked = self._checked_at
            if checked is not None and time.monotonic() - checked < self._interval:
                return self._writable
            try:
                async with asyncio.timeout(self._timeout + 1.0):
                    if self._sqlite_engine is not None:
                        await asyncio.to_thread(self._beat_sqlite, self._sqlite_engine)
                    else:
                        await self._beat()
                ok = True
            except Exception as exc:
                log.warning("database_not_writable", error=type(exc).__name__)
                ok = False
            self._writable, self._checked_at = ok, time.monotonic()
            return ok

    @staticmethod
    def _beat_sqlite(engine: Engine) -> None:
        with engine.begin() as connection:
            _beat_on(connection, datetime.now(UTC))

    async def _beat(self) -> None:
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                ms = max(1, int(self._timeout * 1000))
                await connection.execute(text(f"SET LOCAL lock_timeout = {ms}"))
                await connection.execute(text(f"SET LOCAL statement_timeout = {ms}"))
            await connection.run_sync(_beat_on, datetime.now(UTC))


def _beat_on(connection: Connection, now: datetime) -> None:
    """Update the heartbeat row (the first probe inserts it)."""
    updated = connection.execute(update(heartbeat).where(heartbeat.c.id == 1).values(beat_at=now))
    if updated.rowcount == 0:
        insert = sqlite_insert if connection.dialect.name == "sqlite" else postgresql_insert
        connection.execute(insert(heartbeat).values(id=1, beat_at=now).on_conflict_do_nothing())


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether an IntegrityError is a unique/primary-key clash (not e.g. a foreign key).

    Lets a caller tell "someone else stored this bericht_id first" from a real fault.
    """
    orig = exc.orig
    # asyncpg (through SQLAlchemy's adapter) exposes the SQLSTATE; 23505 = unique_violation.
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return str(sqlstate) == "23505"
    message = str(orig)
    return "UNIQUE constraint failed" in message or "PRIMARY KEY constraint" in message
