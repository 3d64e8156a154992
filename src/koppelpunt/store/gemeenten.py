"""Repository for imported RvIG Tabel 33 gemeente tables (`koppelpunt gemeenten import`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.errors import ConfigurationError
from koppelpunt.pipeline.gemeenten import GemeenteTable
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


@dataclass(frozen=True, slots=True)
class GemeenteTableInUse:
    """The gemeente table every command and the service use, and where it came from."""

    table: GemeenteTable
    source: str
    sha256: str | None


async def gemeente_table_in_use(session: AsyncSession, packaged: Path) -> GemeenteTableInUse:
    """The newest `koppelpunt gemeenten import`, else the packaged file.

    The one place that decides which table is in use, so the service, `topics ensure`,
    `access grant|revoke` and `brp import` can never disagree after a herindeling import.
    Raises ConfigurationError when the stored or packaged table is not valid.
    """
    stored = await newest_gemeentetabel(session)
    if stored is None:
        return GemeenteTableInUse(
            GemeenteTable.load(packaged), str(packaged), file_sha256(packaged)
        )
    try:
        table = GemeenteTable.from_csv_text(stored.csv)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"imported gemeente table {stored.id} is not valid: {exc.detail}"
        ) from exc
    source = f"import {stored.id} ({stored.source}, {stored.imported_at:%Y-%m-%d %H:%M} UTC)"
    return GemeenteTableInUse(table, source, stored.sha256)


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a table file's text as an import would store it (BOM dropped), so an import
    of the packaged file is recognised as the table already in use."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
