"""Group commit: concurrent small messages share one transaction.

A single-record message costs about a dozen statements and a commit, whatever its size; that
fixed cost, not the record, is what limits single-record throughput (bench/ROUNDS.md). Here
the messages that arrive while a transaction is running wait in a queue, and the next
transaction takes all of them (up to `max_size`): the statements and the commit are shared, so
under load the cost per message falls towards the cost per record of a batch message.

Each caller still gets its own answer, and only after the commit that stored its message: the
worker resolves one future per message. A lone message waits for nobody: the worker starts on
it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from koppelpunt.errors import ServiceUnavailableError

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Deferred:
    """A group's answer for an item it did not take: it goes back to the head of the queue."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED = Deferred()


class GroupCommit(Generic[T, R]):
    """One worker task per event loop that processes queued items in groups, in arrival order.

    `process` gets up to `max_size` items and returns, per item, its result, an exception
    (raised to that item's caller) or DEFERRED (the item goes back to the head of the queue,
    in order, for the next group; the first item of a group must not be deferred). An
    exception `process` raises itself is given to every item of the group.
    """

    def __init__(
        self,
        process: Callable[[list[T]], Awaitable[Sequence[R | BaseException | Deferred]]],
        max_size: int,
    ) -> None:
        self._process = process
        self._max_size = max_size
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        """Queue `item`; return its result once the group that holds it has committed."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            # Lazily, per loop: the API's loop, or each asyncio.run of a CLI command or test.
            if self._loop is not loop:
                self._loop = loop
                self._queue = []  # an earlier loop's futures cannot be resolved any more
                self._wake = asyncio.Event()
            # A context of its own: not the log fields bound by the request that started it.
            self._task = loop.create_task(
                self._work(), name="koppelpunt-group-commit", context=contextvars.Context()
            )
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        assert self._wake is not None
        self._wake.set()
        # Not shielded: a cancelled caller (client gone) leaves its item in the group; it is
        # stored and committed like the others, and a resend gets the stored receipt.
        return await future

    async def _work(self) -> None:
        assert self._wake is not None
        wake = self._wake
        try:
            while True:
                await wake.wait()
                wake.clear()
                while self._queue:
                    group = self._queue[: self._max_size]
                    del self._queue[: self._max_size]
                    await self._run(group)
        except asyncio.CancelledError:
            for _, future in self._queue:
                if not future.done():
                    future.set_exception(ServiceUnavailableError("de service stopt"))
            self._queue.clear()
            raise

    async def _run(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes: Sequence[R | BaseException | Deferred] = await self._process(
                [i for i, _ in group]
            )
        except asyncio.CancelledError:
            for _, future in group:
                if not future.done():
                    future.set_exception(ServiceUnavailableError("de service stopt"))
            raise
        except Exception as exc:  # a fault: every caller of the group gets it, the worker lives on
            outcomes = [exc] * len(group)
        if len(outcomes) != len(group):
            outcomes = [RuntimeError("a group answered for the wrong number of items")] * len(group)
        deferred: list[tuple[T, asyncio.Future[R]]] = []
        for (item, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Deferred):
                deferred.append((item, future))
            elif future.done():  # its caller was cancelled
                continue
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if deferred:
            if deferred[0][1] is group[0][1]:  # no progress: a fault, the callers get it
                fault = RuntimeError("a group did not take its first item")
                for _, future in deferred:
                    if not future.done():
                        future.set_exception(fault)
                return
            self._queue[:0] = deferred

    async def close(self) -> None:
        """Stop the worker; queued callers get 503 (they were not acknowledged)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # an earlier loop's worker, already stopped with its loop
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
