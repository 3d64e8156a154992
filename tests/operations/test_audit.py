"""Every operator action writes its `beheer.<action>` line in the verwerkingenlog, with who did
it: from the CLI (`--actor`, default cli:<OS user>), the JSON endpoints and the service itself."""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from koppelpunt.app import audit
from koppelpunt.app.replay import wait_for_replay
from koppelpunt.app.scheduler import Scheduler
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.runtime import Runtime
from koppelpunt.store.berichten import BeslissingRow, add_beslissingen
from koppelpunt.store.verwerkingenlog import StoredLine, list_lines
from tests.conftest import Running, auth
from tests.kafka_fixtures import consume_all
from tests.store.helpers import add_test_bericht

from .helpers import built, invoke_cli, new_signalering, relay_all, store

pytestmark = pytest.mark.kafka

GROUP = f"cli-{uuid.uuid4().hex[:6]}"
RULES_DIR = Path(__file__).resolve().parents[2] / "routing_rules"


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with built(settings) as rt:
        yield rt


async def lines(runtime: Runtime, action: str) -> list[StoredLine]:
    """This action's lines, oldest first."""
    async with runtime.sessions() as session:
        found = await list_lines(session, name_prefix=f"beheer.{action}")
    return [line for line in reversed(found) if line.name == f"beheer.{action}"]


def default_actor() -> str:
    return f"cli:{getpass.getuser()}"


class TestCli:
    async def test_replay_with_actor(self, runtime: Runtime, cli_env: None) -> None:
        """`replay --actor` names the operator; the line holds the parameters and the count."""
        await store(runtime, [new_signalering(runtime.settings, n) for n in range(2)])
        result = await invoke_cli(
            ["replay", "--gemeente", "gm0363", "--dry-run", "--actor", "alice"]
        )
        assert result.exit_code == 0, result.output
        (line,) = await lines(runtime, audit.REPLAY)
        assert (line.actor, line.status_code, line.verwerkingsactiviteit) == (
            "alice",
            "OK",
            "vva-beheer",
        )
        assert line.attributes["gemeentecode"] == "GM0363"
        assert (line.attributes["dryRun"], line.attributes["totaal"]) == (True, 2)

    async def test_offsets_reset_and_a_refused_one(self, runtime: Runtime, cli_env: None) -> None:
        """A reset is logged with the new offsets; a refused one (no topic) as ERROR."""
        settings = runtime.settings
        await store(runtime, [new_signalering(settings, 0)])
        assert await relay_all(runtime) == 1
        await consume_all(
            settings.kafka_bootstrap, topic_for(settings.topic_prefix, "GM0363"), expect=1
        )
        done = await invoke_cli(
            ["offsets", "--gemeente", "GM0363", "--group", GROUP, "--to", "earliest", "--create"]
        )
        assert done.exit_code == 0, done.output
        refused = await invoke_cli(
            ["offsets", "--gemeente", "GM0014", "--group", GROUP, "--to", "latest"]
        )
        assert refused.exit_code == 1
        ok, error = await lines(runtime, audit.OFFSETS_RESET)
        assert (ok.actor, ok.status_code, ok.attributes["group"]) == (
            default_actor(),
            "OK",
            GROUP,
        )
        assert ok.attributes["offsets"] == {"0": 0}
        assert (error.status_code, error.attributes["gemeentecode"]) == ("ERROR", "GM0014")
        assert "does not exist" in error.attributes["fout"]

    async def test_outbox_retry(self, runtime: Runtime, cli_env: None) -> None:
        result = await invoke_cli(["outbox", "retry", "--actor", "bob"])
        assert result.exit_code == 0, result.output
        (line,) = await lines(runtime, audit.OUTBOX_RETRY)
        assert (line.actor, line.attributes["aantal"]) == ("bob", 0)

    async def test_purge_and_dry_run(self, runtime: Runtime, cli_env: None) -> None:
        """Both log their counts per kind (never contents) with the OS user by default."""
        assert (await invoke_cli(["purge", "--dry-run"])).exit_code == 0
        assert (await invoke_cli(["purge"])).exit_code == 0
        dry, real = await lines(runtime, audit.PURGE)
        assert (dry.actor, dry.attributes["dryRun"]) == (default_actor(), True)
        assert real.attributes["dryRun"] is False
        assert set(real.attributes["aantallen"]) >= {"berichten", "aanmeldingen"}

    async def test_parked_retry(self, runtime: Runtime, cli_env: None) -> None:
        result = await invoke_cli(["parked", "retry", "--actor", "carol"])
        assert result.exit_code == 0, result.output
        (line,) = await lines(runtime, audit.PARKED_RETRY)
        assert line.actor == "carol"
        assert (line.attributes["besloten"], line.attributes["geparkeerd"]) == (0, 0)

    async def test_peildatum(self, runtime: Runtime, cli_env: None) -> None:
        result = await invoke_cli(["peildatum", "--datum", "2027-04-01", "--dry-run"])
        assert result.exit_code == 0, result.output
        (line,) = await lines(runtime, audit.PEILDATUM)
        assert line.actor == default_actor()
        assert (line.attributes["peildatum"], line.attributes["dryRun"]) == ("2027-04-01", True)

    async def test_rules_dry_run(self, runtime: Runtime, cli_env: None) -> None:
        result = await invoke_cli(
            ["rules", "dry-run", str(RULES_DIR), "--since", "2099-01-01", "--actor", "dave"]
        )
        assert result.exit_code == 0, result.output
        (line,) = await lines(runtime, audit.RULES_DRY_RUN)
        assert line.actor == "dave"
        assert line.attributes["since"] == "2099-01-01"
        assert line.attributes["huidigeVersie"] == runtime.rules.version

    async def test_access_grant_and_revoke_without_password(
        self, runtime: Runtime, cli_env: None, tmp_path: Path
    ) -> None:
        """Who granted which gemeenten to whom; the one-time password is nowhere in the log."""
        name = f"rmc-{uuid.uuid4().hex[:8]}"
        config = tmp_path / "verbinding.json"
        args = ["access", "grant", name, "--gemeente", "GM0363", "--output", str(config)]
        granted = await invoke_cli([*args, "--actor", "eve"])
        assert granted.exit_code == 0, granted.output
        password = json.loads(config.read_text())["password"]
        revoked = await invoke_cli(["access", "revoke", name, "--actor", "eve"])
        assert revoked.exit_code == 0, revoked.output
        (grant,) = await lines(runtime, audit.ACCESS_GRANT)
        (revoke,) = await lines(runtime, audit.ACCESS_REVOKE)
        assert (grant.actor, grant.attributes["naam"], grant.attributes["gemeenten"]) == (
            "eve",
            name,
            ["GM0363"],
        )
        assert grant.attributes["nieuwWachtwoord"] is True
        assert password not in json.dumps(grant.attributes)
        assert (revoke.actor, revoke.attributes["naam"]) == ("eve", name)


