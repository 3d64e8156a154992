"""A task that counts how often the event loop came round: for tests of what keeps the loop
(and so health checks and other messages) waiting."""

from __future__ import annotations

import asyncio


class Ticker:
    """A task that counts how often it ran (sleeping `interval` between runs): whether the
    event loop came round while something else was going on."""

    def __init__(self, interval: float) -> None:
        self.ticks = 0
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        """Starts the task and lets it begin: ticks count from here."""
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
