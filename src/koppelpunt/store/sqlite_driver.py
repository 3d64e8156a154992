"""SQLite through aiosqlite, with statements run on the event loop's own thread.

aiosqlite runs each call of a sqlite3 connection in a thread of its own and hands the result
back to the event loop. SQLAlchemy's aiosqlite adapter makes four such calls per statement
(create a cursor, execute, fetch the rows, close the cursor). Each is a wake-up of the event
loop (~60 µs of wall time and ~40 µs of its CPU when SQLite has nothing to do), and each waits
for the loop to get round to it: a group commit's ~14 statements queued one by one behind the
parsing of the next requests (bench/ROUNDS.md, seventh and ninth rounds). A statement of this
service takes SQLite microseconds, less than the trip.

So a statement is executed, its rows fetched and its cursor closed in one call on the loop's
thread; the rows, description, rowcount and lastrowid come back together. What may take long
still goes to the connection's thread, where it does not stop the loop:
- commit and rollback (a commit waits for the disk: synchronous=FULL), and server-side
  (streamed) cursors, which stay the stock adapter's;
- a statement that meets another writer's lock. The connection's busy timeout is 0 (store/db.py),
  so on the loop SQLite answers SQLITE_BUSY at once instead of sleeping; the statement is then
  run again in the connection's thread with the DBAPI's `busy_timeout_ms`, and waits there.
  Nothing of it ran: in WAL mode only taking the write lock, before the first row, is busy;
- a statement with more than `THREAD_PARAMETERS` rows or parameters (a large message's bulk
  INSERTs, its reads of hundreds of pupils): SQLite's own work for it takes milliseconds, more
  than the trip, and the loop is free meanwhile (sqlite3 releases the GIL while SQLite works);
- the next statement once this connection's statements have run on the loop for
  `LOOP_SLICE_SECONDS` without the loop coming round in between.
The last two keep a large message from holding the loop for its whole transaction, as it did
when every statement ran inline (a health check waited up to 1.8 s during a 10,000-record
message; bench/loop_stall.py, bench/ROUNDS.md tenth round); a small group's statements (a
few ms in all) stay on the loop.

This uses aiosqlite's `Connection._execute` (run a function in the connection's thread) and
SQLAlchemy's aiosqlite adapter (every such name is in koppelpunt.private_names); the versions
are bounded in pyproject.toml and `inline_dbapi()` returns None (the stock adapter is used) if
either is not as expected.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
from sqlalchemy.util import await_

from koppelpunt import private_names

log = structlog.get_logger(__name__)

try:
    import aiosqlite
    from sqlalchemy.dialects.sqlite.aiosqlite import (
        AsyncAdapt_aiosqlite_connection,
        AsyncAdapt_aiosqlite_dbapi,
    )
except ImportError:  # pragma: no cover - the stock adapter is not there either
    aiosqlite = None  # type: ignore[assignment]

# Statements with more rows (executemany) or parameters (IN lists) than this run in the
# connection's thread; so does the next statement once a connection's statements have run on
# the loop this long without the loop coming round (see the module's docstring).
THREAD_PARAMETERS = 64
LOOP_SLICE_SECONDS = 0.01

_Description = tuple[tuple[Any, ...], ...] | None
# What a statement leaves: description, rows (None without a description), rowcount, lastrowid.
_Outcome = tuple[_Description, list[Any] | None, int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """In the connection's thread: execute, fetch everything, close."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_waiting(
    timeout_ms: int, fn: Any, connection: sqlite3.Connection, operation: str, parameters: Any
) -> _Outcome:
    """In the connection's thread: `fn` with SQLite's busy handler waiting up to `timeout_ms`
    for another writer, then back to the connection's resting timeout of 0."""
    connection.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
    try:
        outcome: _Outcome = fn(connection, operation, parameters)
        return outcome
    finally:
        connection.execute("PRAGMA busy_timeout=0")


