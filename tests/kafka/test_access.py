"""Vendor access on the real broker (SASL/SCRAM + StandardAuthorizer, deny by default).

Every refusal asserted here comes from the broker itself: there is no layer of ours in between.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import TopicPartition
from typer.testing import CliRunner

from dev.localkafka import broker as localkafka_broker
from koppelpunt.cli.main import app
from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.kafka import access
from koppelpunt.kafka.admin import client_kwargs, ensure_topics, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage
from koppelpunt.pipeline.gemeenten import GemeenteTable

pytestmark = pytest.mark.kafka

TOPIC_AUTHORIZATION_FAILED = 29
PACKAGED = Path(__file__).resolve().parents[2] / "data" / "rvig-tabel33-gemeenten.csv"
# The packaged gemeente table: what the CLI uses while no table was imported.
TABLE = GemeenteTable.load(PACKAGED)


def vendor_kwargs(config: access.ConnectionConfig) -> dict[str, Any]:
    """aiokafka arguments from a printed connection config, as a vendor would build them."""
    assert config.password is not None
    return {
        "bootstrap_servers": config.bootstrap,
        "security_protocol": config.security_protocol,
        # The config's own CA (sslCaPem), as a vendor would trust it; None on plaintext.
        "ssl_context": ssl.create_default_context(cadata=config.ssl_ca_pem)
        if config.ssl_ca_pem
        else None,
        "sasl_mechanism": config.sasl_mechanism,
        "sasl_plain_username": config.name,
        "sasl_plain_password": config.password,
        "request_timeout_ms": 5000,
    }


async def authenticate(config: access.ConnectionConfig) -> None:
    """One SASL handshake with the config's credentials; the broker's error is raised as is."""
    host, port = config.bootstrap.rsplit(":", 1)
    kwargs = vendor_kwargs(config)
    conn = await create_conn(
        host,
        int(port),
        security_protocol=kwargs["security_protocol"],
        ssl_context=kwargs["ssl_context"],
        sasl_mechanism=kwargs["sasl_mechanism"],
        sasl_plain_username=kwargs["sasl_plain_username"],
        sasl_plain_password=kwargs["sasl_plain_password"],
    )
    conn.close()


def unique_name() -> str:
    return f"rmc-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[dict[str, str]]:
    """Topics of GM0363 and GM0599 with one record each, written by the service principal."""
    names = {code: topic_for(settings.topic_prefix, code) for code in ("GM0363", "GM0599")}
    await ensure_topics(settings, list(names.values()), partitions=1)
    publisher = KafkaPublisher(settings, request_timeout=10)
    await publisher.start()
    try:
        results = await publisher.publish(
            [
                OutboundMessage(
                    topic=t, key=b"123456782", value=f"<{c}/>".encode(), headers=(), ref=n
                )
                for n, (c, t) in enumerate(names.items())
            ]
        )
        assert all(r.ok for r in results), results
    finally:
        await publisher.stop()
    yield names


async def read_one(config: access.ConnectionConfig, topic: str, group: str | None) -> bytes:
    """The first record of `topic`, read with the vendor's credentials."""
    consumer = AIOKafkaConsumer(
        **vendor_kwargs(config),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        if group is None:
            # The metadata answer carries the broker's per-topic error (aiokafka would retry
            # an unauthorised assignment silently): TOPIC_AUTHORIZATION_FAILED raises here.
            await consumer._client._wait_on_metadata(topic)
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
        else:
            consumer.subscribe([topic])
        async with asyncio.timeout(20):
            record = await consumer.getone()
        if group is not None:
            await consumer.commit()
        assert record.value is not None
        return record.value
    finally:
        await consumer.stop()


class TestGrant:
    async def test_reads_own_topic_with_own_group(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """The printed credentials read the granted gemeente's topic in a NAME.* group."""
        name = unique_name()
        config = await access.grant(settings, name, ["gm0363"], table=TABLE)
        assert config.topics == (topics["GM0363"],)
        assert config.gemeenten == ("GM0363",)
        assert config.group_prefix == f"{name}."
        assert await read_one(config, topics["GM0363"], f"{name}.leerplicht") == b"<GM0363/>"

    async def test_other_gemeente_topic_is_refused(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """Reading another gemeente's topic: TOPIC_AUTHORIZATION_FAILED from the broker."""
        config = await access.grant(settings, unique_name(), ["0363"], table=TABLE)
        with pytest.raises(TopicAuthorizationFailedError):
            await read_one(config, topics["GM0599"], None)

    async def test_group_outside_own_prefix_is_refused(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """Joining a consumer group that does not start with `NAME.` is refused."""
        name = unique_name()
        config = await access.grant(settings, name, ["GM0363"], table=TABLE)
        with pytest.raises(GroupAuthorizationFailedError):
            await read_one(config, topics["GM0363"], f"x{name}.leerplicht")

    async def test_producing_is_refused(self, settings: Settings, topics: dict[str, str]) -> None:
        """A vendor cannot write, not even to its own gemeente's topic."""
        config = await access.grant(settings, unique_name(), ["GM0363"], table=TABLE)
        producer = AIOKafkaProducer(**vendor_kwargs(config))
        await producer.start()
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(topics["GM0363"], b"<nep/>", key=b"123456782")
        finally:
            await producer.stop()

    async def test_creating_topics_is_refused(self, settings: Settings) -> None:
        """CreateTopics answers TOPIC_AUTHORIZATION_FAILED for the vendor's principal."""
        config = await access.grant(settings, unique_name(), ["GM0363"], table=TABLE)
        admin = AIOKafkaAdminClient(**vendor_kwargs(config))
        await admin.start()
        try:
            wanted = topic_for(settings.topic_prefix, "GM0014")
            response = await admin.create_topics([NewTopic(wanted, 1, 1)])
            assert [code for _t, code, _m in response.topic_errors] == [TOPIC_AUTHORIZATION_FAILED]
        finally:
            await admin.close()

    async def test_one_bureau_reads_several_gemeenten(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """A regional bureau granted two gemeenten reads both topics."""
        name = unique_name()
        config = await access.grant(settings, name, ["GM0363", "GM0599"], table=TABLE)
        assert await read_one(config, topics["GM0363"], f"{name}.a") == b"<GM0363/>"
        assert await read_one(config, topics["GM0599"], f"{name}.b") == b"<GM0599/>"

    async def test_vendor_can_rewind_its_own_group(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """Replay within retention needs no operator: the vendor commits an older offset."""
        name = unique_name()
        config = await access.grant(settings, name, ["GM0363"], table=TABLE)
        group = f"{name}.leerplicht"
        assert await read_one(config, topics["GM0363"], group) == b"<GM0363/>"  # commits 1
        # No auto-commit: on stop() it would commit this consumer's position (1, fetched
        # when the partition was assigned) over the rewind, which made this test flaky.
        consumer = AIOKafkaConsumer(
            **vendor_kwargs(config), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tp = TopicPartition(topics["GM0363"], 0)
            consumer.assign([tp])
            assert await consumer.committed(tp) == 1
            await consumer.commit({tp: 0})  # what kafka-consumer-groups --reset-offsets does
            assert await consumer.committed(tp) == 0
        finally:
            await consumer.stop()
        assert await read_one(config, topics["GM0363"], group) == b"<GM0363/>"

    async def test_keep_password_leaves_running_credentials_valid(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """Adding a gemeente with keep_password: the old password reads the new topic too."""
        name = unique_name()
        first = await access.grant(settings, name, ["GM0363"], table=TABLE)
        second = await access.grant(settings, name, ["GM0599"], keep_password=True, table=TABLE)
        assert second.password is None
        assert await read_one(first, topics["GM0599"], None) == b"<GM0599/>"

    async def test_grant_is_logged_without_the_password(self, settings: Settings) -> None:
        """An audit line names the principal and gemeenten; the password appears nowhere."""
        name = unique_name()
        with structlog.testing.capture_logs() as logs:
            config = await access.grant(settings, name, ["GM0363"], table=TABLE)
        granted = [e for e in logs if e["event"] == "access_granted"]
        assert granted == [
            {
                "event": "access_granted",
                "log_level": "info",
                "principal": name,
                "gemeenten": ["GM0363"],
                "new_password": True,
            }
        ]
        assert config.password is not None and config.password not in repr(logs)

    @pytest.mark.parametrize("code", ["GM9999", "GM0000", "1999", "363", "amsterdam"])
    async def test_unknown_gemeente_is_refused_before_kafka(
        self, settings: Settings, code: str
    ) -> None:
        """Codes not in the gemeente table (or onbekend/RNI) never reach the broker."""
        with pytest.raises(access.AccessError, match="gemeentecode"):
            await access.grant(settings, unique_name(), [code], table=TABLE)

    async def test_ended_gemeente_names_its_successor(self, settings: Settings) -> None:
        """A gemeente that no longer exists is refused with a hint where its pupils went."""
        with pytest.raises(access.AccessError, match="ended"):
            await access.grant(
                settings, unique_name(), ["GM0003"], today=date(2026, 1, 1), table=TABLE
            )

    @pytest.mark.parametrize(
        "name", ["A", "Rmc", "x", "with space", "a.b", "koppelpunt", "koppelpunt-admin"]
    )
    async def test_bad_names_are_refused(self, settings: Settings, name: str) -> None:
        """Names must be lowercase principal names and never one of our own principals."""
        with pytest.raises(ConfigurationError):
            await access.grant(settings, name, ["GM0363"], table=TABLE)


class TestRevoke:
    async def test_revoked_credentials_stop_working(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """After a full revoke the user cannot even authenticate."""
        name = unique_name()
        config = await access.grant(settings, name, ["GM0363"], table=TABLE)
        assert await read_one(config, topics["GM0363"], f"{name}.g") == b"<GM0363/>"
        await authenticate(config)
        removed = await access.revoke(settings, name, table=TABLE)
        assert len(removed) == 6  # topic and replay topic READ+DESCRIBE, group READ+DESCRIBE
        with pytest.raises(SaslAuthenticationFailed):
            await authenticate(config)
        with pytest.raises(KafkaConnectionError):  # aiokafka: "Unable to bootstrap"
            await read_one(config, topics["GM0363"], f"{name}.g")
        assert name not in {e.name for e in await access.list_access(settings)}

    async def test_partial_revoke_keeps_the_rest(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """Revoking one gemeente of two: the other stays readable, the revoked one is refused."""
        name = unique_name()
        config = await access.grant(settings, name, ["GM0363", "GM0599"], table=TABLE)
        await access.revoke(settings, name, ["GM0599"], table=TABLE)
        assert await read_one(config, topics["GM0363"], f"{name}.g") == b"<GM0363/>"
        with pytest.raises(TopicAuthorizationFailedError):
            await read_one(config, topics["GM0599"], None)

    async def test_delete_user_right_after_creation(self, settings: Settings) -> None:
        """The controller answers the deletion: a user created a moment ago is deleted (True),
        an unknown user is not (False). Asking the broker's metadata image first could miss
        the new user; repeated so a lagging image would show."""
        async with access.AccessAdmin(settings) as admin:
            for _ in range(100):
                name = unique_name()
                await admin.set_password(name, uuid.uuid4().hex)
                assert await admin.delete_user(name)
                assert not await admin.delete_user(name)
            assert not await admin.delete_user(unique_name())


class TestUntilApplied:
    async def test_returns_once_the_check_holds(self) -> None:
        answers = iter([False, False, True])
        calls = 0

        async def check() -> bool:
            nonlocal calls
            calls += 1
            return next(answers)

        await access.until_applied(check, "x", seconds=5)
        assert calls == 3

    async def test_says_what_was_not_applied(self) -> None:
        async def never() -> bool:
            return False

        with pytest.raises(access.AccessError, match=r"the ACLs of 'rmc-x'.*access list"):
            await access.until_applied(never, "the ACLs of 'rmc-x'", seconds=0.2)


class TestList:
    async def test_shows_who_reads_what(self, settings: Settings) -> None:
        """Granted gemeenten and the group prefix per user; the service's own write ACL too."""
        name = unique_name()
        await access.grant(settings, name, ["GM0599", "GM0363"], table=TABLE)
        entries = {e.name: e for e in await access.list_access(settings)}
        assert sorted(entries[name].gemeenten) == ["GM0363", "GM0599"]
        assert entries[name].group_prefixes == [f"{name}."]
        assert entries[name].has_credentials
        assert entries[name].other == []
        service = entries[settings.kafka_username or "koppelpunt"]
        assert any("Write topic 'vva.signalering.'" in line for line in service.other)


class TestServicePrincipal:
    async def test_service_cannot_create_topics_outside_its_prefix(
        self, settings: Settings
    ) -> None:
        """The service principal only writes under vva.signalering.: elsewhere it is refused."""
        with pytest.raises(ConfigurationError, match="error 29"):
            await ensure_topics(settings, [f"elders.{uuid.uuid4().hex[:8]}.gm0363"])

    async def test_service_cannot_read_signaleringen(
        self, settings: Settings, topics: dict[str, str]
    ) -> None:
        """Writing is all the service may do: reading a gemeente topic is refused."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            security_protocol=settings.kafka_security_protocol,
            ssl_context=client_kwargs(settings).get("ssl_context"),
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_username,
            sasl_plain_password=settings.kafka_password,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            # The service may DESCRIBE its topics, so metadata is fine; the fetch is refused.
            tp = TopicPartition(topics["GM0363"], 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            with pytest.raises(TopicAuthorizationFailedError):
                async with asyncio.timeout(20):
                    await consumer.getone()
        finally:
            await consumer.stop()


class TestCli:
    def test_grant_writes_json_config_private(self, settings: Settings, tmp_path: Path) -> None:
        """`access grant --output x.json`: a 0600 JSON file with everything a consumer needs."""
        name = unique_name()
        out = tmp_path / "verbinding.json"
        env = {"KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix}
        result = CliRunner().invoke(
            app,
            ["access", "grant", name, "--gemeente", "GM0363", "--output", str(out)],
            env={
                **env,
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        config = json.loads(out.read_text())
        assert config["username"] == name
        assert config["topics"] == [topic_for(settings.topic_prefix, "GM0363")]
        assert config["groupPrefix"] == f"{name}."
        assert config["saslMechanism"] == "SCRAM-SHA-512"
        assert config["bootstrapServers"] == settings.kafka_bootstrap
        assert len(config["password"]) >= 24
        assert config["password"] not in result.output

    def test_grant_replaces_an_existing_file_without_showing_it_the_password(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """An older verbinding.json (0644) is replaced by a new 0600 file, not rewritten: whoever
        could read (or had opened) the old file does not get the new password."""
        name = unique_name()
        (tmp_path / "out").mkdir()
        out = tmp_path / "out" / "verbinding.json"
        out.write_text("{}\n")
        out.chmod(0o644)
        with out.open() as opened_before:
            result = CliRunner().invoke(
                app,
                ["access", "grant", name, "--gemeente", "GM0363", "--output", str(out)],
                env={
                    "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
                    "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                    "KOPPELPUNT_DATABASE_URL": settings.database_url,
                },
            )
            assert result.exit_code == 0, result.output
            password = json.loads(out.read_text())["password"]
            assert password not in opened_before.read()
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert [p.name for p in out.parent.iterdir()] == ["verbinding.json"]  # no temp file left

    def test_default_connection_files_are_ignored_by_git(self) -> None:
        """verbinding.json/.properties (the names docs/leveranciers.md uses) are in .gitignore."""
        root = Path(__file__).resolve().parents[2]
        patterns = [
            line.strip()
            for line in (root / ".gitignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        for name in ("verbinding.json", "verbinding.properties", "verbinding-rmc.json"):
            assert any(Path(name).match(p) for p in patterns), name

    def test_grant_prints_properties_then_list_and_revoke(self, settings: Settings) -> None:
        """Properties on stdout (Java), visible in `access list`, gone after `access revoke`."""
        name = unique_name()
        env = {
            "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
            "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "KOPPELPUNT_DATABASE_URL": settings.database_url,
        }
        runner = CliRunner()
        granted = runner.invoke(
            app, ["access", "grant", name, "--gemeente", "0363", "--gemeente", "GM0599"], env=env
        )
        assert granted.exit_code == 0, granted.output
        assert "security.protocol=SASL_SSL" in granted.output
        assert "ssl.truststore.type=PEM" in granted.output
        assert "ssl.truststore.certificates=-----BEGIN CERTIFICATE-----" in granted.output
        assert "sasl.mechanism=SCRAM-SHA-512" in granted.output
        assert f'username="{name}"' in granted.output
        listed = runner.invoke(app, ["access", "list", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        rows = {r["naam"]: r for r in json.loads(listed.stdout)}
        assert sorted(rows[name]["gemeenten"]) == ["GM0363", "GM0599"]
        revoked = runner.invoke(app, ["access", "revoke", name], env=env)
        assert revoked.exit_code == 0, revoked.output
        listed = runner.invoke(app, ["access", "list", "--json"], env=env)
        assert name not in {r["naam"] for r in json.loads(listed.stdout)}

    def test_librdkafka_format_for_kcat(
        self, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`--format librdkafka` gives sasl.username/sasl.password (kcat -F) and no JAAS line;
        the broker's CA goes into a file beside it (here: the working directory), named by
        `ssl.ca.location`."""
        name = unique_name()
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(
            app,
            ["access", "grant", name, "--gemeente", "GM0363", "--format", "librdkafka"],
            env={
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert result.exit_code == 0, result.output
        assert "sasl.mechanisms=SCRAM-SHA-512" in result.output
        assert "sasl.password=" in result.output
        assert "jaas" not in result.output
        ca_file = tmp_path / f"{name}-kafka-ca.pem"
        assert f"ssl.ca.location={ca_file.resolve()}" in result.stdout
        broker_ca = Path(os.environ["KOPPELPUNT_KAFKA_SSL_CAFILE"])
        assert ca_file.read_text() == broker_ca.read_text()

    async def test_vendor_without_the_ca_cannot_connect(self, settings: Settings) -> None:
        """TLS is real: the vendor's config works with its CA (sslCaPem), and a client that
        trusts only the system's CAs is refused in the handshake, before any SASL."""
        config = await access.grant(settings, unique_name(), ["GM0363"], table=TABLE)
        assert config.ssl_ca_pem and config.ssl_ca_pem.startswith("-----BEGIN CERTIFICATE-----")
        assert json.loads(config.as_json())["sslCaPem"] == config.ssl_ca_pem
        await authenticate(config)
        host, port = config.bootstrap.rsplit(":", 1)
        with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
            conn = await create_conn(
                host,
                int(port),
                security_protocol="SASL_SSL",
                ssl_context=ssl.create_default_context(),
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=config.name,
                sasl_plain_password=config.password,
            )
            conn.close()

    def test_unknown_gemeente_exits_2(self, settings: Settings) -> None:
        """A wrong gemeentecode is a usage error with a clear message."""
        result = CliRunner().invoke(
            app,
            ["access", "grant", unique_name(), "--gemeente", "GM9999"],
            env={
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert result.exit_code == 2
        assert "unknown gemeentecode 'GM9999'" in result.output


class TestImportedGemeenteTable:
    def test_topics_ensure_and_grant_use_the_imported_table(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """After `gemeenten import` of a table with a new gemeente, `topics ensure` creates its
        topic and `access grant` accepts it: every command uses the table in use."""
        table = tmp_path / "tabel33-nieuw.csv"
        table.write_text(
            PACKAGED.read_text(encoding="utf-8").rstrip("\n")
            + '\n"1998","Nieuwegemeente-test","","20250101",""\n',
            encoding="utf-8",
        )
        env = {
            "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
            "KOPPELPUNT_TOPIC_PARTITIONS": "1",
            "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "KOPPELPUNT_DATABASE_URL": settings.database_url,
        }
        runner = CliRunner()
        imported = runner.invoke(app, ["gemeenten", "import", str(table)], env=env)
        assert imported.exit_code == 0, imported.output
        ensured = runner.invoke(app, ["topics", "ensure"], env=env)
        assert ensured.exit_code == 0, ensured.output
        topic = topic_for(settings.topic_prefix, "GM1998")

        async def topics() -> set[str]:
            admin = AIOKafkaAdminClient(**client_kwargs(settings))
            await admin.start()
            try:
                return set(await admin.list_topics())
            finally:
                await admin.close()

        assert topic in asyncio.run(topics())
        name = unique_name()
        out = tmp_path / "verbinding.json"
        granted = runner.invoke(
            app, ["access", "grant", name, "--gemeente", "GM1998", "--output", str(out)], env=env
        )
        assert granted.exit_code == 0, granted.output
        assert json.loads(out.read_text())["topics"] == [topic]


class TestLibrdkafkaClient:
    def test_confluent_kafka_reads_with_the_librdkafka_file(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """The vendor guide's out-of-the-box tool: confluent-kafka (librdkafka 2.6+) with the
        `--format librdkafka` file reads its gemeente's topic (examples/librdkafka_consumer.py)."""
        topic = topic_for(settings.topic_prefix, "GM0363")

        async def produce() -> None:
            await ensure_topics(settings, [topic], 1)
            producer = AIOKafkaProducer(**client_kwargs(access.admin_settings(settings)))
            await producer.start()
            try:
                for n in range(2):
                    await producer.send_and_wait(
                        topic, b"<x/>", key=b"k", headers=[("ce_id", f"id-{n}".encode())]
                    )
            finally:
                await producer.stop()

        asyncio.run(produce())
        name = unique_name()
        out = tmp_path / "verbinding.properties"
        command = ["access", "grant", name, "--gemeente", "GM0363", "--format", "librdkafka"]
        granted = CliRunner().invoke(
            app,
            [*command, "--output", str(out)],
            env={
                "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert granted.exit_code == 0, granted.output
        example = PACKAGED.parents[1] / "examples" / "librdkafka_consumer.py"
        result = subprocess.run(
            [sys.executable, str(example), str(out), "--max", "2", "--idle", "30"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert [line.split()[-1] for line in lines] == ["id-0", "id-1"]
        assert all(line.startswith(f"{topic}[0]@") for line in lines)


class TestJavaClient:
    def test_java_console_consumer_reads_with_the_properties_file(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """The Java client (the broker's own ConsoleConsumer) with the `--format properties`
        file: the inline PEM truststore makes it trust the broker's CA over SASL_SSL."""
        java = shutil.which("java")
        libs = localkafka_broker.DEFAULT_LIBS
        if java is None or not libs.is_dir():
            pytest.skip("no Java or no Kafka jars")
        topic = topic_for(settings.topic_prefix, "GM0363")

        async def produce() -> None:
            await ensure_topics(settings, [topic], 1)
            producer = AIOKafkaProducer(**client_kwargs(access.admin_settings(settings)))
            await producer.start()
            try:
                await producer.send_and_wait(topic, b"<java/>", key=b"k")
            finally:
                await producer.stop()

        asyncio.run(produce())
        name = unique_name()
        out = tmp_path / "verbinding.properties"
        granted = CliRunner().invoke(
            app,
            ["access", "grant", name, "--gemeente", "GM0363", "--output", str(out)],
            env={
                "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert granted.exit_code == 0, granted.output
        assert "ssl.truststore.type=PEM" in out.read_text()
        result = subprocess.run(
            [
                java,
                "-Xmx128m",
                "-cp",
                f"{libs}/*",
                "org.apache.kafka.tools.consumer.ConsoleConsumer",
                *("--bootstrap-server", settings.kafka_bootstrap),
                *("--consumer.config", str(out)),
                *("--topic", topic, "--group", f"{name}.console", "--from-beginning"),
                *("--max-messages", "1", "--timeout-ms", "60000"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "<java/>" in result.stdout.splitlines()


class TestCliOutput:
    def test_json_on_stdout_is_only_json(self, settings: Settings) -> None:
        """`access grant --format json` without --output: stdout is the config and nothing
        else (the command's log lines go to stderr), so `> verbinding.json` works."""
        result = CliRunner().invoke(
            app,
            ["access", "grant", unique_name(), "--gemeente", "GM0363", "--format", "json"],
            env={
                "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert result.exit_code == 0, result.output
        config = json.loads(result.stdout)
        assert config["topics"] == [topic_for(settings.topic_prefix, "GM0363")]
        assert "access_granted" in result.stderr
