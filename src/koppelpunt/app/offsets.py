"""Consumer-group offsets and lag on the gemeente topics, through the Kafka Admin API.

Resetting offsets is how a vendor re-reads what is still in its topic (replay covers what is
not). Kafka only allows it while the group has no active members: a running consumer would
overwrite the new offsets with its own at the next commit. The admin work goes through
confluent-kafka's AdminClient (kafka/admin.py, AdminSession): describe_consumer_groups says
whether the group has members, alter_consumer_group_offsets sets the offsets (the broker
refuses it for a group with members, so a consumer that joins in between makes the reset fail
instead of being silently overruled), list_consumer_group_offsets and list_offsets give the
lag. Only the time of the oldest unread signalering needs a record, read with aiokafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from aiokafka.structs import TopicPartition
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import OffsetSpec

from koppelpunt.app.moments import parse_moment
from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError, NotFoundError, ServiceUnavailableError
from koppelpunt.kafka.access import admin_settings
from koppelpunt.kafka.admin import (
    AdminSession,
    client_kwargs,
    kafka_error,
    list_topics,
    topic_for,
)

log = structlog.get_logger(__name__)


class GroupActiveError(KoppelpuntError):
    """The consumer group has members: its offsets cannot be reset now."""

    status = 409
    code = "group-active"
    title = "Consumergroep is actief"


Target = Literal["earliest", "latest"] | datetime


def parse_target(value: str) -> Target:
    """`earliest`, `latest` or an ISO 8601 date/time (without offset: Amsterdam time)."""
    lowered = value.strip().lower()
    if lowered == "earliest":
        return "earliest"
    if lowered == "latest":
        return "latest"
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise ValueError(f"--to must be earliest, latest or an ISO date/time: {value!r}") from exc


@dataclass(frozen=True, slots=True)
class GroupState:
    group: str
    state: str  # Empty, Stable, PreparingRebalance, Dead, …
    members: int


# Kafka's names of the group states (kafka-consumer-groups --describe --state).
_STATE_NAMES = {
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.EMPTY: "Empty",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.UNKNOWN: "Unknown",
}


def _session(settings: Settings, timeout: float) -> AdminSession:
    # Offsets and lag of vendors' groups are the admin principal's business: the service
    # principal has no rights on groups it does not own (issue 4's ACLs).
    return AdminSession(admin_settings(settings), timeout)


async def _describe(session: AdminSession, group: str) -> GroupState:
    def describe() -> GroupState:
        futures = session.client.describe_consumer_groups([group], request_timeout=session.timeout)
        try:
            described = session.wait(futures[group])
        except KafkaException as exc:
            # A group nobody ever used: Kafka 4 answers GROUP_ID_NOT_FOUND, older ones Dead.
            if _code(exc) == ConfluentError.GROUP_ID_NOT_FOUND:
                return GroupState(group=group, state="Dead", members=0)
            raise
        state = _STATE_NAMES.get(described.state, str(described.state))
        return GroupState(group=group, state=state, members=len(described.members))

    return await session.call(describe, f"describing consumer group {group}")


async def describe_group(settings: Settings, group: str, *, timeout: float = 10.0) -> GroupState:  # noqa: ASYNC109
    try:
        return await _describe(_session(settings, timeout), group)
    except KafkaException as exc:
        raise ServiceUnavailableError(
            f"describing consumer group {group} failed: {_text(exc)}"
        ) from exc


def _code(exc: KafkaException) -> int | None:
    error = kafka_error(exc)
    return None if error is None else error.code()


def _text(exc: KafkaException) -> str:
    error = kafka_error(exc)
    return str(exc) if error is None else f"{error.name()}: {error.str()}"


# A group name nobody uses: describing it answers when groups are visible to the principal.
_PROBE_GROUP = "koppelpunt.lag-permission-probe"


async def _may_describe_groups(session: AdminSession) -> bool:
    try:
        await _describe(session, _PROBE_GROUP)
    except KafkaException as exc:
        if _code(exc) == ConfluentError.GROUP_AUTHORIZATION_FAILED:
            return False
        raise
    return True


def _consumer(settings: Settings, timeout: float) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_kwargs(admin_settings(settings)),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
        client_id="koppelpunt-beheer",
    )


def _partitions(session: AdminSession, topic: str) -> list[ConfluentPartition]:
    """The partitions of `topic` (blocking: call it inside `session.call`)."""
    metadata = session.client.list_topics(topic=topic, timeout=session.timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise NotFoundError(f"topic {topic} does not exist")
    return [ConfluentPartition(topic, p) for p in sorted(found.partitions)]


def _list_offsets(
    session: AdminSession, tps: Sequence[ConfluentPartition], spec: OffsetSpec
) -> dict[tuple[str, int], int]:
    """ListOffsets for every partition (blocking): (topic, partition) -> offset."""
    if not tps:
        return {}
    futures = session.client.list_offsets(dict.fromkeys(tps, spec), request_timeout=session.timeout)
    return {(tp.topic, tp.partition): session.wait(f).offset for tp, f in futures.items()}


async def reset_offsets(
    settings: Settings,
    *,
    gemeente: str,
    group: str,
    to: Target,
    topic: str | None = None,
    requested_by: str = "operator",
    create: bool = False,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> dict[int, int]:
    """Set `group`'s offsets on the gemeente topic; returns the new offset per partition.

    Raises GroupActiveError (409) while the group has members, NotFoundError for a topic that
    does not exist, and for a group that does not exist unless `create` (a typo in a group
    name must not silently make a new group). `to` a datetime: the first message at or after
    it (the end when none).
    """
    name = topic or topic_for(settings.topic_prefix, gemeente)
    session = _session(settings, timeout)
    try:
        state = await _describe(session, group)
        if state.members:
            raise GroupActiveError(
                f"consumer group {group} has {state.members} active members (state "
                f"{state.state}): stop its consumers first",
                group=group,
                members=state.members,
            )
        tps = await session.call(lambda: _partitions(session, name), f"reading topic {name}")
        if state.state == "Dead" and not create:
            raise NotFoundError(
                f"consumer group {group} does not exist (no members, no committed "
                "offsets): check the name (a vendor's groups start with its user name and "
                "a dot), or create it at this position with --create"
            )
        offsets = await session.call(
            lambda: _target_offsets(session, tps, to), f"reading offsets of {name}"
        )
        await _alter(session, group, offsets)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"resetting offsets of {group} failed: {_text(exc)}") from exc
    new = {partition: o for (_topic, partition), o in offsets.items()}
    log.info(
        "consumer_offsets_reset",
        group=group,
        topic=name,
        to=to if isinstance(to, str) else to.isoformat(),
        offsets=new,
        requested_by=requested_by,
    )
    return new


async def _alter(session: AdminSession, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """AlterConsumerGroupOffsets; the broker refuses it while the group has members."""

    def alter() -> list[str]:
        request = ConsumerGroupTopicPartitions(
            group, [ConfluentPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        )
        futures = session.client.alter_consumer_group_offsets(
            [request], request_timeout=session.timeout
        )
        result = session.wait(futures[group])
        return [
            f"{tp.topic}[{tp.partition}]: {tp.error.str()}"
            for tp in result.topic_partitions or []
            if tp.error is not None
        ]

    try:
        problems = await session.call(alter, f"setting offsets of {group}")
    except KafkaException as exc:
        if _code(exc) in _GROUP_ACTIVE_CODES:
            raise GroupActiveError(
                f"Kafka refused the new offsets of {group} (did the group become active?): "
                f"{_text(exc)}",
                group=group,
            ) from exc
        raise
    if problems:
        raise GroupActiveError(
            f"Kafka refused the new offsets of {group} (did the group become active?): "
            + "; ".join(problems),
            group=group,
        )


# What the broker answers to AlterConsumerGroupOffsets for a group with members.
_GROUP_ACTIVE_CODES = frozenset(
    {
        ConfluentError.UNKNOWN_MEMBER_ID,
        ConfluentError.ILLEGAL_GENERATION,
        ConfluentError.REBALANCE_IN_PROGRESS,
        ConfluentError.FENCED_INSTANCE_ID,
    }
)


def _target_offsets(
    session: AdminSession, tps: Sequence[ConfluentPartition], to: Target
) -> dict[tuple[str, int], int]:
    """The offset per partition for `to` (blocking: call it inside `session.call`)."""
    if to == "earliest":
        return _list_offsets(session, tps, OffsetSpec.earliest())
    ends = _list_offsets(session, tps, OffsetSpec.latest())
    if to == "latest":
        return ends
    assert isinstance(to, datetime)
    found = _list_offsets(session, tps, OffsetSpec.for_timestamp(int(to.timestamp() * 1000)))
    # No record at or after the moment: Kafka answers offset -1; the end is the position.
    return {key: offset if offset >= 0 else ends[key] for key, offset in found.items()}


# --- lag --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lag:
    """One consumer group on one gemeente topic."""

    topic: str
    gemeentecode: str
    group: str
    lag: int
    # Broker timestamp of the oldest signalering the group has not read yet (None: none).
    oldest_unread: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "gemeentecode": self.gemeentecode,
            "groep": self.group,
            "achterstand": self.lag,
            "oudsteOngelezen": self.oldest_unread.isoformat() if self.oldest_unread else None,
        }


def _gemeentecode(prefix: str, topic: str) -> str:
    return topic.removeprefix(prefix.rstrip(".") + ".").upper()


async def consumer_lag(
    settings: Settings,
    *,
    gemeente: str | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> list[Lag]:
    """Per gemeente topic and per consumer group with committed offsets on it: the lag and
    the time of the oldest unread signalering (read from the message at the committed
    offset). Sorted by topic, then group."""
    if gemeente is not None:
        topics = [topic_for(settings.topic_prefix, gemeente)]
    else:
        topics = await list_topics(settings, settings.topic_prefix, timeout=timeout)
    wanted = set(topics)
    session = _session(settings, timeout)
    try:
        committed = await _committed(session, wanted)
        # The broker lists only the groups a principal may DESCRIBE: an empty list can
        # mean "none" or "not allowed to see them". Asking about a group that need not
        # exist tells the two apart (GROUP_AUTHORIZATION_FAILED against an answer).
        if not committed and not await _may_describe_groups(session):
            user = admin_settings(settings).kafka_username or "(no SASL user)"
            raise ServiceUnavailableError(
                f"no permission to read consumer groups: Kafka user {user} needs DESCRIBE "
                "on groups to show consumer lag (see docs/beheer.md, Consumer lag)"
            )
        if not committed:
            return []
        names = sorted({t for offsets in committed.values() for t, _p in offsets})

        def partitions() -> list[ConfluentPartition]:
            return [tp for topic in names for tp in _partitions(session, topic)]

        all_tps = await session.call(partitions, "reading the gemeente topics")
        starts = await session.call(
            lambda: _list_offsets(session, all_tps, OffsetSpec.earliest()), "reading offsets"
        )
        ends = await session.call(
            lambda: _list_offsets(session, all_tps, OffsetSpec.latest()), "reading offsets"
        )
    except KafkaException as exc:
        raise ServiceUnavailableError(f"reading consumer groups failed: {_text(exc)}") from exc
    rows: list[Lag] = []
    # The consumer only reads the oldest unread record of a group that lags; started when
    # the first one is needed.
    consumer: AIOKafkaConsumer | None = None
    may_read = True
    try:
        async with asyncio.timeout(timeout):
            for group, offsets in sorted(committed.items()):
                for topic in sorted({t for t, _p in offsets}):
                    keys = [(tp.topic, tp.partition) for tp in all_tps if tp.topic == topic]
                    # No commit on a partition yet: the group would start at the beginning.
                    positions = {
                        key: max(offsets[key], starts[key])
                        if offsets.get(key, -1) >= 0
                        else starts[key]
                        for key in keys
                    }
                    lag = sum(max(ends[key] - positions[key], 0) for key in keys)
                    unread = {
                        TopicPartition(*key): positions[key]
                        for key in keys
                        if ends[key] > positions[key]
                    }
                    oldest = None
                    if may_read and unread:
                        if consumer is None:
                            consumer = _consumer(settings, timeout)
                            await consumer.start()
                        try:
                            oldest = await _oldest_timestamp(consumer, unread)
                        except TopicAuthorizationFailedError:
                            # The service's own user may not READ signaleringen: the lag
                            # is known, the time of the oldest unread one is not.
                            may_read = False
                    rows.append(
                        Lag(
                            topic=topic,
                            gemeentecode=_gemeentecode(settings.topic_prefix, topic),
                            group=group,
                            lag=lag,
                            oldest_unread=oldest,
                        )
                    )
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"reading consumer lag failed: {exc!r}") from exc
    finally:
        if consumer is not None:
            await consumer.stop()
    return rows


async def _committed(
    session: AdminSession, wanted: set[str]
) -> dict[str, dict[tuple[str, int], int]]:
    """Per consumer group the committed offsets on the wanted topics (groups without any
    left out): group -> (topic, partition) -> offset."""

    def groups() -> list[str]:
        listed = session.wait(session.client.list_consumer_groups(request_timeout=session.timeout))
        return sorted({g.group_id for g in listed.valid})

    def offsets_of(group: str) -> dict[tuple[str, int], int]:
        futures = session.client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=session.timeout
        )
        result = session.wait(futures[group])
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or []
            if tp.topic in wanted
        }

    committed: dict[str, dict[tuple[str, int], int]] = {}
    for group in await session.call(groups, "listing consumer groups"):
        mine = await session.call(
            lambda g=group: offsets_of(g),  # type: ignore[misc]
            f"reading offsets of {group}",
        )
        if mine:
            committed[group] = mine
    return committed


async def _oldest_timestamp(
    consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]
) -> datetime | None:
    """The earliest timestamp among the messages at these positions (one fetch each)."""
    if not positions:
        return None
    consumer.assign(list(positions))
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
    first: dict[TopicPartition, int] = {}
    while len(first) < len(positions):
        batch = await consumer.getmany(*[tp for tp in positions if tp not in first], timeout_ms=500)
        for tp, records in batch.items():
            if records and tp not in first:
                first[tp] = records[0].timestamp
    return datetime.fromtimestamp(min(first.values()) / 1000, tz=UTC)
