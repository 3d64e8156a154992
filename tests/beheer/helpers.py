"""Helpers for the beheer tests."""

from __future__ import annotations

import asyncio
import time

from koppelpunt.store import outbox
from tests.conftest import Running


async def all_published(running: Running, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait until the app's own relay has published everything (no second, racing drain)."""
    deadline = time.monotonic() + timeout
    while True:
        async with running.runtime.sessions() as session:
            if await outbox.backlog(session) == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError("outbox not drained in time")
        running.relay.wake()
        await asyncio.sleep(0.1)
