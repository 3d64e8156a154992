"""Repository for signaleringen and the transactional outbox the Kafka relay publishes from.

A signalering and its outbox row are written in the caller's transaction together with the
message that caused them, so nothing is published that was not stored, and nothing stored is
lost: the relay keeps trying until Kafka has it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.pipeline.envelope import NewSignalering
from koppelpunt.store._dialect import chunks, dialect_name
from koppelpunt.store.bulk import DoNothing, insert_rows
from koppelpunt.store.tables import berichten, outbox, signaleringen

# PostgreSQL NOTIFY channel of new outbox rows (store/outbox_listener.py wakes relays on it).
OUTBOX_CHANNEL = "koppelpunt_outbox"

# The longest error text kept per outbox row: enough for a Kafka error, not a whole traceback.
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """What the relay sends: `key` is the BSN, so one pupil's signaleringen stay in order.

    `kafka_headers` are the stored headers encoded once for the producer. `type`,
    `gemeentecode`, `trace_id` and `bericht_id` (those two None without a stored message)
    are what the verwerkingenlog's `publiceren` line needs, read by the same claim.
    """

    id: int
    signalering_id: str
    topic: str
    key: str
    payload: bytes
    kafka_headers: tuple[tuple[str, bytes], ...]
    attempts: int
    type: str
    gemeentecode: str
    trace_id: str | None
    bericht_id: str | None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The stored (name, value) headers as text."""
        return [(name, value.decode("utf-8")) for name, value in self.kafka_headers]


@dataclass(frozen=True, slots=True)
class StoredSignalering:
    """A signalering with its publication state, for inspection and tests."""

    signalering_id: str
    type: str
    gemeentecode: str
    bsn: str
    topic: str
    payload: bytes
    headers: list[tuple[str, str]]
    created_at: datetime
    bericht_pk: int | None
    outbox_id: int
    published_at: datetime | None
    attempts: int
    last_error: str | None


_SIGNALERING_COLUMNS = (
    "signalering_id",
    "type",
    "gemeentecode",
    "bsn",
    "topic",
    "payload",
    "headers",
    "created_at",
    "bericht_pk",
)
# ON CONFLICT DO NOTHING: on PostgreSQL a concurrent insert of the same id waits for the other
# transaction and is then skipped, so no pre-select race exists.
_SKIP_STORED = DoNothing(("signalering_id",))


async def add_signaleringen(session: AsyncSession, items: Sequence[NewSignalering]) -> list[str]:
    """Store signaleringen with one outbox row each, skipping ids already stored.

    Returns the ids actually inserted, in input order; their outbox ids follow that order too,
    which is the order the relay publishes them in.
    """
    unique: dict[str, NewSignalering] = {}
    for item in items:
        unique.setdefault(item.signalering_id, item)
    if not unique:
        return []
    # The ids actually inserted (not stored before), in input order.
    inserted = await insert_rows(
        session,
        signaleringen,
        _SIGNALERING_COLUMNS,
        [
            (
                item.signalering_id,
                item.type,
                item.gemeentecode,
                item.bsn,
                item.topic,
                item.payload,
                # (name, value) tuples: the JSON encoder writes them as [name, value] arrays
                item.headers,
                item.created_at,
                item.bericht_pk,
            )
            for item in unique.values()
        ],
        on_conflict=_SKIP_STORED,
        returning="signalering_id",
    )
    new = [unique[signalering_id] for signalering_id in inserted]
    # executemany runs row by row in list order, so outbox ids follow the input order.
    await insert_rows(
        session,
        outbox,
        ("signalering_id", "topic", "created_at"),
        [(item.signalering_id, item.topic, item.created_at) for item in new],
    )
    if new and dialect_name(session) == "postgresql":
        # Delivered to the listening relays at the commit (once per transaction, however many
        # rows), dropped on rollback: a relay in another process is woken without polling.
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
    return [item.signalering_id for item in new]


def _headers(value: Any) -> list[tuple[str, str]]:
    return [(str(name), str(header)) for name, header in value]


# Advisory lock namespace of the relay shards (pg_try_advisory_xact_lock(namespace, shard)).
# Any constant no other code uses; it must be the same on every replica.
RELAY_SHARD_LOCK_NAMESPACE = 0x6B70  # "kp"


@dataclass(frozen=True, slots=True)
class ShardSet:
    """Shards (`indexes`) of the outbox split `count` ways by a hash of the BSN (the Kafka
    key), claimed together: the ones a relay could lock in one pass (lock_free_shards)."""

    indexes: tuple[int, ...]
    count: int


