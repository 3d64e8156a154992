"""Access per RMC-regio on the real broker: grant a region, follow a gemeente table import."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from typer.testing import CliRunner

from koppelpunt.cli.main import app
from koppelpunt.config import Settings
from koppelpunt.kafka import access
from koppelpunt.kafka.admin import ensure_topics, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.verwerkingenlog import list_lines
from tests.kafka.test_access import read_one, unique_name

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[2] / "data"
RMC = DATA / "rmc-regios-bijlage-c-2012.csv"
TABEL33 = DATA / "rvig-tabel33-gemeenten.csv"
CODES = ("GM0363", "GM0384", "GM0599")  # Amsterdam, Diemen (regio 21); Rotterdam (regio 29)


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[dict[str, str]]:
    names = {code: topic_for(settings.topic_prefix, code) for code in CODES}
    await ensure_topics(settings, list(names.values()), partitions=1)
    publisher = KafkaPublisher(settings, request_timeout=10)
    await publisher.start()
    try:
        results = await publisher.publish(
            [
                OutboundMessage(topic=t, key=b"k", value=f"<{c}/>".encode(), headers=(), ref=n)
                for n, (c, t) in enumerate(names.items())
            ]
        )
        assert all(r.ok for r in results), results
    finally:
        await publisher.stop()
    yield names


def env(settings: Settings) -> dict[str, str]:
    return {
        "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
        "KOPPELPUNT_TOPIC_PARTITIONS": "1",
        "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KOPPELPUNT_DATABASE_URL": settings.database_url,
    }


def run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env(settings))
    assert result.exit_code == 0, result.output
    return result.stdout


def settle_amsterdam(settings: Settings, tmp_path: Path) -> None:
    """Amsterdam is a conflict (Weesp came from regio 20): the operator puts it in regio 21."""
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("gemeentecode,rmc_regio\nGM0363,21\n", encoding="utf-8")
    run(settings, "rmc", "import", str(RMC), "--overrides", str(overrides))


def config_from(path: Path) -> access.ConnectionConfig:
    data = json.loads(path.read_text())
    return access.ConnectionConfig(
        name=data["username"],
        bootstrap=data["bootstrapServers"],
        security_protocol=data["securityProtocol"],
        sasl_mechanism=data["saslMechanism"],
        password=data["password"],
        gemeenten=tuple(data["gemeenten"]),
        topics=tuple(data["topics"]),
        replay_topics=tuple(data["replayTopics"]),
        ssl_ca_pem=data.get("sslCaPem"),
    )


def logged(settings: Settings, name: str) -> int:
    """How many verwerkingenlog lines `beheer.NAME` there are."""

    async def count() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                return len(await list_lines(session, name_prefix=f"beheer.{name}"))
        finally:
            await engine.dispose()

    return asyncio.run(count())


def listed(settings: Settings) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["naam"]: r for r in json.loads(run(settings, "access", "list", "--json"))}


class TestRegionGrant:
    async def test_region_21_reads_amsterdam_and_diemen_not_rotterdam(
        self, settings: Settings, topics: dict[str, str], tmp_path: Path
    ) -> None:
        # The CLI runs its own event loop: from this async test, in a thread.
        await asyncio.to_thread(settle_amsterdam, settings, tmp_path)
        name = unique_name()
        out = tmp_path / "verbinding.json"
        await asyncio.to_thread(
            run, settings, "access", "grant", name, "--rmc-regio", "21", "--output", str(out)
        )
        config = config_from(out)
        assert {"GM0363", "GM0384"} <= set(config.gemeenten)
        assert "GM0599" not in config.gemeenten
        assert await read_one(config, topics["GM0363"], f"{name}.rmc") == b"<GM0363/>"
        assert await read_one(config, topics["GM0384"], f"{name}.rmc") == b"<GM0384/>"
        with pytest.raises(TopicAuthorizationFailedError):
            await read_one(config, topics["GM0599"], None)
        assert (await asyncio.to_thread(listed, settings))[name]["rmcRegios"] == [21]

    def test_combined_with_gemeente_and_revoked_per_region(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        settle_amsterdam(settings, tmp_path)
        name = unique_name()
        run(settings, "access", "grant", name, "--rmc-regio", "21", "--gemeente", "GM0599")
        row = listed(settings)[name]
        assert {"GM0363", "GM0384", "GM0599"} <= set(row["gemeenten"])
        out = run(settings, "access", "revoke", name, "--rmc-regio", "21")
        assert "revoked" in out
        row = listed(settings)[name]
        assert row["gemeenten"] == ["GM0599"] and row["rmcRegios"] == []
        run(settings, "access", "revoke", name)

    def test_sync_follows_a_gemeente_table_import(self, settings: Settings, tmp_path: Path) -> None:
        """Ouder-Amstel (0437, regio 21) merges into a new gemeente 1998 per 2025: after the
        import, `access sync` shows the change, and with --apply grants 1998, revokes 0437."""
        settle_amsterdam(settings, tmp_path)
        name = unique_name()
        run(settings, "access", "grant", name, "--rmc-regio", "21")
        assert "GM0437" in listed(settings)[name]["gemeenten"]
        lines = []
        for line in TABEL33.read_text(encoding="utf-8").splitlines():
            if line.startswith('"0437"'):
                line = '"0437","Ouder-Amstel","1998","","20250101"'
            lines.append(line)
        lines.append('"1998","Amstelgemeente-test","","20250101",""')
        table = tmp_path / "tabel33-nieuw.csv"
        table.write_text("\n".join(lines) + "\n", encoding="utf-8")
        run(settings, "gemeenten", "import", str(table))
        dry = run(settings, "access", "sync")
        assert f"{name}\tregio 21\twould grant: GM1998\twould revoke: GM0437" in dry
        assert "GM1998" not in listed(settings)[name]["gemeenten"]
        applied = run(settings, "access", "sync", "--apply")
        assert f"{name}\tregio 21\tgrant: GM1998\trevoke: GM0437" in applied
        row = listed(settings)[name]
        assert "GM1998" in row["gemeenten"] and "GM0437" not in row["gemeenten"]
        assert "GM0384" in row["gemeenten"]
        assert name not in run(settings, "access", "sync")
        assert logged(settings, "access_sync") == 1  # the applied sync, not the dry runs
        run(settings, "access", "revoke", name)
