"""Operator endpoints for replays and lag, through the app with its lifespan."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from koppelpunt.app.replay import REPLAY_HEADER, wait_for_replay
from koppelpunt.kafka.admin import replay_topic_for, topic_for
from tests.conftest import Running, auth
from tests.kafka_fixtures import consume_all
from tests.test_end_to_end import records_on

from .helpers import header, new_signalering, store

pytestmark = pytest.mark.kafka


class TestReplays:
    async def test_operator_starts_a_replay_and_follows_it(
        self, running: Running, client: httpx.AsyncClient, kafka_bootstrap: str
    ) -> None:
        """POST /v1/beheer/replays answers 202 with an id; the replay runs in the background
        and GET shows it done; the records are on the gemeente's replay topic."""
        settings = running.runtime.settings
        await store(running.runtime, [new_signalering(settings, n) for n in range(3)])
        target = replay_topic_for(settings.topic_prefix, "GM0363")
        response = await client.post(
            "/v1/beheer/replays",
            json={"gemeente": "GM0363", "since": "2020-01-01", "toTopic": target},
            headers=auth("beheer"),
        )
        assert response.status_code == 202, response.text
        body = response.json()
        replay_id = body["replayId"]
        assert response.headers["location"] == f"/v1/beheer/replays/{replay_id}"
        assert (body["totaal"], body["aangevraagdDoor"]) == (3, "beheer")
        await asyncio.wait_for(wait_for_replay(replay_id), 30)
        state = await client.get(f"/v1/beheer/replays/{replay_id}", headers=auth("beheer"))
        assert state.status_code == 200
        assert (state.json()["status"], state.json()["gepubliceerd"]) == ("done", 3)
        records = await consume_all(kafka_bootstrap, target, expect=3)
        assert [header(r, REPLAY_HEADER) for r in records] == [replay_id] * 3
        listed = await client.get("/v1/beheer/replays", headers=auth("beheer"))
        assert [r["replayId"] for r in listed.json()["replays"]] == [replay_id]

    async def test_dry_run_counts(self, running: Running, client: httpx.AsyncClient) -> None:
        """dryRun: 202 with the count, status done, nothing published."""
        await store(running.runtime, [new_signalering(running.runtime.settings, 0)])
        response = await client.post(
            "/v1/beheer/replays",
            json={"gemeente": "GM0363", "type": "PROGNOSE", "dryRun": True},
            headers=auth("beheer"),
        )
        assert response.status_code == 202
        assert (response.json()["status"], response.json()["totaal"]) == ("done", 0)

    @pytest.mark.parametrize(
        "body",
        [{"gemeente": "Amsterdam"}, {"gemeente": "GM0363", "since": "gisteren"}, {}],
    )
    async def test_bad_requests_are_problems(
        self, running: Running, client: httpx.AsyncClient, body: dict[str, str]
    ) -> None:
        """A wrong gemeentecode, date or missing field is a 4xx problem+json, never a 500."""
        response = await client.post("/v1/beheer/replays", json=body, headers=auth("beheer"))
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_only_operators(self, running: Running, client: httpx.AsyncClient) -> None:
        """Senders get 403; an unknown replay 404, a string that cannot be a replay id 400."""
        response = await client.post(
            "/v1/beheer/replays", json={"gemeente": "GM0363"}, headers=auth("koppelpunt-mbo")
        )
        assert response.status_code == 403
        missing = await client.get(f"/v1/beheer/replays/{uuid.uuid4()}", headers=auth("beheer"))
        assert missing.status_code == 404
        malformed = await client.get("/v1/beheer/replays/nope", headers=auth("beheer"))
        assert malformed.status_code == 400


class TestLag:
    async def test_lag_of_a_group(
        self, running: Running, client: httpx.AsyncClient, kafka_bootstrap: str
    ) -> None:
        """GET /v1/beheer/lag lists a group positioned at the start of a gemeente topic."""
        from koppelpunt.app.offsets import reset_offsets

        group = f"api-lag-{uuid.uuid4().hex[:6]}"
        settings = running.runtime.settings
        await store(running.runtime, [new_signalering(settings, n) for n in range(2)])
        topic = topic_for(settings.topic_prefix, "GM0363")
        # The in-process relay publishes them (a second relay here could publish twice).
        await records_on(kafka_bootstrap, topic, expect=2)
        await reset_offsets(settings, gemeente="GM0363", group=group, to="earliest", create=True)
        response = await client.get("/v1/beheer/lag?gemeente=GM0363", headers=auth("beheer"))
        assert response.status_code == 200
        rows = [r for r in response.json()["lag"] if r["groep"] == group]
        assert [(r["topic"], r["achterstand"]) for r in rows] == [(topic, 2)]
        assert rows[0]["oudsteOngelezen"] is not None
        bad = await client.get("/v1/beheer/lag?gemeente=xx", headers=auth("beheer"))
        assert bad.status_code == 400
