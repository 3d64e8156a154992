"""`koppelpunt replay`, `offsets` and `lag` as an operator types them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from koppelpunt.app.replay import list_replays
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import replay_topic_for, topic_for
from koppelpunt.runtime import Runtime
from tests.kafka_fixtures import consume_all

from .helpers import built, header, invoke_cli, new_signalering, relay_all, store

pytestmark = pytest.mark.kafka


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with built(settings) as rt:
        yield rt


class TestReplayCommand:
    async def test_dry_run_then_replay(
        self, runtime: Runtime, cli_env: None, kafka_bootstrap: str
    ) -> None:
        """--dry-run counts; the replay publishes with the replay header and exits 0."""
        settings = runtime.settings
        await store(runtime, [new_signalering(settings, n) for n in range(3)])
        dry = await invoke_cli(["replay", "--gemeente", "GM0363", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "3 signaleringen would be replayed" in dry.output
        target = replay_topic_for(settings.topic_prefix, "GM0363")
        done = await invoke_cli(
            ["replay", "--gemeente", "GM0363", "--to-topic", target, "--rate", "100"]
        )
        assert done.exit_code == 0, done.output
        assert "done, 3 of 3 published" in done.output
        records = await consume_all(kafka_bootstrap, target, expect=3)
        assert len(records) == 3 and all(header(r, "koppelpunt_replay") for r in records)

    async def test_bad_gemeente_is_a_usage_error(self, cli_env: None) -> None:
        """Exit code 2 with the reason, nothing started."""
        result = await invoke_cli(["replay", "--gemeente", "Amsterdam"])
        assert result.exit_code == 2

    async def test_unknown_gemeente_and_dry_run_store_no_replay(
        self, runtime: Runtime, cli_env: None
    ) -> None:
        """A well-formed code no gemeente has (GM9999) is refused, also as a dry run; a dry
        run counts without storing a replay."""
        for args in (["--gemeente", "GM9999"], ["--gemeente", "GM9999", "--dry-run"]):
            refused = await invoke_cli(["replay", *args])
            assert refused.exit_code == 1, refused.output
            assert "unknown gemeentecode GM9999" in refused.output
        await store(runtime, [new_signalering(runtime.settings, 0)])
        dry = await invoke_cli(["replay", "--gemeente", "GM0363", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "1 signaleringen would be replayed for GM0363" in dry.output
        assert await list_replays(runtime) == []


class TestOffsetsAndLag:
    async def test_reset_then_lag(
        self, runtime: Runtime, cli_env: None, kafka_bootstrap: str
    ) -> None:
        """offsets --to earliest positions the group; lag --json shows everything unread."""
        settings = runtime.settings
        await store(runtime, [new_signalering(settings, n) for n in range(2)])
        assert await relay_all(runtime) == 2
        await consume_all(kafka_bootstrap, topic_for(settings.topic_prefix, "GM0363"), expect=2)
        group = f"cli-{uuid.uuid4().hex[:6]}"
        reset = await invoke_cli(
            ["offsets", "--gemeente", "GM0363", "--group", group, "--to", "earliest", "--create"]
        )
        assert reset.exit_code == 0, reset.output
        assert "partition 0: offset 0" in reset.output
        lag = await invoke_cli(["lag", "--gemeente", "GM0363", "--json"])
        assert lag.exit_code == 0, lag.output
        rows = [r for r in json.loads(lag.stdout) if r["groep"] == group]
        assert [r["achterstand"] for r in rows] == [2]
        table = await invoke_cli(["lag"])
        assert group in table.output

    async def test_bad_target_and_missing_topic(self, cli_env: None) -> None:
        """A typo in --to is a usage error (2); a gemeente without a topic exits 1."""
        bad = await invoke_cli(["offsets", "--gemeente", "GM0363", "--group", "g", "--to", "x"])
        assert bad.exit_code == 2
        missing = await invoke_cli(
            ["offsets", "--gemeente", "GM0014", "--group", "g", "--to", "latest"]
        )
        assert missing.exit_code == 1
        assert "does not exist" in missing.output
