"""Repository for imported RvIG Tabel 33 gemeente tables (`koppelpunt gemeenten import`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.tables import gemeentetabellen


@dataclass(frozen=True, slots=True)
class StoredGemeenteTabel:
    id: int
    imported_at: datetime
    source: str
    sha256: str
    aantal: int
    csv: str


async def add_gemeentetabel(
    session: AsyncSession, *, csv_text: str, source: str, aantal: int, imported_at: datetime
) -> int:
    """Store a validated gemeente table; it becomes the one in use. Returns its id."""
    pk = await session.scalar(
        insert(gemeentetabellen)
        .values(
            imported_at=imported_at,
            source=source[:255],
            sha256=hashlib.sha256(csv_text.encode("utf-8")).hexdigest(),
            aantal=aantal,
            csv=csv_text,
        )
        .returning(gemeentetabellen.c.id)
    )
    assert pk is not None
    return int(pk)


async def newest_gemeentetabel(session: AsyncSession) -> StoredGemeenteTabel | None:
    """The most recently imported table, or None when none was imported."""
    row = (
        await session.execute(
            select(gemeentetabellen).order_by(gemeentetabellen.c.id.desc()).limit(1)
        )
    ).one_or_none()
    return None if row is None else StoredGemeenteTabel(**row._mapping)
