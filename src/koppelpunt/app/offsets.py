"""Consumer-group offsets and lag on the gemeente topics, through the Kafka Admin API.

Resetting offsets is how a vendor re-reads what is still in its topic (replay covers what is
not). Kafka only allows it while the group has no active members: a running consumer would
overwrite the new offsets with its own at the next commit. aiokafka's admin client has no
AlterConsumerGroupOffsets, so after checking the group is empty (DescribeGroups) the offsets
are committed by a consumer that joins no group (manual assignment, generation -1): the
broker accepts such a commit only for a group without members, so a consumer that joins in
between makes the reset fail instead of being silently overruled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from koppelpunt.app.moments import parse_moment
from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError, NotFoundError, ServiceUnavailableError
from koppelpunt.kafka.access import admin_settings
from koppelpunt.kafka.admin import _admin, client_kwargs, list_topics, topic_for

T = TypeVar("T")
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


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Retry a call while Kafka answers with a retriable error, e.g. the group coordinator
    not available yet (the first group on a fresh cluster creates __consumer_offsets). The
    caller's timeout bounds the retries."""
    while True:
        try:
            return await call()
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise
            await asyncio.sleep(0.25)


@dataclass(frozen=True, slots=True)
class GroupState:
    group: str
    state: str  # Empty, Stable, PreparingRebalance, Dead, …
    members: int


async def describe_group(settings: Settings, group: str, *, timeout: float = 10.0) -> GroupState:  # noqa: ASYNC109
    # Offsets and lag of vendors' groups are the admin principal's business: the service
    # principal has no rights on groups it does not own (issue 4's ACLs).
    admin = await _admin(admin_settings(settings), timeout)
    try:
        async with asyncio.timeout(timeout):
            responses = await _retrying(lambda: admin.describe_consumer_groups([group]))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"describing consumer group {group} failed: {exc!r}") from exc
    finally:
        await admin.close()
    for response in responses:
        for described in response.groups:
            if described[1] == group:
                return GroupState(group=group, state=described[2], members=len(described[5]))
    return GroupState(group=group, state="Dead", members=0)


# Kafka's error code for a group the principal may not DESCRIBE.
GROUP_AUTHORIZATION_FAILED = 30
# A group name nobody uses: describing it answers state Dead when groups are visible.
_PROBE_GROUP = "koppelpunt.lag-permission-probe"


async def _may_describe_groups(admin: AIOKafkaAdminClient) -> bool:
    try:
        responses = await _retrying(lambda: admin.describe_consumer_groups([_PROBE_GROUP]))
    except GroupAuthorizationFailedError:  # finding the group's coordinator was refused
        return False
    return not any(
        described[0] == GROUP_AUTHORIZATION_FAILED
        for response in responses
        for described in response.groups
    )


def _consumer(settings: Settings, group: str | None, timeout: float) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_kwargs(admin_settings(settings)),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout * 1000),
        client_id="koppelpunt-beheer",
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()
    partitions = cluster.partitions_for_topic(topic)
    if not partitions:
        raise NotFoundError(f"topic {topic} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


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
    state = await describe_group(settings, group, timeout=timeout)
    if state.members:
        raise GroupActiveError(
            f"consumer group {group} has {state.members} active members (state {state.state}): "
            "stop its consumers first",
            group=group,
            members=state.members,
        )
    consumer = _consumer(settings, group, timeout)
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            tps = await _partitions(consumer, name)
            if state.state == "Dead" and not create:
                raise NotFoundError(
                    f"consumer group {group} does not exist (no members, no committed "
                    "offsets): check the name (a vendor's groups start with its user name and "
                    "a dot), or create it at this position with --create"
                )
            consumer.assign(tps)
            offsets = await _target_offsets(consumer, tps, to)
            try:
                await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
            except KafkaError as exc:
                raise GroupActiveError(
                    f"Kafka refused the new offsets of {group} (did the group become "
                    f"active?): {exc!r}",
                    group=group,
                ) from exc
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"resetting offsets of {group} failed: {exc!r}") from exc
    finally:
        await consumer.stop()
    new = {tp.partition: o for tp, o in offsets.items()}
    log.info(
        "consumer_offsets_reset",
        group=group,
        topic=name,
        to=to if isinstance(to, str) else to.isoformat(),
        offsets=new,
        requested_by=requested_by,
    )
    return new


async def _target_offsets(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], to: Target
) -> dict[TopicPartition, int]:
    if to == "earliest":
        return dict(await consumer.beginning_offsets(tps))
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    if to == "latest":
        return dict(ends)
    assert isinstance(to, datetime)
    millis = int(to.timestamp() * 1000)
    found = await consumer.offsets_for_times(dict.fromkeys(tps, millis))
    return {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in tps}


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
    admin = await _admin(admin_settings(settings), timeout)
    committed: dict[str, dict[TopicPartition, int]] = {}
    try:
        async with asyncio.timeout(timeout):
            groups = sorted({g[0] for g in await admin.list_consumer_groups()})
            for group in groups:
                offsets = await _retrying(
                    lambda g=group: admin.list_consumer_group_offsets(g)  # type: ignore[misc]
                )
                mine = {tp: o.offset for tp, o in offsets.items() if tp.topic in wanted}
                if mine:
                    committed[group] = mine
            # The broker lists only the groups a principal may DESCRIBE: an empty list can
            # mean "none" or "not allowed to see them". Asking about a group that need not
            # exist tells the two apart (GROUP_AUTHORIZATION_FAILED against state Dead).
            if not committed and not await _may_describe_groups(admin):
                user = admin_settings(settings).kafka_username or "(no SASL user)"
                raise ServiceUnavailableError(
                    f"no permission to read consumer groups: Kafka user {user} needs DESCRIBE "
                    "on groups to show consumer lag (see docs/beheer.md, Consumer lag)"
                )
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"reading consumer groups failed: {exc!r}") from exc
    finally:
        await admin.close()
    if not committed:
        return []
    consumer = _consumer(settings, None, timeout)
    rows: list[Lag] = []
    may_read = True
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            all_tps: list[TopicPartition] = []
            for topic in sorted({tp.topic for c in committed.values() for tp in c}):
                all_tps += await _partitions(consumer, topic)
            starts = await consumer.beginning_offsets(all_tps)
            ends = await consumer.end_offsets(all_tps)
            for group, offsets in sorted(committed.items()):
                for topic in sorted({tp.topic for tp in offsets}):
                    tps = [tp for tp in all_tps if tp.topic == topic]
                    # No commit on a partition yet: the group would start at the beginning.
                    positions = {
                        tp: max(offsets.get(tp, -1), starts[tp])
                        if offsets.get(tp, -1) >= 0
                        else starts[tp]
                        for tp in tps
                    }
                    lag = sum(max(ends[tp] - positions[tp], 0) for tp in tps)
                    unread = {tp: positions[tp] for tp in tps if ends[tp] > positions[tp]}
                    oldest = None
                    if may_read:
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
        await consumer.stop()
    return rows


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