def _large(parameters: Any) -> bool:
    """More than THREAD_PARAMETERS parameter rows (executemany) or parameters (one statement:
    sqlite3's qmark style binds a sequence)."""
    return isinstance(parameters, (list, tuple)) and len(parameters) > THREAD_PARAMETERS


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _run_many(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, None, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class InlineCursor:
    """The DBAPI cursor SQLAlchemy's async adapter expects, holding a statement's whole result.

    Client-side only, as the stock cursor: its rows are fetched with the statement. Server-side
    cursors (streamed results) stay the stock adapter's."""

    server_side = False
    __slots__ = ("_adapt_connection", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._rows: collections.deque[Any] = collections.deque()
        self.arraysize = 1
        self.description: _Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def _call(self, fn: Any, operation: str, parameters: Any) -> None:
        adapt = self._adapt_connection
        try:
            outcome: _Outcome = await_(self._call_async(adapt, fn, operation, parameters))
        except Exception as error:
            adapt._handle_exception(error)
        self.description, rows, self.rowcount, self.lastrowid = outcome
        self._rows = collections.deque(rows) if rows else collections.deque()

    @staticmethod
    async def _call_async(adapt: Any, fn: Any, operation: str, parameters: Any) -> _Outcome:
        async with adapt._execute_mutex:
            connection = adapt._connection  # the aiosqlite.Connection
            raw: sqlite3.Connection = connection._conn
            if not (_large(parameters) or adapt.slice_spent()):
                try:
                    outcome: _Outcome = fn(raw, operation, parameters)  # on the loop's thread
                    return outcome
                except sqlite3.OperationalError as error:
                    if not _is_busy(error):
                        raise
            # Large, past the slice, or busy (another writer's lock): in the thread, which
            # waits for the lock if need be while the loop goes on.
            waited: _Outcome = await connection._execute(
                _run_waiting, adapt.dbapi.busy_timeout_ms, fn, raw, operation, parameters
            )
            return waited

    def execute(self, operation: str, parameters: Any = None) -> None:
        self._call(_run, operation, parameters)

    def executemany(self, operation: str, seq_of_parameters: Any) -> None:
        self._call(_run_many, operation, seq_of_parameters)

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        rows = self._rows
        if size is None:  # DBAPI: arraysize when not given (0 asks for none)
            size = self.arraysize
        return [rows.popleft() for _ in range(min(size, len(rows)))]

    def fetchall(self) -> Sequence[Any]:
        out = list(self._rows)
        self._rows.clear()
        return out

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        """Nothing to close in the thread: the sqlite3 cursor was closed with its statement."""

    def setinputsizes(self, *inputsizes: Any) -> None:
        """DBAPI: a hint sqlite3 ignores."""

    def nextset(self) -> None:
        """sqlite3 has one result set per statement."""

    def __enter__(self) -> InlineCursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _expected_internals() -> bool:
    """aiosqlite and SQLAlchemy still have every name InlineCursor uses
    (koppelpunt.private_names, library "sqlite")."""
    return aiosqlite is not None and not private_names.missing("sqlite")


if aiosqlite is not None:

    class InlineConnection(AsyncAdapt_aiosqlite_connection):
        """SQLAlchemy's aiosqlite connection adapter with InlineCursor as its cursor.

        It asks the connection's thread to commit or roll back only when a transaction is
        open. sqlite3 begins a transaction at the first write, and its own commit() and
        rollback() do nothing without one; but the pool rolls back every connection it gets
        back, also after a commit, and a read-only session rolls back when it closes: each a
        trip to the thread for nothing. `in_transaction` is read from the loop's thread, as
        aiosqlite's own property does: no statement of this connection runs while SQLAlchemy
        commits or rolls it back."""

        __slots__ = ("_slice_pending", "_slice_started")
        _cursor_cls = InlineCursor  # type: ignore[assignment]
        # Statements run on the loop's thread: the connection's own busy timeout must be 0
        # (store/db.py sets it), a wait happens in the thread (InlineCursor).
        statements_on_loop = True

        def __init__(self, dbapi: Any, connection: Any) -> None:
            super().__init__(dbapi, connection)
            self._slice_started = 0.0
            self._slice_pending = False

        def _loop_came_round(self) -> None:
            self._slice_pending = False

        def slice_spent(self) -> bool:
            """Whether this connection's statements have kept the loop for longer than
            LOOP_SLICE_SECONDS since it last ran anything else. A callback scheduled at the
            start of a slice runs only once the task has given the loop back (a trip to the
            thread, any other wait): while it is pending, the loop has not come round."""
            now = time.perf_counter()
            if not self._slice_pending:
                self._slice_pending = True
                self._slice_started = now
                asyncio.get_running_loop().call_soon(self._loop_came_round)
                return False
            return now - self._slice_started > LOOP_SLICE_SECONDS

        def _in_transaction(self) -> bool:
            raw: sqlite3.Connection | None = self._connection._connection
            return raw is not None and raw.in_transaction

        def rollback(self) -> None:
            if self._in_transaction():
                super().rollback()

        def commit(self) -> None:
            if self._in_transaction():
                super().commit()

        def run_in_thread(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
            """`fn(sqlite3 connection)` in the connection's thread, off the loop: for work
            that may wait (a RESTART checkpoint, store/db.py)."""
            connection = self._connection
            try:
                return await_(connection._execute(fn, connection._conn))
            except Exception as error:
                self._handle_exception(error)

    class InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
        """The DBAPI module the engine gets (create_engine's `module=`); `busy_timeout_ms` is
        how long a statement waits for another writer's lock (in the connection's thread)."""

        def __init__(self, busy_timeout_ms: int) -> None:
            super().__init__(aiosqlite, sqlite3)
            self.busy_timeout_ms = busy_timeout_ms

        def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
            # The connection is used from two threads, never at once: statements on the loop's
            # (under the adapter's mutex), commit, rollback and waits in aiosqlite's.
            kw["check_same_thread"] = False
            stock = super().connect(*arg, **kw)
            return InlineConnection(self, stock._connection)


def statements_on_loop(dbapi_connection: Any) -> bool:
    """Whether this pooled connection runs its statements on the event loop's thread."""
    return bool(getattr(dbapi_connection, "statements_on_loop", False))


def inline_dbapi(busy_timeout_ms: int) -> Any:
    """The DBAPI module for SQLite engines, or None (use the stock adapter, with a warning)
    when aiosqlite or SQLAlchemy do not have what InlineCursor relies on."""
    if not _expected_internals():
        log.warning(
            "sqlite_inline_cursor_unavailable",
            hint="aiosqlite or SQLAlchemy changed; the stock adapter is used (slower)",
        )
        return None
    return InlineDBAPI(busy_timeout_ms)
