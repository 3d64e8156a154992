"""Wake a relay when another process commits outbox rows (PostgreSQL LISTEN/NOTIFY).

An API process wakes its own relay in-process after each commit. A relay in a process of its
own (`koppelpunt relay`, docs/scaling.md) used to find new rows only by polling, so a
signalering waited up to the poll interval. On PostgreSQL every transaction that adds outbox
rows also sends `NOTIFY koppelpunt_outbox` (outbox.add_signaleringen; delivered at commit,
once per transaction). This listener keeps one connection of its own LISTENing on that channel
and calls `on_notify` for each notification.

Polling stays as the safety net: a notification lost while the listener reconnects (after a
database restart or a failover) only delays publication until the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from koppelpunt.store.outbox import OUTBOX_CHANNEL

log = structlog.get_logger(__name__)

RECONNECT_MAX_SECONDS = 30.0


def asyncpg_dsn(database_url: str) -> str:
    """The libpq-style DSN asyncpg connects with, from the SQLAlchemy URL (driver dropped)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class OutboxListener:
    """LISTEN on the outbox channel in a background task, reconnecting with back-off."""

    def __init__(self, database_url: str, on_notify: Callable[[], None]) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._on_notify = on_notify
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while a LISTEN connection is up

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, *_: Any) -> None:
        self._on_notify()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen_until_lost()
                delay = 0.5  # it was up: reconnect soon
                log.warning("outbox_listener_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unreachable database: the relay polls meanwhile
                log.warning("outbox_listener_unavailable", error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_until_lost(self) -> None:
        """One LISTEN connection, until the server closes it (or the task is cancelled)."""
        connection = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(OUTBOX_CHANNEL, self._notified)
            self.listening.set()
            # Rows committed while nobody listened: one pass picks them up.
            self._on_notify()
            await lost.wait()
        finally:
            self.listening.clear()
            if not connection.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.shield(connection.close(timeout=2))
