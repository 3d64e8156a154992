"""docker/: no Docker engine runs here, so the compose file, its scripts and the Dockerfile are
checked for structure and for agreement with the system: the broker's security as in
dev/localkafka (the broker the tests run), every KOPPELPUNT_* variable a real setting, the
migration before the service, every secret in the example .env."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dev.localkafka import broker as localkafka_broker
from koppelpunt.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SERVICES = {"kafka", "kafka-init", "postgres", "migrate", "koppelpunt"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def broker() -> ModuleType:
    return localkafka_broker


def start_properties() -> dict[str, str]:
    """The server.properties that docker/kafka/start.sh writes (the heredoc), unexpanded."""
    text = (DOCKER / "kafka" / "start.sh").read_text(encoding="utf-8")
    body = text.split('cat > "$CONF" <<PROPS\n', 1)[1].split("\nPROPS\n", 1)[0]
    props: dict[str, str] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key] = value
    return props


def koppelpunt_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    env = compose["services"][service]["environment"]
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items()}


def test_services_and_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["koppelpunt"]["command"] == ["serve"]
    needs = services["koppelpunt"]["depends_on"]
    assert needs["migrate"] == {"condition": "service_completed_successfully"}
    assert needs["kafka-init"] == {"condition": "service_completed_successfully"}
    assert services["kafka-init"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    for name in ("migrate", "koppelpunt"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        assert services[name]["image"] == services["migrate"]["image"]
    # Only the SASL listener for vendors is published; no plaintext port on the host.
    assert services["kafka"]["ports"] == ["9094:9094"]


def test_koppelpunt_variables_are_settings(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for service in ("migrate", "koppelpunt"):
        env = koppelpunt_env(compose, service)
        names = [k.removeprefix("KOPPELPUNT_").lower() for k in env if k.startswith("KOPPELPUNT_")]
        assert names and set(names) <= fields, set(names) - fields
        assert env["KOPPELPUNT_DATABASE_URL"].startswith("postgresql+asyncpg://")
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    in_image = {m.lower() for m in re.findall(r"KOPPELPUNT_([A-Z_]+)=", dockerfile)}
    assert in_image and in_image <= fields
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), source


def test_service_uses_its_scram_principal(compose: dict[str, Any], broker: ModuleType) -> None:
    """The same settings as the broker the tests run gives the service (client_env)."""
    env = koppelpunt_env(compose, "koppelpunt")
    assert env["KOPPELPUNT_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["KOPPELPUNT_KAFKA_SASL_MECHANISM"] == broker.SCRAM_MECHANISM
    assert env["KOPPELPUNT_KAFKA_USERNAME"] == broker.SERVICE_USER
    assert env["KOPPELPUNT_KAFKA_PASSWORD"].startswith("${KOPPELPUNT_KAFKA_PASSWORD")
    # Least privilege: the service gets no admin credentials.
    assert not any(k.startswith("KOPPELPUNT_KAFKA_ADMIN") for k in env)


def test_broker_security_matches_localkafka(broker: ModuleType, tmp_path: Path) -> None:
    ours = start_properties()
    theirs = broker._base_properties(tmp_path, 9092, 9093, "x")
    for key in (
        "process.roles",
        "controller.listener.names",
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "sasl.mechanism.controller.protocol",
        "listener.name.controller.sasl.enabled.mechanisms",
        "authorizer.class.name",
        "allow.everyone.if.no.acl.found",
        "offsets.topic.replication.factor",
    ):
        assert ours[key] == theirs[key], key
    assert ours["super.users"] == "User:${ADMIN}"
    assert f"ADMIN={broker.ADMIN_USER}\n" in (DOCKER / "kafka" / "start.sh").read_text()
    assert ours["auto.create.topics.enable"] == "false"
    # Every listener, the controller's included, is SASL: no plaintext client listener.
    protocols = dict(p.split(":") for p in ours["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    listeners = {entry.split("://")[0] for entry in ours["listeners"].split(",")}
    assert listeners == set(protocols)


def test_scram_users_and_service_acls(broker: ModuleType) -> None:
    start = (DOCKER / "kafka" / "start.sh").read_text(encoding="utf-8")
    assert '--add-scram "SCRAM-SHA-512=[name=${ADMIN},' in start
    assert '--add-scram "SCRAM-SHA-512=[name=${SERVICE},' in start
    assert f"SERVICE={broker.SERVICE_USER}\n" in start
    acls = (DOCKER / "kafka" / "acls.sh").read_text(encoding="utf-8")
    assert f"--allow-principal User:{broker.SERVICE_USER}" in acls
    assert "--operation Write --operation Describe --operation Create \\\n" in acls
    assert f"--allow-principal User:{broker.SERVICE_USER} --operation Describe --group '*'" in acls
    assert f"--topic {broker.SERVICE_TOPIC_PREFIX} --resource-pattern-type prefixed" in acls


def test_every_secret_is_in_the_example_env() -> None:
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z_]+)(?::?[?-][^}]*)?\}", text))
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert needed and needed <= defined, needed - defined


def test_db_upgrade_and_serve_are_commands() -> None:
    from koppelpunt.cli.main import app

    for args in (["db", "upgrade", "--help"], ["serve", "--help"]):
        assert CliRunner().invoke(app, args).exit_code == 0
