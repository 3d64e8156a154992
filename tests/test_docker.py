"""docker/: no Docker engine runs here, so the compose files, their scripts and the Dockerfile
are checked for structure and for agreement with the system: the broker's security and (for
the three-broker compose.cluster.yaml) its quorum and replication as in dev/localkafka (the
broker the tests run), every KOPPELPUNT_* variable a real setting, the migration before the
service, every secret in the example .env."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from cryptography import x509
from typer.testing import CliRunner

from dev.localkafka import broker as localkafka_broker
from koppelpunt.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SERVICES = {"kafka", "kafka-init", "postgres", "migrate", "koppelpunt"}
CLUSTER_SERVICES = {"kafka-1", "kafka-2", "kafka-3", "kafka-init", "postgres", "migrate"} | {
    "koppelpunt"
}
# The broker properties that must equal the launcher's (security, quorum roles, replication).
SAME_AS_LAUNCHER = (
    "process.roles",
    "node.id",
    "controller.listener.names",
    "sasl.enabled.mechanisms",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.mechanism.controller.protocol",
    "listener.name.controller.sasl.enabled.mechanisms",
    "authorizer.class.name",
    "allow.everyone.if.no.acl.found",
    "auto.create.topics.enable",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "default.replication.factor",
    "min.insync.replicas",
    "ssl.keystore.type",
    "ssl.truststore.type",
    "ssl.endpoint.identification.algorithm",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def cluster_compose() -> dict[str, Any]:
    text = (DOCKER / "compose.cluster.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)  # resolves the x-kafka anchors and `<<` merges
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def broker() -> ModuleType:
    return localkafka_broker


def start_properties(env: dict[str, str] | None = None) -> dict[str, str]:
    """The server.properties that docker/kafka/start.sh writes (the heredoc), with `${VAR}`
    expanded from `env` (a compose service's environment) and the script's `:=` defaults;
    without `env` the admin's name and password stay unexpanded."""
    text = (DOCKER / "kafka" / "start.sh").read_text(encoding="utf-8")
    values = dict(re.findall(r'^: "\$\{(\w+):=([^}]*)\}"$', text, re.MULTILINE))
    values.update(re.findall(r"^(\w+)=(\S+)$", text, re.MULTILINE))  # ADMIN=, CONF=, TLS=
    values.update(env or {})
    body = text.split('cat > "$CONF" <<PROPS\n', 1)[1].split("\nPROPS\n", 1)[0]
    props: dict[str, str] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            if env is not None:
                value = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m[1], m[0]), value)
            props[key] = value
    return props


