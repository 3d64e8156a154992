"""The local launcher as a three-node KRaft cluster (dev/localkafka, `nodes=3`), on real JVMs.

Why: a production cluster runs topics of replication factor 3 with `min.insync.replicas=2`;
the cluster tests and benchmarks need that on this machine, secured like the single node.
The module starts its own cluster on free ports (not the session's single broker) and puts
its credentials in the environment for its tests, as the session fixture does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from confluent_kafka.admin import AdminClient

from dev.localkafka import LocalBroker
from koppelpunt.config import Settings
from koppelpunt.kafka.access import admin_settings
from koppelpunt.kafka.admin import client_kwargs, confluent_config, ensure_topics
from tests.kafka_fixtures import admin_kwargs, broker_module, consume_all, free_port

pytestmark = pytest.mark.kafka

NODES = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-cluster"),
        nodes=NODES,
        ports=[free_port() for _ in range(NODES)],
        controller_ports=[free_port() for _ in range(NODES)],
        stop_with_parent=True,
    )
    started = time.monotonic()
    broker.start(timeout=180)
    print(f"\nkafka cluster {broker.bootstrap} up in {time.monotonic() - started:.1f}s")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in broker.client_env(admin=True).items():
            mp.setenv(key, value)
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture
def settings(cluster: LocalBroker) -> Settings:
    """The service principal on the cluster, topics of RF 3 needing 2 in-sync replicas."""
    return Settings(
        kafka_bootstrap=cluster.bootstrap,
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
    )


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(admin_settings(settings)))


def replicas_and_isr(settings: Settings, topic: str) -> list[tuple[int, int]]:
    """(replicas, in-sync replicas) per partition of `topic`, from the cluster's metadata."""
    metadata = admin_client(settings).list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    return [(len(p.replicas), len(p.isrs)) for _, p in sorted(partitions.items())]