async def lock_free_shards(session: AsyncSession, count: int) -> ShardSet:
    """Take, in one statement, the advisory lock of every shard no other relay holds now;
    held for the rest of this transaction (PostgreSQL). Only the holder publishes a shard, so
    all signaleringen of one BSN (always the same shard) leave one relay at a time, oldest
    first: per-BSN order holds with any number of relays. One claim serves all of them:
    a claim filtered on one shard has to hash the BSN of every signalering (a scan of the
    whole table), so sixteen of those per pass made the relay fall behind (bench/ROUNDS.md).
    """
    rows = await session.execute(
        # A lock attempt per shard, in shard order.
        text(
            "SELECT i FROM generate_series(0, :last) AS i "
            "WHERE pg_try_advisory_xact_lock(:namespace, i)"
        ),
        {"last": count - 1, "namespace": RELAY_SHARD_LOCK_NAMESPACE},
    )
    return ShardSet(tuple(int(i) for i in rows.scalars()), count)


def _claim_query() -> Select[Any]:
    """The claimed rows with what publishing and the verwerkingenlog need (no second query)."""
    return (
        select(
            outbox.c.id,
            outbox.c.signalering_id,
            outbox.c.topic,
            outbox.c.attempts,
            signaleringen.c.bsn,
            signaleringen.c.payload,
            signaleringen.c.headers,
            signaleringen.c.type,
            signaleringen.c.gemeentecode,
            berichten.c.trace_id,
            berichten.c.bericht_id,
        )
        .join(signaleringen, signaleringen.c.signalering_id == outbox.c.signalering_id)
        # For the verwerkingenlog (log_published): no second query after the publish.
        .outerjoin(berichten, berichten.c.id == signaleringen.c.bericht_pk)
        .order_by(outbox.c.id)
    )


@functools.lru_cache(maxsize=8)
def _sqlite_claim(limit: int) -> Select[Any]:
    """SQLite's claim, built once per batch size (`now` is a parameter): building it cost
    more than running it.

    SQLite sorts every pending row for ORDER BY id, and would join (read the payload of) each
    one first: with a backlog of 100k that is ~100 MB per claim. So the ids are picked from the
    pending index alone, then only those joined (bench/ROUNDS.md, "claim"). Rows never tried
    (next_attempt_at NULL) come from ix_outbox_pending already in id order, so SQLite stops
    after `limit`; retries due are few and sorted apart.
    """
    pending = outbox.c.published_at.is_(None)
    now = bindparam("now", type_=outbox.c.next_attempt_at.type)
    fresh = select(outbox.c.id).where(pending, outbox.c.next_attempt_at.is_(None))
    retry = select(outbox.c.id).where(pending, outbox.c.next_attempt_at <= now)
    first = union_all(
        select(fresh.order_by(outbox.c.id).limit(limit).subquery()),
        select(retry.order_by(outbox.c.id).limit(limit).subquery()),
    )
    return _claim_query().limit(limit).where(outbox.c.id.in_(first))


async def claim_pending(
    session: AsyncSession, *, limit: int, now: datetime, shard: ShardSet | None = None
) -> list[OutboxItem]:
    """Up to `limit` unpublished items that are due, oldest first (of `shard` when given).

    On PostgreSQL the rows stay locked (FOR UPDATE SKIP LOCKED) until the caller's transaction
    ends, so several relays can run side by side without publishing a row twice: publish, then
    mark_published/mark_failed, then commit, in one transaction. Row locks alone do not keep a
    pupil's order across relays (one relay may skip the rows another holds and publish a later
    signalering of the same BSN first): relays therefore claim only the shards they locked
    (lock_free_shards).
    SQLite has a single writer.
    """
    if dialect_name(session) != "postgresql":
        return _items(await session.execute(_sqlite_claim(limit), {"now": now}))
    due = (
        outbox.c.published_at.is_(None),
        or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now),
    )
    query = _claim_query().limit(limit).where(*due)
    if shard is not None and shard.count > 1:
        # hashtext: PostgreSQL's stable string hash; masked to non-negative before modulo.
        bucket = func.hashtext(signaleringen.c.bsn).op("&")(0x7FFFFFFF) % shard.count
        if len(shard.indexes) < shard.count:  # all of them: no filter, an index scan
            query = query.where(bucket.in_(shard.indexes))
    query = query.with_for_update(skip_locked=True, of=outbox)
    return _items(await session.execute(query))


