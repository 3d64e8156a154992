"""A replay goes only to the gemeente's own topics, and each re-publication is a logged
disclosure (AVG): on the real server, the real broker with its ACLs, and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from aiokafka.errors import TopicAuthorizationFailedError
from sqlalchemy import func, select

from koppelpunt.app.inzage import run_inzage, to_json, to_text
from koppelpunt.app.replay import (
    ReplayRequest,
    ReplayTopicNotAllowedError,
    prepare_replay,
    run_replay,
)
from koppelpunt.config import Settings
from koppelpunt.kafka import access
from koppelpunt.kafka.admin import replay_topic_for, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher
from koppelpunt.runtime import Runtime
from koppelpunt.store import replays as replays_store
from koppelpunt.store.tables import replays
from tests.conftest import auth
from tests.http_server import serving
from tests.kafka.test_access import read_one
from tests.kafka_fixtures import consume_all

from .helpers import built, header, invoke_cli, new_signalering, relay_all, store

pytestmark = pytest.mark.kafka

BSN = "999993653"  # new_signalering's pupil


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with built(settings) as rt:
        yield rt


@pytest_asyncio.fixture(loop_scope="session")
async def server(settings: Settings) -> AsyncIterator[str]:
    """The app on koppelpunt's HTTP server (a free port) in this event loop."""
    async with serving(settings) as port:
        yield f"http://127.0.0.1:{port}"


async def _replay_count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(replays)) or 0)


async def _replay(runtime: Runtime, request: ReplayRequest) -> str:
    replay_id = await prepare_replay(runtime, request)
    publisher = KafkaPublisher(runtime.settings)
    await publisher.start()
    try:
        done = await run_replay(runtime, replay_id, publisher)
    finally:
        await publisher.stop()
    assert done.status == "done", done.error
    return replay_id


class TestReplayTopicRule:
    async def test_api_refuses_another_gemeentes_topic(self, server: str, runtime: Runtime) -> None:
        """GM0599's signaleringen to Amsterdam's topic: 422 problem+json naming the rule and
        the allowed topics; no replay is created, nothing is published."""
        settings = runtime.settings
        await store(runtime, [new_signalering(settings, 0, gemeente="GM0599")])
        amsterdam = topic_for(settings.topic_prefix, "GM0363")
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            for target in (
                amsterdam,
                amsterdam + ".replay",
                f"{settings.topic_prefix}.elders",
                topic_for(settings.topic_prefix, "GM0599").upper(),
            ):
                r = await client.post(
                    "/v1/beheer/replays",
                    json={"gemeente": "GM0599", "toTopic": target},
                    headers=auth("beheer"),
                )
                assert r.status_code == 422, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                body = r.json()
                assert body["code"] == "replay-topic-not-allowed"
                assert "mag alleen naar het eigen topic" in body["detail"]
                assert body["toegestaneTopics"] == [
                    topic_for(settings.topic_prefix, "GM0599"),
                    replay_topic_for(settings.topic_prefix, "GM0599"),
                ]
            own = await client.post(
                "/v1/beheer/replays",
                json={
                    "gemeente": "GM0599",
                    "toTopic": replay_topic_for(settings.topic_prefix, "GM0599"),
                    "dryRun": True,
                },
                headers=auth("beheer"),
            )
            assert own.status_code == 202, own.text
        assert await _replay_count(runtime) == 1  # the dry run only
        with pytest.raises(LookupError):  # never written, so never even created
            await consume_all(settings.kafka_bootstrap, amsterdam, timeout=3)

    async def test_cli_refuses_another_gemeentes_topic(
        self, runtime: Runtime, cli_env: None
    ) -> None:
        """`koppelpunt replay --gemeente GM0599 --to-topic <GM0363's topic>` exits 1 with
        the rule; no replay is created."""
        settings = runtime.settings
        await store(runtime, [new_signalering(settings, 0, gemeente="GM0599")])
        target = topic_for(settings.topic_prefix, "GM0363")
        result = await invoke_cli(["replay", "--gemeente", "GM0599", "--to-topic", target])
        assert result.exit_code == 1, result.output
        assert "mag alleen naar het eigen topic" in result.output
        assert await _replay_count(runtime) == 0

    async def test_a_stored_replay_to_another_topic_is_not_resumed(self, runtime: Runtime) -> None:
        """An unfinished replay stored with a foreign toTopic fails when run, sends nothing."""
        settings = runtime.settings
        await store(runtime, [new_signalering(settings, 0, gemeente="GM0599")])
        replay_id = str(uuid.uuid4())
        async with runtime.sessions.begin() as session:
            await replays_store.add_replay(
                session,
                replay_id=replay_id,
                f=replays_store.ReplayFilter("GM0599"),
                to_topic=topic_for(settings.topic_prefix, "GM0363"),
                dry_run=False,
                total=1,
                requested_by="t",
                now=runtime.clock(),
            )
        publisher = KafkaPublisher(settings)
        await publisher.start()
        try:
            state = await run_replay(runtime, replay_id, publisher)
        finally:
            await publisher.stop()
        assert (state.status, state.published) == ("failed", 0)
        assert "mag alleen naar" in (state.error or "")

    async def test_use_case_refuses_before_anything_is_stored(self, runtime: Runtime) -> None:
        """prepare_replay (behind the API, the CLI and the /beheer form) raises a 422."""
        with pytest.raises(ReplayTopicNotAllowedError) as refused:
            await prepare_replay(
                runtime,
                ReplayRequest(
                    gemeente="GM0599",
                    to_topic=topic_for(runtime.settings.topic_prefix, "GM0363"),
                ),
            )
        assert refused.value.status == 422
        assert await _replay_count(runtime) == 0


