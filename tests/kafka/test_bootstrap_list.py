"""A list of bootstrap servers whose first address is down, on the real broker.

The first address is a closed port on 127.0.0.1 (nothing listens there), the second the test
broker: publishing (what the relay does), `access grant` and its connection file, `offsets`
and `lag` all still work. Created topics carry the configured min.insync.replicas.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType
from pydantic import ValidationError

from koppelpunt.app.offsets import consumer_lag, describe_group, reset_offsets
from koppelpunt.config import Settings
from koppelpunt.errors import ServiceUnavailableError
from koppelpunt.kafka import access
from koppelpunt.kafka.access import admin_settings
from koppelpunt.kafka.admin import client_kwargs, confluent_config, ensure_topics, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage
from koppelpunt.pipeline.gemeenten import GemeenteTable
from tests.kafka.test_access import PACKAGED, read_one
from tests.kafka_fixtures import free_port

pytestmark = pytest.mark.kafka

TABLE = GemeenteTable.load(PACKAGED)


@pytest.fixture
def first_down(settings: Settings) -> Settings:
    """The test settings with a closed port listed before the real broker."""
    listed = f"127.0.0.1:{free_port()},{settings.kafka_bootstrap}"
    return settings.model_copy(update={"kafka_bootstrap": listed})


async def _publish(settings: Settings, topic: str, count: int) -> None:
    publisher = KafkaPublisher(settings, request_timeout=10)
    await publisher.start()
    try:
        results = await publisher.publish(
            [
                OutboundMessage(topic=topic, key=b"123456782", value=b"<x/>", headers=(), ref=n)
                for n in range(count)
            ]
        )
    finally:
        await publisher.stop()
    assert all(r.ok for r in results), results


class TestFirstBootstrapDown:
    async def test_publishing_creates_the_topic_and_delivers(self, first_down: Settings) -> None:
        """The relay's publisher creates the topic and every record is acknowledged."""
        topic = topic_for(f"{first_down.topic_prefix}.b{uuid.uuid4().hex[:8]}", "GM0363")
        await _publish(first_down, topic, 3)
        consumer = AIOKafkaConsumer(
            topic,
            **client_kwargs(admin_settings(first_down)),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            seen = 0
            while seen < 3:
                batch = await consumer.getmany(timeout_ms=1000)
                seen += sum(len(records) for records in batch.values())
        finally:
            await consumer.stop()
        assert seen == 3

    async def test_grant_and_the_connection_file_work(self, first_down: Settings) -> None:
        """`access grant` through the list; the vendor's config carries the list and reads."""
        topic = topic_for(first_down.topic_prefix, "GM0363")
        await ensure_topics(first_down, [topic], 1)
        await _publish(first_down, topic, 1)
        name = f"rmc-{uuid.uuid4().hex[:8]}"
        config = await access.grant(first_down, name, ["GM0363"], table=TABLE)
        assert config.bootstrap == first_down.kafka_bootstrap
        assert await read_one(config, topic, f"{name}.g") == b"<x/>"
        assert name in {e.name for e in await access.list_access(first_down)}
        await access.revoke(first_down, name, table=TABLE)

    async def test_offsets_and_lag(self, first_down: Settings) -> None:
        """Reset a group's offsets and read its lag through the list."""
        topic = topic_for(first_down.topic_prefix, "GM0363")
        await ensure_topics(first_down, [topic], 1)
        await _publish(first_down, topic, 2)
        group = f"gm0363.vendor.{uuid.uuid4().hex[:6]}"
        assert (await describe_group(first_down, group)).state == "Dead"
        new = await reset_offsets(
            first_down, gemeente="GM0363", group=group, to="earliest", create=True
        )
        assert set(new) == {0}
        rows = [r for r in await consumer_lag(first_down, gemeente="GM0363") if r.group == group]
        assert len(rows) == 1
        assert rows[0].lag >= 2

    async def test_all_addresses_down_is_service_unavailable(self) -> None:
        """No broker at any address: ServiceUnavailableError, not a traceback or a hang."""
        nowhere = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}")
        with pytest.raises(ServiceUnavailableError, match="Kafka"):
            async with access.AccessAdmin(nowhere, timeout=3):
                pass


class TestMinInsyncReplicas:
    async def test_created_topic_carries_the_setting(self, settings: Settings) -> None:
        """A topic koppelpunt creates has min.insync.replicas as a topic-level config
        (DYNAMIC_TOPIC_CONFIG), not the broker's default."""
        topic = topic_for(f"{settings.topic_prefix}.m{uuid.uuid4().hex[:8]}", "GM0363")
        assert await ensure_topics(settings, [topic], 1) == [topic]
        client = AdminClient(confluent_config(admin_settings(settings)))
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = client.describe_configs([resource])[resource].result(timeout=30)
        entry = configs["min.insync.replicas"]
        assert entry.value == str(settings.topic_min_insync_replicas) == "1"
        assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    def test_more_than_the_replication_factor_is_refused(self) -> None:
        """min.insync.replicas above the replication factor: no acks=all write could pass."""
        with pytest.raises(ValidationError, match="MIN_INSYNC_REPLICAS"):
            Settings(topic_replication_factor=1, topic_min_insync_replicas=2)
        ok = Settings(topic_replication_factor=3, topic_min_insync_replicas=2)
        assert ok.topic_min_insync_replicas == 2


class TestConfluentConfig:
    def test_list_sasl_and_tls_files(self) -> None:
        """One librdkafka config from the settings: the bootstrap list, SASL and TLS files."""
        config = confluent_config(
            Settings(
                kafka_bootstrap="a:9093, b:9093,c:9093",
                kafka_security_protocol="SASL_SSL",
                kafka_sasl_mechanism="SCRAM-SHA-512",
                kafka_username="koppelpunt-admin",
                kafka_password="geheim",
                kafka_ssl_cafile="/pki/ca.pem",
                kafka_ssl_certfile="/pki/client.pem",
                kafka_ssl_keyfile="/pki/client.key",
            )
        )
        assert config["bootstrap.servers"] == "a:9093,b:9093,c:9093"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (config["sasl.username"], config["sasl.password"]) == ("koppelpunt-admin", "geheim")
        assert config["ssl.ca.location"] == "/pki/ca.pem"
        assert config["ssl.certificate.location"] == "/pki/client.pem"
        assert config["ssl.key.location"] == "/pki/client.key"
