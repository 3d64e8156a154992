"""Repository for signaleringen whose publication failed: list them, and retry them now.

The relay counts each refused attempt (attempts, last_error) and backs off. Nothing is ever
dropped: a failing signalering stays in the outbox until Kafka takes it, and operators see it
here with its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store._dialect import chunks
from koppelpunt.store.tables import outbox, signaleringen


@dataclass(frozen=True, slots=True)
class FailingSignalering:
    outbox_id: int
    signalering_id: str
    type: str
    gemeentecode: str
    topic: str
    created_at: datetime
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None


def _failing(gemeentecode: str | None, failing_only: bool = True) -> object:
    condition = and_(
        outbox.c.published_at.is_(None), outbox.c.attempts > (0 if failing_only else -1)
    )
    if gemeentecode is not None:
        condition = and_(condition, signaleringen.c.gemeentecode == gemeentecode)
    return condition


async def list_failing(
    session: AsyncSession,
    *,
    gemeentecode: str | None = None,
    limit: int = 100,
    failing_only: bool = True,
) -> list[FailingSignalering]:
    """Unpublished signaleringen with at least one failed attempt (or, not `failing_only`,
    every unpublished one), oldest first."""
    result = await session.execute(
        select(
            outbox.c.id,
            outbox.c.signalering_id,
            signaleringen.c.type,
            signaleringen.c.gemeentecode,
            outbox.c.topic,
            outbox.c.created_at,
            outbox.c.attempts,
            outbox.c.last_error,
            outbox.c.next_attempt_at,
        )
        .join(signaleringen, signaleringen.c.signalering_id == outbox.c.signalering_id)
        .where(_failing(gemeentecode, failing_only))  # type: ignore[arg-type]
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return [
        FailingSignalering(
            outbox_id=row.id,
            signalering_id=row.signalering_id,
            type=row.type,
            gemeentecode=row.gemeentecode,
            topic=row.topic,
            created_at=row.created_at,
            attempts=row.attempts,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at,
        )
        for row in result
    ]


async def count_failing(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.published_at.is_(None), outbox.c.attempts > 0)
    )
    return int(count or 0)


async def retry_now(
    session: AsyncSession, *, signalering_ids: Sequence[str] | None = None, now: datetime
) -> int:
    """Make failing signaleringen due at once (all, or the given ids); returns how many.

    `attempts` and `last_error` stay as history; a new failure backs off from there again.
    """
    base = and_(outbox.c.published_at.is_(None), outbox.c.attempts > 0)
    if signalering_ids is None:
        result = await session.execute(update(outbox).where(base).values(next_attempt_at=now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    total = 0
    for chunk in chunks(list(signalering_ids), 1000):
        result = await session.execute(
            update(outbox)
            .where(base, outbox.c.signalering_id.in_(chunk))
            .values(next_attempt_at=now)
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total