class TestReplayTopicAccessAndInzage:
    async def test_replay_topic_readable_by_the_gemeentes_vendor_only_and_in_inzage(
        self, runtime: Runtime
    ) -> None:
        """A replay of GM0599 to its `.replay` topic: GM0599's vendor reads it, GM0363's is
        refused by the broker; the person's inzage lists the replay as a disclosure with its
        topic and operator, next to the first publication."""
        settings = runtime.settings
        item = new_signalering(settings, 0, gemeente="GM0599")
        await store(runtime, [item])
        assert await relay_all(runtime) == 1
        target = replay_topic_for(settings.topic_prefix, "GM0599")
        replay_id = await _replay(
            runtime,
            ReplayRequest(gemeente="GM0599", to_topic=target, requested_by="j.jansen"),
        )
        records = await consume_all(settings.kafka_bootstrap, target, expect=1)
        assert [header(r, "ce_id") for r in records] == [item.signalering_id]

        vendor = await access.grant(
            settings, f"rmc-{uuid.uuid4().hex[:8]}", ["GM0599"], table=runtime.gemeenten
        )
        assert target in vendor.replay_topics
        assert await read_one(vendor, target, None) == item.payload
        other = await access.grant(
            settings, f"rmc-{uuid.uuid4().hex[:8]}", ["GM0363"], table=runtime.gemeenten
        )
        with pytest.raises(TopicAuthorizationFailedError):
            await read_one(other, target, None)

        inzage = await run_inzage(runtime.sessions, settings, BSN, "t")
        body = to_json(inzage)
        disclosures = [(v["topic"], v["replayId"], v["door"]) for v in body["verstrekkingen"]]
        assert disclosures == [
            (topic_for(settings.topic_prefix, "GM0599"), None, None),
            (target, replay_id, "j.jansen"),
        ]
        assert all(v["signaleringId"] == item.signalering_id for v in body["verstrekkingen"])
        lines = [v for v in body["verwerkingen"] if v["naam"] == "publiceren"]
        assert [(v["attributen"]["topic"], v["signaleringId"]) for v in lines] == [
            (topic_for(settings.topic_prefix, "GM0599"), item.signalering_id),
            (target, item.signalering_id),
        ]
        assert lines[1]["actor"] == "j.jansen"
        assert lines[1]["traceId"] == uuid.UUID(replay_id).hex  # the replay's own trace
        text = to_text(inzage)
        assert "Verstrekkingen aan gemeenten (2):" in text
        assert f"replay {replay_id} naar {target} door j.jansen" in text
