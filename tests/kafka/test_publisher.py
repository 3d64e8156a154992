"""The aiokafka publisher against the real broker, including a broker outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from koppelpunt.config import Settings
from koppelpunt.errors import ServiceUnavailableError
from koppelpunt.kafka.publisher import (
    KafkaPublisher,
    OutboundMessage,
    Publisher,
    PublishResult,
    cloudevent_attributes,
    cloudevent_headers,
)
from tests.kafka_fixtures import consume_all, free_port, topic_partitions

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def message(topic: str, n: int, key: str = "123456782") -> OutboundMessage:
    headers = cloudevent_headers(
        ce_id=f"sig-{n}",
        ce_type="nl.vva.signalering.PROGNOSE",
        ce_source="urn:koppelpunt",
        ce_time=T0,
        extra={"gemeentecode": "GM0363"},
    )
    return OutboundMessage(
        topic=topic, key=key.encode(), value=f"<s n='{n}'/>".encode(), headers=headers, ref=n
    )


@pytest.fixture
async def publisher(kafka_settings: Settings) -> AsyncIterator[KafkaPublisher]:
    p = KafkaPublisher(kafka_settings, request_timeout=3.0)
    await p.start()
    yield p
    await p.stop()


class TestCloudEventHeaders:
    def test_binary_mode_headers_in_order(self) -> None:
        """Required attributes as ce_* headers (UTF-8), then extensions, then content-type."""
        headers = cloudevent_headers(
            ce_id="abc",
            ce_type="t",
            ce_source="urn:s",
            ce_time=T0,
            extra={"ce_dataschema": "urn:schema", "gemeentecode": "GM0363"},
        )
        assert headers == (
            ("ce_specversion", b"1.0"),
            ("ce_id", b"abc"),
            ("ce_source", b"urn:s"),
            ("ce_type", b"t"),
            ("ce_time", b"2026-03-01T09:30:15.123Z"),
            ("ce_dataschema", b"urn:schema"),
            ("ce_gemeentecode", b"GM0363"),
            ("content-type", b"application/xml"),
        )

    def test_time_is_rfc3339_in_utc(self) -> None:
        """An aware time in another zone is written as UTC with a Z."""
        cet = datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
        headers = dict(cloudevent_headers(ce_id="a", ce_type="t", ce_source="s", ce_time=cet))
        assert headers["ce_time"] == b"2026-03-01T09:00:00.000Z"

    def test_attributes_are_the_headers_as_text(self) -> None:
        """What the outbox stores is what the relay sends, decoded; one instant in any zone
        gives one time (the formatted times are cached per instant)."""
        for moment in (T0, T0.astimezone(timezone(timedelta(hours=-5))), T0 + timedelta(1)):
            fields = {"ce_id": "x", "ce_type": "t", "ce_source": "s", "ce_time": moment}
            as_text = cloudevent_attributes(**fields, extra={"dataschema": "urn:d"})
            headers = cloudevent_headers(**fields, extra={"dataschema": "urn:d"})
            assert as_text == [(name, value.decode("utf-8")) for name, value in headers]
            expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            assert dict(as_text)["ce_time"] == expected

    def test_naive_time_is_refused(self) -> None:
        """A time without offset cannot be RFC 3339, so it is a bug to pass one."""
        with pytest.raises(ValueError, match="timezone"):
            cloudevent_headers(ce_id="a", ce_type="t", ce_source="s", ce_time=datetime(2026, 1, 1))

    @pytest.mark.parametrize("name", ["id", "ce_type", "Gemeente", "gemeente_code"])
    def test_reserved_or_malformed_extension_names_are_refused(self, name: str) -> None:
        """Extensions cannot overwrite required attributes or break the naming rules."""
        with pytest.raises(ValueError, match="attribute name"):
            cloudevent_headers(ce_id="a", ce_type="t", ce_source="s", ce_time=T0, extra={name: "x"})


class TestKafkaPublisher:
    def test_is_a_publisher(self, kafka_settings: Settings) -> None:
        """KafkaPublisher satisfies the Publisher protocol the relay depends on."""
        publisher: Publisher = KafkaPublisher(kafka_settings)
        assert publisher is not None

    async def test_batch_arrives_with_key_value_and_headers_in_order(
        self, publisher: KafkaPublisher, kafka_bootstrap: str, unique_topic: str
    ) -> None:
        """A batch to a new topic is delivered in order, each record as sent."""
        messages = [message(unique_topic, n) for n in range(50)]
        results = await publisher.publish(messages)
        assert results == [PublishResult(ref=n, ok=True) for n in range(50)]
        records = await consume_all(kafka_bootstrap, unique_topic, expect=50)
        assert [(r.key, r.value, tuple(r.headers)) for r in records] == [
            (m.key, m.value, m.headers) for m in messages
        ]

    async def test_new_topic_gets_configured_partitions(
        self, publisher: KafkaPublisher, kafka_settings: Settings, unique_topic: str
    ) -> None:
        """The publisher creates an unknown topic with `topic_partitions` partitions."""
        await publisher.publish([message(unique_topic, 1)])
        partitions = await topic_partitions(kafka_settings.kafka_bootstrap, unique_topic)
        assert partitions == set(range(kafka_settings.topic_partitions))

    async def test_same_key_keeps_order_across_partitions(
        self, publisher: KafkaPublisher, kafka_bootstrap: str, unique_topic: str
    ) -> None:
        """Records of one BSN land in one partition, in the order they were published."""
        bsns = ["111222333", "123456782", "999999990"]
        messages = [message(unique_topic, n, key=bsns[n % 3]) for n in range(30)]
        assert all(r.ok for r in await publisher.publish(messages))
        records = await consume_all(kafka_bootstrap, unique_topic, expect=30)
        for bsn in bsns:
            mine = [r for r in records if r.key == bsn.encode()]
            assert len({r.partition for r in mine}) == 1
            assert [r.value for r in mine] == [m.value for m in messages if m.key == bsn.encode()]

    async def test_producer_is_idempotent_with_acks_all(
        self, publisher: KafkaPublisher, unique_topic: str
    ) -> None:
        """Idempotence is on, acks=all, and the broker assigned a producer id."""
        assert publisher.producer_config["enable_idempotence"] is True
        assert publisher.producer_config["acks"] == "all"
        await publisher.publish([message(unique_topic, 1)])
        producer: Any = publisher._producer
        assert producer._txn_manager is not None
        assert producer._txn_manager.producer_id >= 0

    async def test_empty_batch_publishes_nothing(self, publisher: KafkaPublisher) -> None:
        """No messages, no results, no broker round trip needed."""
        assert await publisher.publish([]) == []

    async def test_invalid_topic_is_a_failed_result_not_an_exception(
        self, publisher: KafkaPublisher
    ) -> None:
        """A topic Kafka refuses fails its messages; publish() itself does not raise."""
        results = await publisher.publish([message("bad topic!", 7)])
        assert results[0].ref == 7
        assert not results[0].ok
        assert results[0].error

    async def test_ping_is_true_with_a_broker(self, publisher: KafkaPublisher) -> None:
        """The readiness probe sees the running broker."""
        assert await publisher.ping(timeout=5)

    async def test_ping_is_true_before_start(self, kafka_settings: Settings) -> None:
        """Readiness can be asked before the producer was started."""
        assert await KafkaPublisher(kafka_settings).ping(timeout=5)


class TestWithoutBroker:
    async def test_start_fails_fast_and_clearly(self) -> None:
        """No broker at the address: ServiceUnavailableError within the request timeout."""
        publisher = KafkaPublisher(
            Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"), request_timeout=2.0
        )
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="unreachable"):
            await publisher.start()
        assert time.monotonic() - started < 5

    async def test_ping_is_false(self) -> None:
        """The readiness probe says no, within its timeout."""
        publisher = KafkaPublisher(Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"))
        started = time.monotonic()
        assert not await publisher.ping(timeout=2)
        assert time.monotonic() - started < 4


class TestBrokerOutage:
    async def test_publish_fails_while_down_and_recovers_when_up(
        self,
        stoppable_broker: Any,
        kafka_settings: Settings,
        kafka_bootstrap: str,
        unique_topic: str,
    ) -> None:
        """Broker down: ok=False in bounded time and ping False; back up: the same publisher
        delivers again."""
        publisher = KafkaPublisher(kafka_settings, request_timeout=2.0)
        await publisher.start()
        try:
            assert (await publisher.publish([message(unique_topic, 1)]))[0].ok

            await asyncio.to_thread(stoppable_broker.stop)
            started = time.monotonic()
            results = await publisher.publish([message(unique_topic, n) for n in (2, 3)])
            assert [(r.ref, r.ok) for r in results] == [(2, False), (3, False)]
            assert all(r.error for r in results)
            assert time.monotonic() - started < 8
            assert not await publisher.ping(timeout=2)

            await asyncio.to_thread(stoppable_broker.start, 120)
            # The client reconnects (and logs in again) on its own; give it a bounded while.
            deadline = time.monotonic() + 30
            while not await publisher.ping(timeout=5) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            assert await publisher.ping(timeout=5)
            results = await publisher.publish([message(unique_topic, n) for n in (2, 3)])
            assert [(r.ref, r.ok) for r in results] == [(2, True), (3, True)]
        finally:
            await publisher.stop()
        records = await consume_all(kafka_bootstrap, unique_topic, expect=3)
        assert [r.value for r in records] == [b"<s n='1'/>", b"<s n='2'/>", b"<s n='3'/>"]
