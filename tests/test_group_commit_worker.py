"""The group commit's worker on its own (no database): grouping, deferral, faults, shutdown."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from koppelpunt.app.group_commit import DEFERRED, Deferred, GroupCommit
from koppelpunt.errors import ServiceUnavailableError


class Recorder:
    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def process(self, items: list[int]) -> list[int | BaseException | Deferred]:
        self.groups.append(list(items))
        await self.gate.wait()
        return [i * 10 for i in items]


async def test_items_queued_while_a_group_runs_form_the_next_group() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.process, max_size=3)
    recorder.gate.clear()
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the worker has taken [0] and waits at the gate
    rest = [asyncio.create_task(group.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == 0
    assert [await t for t in rest] == [10, 20, 30, 40, 50]
    assert recorder.groups == [[0], [1, 2, 3], [4, 5]]
    await group.close()


async def test_each_caller_gets_its_own_outcome() -> None:
    async def process(items: list[int]) -> list[int | BaseException | Deferred]:
        return [ValueError(i) if i % 2 else i for i in items]

    group = GroupCommit(process, max_size=10)
    results = await asyncio.gather(*(group.submit(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], ValueError) and isinstance(results[3], ValueError)
    await group.close()


async def test_a_fault_of_the_whole_group_reaches_every_caller_and_the_worker_lives_on() -> None:
    calls = 0

    async def process(items: list[int]) -> list[int | BaseException | Deferred]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return list(items)

    group = GroupCommit(process, max_size=10)
    results = await asyncio.gather(*(group.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await group.submit(7) == 7
    await group.close()


async def test_deferred_items_go_back_to_the_head_of_the_queue_in_order() -> None:
    groups: list[list[int]] = []

    async def process(items: list[int]) -> list[int | BaseException | Deferred]:
        groups.append(list(items))
        # take items up to the first odd one after the first item; defer the rest
        out: list[int | BaseException | Deferred] = []
        deferring = False
        for n, i in enumerate(items):
            deferring = deferring or (n > 0 and i % 2 == 1)
            out.append(DEFERRED if deferring else i)
        return out

    group = GroupCommit(process, max_size=10)
    results = await asyncio.gather(*(group.submit(i) for i in [0, 2, 3, 4, 5, 6]))
    assert results == [0, 2, 3, 4, 5, 6]
    assert groups == [[0, 2, 3, 4, 5, 6], [3, 4, 5, 6], [5, 6]]
    await group.close()


async def test_deferring_the_first_item_is_a_fault_not_a_hang() -> None:
    async def process(items: list[int]) -> list[int | BaseException | Deferred]:
        return [DEFERRED] * len(items)

    group = GroupCommit(process, max_size=10)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(group.submit(1), timeout=5)
    await group.close()


async def test_close_answers_queued_callers_503() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCommit(recorder.process, max_size=1)
    tasks = [asyncio.create_task(group.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    await group.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ServiceUnavailableError) for r in results)


async def test_the_worker_does_not_inherit_the_first_callers_log_fields() -> None:
    seen: list[dict[str, object]] = []

    async def process(items: list[int]) -> list[int | BaseException | Deferred]:
        seen.append(structlog.contextvars.get_contextvars())
        return list(items)

    group = GroupCommit(process, max_size=10)
    structlog.contextvars.bind_contextvars(berichtId="first")
    try:
        assert await group.submit(1) == 1
    finally:
        structlog.contextvars.unbind_contextvars("berichtId")
    assert seen == [{}]
    await group.close()