def wait_for_isr(settings: Settings, topic: str, isr: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        current = replicas_and_isr(settings, topic)
        if all(i == isr for _, i in current) or time.monotonic() > deadline:
            assert current == [(3, isr)] * len(current)
            return
        time.sleep(0.5)


class TestCluster:
    def test_all_nodes_run_and_metadata_lists_them(
        self, cluster: LocalBroker, settings: Settings
    ) -> None:
        assert cluster.node_ids == [1, 2, 3]
        assert cluster.bootstrap == ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
        assert len(set(cluster.ports + cluster.controller_ports)) == 2 * NODES
        assert sorted(cluster.node_pids()) == [1, 2, 3]
        assert cluster.is_running()
        client = admin_client(settings)  # kept: the future fails if the client is collected
        described = client.describe_cluster().result(timeout=10)
        assert sorted(node.id for node in described.nodes) == [1, 2, 3]
        assert cluster.controller_leader() in cluster.node_ids

    def test_nodes_share_one_quorum_and_replicate_internal_topics(
        self, cluster: LocalBroker
    ) -> None:
        voters = ",".join(
            f"{i}@127.0.0.1:{p}" for i, p in zip([1, 2, 3], cluster.controller_ports, strict=True)
        )
        for node_id in cluster.node_ids:
            props = cluster.properties(node_id)
            assert props["node.id"] == str(node_id)
            assert props["controller.quorum.voters"] == voters
            assert props["log.dirs"] == str(cluster.data_dir / f"node-{node_id}" / "logs")
            assert props["offsets.topic.replication.factor"] == "3"
            assert props["transaction.state.log.replication.factor"] == "3"
            assert props["transaction.state.log.min.isr"] == "2"
            assert props["default.replication.factor"] == "3"
            assert props["min.insync.replicas"] == "2"
            assert props["listeners"].startswith("SASL_SSL://127.0.0.1:")

    async def test_service_writes_rf3_with_acks_all_and_admin_reads(
        self, settings: Settings, unique_topic: str
    ) -> None:
        """The service principal creates a topic of RF 3 / min ISR 2 and writes with
        acks=all; the admin reads every record back."""
        assert await ensure_topics(settings, [unique_topic], 3) == [unique_topic]
        assert replicas_and_isr(settings, unique_topic) == [(3, 3)] * 3
        client = admin_client(settings)
        config = client.describe_configs([_topic_resource(unique_topic)])
        topic_config = next(iter(config.values())).result(timeout=10)
        assert topic_config["min.insync.replicas"].value == "2"
        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for n in range(20):
                await producer.send_and_wait(unique_topic, f"r{n}".encode(), key=f"k{n}".encode())
        finally:
            await producer.stop()
        records = await consume_all(settings.kafka_bootstrap, unique_topic, expect=20)
        assert sorted(r.value for r in records) == sorted(f"r{n}".encode() for n in range(20))

    async def test_consumer_offsets_topic_has_three_replicas(
        self, settings: Settings, unique_topic: str
    ) -> None:
        await ensure_topics(settings, [unique_topic], 1)
        consumer = AIOKafkaConsumer(
            **admin_kwargs(settings.kafka_bootstrap),
            group_id=f"g-{unique_topic}",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(unique_topic, 0)])
            await consumer.commit({TopicPartition(unique_topic, 0): 0})
        finally:
            await consumer.stop()
        replicas = await asyncio.to_thread(replicas_and_isr, settings, "__consumer_offsets")
        assert replicas and all(r == 3 for r, _ in replicas)

    async def test_killed_node_rejoins_and_catches_up(
        self, cluster: LocalBroker, settings: Settings, unique_topic: str
    ) -> None:
        """SIGKILL one node; writes with acks=all go on (2 of 3 in sync); start_node brings
        it back into the metadata and the in-sync replica sets."""
        await ensure_topics(settings, [unique_topic], 1)
        cluster.kill_node(3)
        assert cluster.node_pid(3) is None
        assert sorted(cluster.node_pids()) == [1, 2]
        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for n in range(5):
                await producer.send_and_wait(unique_topic, f"r{n}".encode())
        finally:
            await producer.stop()
        await asyncio.to_thread(cluster.start_node, 3, 120)
        assert cluster.node_pid(3) is not None
        assert await asyncio.to_thread(cluster.is_running)
        await asyncio.to_thread(wait_for_isr, settings, unique_topic, 3)
        records = await consume_all(settings.kafka_bootstrap, unique_topic, expect=5)
        assert [r.value for r in records] == [f"r{n}".encode() for n in range(5)]

    def test_credentials_are_restored_through_the_active_controller(
        self, cluster: LocalBroker
    ) -> None:
        """The SCRAM restore (the Kafka 4.1.1 workaround in LocalBroker._wait_ready) finds
        the active controller: the followers first in the list answer NOT_CONTROLLER."""
        leader = cluster.controller_leader()
        ports = dict(zip(cluster.node_ids, cluster.controller_ports, strict=True))
        followers_first = [p for i, p in ports.items() if i != leader] + [ports[leader]]
        creds = cluster.credentials()
        admin = (creds["admin_username"], creds["admin_password"])
        name, password = f"kp-restored-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        broker_module.restore_scram_credentials(
            "127.0.0.1", followers_first, admin, [(name, password)]
        )
        deadline = time.monotonic() + 15
        while True:
            reason = broker_module.broker_usable(
                cluster.bootstrap, [(name, password)], 5, cluster.tls.ca_file, brokers=3
            )
            if reason is None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert reason is None

    def test_cli_finds_the_node_count_in_the_data_dir(
        self, cluster: LocalBroker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`status` and `env` need no --nodes or ports after `start --nodes 3`."""
        from dev.localkafka import main

        assert main(["status", "--dir", str(cluster.data_dir)]) == 0
        assert "3 nodes" in capsys.readouterr().out
        assert main(["env", "--dir", str(cluster.data_dir)]) == 0
        assert f"export KOPPELPUNT_KAFKA_BOOTSTRAP={cluster.bootstrap}\n" in capsys.readouterr().out

    def test_a_single_node_dir_is_not_started_as_a_cluster(self, tmp_path: Path) -> None:
        from dev.localkafka import BrokerError

        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "meta.properties").write_text("cluster.id=x\n")
        with pytest.raises(BrokerError, match="1-node"):
            LocalBroker(tmp_path, nodes=3).start(timeout=1)


def _topic_resource(topic: str) -> Any:
    from confluent_kafka.admin import ConfigResource, ResourceType

    return ConfigResource(ResourceType.TOPIC, topic)
