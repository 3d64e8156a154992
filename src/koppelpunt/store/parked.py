"""Repository for parked records: decisions with uitkomst "geparkeerd" (lookup unavailable).

Shared by `koppelpunt parked list|retry`, the automatic retry in the service and operator
views (issue 5). Listings carry no BSN: an operator needs the message and the record, not
the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.pipeline.envelope import BeslissingRow
from koppelpunt.store.tables import berichten, beslissingen

GEPARKEERD = "geparkeerd"


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """One parked record: which message, which record (0-based index), since when."""

    bericht_pk: int
    bericht_id: str
    soort: str
    record_index: int
    received_at: datetime
    rules_version: str


_PARKED = (
    select(
        beslissingen.c.bericht_pk,
        berichten.c.bericht_id,
        berichten.c.soort,
        beslissingen.c.record_index,
        berichten.c.received_at,
        beslissingen.c.rules_version,
    )
    .join(berichten, berichten.c.id == beslissingen.c.bericht_pk)
    .where(beslissingen.c.uitkomst == GEPARKEERD)
)


async def list_parked(
    session: AsyncSession, *, limit: int = 1000, after_pk: int = 0
) -> list[ParkedRecord]:
    """Parked records, oldest message first (then record order); paged with `after_pk`."""
    result = await session.execute(
        _PARKED.where(beslissingen.c.bericht_pk > after_pk)
        .order_by(beslissingen.c.bericht_pk, beslissingen.c.record_index)
        .limit(limit)
    )
    return [ParkedRecord(**row._mapping) for row in result]


async def get_parked(
    session: AsyncSession, bericht_pk: int, record_index: int
) -> ParkedRecord | None:
    """One parked record, or None when it is not (or no longer) parked."""
    result = await session.execute(
        _PARKED.where(
            beslissingen.c.bericht_pk == bericht_pk, beslissingen.c.record_index == record_index
        )
    )
    row = result.one_or_none()
    return None if row is None else ParkedRecord(**row._mapping)


async def count_parked(session: AsyncSession) -> int:
    total = await session.scalar(
        select(func.count()).select_from(beslissingen).where(beslissingen.c.uitkomst == GEPARKEERD)
    )
    return int(total or 0)


async def raw_bericht(session: AsyncSession, bericht_pk: int) -> bytes:
    """The stored bytes of a message, to decide its parked records again."""
    raw = await session.scalar(select(berichten.c.raw).where(berichten.c.id == bericht_pk))
    assert raw is not None
    return bytes(raw)


async def resolve_parked(session: AsyncSession, bericht_pk: int, row: BeslissingRow) -> bool:
    """Replace a parked decision by its outcome; False when it was no longer parked (another
    retry decided it first), so the caller stores nothing for it."""
    result = await session.execute(
        update(beslissingen)
        .where(
            beslissingen.c.bericht_pk == bericht_pk,
            beslissingen.c.record_index == row.record_index,
            beslissingen.c.uitkomst == GEPARKEERD,
        )
        .values(
            uitkomst=row.uitkomst,
            reden=row.reden,
            details=row.details,
            gemeentecode=row.gemeentecode,
            rules_version=row.rules_version,
        )
    )
    return bool(getattr(result, "rowcount", 0))
