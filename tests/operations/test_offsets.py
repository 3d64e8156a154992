"""Offsets reset and lag on the real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from hypothesis import example, given
from hypothesis import strategies as st

from koppelpunt.app.moments import LOCAL
from koppelpunt.app.offsets import (
    GroupActiveError,
    consumer_lag,
    describe_group,
    parse_target,
    reset_offsets,
)
from koppelpunt.config import PROJECT_ROOT, Settings
from koppelpunt.errors import NotFoundError, ServiceUnavailableError
from koppelpunt.kafka import access
from koppelpunt.kafka.admin import ensure_topics, topic_for
from koppelpunt.pipeline.gemeenten import GemeenteTable
from tests.kafka_fixtures import admin_kwargs

pytestmark = pytest.mark.kafka

PACKAGED_TABLE = GemeenteTable.load(PROJECT_ROOT / "data" / "rvig-tabel33-gemeenten.csv")

# Record timestamps set by the producer: an hour ago (the broker refuses future ones, and
# retention would remove much older ones).
BASE_MS = (int(time.time()) - 3600) * 1000


async def _produce(settings: Settings, topic: str, count: int) -> None:
    """`count` records on partition 0, record i with timestamp BASE_MS + i minutes."""
    await ensure_topics(settings, [topic], 1)
    producer = AIOKafkaProducer(**admin_kwargs(settings.kafka_bootstrap))
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(
                topic, f"v{i}".encode(), key=b"k", partition=0, timestamp_ms=BASE_MS + i * 60_000
            )
    finally:
        await producer.stop()


def _consumer(settings: Settings, group: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        **admin_kwargs(settings.kafka_bootstrap),
        group_id=group,
        auto_offset_reset="latest",  # a consumer that lost its state would not re-read
        enable_auto_commit=False,
    )


async def _read(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    async with asyncio.timeout(30):
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    return records


@pytest.fixture
def gemeente_topic(settings: Settings) -> str:
    return topic_for(settings.topic_prefix, "GM0363")


@pytest.fixture
def group() -> str:
    return f"gm0363.vendor.{uuid.uuid4().hex[:6]}"


class TestParseTarget:
    def test_keywords_and_datetimes(self) -> None:
        """earliest/latest in any case; a date or a time without offset is Amsterdam time."""
        assert parse_target("EARLIEST") == "earliest"
        assert parse_target("latest") == "latest"
        assert parse_target("2027-01-15") == datetime(2027, 1, 14, 23, tzinfo=UTC)
        assert parse_target("2027-01-15T10:00:00Z") == datetime(2027, 1, 15, 10, tzinfo=UTC)

    def test_rejects_anything_else(self) -> None:
        """A typo is an error, not 'latest'."""
        with pytest.raises(ValueError, match="earliest"):
            parse_target("begin")


class TestResetOffsets:
    async def test_consumer_that_lost_its_state_rereads_everything(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """A group that read and committed everything reads it all again after a reset to
        earliest; its consumer starts at 'latest' when it has no offsets, so only the reset
        can make it re-read."""
        await _produce(settings, gemeente_topic, 4)
        first = _consumer(settings, group, gemeente_topic)
        first._auto_offset_reset = "earliest"
        await first.start()
        try:
            assert len(await _read(first, 4)) == 4
            await first.commit()
        finally:
            await first.stop()

        new = await reset_offsets(settings, gemeente="GM0363", group=group, to="earliest")
        assert new == {0: 0}

        again = _consumer(settings, group, gemeente_topic)
        await again.start()
        try:
            records = await _read(again, 4)
        finally:
            await again.stop()
        assert [r.value for r in records] == [b"v0", b"v1", b"v2", b"v3"]

    async def test_to_a_datetime_and_latest(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """A datetime sets the first record at or after it; past the end, and 'latest',
        set the end offset."""
        await _produce(settings, gemeente_topic, 4)
        at = datetime.fromtimestamp((BASE_MS + 2 * 60_000) / 1000, tz=UTC)
        assert await reset_offsets(
            settings, gemeente="GM0363", group=group, to=at, create=True
        ) == {0: 2}
        later = datetime(2099, 1, 1, tzinfo=UTC)
        assert await reset_offsets(
            settings, gemeente="GM0363", group=group, to=later, create=True
        ) == {0: 4}
        assert await reset_offsets(
            settings, gemeente="GM0363", group=group, to="earliest", create=True
        ) == {0: 0}
        assert await reset_offsets(
            settings, gemeente="GM0363", group=group, to="latest", create=True
        ) == {0: 4}

    async def test_refused_while_the_group_has_members(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """A running consumer in the group: the reset is refused (409) and nothing changes."""
        await _produce(settings, gemeente_topic, 2)
        active = _consumer(settings, group, gemeente_topic)
        await active.start()
        try:
            async with asyncio.timeout(30):
                while not active.assignment():
                    await active.getmany(timeout_ms=200)
            state = await describe_group(settings, group)
            assert state.members == 1
            with pytest.raises(GroupActiveError) as raised:
                await reset_offsets(
                    settings, gemeente="GM0363", group=group, to="earliest", create=True
                )
            assert raised.value.status == 409
        finally:
            await active.stop()


class TestUnknownGroup:
    async def test_a_group_that_does_not_exist_is_refused(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """A typo in a group name must not create a group: 404 unless create."""
        await _produce(settings, gemeente_topic, 1)
        with pytest.raises(NotFoundError, match=f"consumer group {group} does not exist"):
            await reset_offsets(settings, gemeente="GM0363", group=group, to="latest")
        assert (await describe_group(settings, group)).state == "Dead"
        created = await reset_offsets(
            settings, gemeente="GM0363", group=group, to="latest", create=True
        )
        assert created == {0: 1}


class TestLag:
    async def test_lag_and_oldest_unread(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """A group at offset 1 of 4 lags 3, and its oldest unread signalering is record 1."""
        await _produce(settings, gemeente_topic, 4)
        await reset_offsets(settings, gemeente="GM0363", group=group, to="earliest", create=True)
        reader = _consumer(settings, group, gemeente_topic)
        reader._auto_offset_reset = "earliest"
        await reader.start()
        try:
            records = await _read(reader, 1)
            first = records[0]
            position = OffsetAndMetadata(first.offset + 1, "")
            await reader.commit({TopicPartition(gemeente_topic, 0): position})
        finally:
            await reader.stop()
        rows = [r for r in await consumer_lag(settings, gemeente="GM0363") if r.group == group]
        assert len(rows) == 1
        row = rows[0]
        assert (row.topic, row.gemeentecode, row.lag) == (gemeente_topic, "GM0363", 3)
        assert row.oldest_unread == datetime.fromtimestamp((BASE_MS + 60_000) / 1000, tz=UTC)
        assert row.as_json()["achterstand"] == 3

    async def test_no_lag_at_the_end(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """At the end offset: lag 0 and no oldest unread."""
        await _produce(settings, gemeente_topic, 2)
        await reset_offsets(settings, gemeente="GM0363", group=group, to="latest", create=True)
        rows = [r for r in await consumer_lag(settings) if r.group == group]
        assert [(r.lag, r.oldest_unread) for r in rows] == [(0, None)]


class TestLagPermissions:
    async def test_the_service_principal_reads_lag(
        self, settings: Settings, gemeente_topic: str, group: str
    ) -> None:
        """With only the service's own Kafka user (no admin configured, as `serve` runs under
        docker compose and in production) the lag of a vendor's group is visible; the time of
        the oldest unread signalering is not (that user may not read signaleringen)."""
        await _produce(settings, gemeente_topic, 3)
        await reset_offsets(settings, gemeente="GM0363", group=group, to="earliest", create=True)
        service = settings.model_copy(
            update={"kafka_admin_username": None, "kafka_admin_password": None}
        )
        assert service.kafka_username == "koppelpunt"
        rows = [r for r in await consumer_lag(service, gemeente="GM0363") if r.group == group]
        assert [(r.group, r.lag) for r in rows] == [(group, 3)]
        assert rows[0].oldest_unread is None

    async def test_no_permission_is_said_not_shown_as_none(
        self, settings: Settings, gemeente_topic: str
    ) -> None:
        """A Kafka user that may not describe groups gets a clear refusal, not an empty list."""
        await _produce(settings, gemeente_topic, 1)
        name = f"lagtest-{uuid.uuid4().hex[:8]}"
        config = await access.grant(settings, name, ["GM0363"], table=PACKAGED_TABLE)
        vendor = settings.model_copy(
            update={
                "kafka_username": name,
                "kafka_password": config.password,
                "kafka_admin_username": None,
                "kafka_admin_password": None,
            }
        )
        try:
            with pytest.raises(ServiceUnavailableError, match="no permission to read consumer"):
                await consumer_lag(vendor, gemeente="GM0363")
        finally:
            await access.revoke(settings, name, table=PACKAGED_TABLE)


class TestParseTargetProperties:
    @given(
        st.datetimes(
            min_value=datetime(1900, 1, 1),  # parse_moment's years
            max_value=datetime(2999, 12, 31, 23, 59, 59),
            timezones=st.builds(
                timezone,
                st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)),
            ),
        )
    )
    # Found by hypothesis in CI: CPython 3.11 reads an offset of 0 h 0 min 0.000001 s as UTC.
    @example(datetime(2000, 1, 1, tzinfo=timezone(timedelta(microseconds=1))))
    @example(datetime(2000, 1, 1, tzinfo=timezone(-timedelta(microseconds=500_000))))
    def test_any_aware_datetime_round_trips(self, moment: datetime) -> None:
        """Whatever offset an operator writes, the instant is kept."""
        parsed = parse_target(moment.isoformat())
        assert isinstance(parsed, datetime)
        assert parsed == moment

    @given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
    def test_naive_is_amsterdam_time(self, moment: datetime) -> None:
        """Without an offset the wall-clock time is read in Europe/Amsterdam."""
        parsed = parse_target(moment.isoformat())
        assert isinstance(parsed, datetime)
        assert parsed.replace(tzinfo=None) == moment
        assert parsed.tzinfo == LOCAL
