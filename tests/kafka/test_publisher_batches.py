"""The publisher's own produce batches (create_batch/send_batch), against the real broker:
each record on the partition a plain `send(key=...)` (and Java's partitioner) gives it, in
order per partition, also across several batches, and an oversized record fails alone."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import client_kwargs
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage, PublishResult
from tests.kafka_fixtures import consume_all

pytestmark = pytest.mark.kafka

PARTITIONS = 6
# The partition of each key among 6, computed once by the Java client itself (kafka-clients
# 4.1.1, BuiltInPartitioner.partitionForKey: toPositive(murmur2(key)) % 6) with jshell.
JAVA_PARTITION = {
    "999993653": 1,
    "111222333": 2,
    "123456782": 5,
    "999999990": 2,
    "100000009": 3,
    "246813579": 4,
    "135792468": 5,
    "555555555": 5,
    "000000000": 5,
    "987654321": 5,
    "314159265": 2,
    "271828182": 1,
}


def message(topic: str, n: int, key: str, size: int = 20) -> OutboundMessage:
    return OutboundMessage(
        topic=topic,
        key=key.encode(),
        value=f"<s n='{n}'>".encode().ljust(size, b"x"),
        headers=(("ce_id", f"sig-{n}".encode()), ("content-type", b"application/xml")),
        ref=n,
    )


@pytest.fixture
def six_partitions(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(update={"topic_partitions": PARTITIONS})


async def _publish(settings: Settings, messages: list[OutboundMessage]) -> list[PublishResult]:
    publisher = KafkaPublisher(settings, request_timeout=5.0)
    await publisher.start()
    try:
        return await publisher.publish(messages)
    finally:
        await publisher.stop()


class TestPartitions:
    async def test_each_key_on_the_partition_javas_partitioner_picks(
        self, six_partitions: Settings, kafka_bootstrap: str, unique_topic: str
    ) -> None:
        """A consumer finds every key on Java's partition for it, in publication order."""
        keys = list(JAVA_PARTITION)
        messages = [message(unique_topic, n, keys[n % len(keys)]) for n in range(48)]
        results = await _publish(six_partitions, messages)
        assert results == [PublishResult(ref=n, ok=True) for n in range(48)]
        records = await consume_all(kafka_bootstrap, unique_topic, expect=48)
        assert len(records) == 48
        for r in records:
            assert r.key is not None
            assert r.partition == JAVA_PARTITION[r.key.decode()]
        for key in keys:
            mine = [r.value for r in records if r.key == key.encode()]
            assert mine == [m.value for m in messages if m.key == key.encode()]

    async def test_same_partition_as_a_plain_send_with_the_key(
        self,
        six_partitions: Settings,
        kafka_settings: Settings,
        kafka_bootstrap: str,
        unique_topic: str,
    ) -> None:
        """Per key, the partition equals the one AIOKafkaProducer.send(key=...) chose."""
        keys = [f"{100_000_000 + 7919 * i:09d}" for i in range(40)]
        await _publish(six_partitions, [message(unique_topic, n, k) for n, k in enumerate(keys)])
        plain_topic = unique_topic + "-plain"
        await _publish(six_partitions, [message(plain_topic, 0, keys[0])])  # creates the topic
        producer = AIOKafkaProducer(**client_kwargs(kafka_settings))
        await producer.start()
        try:
            for key in keys[1:]:
                await producer.send_and_wait(plain_topic, b"plain", key=key.encode())
        finally:
            await producer.stop()
        ours = await consume_all(kafka_bootstrap, unique_topic, expect=len(keys))
        plain = await consume_all(kafka_bootstrap, plain_topic, expect=len(keys))
        assert {r.key: r.partition for r in ours} == {r.key: r.partition for r in plain}
        assert len({r.partition for r in ours}) > 1  # the keys do spread


class TestBatches:
    async def test_many_batches_per_partition_keep_order_and_content(
        self, six_partitions: Settings, kafka_bootstrap: str, unique_topic: str
    ) -> None:
        """More than max_batch_size per partition: several batches, each record as sent."""
        keys = ["999993653", "123456782"]  # partitions 1 and 5
        messages = [message(unique_topic, n, keys[n % 2], size=1500) for n in range(80)]
        assert all(r.ok for r in await _publish(six_partitions, messages))
        records = await consume_all(kafka_bootstrap, unique_topic, expect=80)
        assert sorted(
            (r.partition, r.offset, r.key, r.value, tuple(r.headers)) for r in records
        ) == [
            (JAVA_PARTITION[m.key.decode()], offset, m.key, m.value, m.headers)
            for key in sorted(keys, key=JAVA_PARTITION.__getitem__)
            for offset, m in enumerate(x for x in messages if x.key == key.encode())
        ]

    async def test_an_oversized_record_fails_alone(
        self, kafka_settings: Settings, kafka_bootstrap: str, unique_topic: str
    ) -> None:
        """A record above max_request_size fails as send() failed it; the others arrive."""
        messages = [message(unique_topic, n, "999993653") for n in range(3)]
        too_big = message(unique_topic, 1, "999993653", size=2 * 1024 * 1024)
        messages[1] = too_big
        results = await _publish(kafka_settings, messages)
        assert [(r.ref, r.ok) for r in results] == [(0, True), (1, False), (2, True)]
        assert results[1].error is not None
        assert results[1].error.startswith("MessageSizeTooLargeError")
        records: list[Any] = await consume_all(kafka_bootstrap, unique_topic, expect=2)
        assert [r.value for r in records] == [messages[0].value, messages[2].value]
