"""Failing signaleringen on the real broker: a topic whose max.message.bytes refuses them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from koppelpunt.app.failing import list_failing, retry_failing
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import replay_topic_for, topic_for
from koppelpunt.runtime import Runtime
from tests.conftest import auth
from tests.kafka_fixtures import admin_kwargs, consume_all

from .helpers import built, header, invoke_cli, new_signalering, relay_all, store

pytestmark = pytest.mark.kafka

SMALL = 512  # bytes: below the signalering we store, above the broker's record overhead


@pytest.fixture
def slow_settings(settings: Settings) -> Settings:
    """An hour of back-off: only an operator's retry makes a failed signalering due again."""
    return settings.model_copy(
        update={"relay_backoff_base_seconds": 3600.0, "relay_backoff_max_seconds": 3600.0}
    )


@pytest.fixture
async def runtime(slow_settings: Settings) -> AsyncIterator[Runtime]:
    async with built(slow_settings) as rt:
        yield rt


async def _topic_with_limit(bootstrap: str, topic: str, max_bytes: int) -> None:
    admin = AIOKafkaAdminClient(**admin_kwargs(bootstrap))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": str(max_bytes)})]
        )
    finally:
        await admin.close()
    # A probe record (no headers) proves the new partition takes writes: a produce right
    # after creation may fail with NotLeaderForPartition, which is not the error under test.
    producer = AIOKafkaProducer(**admin_kwargs(bootstrap))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"probe")
    finally:
        await producer.stop()


def _signalering_ids(records: list[ConsumerRecord[bytes, bytes]]) -> list[str | None]:
    """The ce_ids on a topic, without the probe record."""
    return [header(r, "ce_id") for r in records if r.value != b"probe"]


async def _raise_limit(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(**admin_kwargs(bootstrap))
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": "1048576"})]
        )
    finally:
        await admin.close()


async def _prepare_topics(settings: Settings, bootstrap: str) -> str:
    """GM0363's topic refuses large records; GM0599's is normal. Both exist up front: when a
    relay batch also holds a record for a topic the publisher has just created, aiokafka may
    report the large one as NotLeaderForPartition instead (still failing, other text)."""
    await _topic_with_limit(bootstrap, topic_for(settings.topic_prefix, "GM0599"), 1048576)
    topic = topic_for(settings.topic_prefix, "GM0363")
    await _topic_with_limit(bootstrap, topic, SMALL)
    return topic


async def _store_large(runtime: Runtime) -> str:
    item = new_signalering(runtime.settings, 1)
    big = dataclasses.replace(item, payload=b"x" * 2000)
    await store(runtime, [big, new_signalering(runtime.settings, 2, gemeente="GM0599")])
    return item.signalering_id


class TestFailing:
    async def test_refused_signalering_is_visible_and_retried_after_the_fix(
        self, runtime: Runtime, kafka_bootstrap: str
    ) -> None:
        """The broker refuses a too-large signalering: it stays in the outbox with its error
        (others still go out); after the topic is fixed, a retry publishes it."""
        topic = await _prepare_topics(runtime.settings, kafka_bootstrap)
        sid = await _store_large(runtime)

        assert await relay_all(runtime) == 1  # the GM0599 one
        failing = await list_failing(runtime)
        assert [f.signalering_id for f in failing] == [sid]
        assert failing[0].attempts == 1
        assert "MessageSizeTooLarge" in (failing[0].last_error or "")
        assert await relay_all(runtime) == 0  # backing off: not due yet

        await _raise_limit(kafka_bootstrap, topic)
        assert await retry_failing(runtime, requested_by="test") == 1
        assert await relay_all(runtime) == 1
        assert await list_failing(runtime) == []
        records = await consume_all(kafka_bootstrap, topic, expect=2)
        assert _signalering_ids(records) == [sid]

    async def test_cli_lists_and_retries(
        self, runtime: Runtime, kafka_bootstrap: str, cli_env: None
    ) -> None:
        """`outbox list --failing --json` shows it (exit 1); `outbox retry ID` makes it due."""
        await _prepare_topics(runtime.settings, kafka_bootstrap)
        sid = await _store_large(runtime)
        await relay_all(runtime)
        listed = await invoke_cli(["outbox", "list", "--failing", "--json"])
        assert listed.exit_code == 1
        rows = json.loads(listed.stdout)
        assert [(r["signaleringId"], r["pogingen"]) for r in rows] == [(sid, 1)]
        assert "MessageSizeTooLarge" in rows[0]["laatsteFout"]
        backlog = await invoke_cli(["outbox", "list", "--gemeente", "GM0363"])
        assert backlog.exit_code == 0 and sid in backlog.output
        retried = await invoke_cli(["outbox", "retry", sid])
        assert retried.exit_code == 0 and "1 signaleringen" in retried.output
        assert (await list_failing(runtime))[0].next_attempt_at is not None
        assert await relay_all(runtime) == 0  # still refused: the topic was not fixed
        assert (await list_failing(runtime))[0].attempts == 2