def node_properties(compose: dict[str, Any], service: str) -> dict[str, str]:
    return start_properties(koppelpunt_env(compose, service))


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
    assert env["KOPPELPUNT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    # The CA of docker-tls, mounted where the setting points.
    ca = env["KOPPELPUNT_KAFKA_SSL_CAFILE"]
    assert f"./kafka/tls/ca.pem:{ca}:ro" in compose["services"]["koppelpunt"]["volumes"]
    assert env["KOPPELPUNT_KAFKA_SASL_MECHANISM"] == broker.SCRAM_MECHANISM
    assert env["KOPPELPUNT_KAFKA_USERNAME"] == broker.SERVICE_USER
    assert env["KOPPELPUNT_KAFKA_PASSWORD"].startswith("${KOPPELPUNT_KAFKA_PASSWORD")
    # Least privilege: the service gets no admin credentials.
    assert not any(k.startswith("KOPPELPUNT_KAFKA_ADMIN") for k in env)


def launcher_properties(broker: ModuleType, tmp_path: Path, node_id: int, nodes: int) -> Any:
    """What LocalBroker(nodes=...) writes for one node, with its TLS properties."""
    tls = broker.LocalTls(tmp_path / "tls")
    tls.directory.mkdir(exist_ok=True)
    tls.ensure()
    voters = {i: 9093 + 2 * (i - 1) for i in range(1, nodes + 1)}
    return broker._base_properties(
        tmp_path, 9092, 9093, "x", tls.properties(), node_id=node_id, voters=voters
    )


def assert_secured_like_the_launcher(ours: dict[str, str], theirs: dict[str, str]) -> None:
    for key in SAME_AS_LAUNCHER:
        assert ours[key] == theirs[key], key
    assert ours["super.users"] == theirs["super.users"]
    # Clients (and the brokers themselves) only over SASL_SSL; the controller listener is
    # SASL/PLAIN on the internal network, as the launcher's on loopback.
    protocols = dict(p.split(":") for p in ours["listener.security.protocol.map"].split(","))
    assert protocols == {
        "INTERNAL": "SASL_SSL",
        "EXTERNAL": "SASL_SSL",
        "CONTROLLER": "SASL_PLAINTEXT",
    }
    assert set(theirs["listener.security.protocol.map"].split(",")) == {
        "SASL_SSL:SASL_SSL",
        "CONTROLLER:SASL_PLAINTEXT",
    }
    listeners = {entry.split("://")[0] for entry in ours["listeners"].split(",")}
    assert listeners == set(protocols)
    assert ours["inter.broker.listener.name"] == "INTERNAL"
    assert ours["ssl.keystore.location"] == "/koppelpunt/tls/broker-keystore.pem"
    assert ours["ssl.truststore.location"] == "/koppelpunt/tls/ca.pem"


def test_broker_security_matches_localkafka(
    compose: dict[str, Any], broker: ModuleType, tmp_path: Path
) -> None:
    ours = node_properties(compose, "kafka")
    theirs = launcher_properties(broker, tmp_path, node_id=1, nodes=1)
    assert_secured_like_the_launcher(ours, theirs)
    assert ours["controller.quorum.voters"] == "1@kafka:9093"
    assert start_properties()["super.users"] == "User:${ADMIN}"
    assert f"ADMIN={broker.ADMIN_USER}\n" in (DOCKER / "kafka" / "start.sh").read_text()


def test_cluster_services(cluster_compose: dict[str, Any], compose: dict[str, Any]) -> None:
    """Three brokers, each with its own data volume and vendor port; the rest as the single
    broker's compose file, the ACLs granted once all three are healthy."""
    services = cluster_compose["services"]
    assert set(services) == CLUSTER_SERVICES
    for i, name in enumerate(("kafka-1", "kafka-2", "kafka-3")):
        kafka = services[name]
        assert kafka["image"] == compose["services"]["kafka"]["image"]
        assert kafka["entrypoint"] == compose["services"]["kafka"]["entrypoint"]
        assert f"kafka-{i + 1}-data:/var/lib/kafka/data" in kafka["volumes"]
        assert kafka["ports"] == [f"{9094 + i}:{9094 + i}"]
        assert f"--bootstrap-server {name}:9092" in kafka["healthcheck"]["test"][1]
        needs = services["kafka-init"]["depends_on"][name]
        assert needs == {"condition": "service_healthy"}
    for name in ("postgres", "migrate", "koppelpunt"):
        for key in ("image", "command", "depends_on" if name != "koppelpunt" else "ports"):
            assert services[name].get(key) == compose["services"][name].get(key), (name, key)
    needs = services["koppelpunt"]["depends_on"]
    assert needs["kafka-init"] == {"condition": "service_completed_successfully"}


def test_cluster_matches_localkafka_cluster(
    cluster_compose: dict[str, Any], broker: ModuleType, tmp_path: Path
) -> None:
    """Each node as LocalBroker(nodes=3) writes it: one quorum of the three, 3 replicas and
    2 in sync for the internal topics and by default."""
    for node_id in (1, 2, 3):
        ours = node_properties(cluster_compose, f"kafka-{node_id}")
        theirs = launcher_properties(broker, tmp_path, node_id=node_id, nodes=3)
        assert_secured_like_the_launcher(ours, theirs)
        voters = ours["controller.quorum.voters"].split(",")
        assert [v.split("@")[0] for v in voters] == ["1", "2", "3"]
        assert voters == [f"{i}@kafka-{i}:9093" for i in (1, 2, 3)]
        assert ours["advertised.listeners"] == (
            f"INTERNAL://kafka-{node_id}:9092,EXTERNAL://localhost:{9093 + node_id}"
        )


def test_cluster_service_settings(cluster_compose: dict[str, Any], broker: ModuleType) -> None:
    """The service lists every broker and creates topics of RF 3 needing 2 in sync, as the
    launcher's cluster defaults."""
    env = koppelpunt_env(cluster_compose, "koppelpunt")
    assert env["KOPPELPUNT_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    public = env["KOPPELPUNT_KAFKA_PUBLIC_BOOTSTRAP"].split(",")
    assert public == ["localhost:9094", "localhost:9095", "localhost:9096"]
    theirs = broker._base_properties(Path("x"), 1, 2, "x", voters={1: 2, 2: 4, 3: 6})
    assert env["KOPPELPUNT_TOPIC_REPLICATION_FACTOR"] == theirs["default.replication.factor"]
    assert env["KOPPELPUNT_TOPIC_MIN_INSYNC_REPLICAS"] == theirs["min.insync.replicas"]
    assert env["KOPPELPUNT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    fields = set(Settings.model_fields)
    names = {k.removeprefix("KOPPELPUNT_").lower() for k in env if k.startswith("KOPPELPUNT_")}
    assert names <= fields, names - fields
    init = koppelpunt_env(cluster_compose, "kafka-init")
    assert init["KAFKA_BOOTSTRAP"] == env["KOPPELPUNT_KAFKA_BOOTSTRAP"]


def test_docker_tls_names_every_broker(broker: ModuleType, tmp_path: Path) -> None:
    """`python -m dev.localkafka docker-tls`: one certificate for the single broker and the
    cluster's three (and the host's ports), the keystore key + certificate, owner-only."""
    assert broker.main(["docker-tls", "--dir", str(tmp_path / "tls")]) == 0
    tls = broker.LocalTls(tmp_path / "tls")
    cert = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"kafka", "kafka-1", "kafka-2", "kafka-3", "localhost"} <= set(
        san.get_values_for_type(x509.DNSName)
    )
    keystore = tls.keystore_file.read_bytes()
    assert b"PRIVATE KEY-----" in keystore
    assert b"BEGIN CERTIFICATE" in keystore
    assert stat.S_IMODE(tls.keystore_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(tls.key_file.stat().st_mode) == 0o600


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


@pytest.mark.parametrize("name", ["compose.yaml", "compose.cluster.yaml"])
def test_every_secret_is_in_the_example_env(name: str) -> None:
    text = (DOCKER / name).read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z_]+)(?::?[?-][^}]*)?\}", text))
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert needed and needed <= defined, needed - defined


def test_db_upgrade_and_serve_are_commands() -> None:
    from koppelpunt.cli.main import app

    for args in (["db", "upgrade", "--help"], ["serve", "--help"]):
        assert CliRunner().invoke(app, args).exit_code == 0
