"""Replay on the real broker and database: order, ids, the replay header, resume, dry run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

from koppelpunt.app.replay import (
    REPLAY_HEADER,
    ReplayRequest,
    get_replay,
    prepare_replay,
    run_replay,
)
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import replay_topic_for, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher
from koppelpunt.runtime import Runtime
from tests.kafka_fixtures import admin_kwargs, consume_all

from .helpers import T0, built, header, new_signalering, relay_all, store

pytestmark = pytest.mark.kafka


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with built(settings.model_copy(update={"replay_batch_size": 2})) as rt:
        yield rt


async def _delete_all_records(bootstrap: str, topic: str) -> None:
    """What topic retention does: remove every record (log start offset moves to the end)."""
    records = await consume_all(bootstrap, topic)
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    admin = AIOKafkaAdminClient(**admin_kwargs(bootstrap))
    await admin.start()
    try:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(end) for p, end in ends.items()}
        )
    finally:
        await admin.close()


async def _replay(runtime: Runtime, request: ReplayRequest, **kwargs: object) -> str:
    replay_id = await prepare_replay(runtime, request)
    publisher = KafkaPublisher(runtime.settings)
    await publisher.start()
    try:
        await run_replay(runtime, replay_id, publisher, **kwargs)  # type: ignore[arg-type]
    finally:
        await publisher.stop()
    return replay_id


class TestReplay:
    async def test_restores_records_removed_by_retention_with_the_same_ids(
        self, runtime: Runtime, kafka_bootstrap: str
    ) -> None:
        """After retention emptied the topic, a replay puts back every signalering of the
        gemeente, in the original order, with the original ce_id and a replay header."""
        settings = runtime.settings
        mine = [new_signalering(settings, n) for n in range(5)]
        other = [new_signalering(settings, n, gemeente="GM0599") for n in range(2)]
        await store(runtime, [mine[0], other[0], *mine[1:3], other[1], *mine[3:]])
        assert await relay_all(runtime) == 7
        topic = topic_for(settings.topic_prefix, "GM0363")
        original = await consume_all(kafka_bootstrap, topic, expect=5)
        assert len(original) == 5
        await _delete_all_records(kafka_bootstrap, topic)
        assert await consume_all(kafka_bootstrap, topic) == []

        replay_id = await _replay(runtime, ReplayRequest(gemeente="GM0363"))

        replayed = await consume_all(kafka_bootstrap, topic, expect=5)
        assert [header(r, "ce_id") for r in replayed] == [s.signalering_id for s in mine]
        assert [header(r, REPLAY_HEADER) for r in replayed] == [replay_id] * 5
        assert [r.value for r in replayed] == [r.value for r in original]
        assert {r.key for r in replayed} == {b"999993653"}
        state = await get_replay(runtime, replay_id)
        assert (state.status, state.total, state.published) == ("done", 5, 5)

    async def test_filters_and_to_topic(self, runtime: Runtime, kafka_bootstrap: str) -> None:
        """--since/--until (exclusive)/--type select, --to-topic sends to the replay topic."""
        settings = runtime.settings
        items = [
            new_signalering(settings, n, type_="PROGNOSE" if n % 2 else "AANMELDSTATUS")
            for n in range(6)
        ]
        await store(runtime, items)
        target = replay_topic_for(settings.topic_prefix, "GM0363")
        await _replay(
            runtime,
            ReplayRequest(
                gemeente="gm0363",
                since=T0 + timedelta(minutes=1),
                until=T0 + timedelta(minutes=5),
                type="prognose",
                to_topic=target,
            ),
        )
        records = await consume_all(kafka_bootstrap, target, expect=2)
        assert [header(r, "ce_id") for r in records] == ["sig-GM0363-0001", "sig-GM0363-0003"]

    async def test_dry_run_counts_and_sends_nothing(self, runtime: Runtime) -> None:
        """A dry run records the count and is done at once; no topic is written."""
        await store(runtime, [new_signalering(runtime.settings, n) for n in range(3)])
        replay_id = await prepare_replay(runtime, ReplayRequest(gemeente="GM0363", dry_run=True))
        state = await get_replay(runtime, replay_id)
        assert (state.status, state.total, state.published, state.dry_run) == ("done", 3, 0, True)

    async def test_resumes_after_an_interruption(
        self, runtime: Runtime, kafka_bootstrap: str
    ) -> None:
        """Interrupted after the first batch, the same request resumes the same replay and
        publishes only the rest: every signalering reaches the topic exactly once."""
        settings = runtime.settings
        items = [new_signalering(settings, n) for n in range(5)]
        await store(runtime, items)
        request = ReplayRequest(
            gemeente="GM0363", to_topic=replay_topic_for(settings.topic_prefix, "GM0363")
        )
        replay_id = await prepare_replay(runtime, request)
        publisher = KafkaPublisher(settings)
        await publisher.start()
        try:
            task: asyncio.Task[object] | None = None

            def interrupt(published: int, _total: int) -> None:
                if published >= 2 and task is not None:
                    task.cancel()

            task = asyncio.create_task(
                run_replay(runtime, replay_id, publisher, on_progress=interrupt)
            )
            with pytest.raises(asyncio.CancelledError):
                await task
            state = await get_replay(runtime, replay_id)
            assert (state.status, state.published) == ("interrupted", 2)

            assert await prepare_replay(runtime, request) == replay_id
            final = await run_replay(runtime, replay_id, publisher)
        finally:
            await publisher.stop()
        assert (final.status, final.published) == ("done", 5)
        records = await consume_all(kafka_bootstrap, request.to_topic or "", expect=5)
        assert [header(r, "ce_id") for r in records] == [s.signalering_id for s in items]

    async def test_restart_starts_a_new_replay(self, runtime: Runtime) -> None:
        """resume=False creates a new replay even when an unfinished one exists."""
        await store(runtime, [new_signalering(runtime.settings, 0)])
        request = ReplayRequest(gemeente="GM0363")
        first = await prepare_replay(runtime, request)
        assert await prepare_replay(runtime, request) == first
        assert await prepare_replay(runtime, request, resume=False) != first

    async def test_rejects_a_bad_gemeentecode(self, runtime: Runtime) -> None:
        """Only GM + 4 digits names a gemeente topic."""
        with pytest.raises(ValueError, match="gemeentecode"):
            await prepare_replay(runtime, ReplayRequest(gemeente="Amsterdam"))