def _items(rows: Any) -> list[OutboxItem]:
    return [
        OutboxItem(
            id=row.id,
            signalering_id=row.signalering_id,
            topic=row.topic,
            key=row.bsn,
            payload=bytes(row.payload),
            kafka_headers=tuple(
                [(str(name), str(value).encode("utf-8")) for name, value in row.headers]
            ),
            attempts=row.attempts,
            type=row.type,
            gemeentecode=row.gemeentecode,
            trace_id=row.trace_id,
            bericht_id=row.bericht_id,
        )
        for row in rows
    ]


# Built once (the relay runs it after every publish); ids expanding.
_MARK_PUBLISHED = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        published_at=bindparam("now", type_=outbox.c.published_at.type),
        last_error=None,
        next_attempt_at=None,
    )
)


async def mark_published(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    """Record that Kafka acknowledged these items."""
    for chunk in chunks(ids, 1000):
        await session.execute(_MARK_PUBLISHED, {"ids": chunk, "now": now})


async def mark_published_if_pending(
    session: AsyncSession, ids: Sequence[int], now: datetime
) -> list[int]:
    """Record that Kafka acknowledged these items, for those not marked since (another relay
    may have published them meanwhile); returns the ids marked now, for their log lines."""
    pending: list[int] = []
    for chunk in chunks(ids, 1000):
        pending += await session.scalars(
            select(outbox.c.id)
            .where(outbox.c.id.in_(chunk), outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .with_for_update()
        )
    await mark_published(session, pending, now)
    return pending


def backoff_seconds(attempts: int, *, base_seconds: float, max_seconds: float) -> float:
    """Delay after a failure when `attempts` earlier attempts had failed: base, 2*base, 4*base..."""
    return float(min(base_seconds * 2 ** min(attempts, 64), max_seconds))


async def mark_failed(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    error: str,
    now: datetime,
    base_seconds: float,
    max_seconds: float,
) -> None:
    """Count a failed attempt and hold the items back for min(base * 2^attempts, max) seconds,
    `attempts` being the count before this failure (so the first retry waits `base`)."""
    by_attempts: dict[int, list[int]] = defaultdict(list)
    for chunk in chunks(ids, 1000):
        rows = await session.execute(
            select(outbox.c.id, outbox.c.attempts).where(outbox.c.id.in_(chunk))
        )
        for row in rows:
            by_attempts[row.attempts].append(row.id)
    # Items failing together almost always share their attempt count: one UPDATE per count.
    for attempts, group in by_attempts.items():
        delay = backoff_seconds(attempts, base_seconds=base_seconds, max_seconds=max_seconds)
        for chunk in chunks(group, 1000):
            await session.execute(
                update(outbox)
                .where(outbox.c.id.in_(chunk))
                .values(
                    attempts=attempts + 1,
                    last_error=error[:MAX_ERROR_LENGTH],
                    next_attempt_at=now + timedelta(seconds=delay),
                )
            )


async def backlog(session: AsyncSession) -> int:
    """Number of signaleringen not yet published (a metric and an alert)."""
    count = await session.scalar(
        select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    )
    return int(count or 0)


async def oldest_unpublished(session: AsyncSession) -> datetime | None:
    """Creation time of the oldest unpublished signalering: how far the relay lags."""
    oldest: datetime | None = await session.scalar(
        select(func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
    )
    return oldest


async def get_signaleringen_for_bericht(
    session: AsyncSession, bericht_pk: int
) -> list[StoredSignalering]:
    """The signaleringen one message caused, in publication order."""
    result = await session.execute(
        select(
            signaleringen,
            outbox.c.id.label("outbox_id"),
            outbox.c.published_at,
            outbox.c.attempts,
            outbox.c.last_error,
        )
        .join(outbox, outbox.c.signalering_id == signaleringen.c.signalering_id)
        .where(signaleringen.c.bericht_pk == bericht_pk)
        .order_by(outbox.c.id)
    )
    return [
        StoredSignalering(
            signalering_id=row.signalering_id,
            type=row.type,
            gemeentecode=row.gemeentecode,
            bsn=row.bsn,
            topic=row.topic,
            payload=bytes(row.payload),
            headers=_headers(row.headers),
            created_at=row.created_at,
            bericht_pk=row.bericht_pk,
            outbox_id=row.outbox_id,
            published_at=row.published_at,
            attempts=row.attempts,
            last_error=row.last_error,
        )
        for row in result
    ]
