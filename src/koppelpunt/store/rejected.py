"""Records rejected on content (uitkomst `afgewezen` in beslissingen), for operators.

Messages refused as a whole are in `afwijzingen` (store/berichten.py); a rejected record is
one row of an accepted message, whose raw bytes stay with that message in `berichten`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.tables import berichten, beslissingen

REJECTED = "afgewezen"


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    id: int  # the beslissing id
    received_at: datetime
    sender: str
    soort: str
    bericht_id: str
    record_index: int
    reden: str | None
    details: str | None


def _query() -> Select[Any]:
    return (
        select(
            beslissingen.c.id,
            berichten.c.received_at,
            berichten.c.sender,
            berichten.c.soort,
            berichten.c.bericht_id,
            beslissingen.c.record_index,
            beslissingen.c.reden,
            beslissingen.c.details,
        )
        .join(berichten, berichten.c.id == beslissingen.c.bericht_pk)
        .where(beslissingen.c.uitkomst == REJECTED)
    )


async def list_rejected_records(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    sender: str | None = None,
    limit: int = 100,
) -> list[RejectedRecord]:
    """Rejected records, newest message first, record order within a message."""
    query = _query()
    if since is not None:
        query = query.where(berichten.c.received_at >= since)
    if sender is not None:
        query = query.where(berichten.c.sender == sender)
    query = query.order_by(
        berichten.c.received_at.desc(), berichten.c.id.desc(), beslissingen.c.record_index
    ).limit(limit)
    return [RejectedRecord(**row._mapping) for row in await session.execute(query)]


async def get_rejected_record(session: AsyncSession, beslissing_id: int) -> RejectedRecord | None:
    row = (await session.execute(_query().where(beslissingen.c.id == beslissing_id))).one_or_none()
    return None if row is None else RejectedRecord(**row._mapping)


async def get_bericht_raw_for_record(session: AsyncSession, beslissing_id: int) -> bytes | None:
    """The raw message a rejected record came in."""
    raw = await session.scalar(
        select(berichten.c.raw)
        .join(beslissingen, beslissingen.c.bericht_pk == berichten.c.id)
        .where(beslissingen.c.id == beslissing_id)
    )
    return None if raw is None else bytes(raw)
