"""Fixtures for tests against the real Kafka broker (imported by tests/conftest.py).

One broker per test session, started from dev/localkafka on free ports in a temporary
directory; or an external one when KOPPELPUNT_KAFKA_BOOTSTRAP is set (CI service, a running
`make kafka`). Tests that stop the broker need the session's own broker and skip otherwise.

The broker runs as in production: SASL/SCRAM-SHA-512 and ACLs, deny by default. The session
fixture exports the service principal's KOPPELPUNT_KAFKA_* settings (and the admin's
KOPPELPUNT_KAFKA_ADMIN_*) into the environment, so every `Settings(...)` a test builds, and
every CLI subprocess, authenticates as the service. Test helpers that read topics use the
admin (super user): `admin_kwargs()`. With an external broker, set those variables yourself.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from dev.localkafka import LocalBroker
from dev.localkafka import broker as localkafka_broker
from koppelpunt.config import Settings

__all__ = [
    "admin_kwargs",
    "consume_all",
    "free_port",
    "kafka_bootstrap",
    "kafka_broker",
    "kafka_settings",
    "stoppable_broker",
    "topic_partitions",
    "unique_topic",
]

EXTERNAL_BOOTSTRAP_ENV = "KOPPELPUNT_KAFKA_BOOTSTRAP"


broker_module = localkafka_broker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def admin_kwargs(bootstrap: str | None = None) -> dict[str, Any]:
    """aiokafka connection arguments of the admin (super user) principal, for test helpers."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap or os.environ[EXTERNAL_BOOTSTRAP_ENV],
        "security_protocol": os.environ.get("KOPPELPUNT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
    }
    if kwargs["security_protocol"] in {"SSL", "SASL_SSL"}:
        kwargs["ssl_context"] = ssl.create_default_context(
            cafile=os.environ.get("KOPPELPUNT_KAFKA_SSL_CAFILE")
        )
    mechanism = os.environ.get("KOPPELPUNT_KAFKA_SASL_MECHANISM")
    if mechanism:
        kwargs["sasl_mechanism"] = mechanism
        kwargs["sasl_plain_username"] = os.environ.get(
            "KOPPELPUNT_KAFKA_ADMIN_USERNAME", os.environ.get("KOPPELPUNT_KAFKA_USERNAME")
        )
        kwargs["sasl_plain_password"] = os.environ.get(
            "KOPPELPUNT_KAFKA_ADMIN_PASSWORD", os.environ.get("KOPPELPUNT_KAFKA_PASSWORD")
        )
    return kwargs


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's own LocalBroker, or None when an external broker is configured."""
    if os.environ.get(EXTERNAL_BOOTSTRAP_ENV):
        yield None
        return
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka"),
        port=free_port(),
        controller_port=free_port(),
        stop_with_parent=True,  # a pytest killed without teardown leaves no broker behind
    )
    started = time.monotonic()
    broker.start(timeout=120)
    print(f"\nkafka broker {broker.bootstrap} up in {time.monotonic() - started:.1f}s")
    env = broker.client_env(admin=True)
    env.pop("KOPPELPUNT_KAFKA_BOOTSTRAP")  # tests pass it explicitly (free port per session)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Any) -> str:
    """host:port of the broker the tests use."""
    external = os.environ.get(EXTERNAL_BOOTSTRAP_ENV)
    if external:
        return external
    bootstrap: str = kafka_broker.bootstrap
    return bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> Settings:
    """Settings pointing at the test broker (single-replica topics, 3 partitions)."""
    return Settings(kafka_bootstrap=kafka_bootstrap, topic_replication_factor=1)


@pytest.fixture
def unique_topic() -> str:
    """A topic name no other test uses, under the configured prefix."""
    return f"vva.signalering.test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def stoppable_broker(kafka_broker: Any) -> AsyncIterator[Any]:
    """The session broker for "Kafka down, then up" tests; restarted afterwards if needed."""
    if kafka_broker is None:
        pytest.skip(f"{EXTERNAL_BOOTSTRAP_ENV} points at an external broker we cannot stop")
    yield kafka_broker
    if not await asyncio.to_thread(kafka_broker.is_running):
        await asyncio.to_thread(kafka_broker.start, 120)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    # consumer.partitions_for_topic() reads a cache that may predate the topic: ask the broker.
    cluster = await consumer._client.fetch_all_metadata()
    partitions: set[int] | None = cluster.partitions_for_topic(topic)
    if not partitions:
        raise LookupError(f"topic {topic!r} does not exist")
    return partitions


async def topic_partitions(bootstrap: str, topic: str) -> set[int]:
    """The partition ids of `topic` as the broker knows them now."""
    consumer = AIOKafkaConsumer(**admin_kwargs(bootstrap))
    await consumer.start()
    try:
        return await _partitions(consumer, topic)
    finally:
        await consumer.stop()


async def consume_all(
    bootstrap: str,
    topic: str,
    *,
    timeout: float = 10,  # noqa: ASYNC109 - also the consumer's request timeout
    expect: int | None = None,
    client: dict[str, Any] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """All records of `topic`, from the beginning, ordered by (partition, offset).

    `client`: the connection arguments (default: the admin of the session's broker, from the
    environment; the cluster tests pass their own cluster's admin).

    Deterministic rather than idle-based: reads up to the end offsets (no consumer group, so
    nothing is committed). With `expect`, waits (up to `timeout`) until that many records
    exist, then still reads to the end, so a duplicate shows up as an extra record.
    """
    consumer = AIOKafkaConsumer(
        **(client or admin_kwargs(bootstrap)),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout):
            partitions = await _partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                ends = await consumer.end_offsets(tps)
                positions = {tp: await consumer.position(tp) for tp in tps}
                at_end = all(positions[tp] >= ends[tp] for tp in tps)
                if at_end and (expect is None or len(records) >= expect):
                    break
                batch = await consumer.getmany(*tps, timeout_ms=200)
                for tp_records in batch.values():
                    records.extend(tp_records)
    except TimeoutError:
        pass  # return what arrived; the caller's assertion says what is missing
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))