class TestEndpoints:
    async def test_failing_and_retry(self, slow_settings: Settings, kafka_bootstrap: str) -> None:
        """GET /v1/beheer/outbox/failing and POST /v1/beheer/outbox/retry for an operator."""
        from asgi_lifespan import LifespanManager

        from koppelpunt.api.app import create_app

        settings = slow_settings.model_copy(update={"relay_enabled": False})
        async with built(settings) as runtime:
            await _prepare_topics(settings, kafka_bootstrap)
            sid = await _store_large(runtime)
            await relay_all(runtime)
            application = create_app(settings, runtime)
            async with LifespanManager(application) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    listed = await client.get("/v1/beheer/outbox/failing", headers=auth("beheer"))
                    assert listed.status_code == 200
                    assert [s["signaleringId"] for s in listed.json()["signaleringen"]] == [sid]
                    retried = await client.post("/v1/beheer/outbox/retry", headers=auth("beheer"))
                    assert retried.json() == {"aantal": 1}
                    forbidden = await client.post(
                        "/v1/beheer/outbox/retry", headers=auth("koppelpunt-mbo")
                    )
                    assert forbidden.status_code == 403


class TestReplayFailure:
    async def test_failed_replay_stops_and_resumes_after_the_fix(
        self, runtime: Runtime, kafka_bootstrap: str
    ) -> None:
        """A replay whose target refuses a signalering stops as `failed` with the error, after
        what Kafka acknowledged; once the topic is fixed the same request resumes it."""
        from koppelpunt.app.replay import ReplayRequest, prepare_replay, run_replay
        from koppelpunt.kafka.publisher import KafkaPublisher

        # One per publish call: a record batch is refused as a whole.
        runtime.settings = runtime.settings.model_copy(update={"replay_batch_size": 1})
        settings = runtime.settings
        small = new_signalering(settings, 1)
        large = dataclasses.replace(new_signalering(settings, 2), payload=b"x" * 2000)
        await store(runtime, [small, large, new_signalering(settings, 3)])
        target = replay_topic_for(settings.topic_prefix, "GM0363")
        await _topic_with_limit(kafka_bootstrap, target, SMALL)
        request = ReplayRequest(gemeente="GM0363", to_topic=target)
        replay_id = await prepare_replay(runtime, request)
        publisher = KafkaPublisher(settings)
        await publisher.start()
        try:
            failed = await run_replay(runtime, replay_id, publisher)
            assert (failed.status, failed.published) == ("failed", 1)
            assert "MessageSizeTooLarge" in (failed.error or "")
            await _raise_limit(kafka_bootstrap, target)
            assert await prepare_replay(runtime, request) == replay_id
            done = await run_replay(runtime, replay_id, publisher)
        finally:
            await publisher.stop()
        assert (done.status, done.published, done.error) == ("done", 3, None)
        records = await consume_all(kafka_bootstrap, target, expect=4)
        assert _signalering_ids(records) == [
            small.signalering_id,
            large.signalering_id,
            "sig-GM0363-0003",
        ]
