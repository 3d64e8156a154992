"""Counts for the /beheer overview page (api/routes/beheer_page.py): read-only aggregates."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.tables import afwijzingen, outbox, signaleringen


async def signaleringen_per_dag(
    session: AsyncSession, since: date
) -> dict[str, dict[str, dict[str, int]]]:
    """{gemeentecode: {type: {YYYY-MM-DD: count}}} from `since` (UTC days) on."""
    day = func.date(signaleringen.c.created_at)
    rows = await session.execute(
        select(signaleringen.c.gemeentecode, signaleringen.c.type, day, func.count())
        .where(signaleringen.c.created_at >= datetime.combine(since, datetime.min.time(), UTC))
        .group_by(signaleringen.c.gemeentecode, signaleringen.c.type, day)
    )
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for gemeente, soort, dag, n in rows:
        out[gemeente][soort][str(dag)[:10]] = int(n)
    return out


async def afwijzingen_per_status(session: AsyncSession) -> dict[int, int]:
    """How many refused messages per HTTP status code."""
    rows = await session.execute(
        select(afwijzingen.c.status_code, func.count()).group_by(afwijzingen.c.status_code)
    )
    return {int(code): int(n) for code, n in rows}


async def failing_count(session: AsyncSession) -> int:
    """Outbox rows not yet published after at least one failed attempt."""
    n = await session.scalar(
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.published_at.is_(None), outbox.c.attempts > 0)
    )
    return int(n or 0)
