"""A replicated Kafka cluster loses brokers under load: nothing is lost, order per pupil holds.

Three real KRaft nodes (combined broker and controller, dev/localkafka) on loopback, with the
topics the service creates at replication factor 3 and min.insync.replicas 2, the producer on
acks=all with idempotence, as in production (docs/scaling.md). The service runs as a real
process (`koppelpunt serve`, relay in-process) on this test's database; the load and the
checks are the resilience tests' own (tests/resilience/conftest.py). One cluster serves the
whole module; a test that stops nodes starts them again before the next one runs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from confluent_kafka.admin import AdminClient, ConfigResource
from typer.testing import CliRunner

from bench import harness
from dev.localkafka import LocalBroker
from koppelpunt.cli.main import app
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import ensure_topics, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.register import upsert_woonregister
from tests.kafka_fixtures import free_port
from tests.resilience.conftest import PUPILS, Cluster, Load, consumed
from tests.resilience.test_resilience import assert_all_delivered

pytestmark = pytest.mark.kafka

NODES = 3
CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer.py"


@pytest.fixture(scope="module")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The module's own three-node cluster, stopped with the test process however it ends."""
    cluster = LocalBroker(
        tmp_path_factory.mktemp("kafka3"),
        nodes=NODES,
        ports=[free_port() for _ in range(NODES)],
        controller_ports=[free_port() for _ in range(NODES)],
        stop_with_parent=True,
    )
    started = time.monotonic()
    cluster.start(timeout=240)
    print(f"\nkafka cluster {cluster.bootstrap} up in {time.monotonic() - started:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


def kafka_env(kafka3: LocalBroker) -> dict[str, str]:
    """The cluster's KOPPELPUNT_KAFKA_* settings, the admin's included."""
    return kafka3.client_env(admin=True)


def reader(env: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka arguments of the cluster's admin (super user), who reads every topic."""
    return {
        "bootstrap_servers": env["KOPPELPUNT_KAFKA_BOOTSTRAP"],
        "security_protocol": "SASL_SSL",
        "ssl_context": ssl.create_default_context(cafile=env["KOPPELPUNT_KAFKA_SSL_CAFILE"]),
        "sasl_mechanism": env["KOPPELPUNT_KAFKA_SASL_MECHANISM"],
        "sasl_plain_username": env["KOPPELPUNT_KAFKA_ADMIN_USERNAME"],
        "sasl_plain_password": env["KOPPELPUNT_KAFKA_ADMIN_PASSWORD"],
    }


def admin_client(env: Mapping[str, str]) -> AdminClient:
    """confluent-kafka's AdminClient as the cluster's admin: leaders, replicas, ISR, configs."""
    return AdminClient(
        {
            "bootstrap.servers": env["KOPPELPUNT_KAFKA_BOOTSTRAP"],
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": env["KOPPELPUNT_KAFKA_SSL_CAFILE"],
            "sasl.mechanism": env["KOPPELPUNT_KAFKA_SASL_MECHANISM"],
            "sasl.username": env["KOPPELPUNT_KAFKA_ADMIN_USERNAME"],
            "sasl.password": env["KOPPELPUNT_KAFKA_ADMIN_PASSWORD"],
            "log_level": 0,
        }
    )


def settings_of(env: Mapping[str, str], **extra: Any) -> Settings:
    """Settings of the service principal on the cluster (explicit: the environment holds the
    session broker's)."""
    fields = {
        k.removeprefix("KOPPELPUNT_").lower(): v
        for k, v in env.items()
        if not k.startswith("KOPPELPUNT_KAFKA_ADMIN_")
    }
    return Settings(**{**fields, **extra})


def partitions_of(env: Mapping[str, str], topic: str) -> list[Any]:
    """The topic's partitions as the cluster's metadata lists them (leader, replicas, isrs)."""
    metadata = admin_client(env).list_topics(topic, timeout=15)
    return list(metadata.topics[topic].partitions.values())


def min_insync_of(env: Mapping[str, str], topic: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = admin_client(env)  # kept alive until the answer is in (a dropped client aborts)
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    return str(configs["min.insync.replicas"].value)


async def wait_for(check: Any, what: str, timeout: float = 120) -> Any:  # noqa: ASYNC109
    """Poll `check` (a blocking callable, run in a thread) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = await asyncio.to_thread(check)
        except Exception as exc:  # the cluster may be electing: ask again
            last = exc
        else:
            if answer:
                return answer
            last = answer
        await asyncio.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last answer: {last!r})")


def fully_replicated(env: Mapping[str, str], topics: list[str]) -> bool:
    """Every partition of `topics` has all nodes in its ISR again (a restarted node caught up)."""
    return all(len(p.isrs) == NODES for topic in topics for p in partitions_of(env, topic))


@pytest_asyncio.fixture(loop_scope="session")
async def c3(kafka3: LocalBroker, database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    """The service's processes on the cluster: RF 3, min ISR 2, this test's database; every
    node is running again afterwards."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            await upsert_woonregister(session, [(b, g, None) for b, g in PUPILS.items()])
    finally:
        await engine.dispose()
    prefix = f"vva.signalering.k{uuid.uuid4().hex[:8]}"
    env = harness.service_env(
        database_url=database_url,
        bootstrap=kafka3.bootstrap,
        senders_file=harness.write_senders(tmp_path / "senders.yaml"),
        topic_prefix=prefix,
        extra={
            **kafka_env(kafka3),
            "KOPPELPUNT_TOPIC_PARTITIONS": "1",
            "KOPPELPUNT_TOPIC_REPLICATION_FACTOR": "3",
            "KOPPELPUNT_TOPIC_MIN_INSYNC_REPLICAS": "2",
            "KOPPELPUNT_RELAY_POLL_SECONDS": "0.2",
            "KOPPELPUNT_RELAY_BACKOFF_BASE_SECONDS": "0.2",
            "KOPPELPUNT_RELAY_BACKOFF_MAX_SECONDS": "2",
            "KOPPELPUNT_LOG_LEVEL": "INFO",
        },
    )
    c = Cluster(env, tmp_path, database_url, kafka3.bootstrap, prefix, reader=reader(env))
    try:
        yield c
    finally:
        for p in c.processes:
            p.stop(timeout=15)
        for node in kafka3.node_ids:
            if kafka3.node_pid(node) is None:
                await asyncio.to_thread(kafka3.start_node, node, 180)


async def assert_order_per_pupil(
    cluster: Cluster, load: Load, found: dict[str, list[tuple[str, str]]]
) -> None:
    """On each topic, a pupil's signaleringen (first sightings) in the order they were sent."""
    stored_order = await cluster.ids_in_sending_order(load.sent_order)
    for topic, records in found.items():
        for bsn in {key for key, _ in records}:
            seen: list[str] = []
            for key, ce_id in records:
                if key == bsn and ce_id not in seen:
                    seen.append(ce_id)
            assert seen == stored_order[bsn], f"order broken for a pupil on {topic}"


def leader_of(env: Mapping[str, str], topic: str) -> int:
    leader: int = partitions_of(env, topic)[0].leader
    return leader


class TestBrokerLost:
    async def test_broker_killed_mid_load_loses_nothing_and_rejoins(
        self, c3: Cluster, kafka3: LocalBroker
    ) -> None:
        """SIGKILL the leader of a topic while the relay publishes: receipts go on, the other
        two nodes take over, every ce_id arrives (duplicates only as the same ce_id), each
        pupil's order holds; the node then restarts and catches up (back in every ISR)."""
        service = c3.serve()
        await service.wait_ready()
        env = c3.env
        half = 6
        killed = asyncio.Event()
        load = Load([service.base_url], pauses={half: killed})
        sending = asyncio.create_task(load.run(interval=0.2))
        await load.until_receipts(len(PUPILS) * half)
        # The service made the topics with RF 3 and min ISR 2.
        for topic in c3.topics:
            assert all(len(p.replicas) == NODES for p in partitions_of(env, topic)), topic
            assert await asyncio.to_thread(min_insync_of, env, topic) == "2"
        victim = await asyncio.to_thread(leader_of, env, c3.topics[0])
        await asyncio.to_thread(kafka3.kill_node, victim)
        killed.set()
        await sending
        assert set(load.receipts.values()) == {202}  # the broker's loss never cost a receipt
        # Everything arrives while the victim is still down: leadership moved to the others.
        found = await assert_all_delivered(c3, load)
        await assert_order_per_pupil(c3, load, found)
        assert victim not in {await asyncio.to_thread(leader_of, env, t) for t in c3.topics}

        await asyncio.to_thread(kafka3.start_node, victim, 180)
        await wait_for(lambda: fully_replicated(env, c3.topics), "the restarted node caught up")
        again = await consumed(c3, expect=len(await c3.stored_ids()))
        assert {i for records in again.values() for _, i in records} == await c3.stored_ids()

    async def test_two_brokers_down_stops_publishing_then_drains_when_one_returns(
        self, c3: Cluster, kafka3: LocalBroker
    ) -> None:
        """Below min.insync.replicas: receipts keep succeeding, the relay's last error and
        /readyz say publishing stopped; when one node returns the backlog drains by itself."""
        service = c3.serve()
        await service.wait_ready()
        before = 3
        down = asyncio.Event()
        load = Load([service.base_url], count=6, pauses={before: down})
        sending = asyncio.create_task(load.run(interval=0.1))
        await load.until_receipts(len(PUPILS) * before)
        await consumed(c3, expect=len(PUPILS) * before)  # published while all are up
        victims = [n for n in kafka3.node_ids if n != kafka3.node_ids[0]]
        for node in victims:
            await asyncio.to_thread(kafka3.kill_node, node)
        down.set()
        await sending
        assert set(load.receipts.values()) == {202}  # the outbox holds the backlog

        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:

            async def stopped() -> dict[str, Any] | None:
                r = await client.get("/readyz")
                body: dict[str, Any] = r.json()
                return body if r.status_code == 503 and body.get("relayError") else None

            deadline = time.monotonic() + 120
            ready: dict[str, Any] | None = None
            while ready is None and time.monotonic() < deadline:
                ready = await stopped()
                await asyncio.sleep(0.5)
            assert ready is not None, c3.logs()
            assert ready["publishing"] is False
            assert ready["database"] is True and ready["databaseWritable"] is True
            print(f"\n/readyz with two of three brokers down: {json.dumps(ready)}")
            backlog = len(await c3.stored_ids()) - sum(
                len(r) for r in (await consumed(c3, expect=0, timeout=5)).values()
            )
            assert backlog > 0  # really held back, not published

            await asyncio.to_thread(kafka3.start_node, victims[0], 180)
            await assert_all_delivered(c3, load)  # drained by itself, nothing lost
            deadline = time.monotonic() + 60
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "readyz stays 503 after the drain"
                await asyncio.sleep(0.5)

    async def test_controller_leader_killed_then_access_changes_take_effect(
        self, c3: Cluster, kafka3: LocalBroker
    ) -> None:
        """The quorum elects another controller; a grant made after the election lets the
        vendor read its gemeente, and a revoke ends its login."""
        env = c3.env
        settings = settings_of(env, topic_replication_factor=3, topic_min_insync_replicas=2)
        topic = topic_for(c3.topic_prefix, "GM0363")
        await ensure_topics(settings, [topic], partitions=1)
        publisher = KafkaPublisher(settings, request_timeout=10)
        await publisher.start()
        try:
            sent = await publisher.publish(
                [OutboundMessage(topic=topic, key=b"k", value=b"<signalering/>", headers=(), ref=1)]
            )
            assert all(r.ok for r in sent), sent
        finally:
            await publisher.stop()

        leader = await asyncio.to_thread(kafka3.controller_leader)
        await asyncio.to_thread(kafka3.kill_node, leader)
        elected = await wait_for(
            lambda: (n := kafka3.controller_leader()) != leader and n,
            "a new controller leader",
        )
        assert elected in kafka3.node_ids and elected != leader
        # librdkafka sends SCRAM changes to the broker the metadata names as controller, which
        # may be the dead node until the quorum fences it (broker session timeout, ~9 s): the
        # change is made once the metadata lists the two live brokers only.
        await wait_for(
            lambda: len(admin_client(env).list_topics(timeout=10).brokers) == NODES - 1,
            "the dead node fenced",
        )

        name = f"lpa-{uuid.uuid4().hex[:8]}"
        config = c3.tmp / "verbinding.json"
        cli_env = {**env, "KOPPELPUNT_DATABASE_URL": c3.database_url}
        granted = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["access", "grant", name, "--gemeente", "GM0363", "--output", str(config)],
            env=cli_env,
        )
        assert granted.exit_code == 0, granted.output
        vendor = json.loads(config.read_text())
        assert await read_first(vendor, topic) == b"<signalering/>"

        revoked = await asyncio.to_thread(
            CliRunner().invoke, app, ["access", "revoke", name], env=cli_env
        )
        assert revoked.exit_code == 0, revoked.output
        with pytest.raises(KafkaError):
            await read_first(vendor, topic, timeout=15)


async def read_first(vendor: Mapping[str, Any], topic: str, timeout: float = 30) -> bytes:  # noqa: ASYNC109
    """The topic's first record, read with a vendor's connection file (JSON) as it is."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=vendor["bootstrapServers"],
        security_protocol=vendor["securityProtocol"],
        ssl_context=ssl.create_default_context(cadata=vendor["sslCaPem"]),
        sasl_mechanism=vendor["saslMechanism"],
        sasl_plain_username=vendor["username"],
        sasl_plain_password=vendor["password"],
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            consumer.subscribe([topic])
            record = await consumer.getone()
        assert record.value is not None
        return record.value
    finally:
        await consumer.stop()


class TestVendorAcrossBrokerLoss:
    async def test_example_consumer_reads_on_without_reprocessing(
        self, c3: Cluster, kafka3: LocalBroker
    ) -> None:
        """The example consumer keeps reading while the topic's leader is killed; it handles
        every record once: nothing it committed is read again."""
        env = c3.env
        service = c3.serve()
        await service.wait_ready()
        ours = [bsn for bsn, code in PUPILS.items() if code == "0363"]
        topic = topic_for(c3.topic_prefix, "GM0363")
        name = f"lpa-{uuid.uuid4().hex[:8]}"
        config = c3.tmp / "verbinding.json"
        granted = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["access", "grant", name, "--gemeente", "GM0363", "--output", str(config)],
            env={**env, "KOPPELPUNT_DATABASE_URL": c3.database_url},
        )
        assert granted.exit_code == 0, granted.output

        half = 4
        lost = asyncio.Event()
        load = Load([service.base_url], pupils=ours, count=2 * half, pauses={half: lost})
        sending = asyncio.create_task(load.run(interval=0.1))
        consumer = start_consumer(config, c3.tmp / "state.db")
        lines: list[str] = []
        reading = asyncio.create_task(asyncio.to_thread(_read_lines, consumer, lines))
        try:
            await _until(lambda: _handled(lines) >= len(ours) * half, "first half handled")
            victim = await asyncio.to_thread(leader_of, env, topic)
            await asyncio.to_thread(kafka3.kill_node, victim)
            lost.set()
            await sending
            await _until(lambda: _handled(lines) >= len(ours) * 2 * half, "all handled", 120)
        finally:
            consumer.send_signal(signal.SIGINT)
            await asyncio.to_thread(consumer.wait, 60)
            await reading
        on_topic = (await consumed(c3, expect=len(ours) * 2 * half))[topic]
        summary = lines[-1]
        handled, duplicates = _handled(lines), _count(lines, "duplicate")
        # Every record on the topic processed exactly once: a new id handled, a re-sent one
        # (same ce_id, at least once) seen as a duplicate; a committed record read again
        # would make this sum larger.
        assert handled == len({i for _, i in on_topic}) == len(ours) * 2 * half, lines
        assert handled + duplicates == len(on_topic), (summary, lines)


def start_consumer(config: Path, state: Path) -> subprocess.Popen[str]:
    """The example consumer, reading until SIGINT, one line per record as it goes; its
    warnings (a lost broker) go to a file beside the state."""
    with state.with_suffix(".stderr").open("w") as errors:
        return subprocess.Popen(
            [sys.executable, str(CONSUMER), str(config), "--state", str(state)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"},
        )


def _read_lines(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))


def _handled(lines: list[str]) -> int:
    return _count(lines, "handled   ")


def _count(lines: list[str], what: str) -> int:
    return sum(1 for line in lines if line.startswith(what))


async def _until(check: Any, what: str, timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        await asyncio.sleep(0.2)