class TestHttp:
    async def test_replay_and_outbox_retry_name_the_key(
        self, running: Running, client: httpx.AsyncClient
    ) -> None:
        """Over HTTP the actor is the operator key's name."""
        await store(running.runtime, [new_signalering(running.runtime.settings, 0)])
        response = await client.post(
            "/v1/beheer/replays",
            json={"gemeente": "GM0363", "dryRun": True},
            headers=auth("beheer"),
        )
        assert response.status_code == 202
        await wait_for_replay(response.json()["replayId"])
        retried = await client.post("/v1/beheer/outbox/retry", headers=auth("beheer"))
        assert retried.status_code == 200
        (replay,) = await lines(running.runtime, audit.REPLAY)
        (retry,) = await lines(running.runtime, audit.OUTBOX_RETRY)
        assert (replay.actor, retry.actor) == ("beheer", "beheer")
        assert replay.attributes["replayId"] == response.json()["replayId"]


class TestService:
    async def test_scheduler_logs_peildatum_and_parked_retry(self, runtime: Runtime) -> None:
        """What the service does on its own is logged with the service as actor."""
        async with runtime.sessions.begin() as session:
            pk = await add_test_bericht(session, "B-parked")
            await add_beslissingen(
                session, pk, [BeslissingRow(0, "geparkeerd", None, None, None, "v1", None)]
            )
        runtime.clock = lambda: datetime(2027, 4, 2, 6, 0, tzinfo=UTC)
        await Scheduler(runtime).tick()
        (peildatum,) = await lines(runtime, audit.PEILDATUM)
        (parked,) = await lines(runtime, audit.PARKED_RETRY)
        assert (peildatum.actor, parked.actor) == (audit.SYSTEM_ACTOR, audit.SYSTEM_ACTOR)
        assert peildatum.attributes["peildatum"] == "2027-04-01"
