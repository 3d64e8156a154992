"""Repository for replays: their parameters, state, and the position to resume from.

A replay walks the stored signaleringen of one gemeente in outbox-id order (the order they
were first published in). `last_outbox_id` is the position after which it continues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.outbox import _headers
from koppelpunt.store.tables import outbox, replays, signaleringen

RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which signaleringen a replay re-publishes."""

    gemeentecode: str
    since: datetime | None = None
    until: datetime | None = None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class StoredReplay:
    replay_id: str
    gemeentecode: str
    since: datetime | None
    until: datetime | None
    type: str | None
    to_topic: str | None
    dry_run: bool
    status: str
    total: int
    published: int
    last_outbox_id: int | None
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def filter(self) -> ReplayFilter:
        return ReplayFilter(self.gemeentecode, self.since, self.until, self.type)


@dataclass(frozen=True, slots=True)
class ReplayItem:
    outbox_id: int
    signalering_id: str
    type: str
    topic: str
    key: str
    payload: bytes
    headers: list[tuple[str, str]]


def _where(f: ReplayFilter) -> Any:
    conditions = [signaleringen.c.gemeentecode == f.gemeentecode]
    if f.since is not None:
        conditions.append(signaleringen.c.created_at >= f.since)
    if f.until is not None:
        conditions.append(signaleringen.c.created_at < f.until)
    if f.type is not None:
        conditions.append(signaleringen.c.type == f.type)
    return and_(*conditions)


def _joined(columns: Any) -> Select[Any]:
    return select(*columns).join(outbox, outbox.c.signalering_id == signaleringen.c.signalering_id)


async def count_matching(
    session: AsyncSession, f: ReplayFilter, *, after_outbox_id: int | None = None
) -> int:
    """How many stored signaleringen match (after a position, when resuming)."""
    query = _joined([func.count()]).where(_where(f))
    if after_outbox_id is not None:
        query = query.where(outbox.c.id > after_outbox_id)
    return int(await session.scalar(query) or 0)


async def next_batch(
    session: AsyncSession, f: ReplayFilter, *, after_outbox_id: int | None, limit: int
) -> list[ReplayItem]:
    """The next `limit` matching signaleringen after a position, in outbox-id order."""
    query = _joined(
        [
            outbox.c.id,
            signaleringen.c.signalering_id,
            signaleringen.c.type,
            signaleringen.c.topic,
            signaleringen.c.bsn,
            signaleringen.c.payload,
            signaleringen.c.headers,
        ]
    ).where(_where(f))
    if after_outbox_id is not None:
        query = query.where(outbox.c.id > after_outbox_id)
    query = query.order_by(outbox.c.id).limit(limit)
    return [
        ReplayItem(
            outbox_id=row.id,
            signalering_id=row.signalering_id,
            type=row.type,
            topic=row.topic,
            key=row.bsn,
            payload=bytes(row.payload),
            headers=_headers(row.headers),
        )
        for row in await session.execute(query)
    ]


async def add_replay(
    session: AsyncSession,
    *,
    replay_id: str,
    f: ReplayFilter,
    to_topic: str | None,
    dry_run: bool,
    total: int,
    requested_by: str,
    now: datetime,
) -> None:
    await session.execute(
        insert(replays).values(
            replay_id=replay_id,
            gemeentecode=f.gemeentecode,
            since=f.since,
            until=f.until,
            type=f.type,
            to_topic=to_topic,
            dry_run=dry_run,
            status=RUNNING,
            total=total,
            published=0,
            last_outbox_id=None,
            requested_by=requested_by,
            created_at=now,
            updated_at=now,
        )
    )


async def record_progress(
    session: AsyncSession, replay_id: str, *, last_outbox_id: int, published: int, now: datetime
) -> None:
    """Move the resume position forward after Kafka acknowledged a batch."""
    await session.execute(
        update(replays)
        .where(replays.c.replay_id == replay_id)
        .values(last_outbox_id=last_outbox_id, published=published, updated_at=now)
    )


async def set_status(
    session: AsyncSession,
    replay_id: str,
    status: str,
    *,
    now: datetime,
    error: str | None = None,
    total: int | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": now}
    if total is not None:
        values["total"] = total
    await session.execute(update(replays).where(replays.c.replay_id == replay_id).values(values))


async def get_replay(session: AsyncSession, replay_id: str) -> StoredReplay | None:
    row = (
        await session.execute(select(replays).where(replays.c.replay_id == replay_id))
    ).one_or_none()
    return None if row is None else StoredReplay(**row._mapping)


async def find_unfinished(
    session: AsyncSession, f: ReplayFilter, to_topic: str | None
) -> StoredReplay | None:
    """The newest unfinished (not done, not a dry run) replay with exactly these parameters."""
    conditions = [
        replays.c.gemeentecode == f.gemeentecode,
        replays.c.dry_run.is_(False),
        replays.c.status != DONE,
    ]
    for column, value in (
        (replays.c.since, f.since),
        (replays.c.until, f.until),
        (replays.c.type, f.type),
        (replays.c.to_topic, to_topic),
    ):
        conditions.append(column.is_(None) if value is None else column == value)
    row = (
        await session.execute(
            select(replays).where(and_(*conditions)).order_by(replays.c.created_at.desc()).limit(1)
        )
    ).first()
    return None if row is None else StoredReplay(**row._mapping)


async def list_replays(session: AsyncSession, *, limit: int = 50) -> list[StoredReplay]:
    result = await session.execute(
        select(replays).order_by(replays.c.created_at.desc()).limit(limit)
    )
    return [StoredReplay(**row._mapping) for row in result]
