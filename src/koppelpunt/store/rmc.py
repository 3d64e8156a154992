"""Repository for imported RMC-regio tables (`koppelpunt rmc import`) and their overrides."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.errors import ConfigurationError
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rmc import RmcTable, parse_overrides_csv, parse_rmc_csv
from koppelpunt.store.tables import rmc_tabellen, rmc_toegang


def rmc_sha256(csv_text: str, overrides_csv: str | None) -> str:
    """One digest over the region table and its overrides: re-importing both is a no-op."""
    digest = hashlib.sha256(csv_text.encode("utf-8"))
    digest.update(b"\x00" + (overrides_csv or "").encode("utf-8"))
    return digest.hexdigest()


async def add_rmc_tabel(
    session: AsyncSession,
    *,
    csv_text: str,
    source: str,
    overrides_csv: str | None,
    overrides_source: str | None,
    imported_at: datetime,
) -> int:
    """Store a validated region table (and overrides); it becomes the one in use."""
    pk = await session.scalar(
        insert(rmc_tabellen)
        .values(
            imported_at=imported_at,
            source=source[:255],
            sha256=rmc_sha256(csv_text, overrides_csv),
            csv=csv_text,
            overrides_source=None if overrides_source is None else overrides_source[:255],
            overrides_csv=overrides_csv,
        )
        .returning(rmc_tabellen.c.id)
    )
    assert pk is not None
    return int(pk)


@dataclass(frozen=True, slots=True)
class RmcTableInUse:
    """The region table every command uses, its overrides, and where they came from."""

    table: RmcTable
    overrides: dict[str, int]
    source: str
    sha256: str | None


async def rmc_table_in_use(
    session: AsyncSession, packaged: Path, gemeenten: GemeenteTable
) -> RmcTableInUse:
    """The newest `koppelpunt rmc import`, else the packaged file (without overrides).

    Names are mapped against `gemeenten` (the gemeente table in use). Raises
    ConfigurationError when the stored or packaged table does not parse against it.
    """
    row = (
        await session.execute(select(rmc_tabellen).order_by(rmc_tabellen.c.id.desc()).limit(1))
    ).one_or_none()
    if row is None:
        text = read_packaged(packaged)
        csv_text, overrides_csv, source = text, None, str(packaged)
    else:
        csv_text, overrides_csv = row.csv, row.overrides_csv
        source = f"import {row.id} ({row.source}, {row.imported_at:%Y-%m-%d %H:%M} UTC)"
        if row.overrides_source:
            source += f" with overrides {row.overrides_source}"
    table, issues = parse_rmc_csv(csv_text, gemeenten)
    if table is None:
        raise ConfigurationError(
            f"RMC-regio table {source}: " + "; ".join(f"line {i.line}: {i.reason}" for i in issues)
        )
    overrides: dict[str, int] = {}
    if overrides_csv is not None:
        parsed, issues = parse_overrides_csv(overrides_csv, gemeenten, table.regios)
        if parsed is None:
            raise ConfigurationError(
                f"RMC-regio overrides of {source}: "
                + "; ".join(f"line {i.line}: {i.reason}" for i in issues)
            )
        overrides = parsed
    return RmcTableInUse(table, overrides, source, rmc_sha256(csv_text, overrides_csv))


def read_packaged(path: Path) -> str:
    """The text of the packaged region table (small: read at once, like the gemeente table)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read RMC-regio table {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RegionGrant:
    """A recorded region grant: NAME was granted region N, i.e. these gemeenten's topics."""

    naam: str
    regio: int
    gemeenten: tuple[str, ...]  # GMnnnn, as granted (or last synced)
    granted_at: datetime
    actor: str


async def record_region_grant(
    session: AsyncSession,
    *,
    naam: str,
    regio: int,
    gemeenten: Sequence[str],
    at: datetime,
    actor: str,
) -> None:
    """Record (or replace) NAME's grant of region `regio` with the gemeenten granted now."""
    await session.execute(
        delete(rmc_toegang).where(rmc_toegang.c.naam == naam, rmc_toegang.c.rmc_regio == regio)
    )
    await session.execute(
        insert(rmc_toegang).values(
            naam=naam,
            rmc_regio=regio,
            gemeenten=",".join(sorted(set(gemeenten))),
            granted_at=at,
            actor=actor[:255],
        )
    )


async def delete_region_grants(
    session: AsyncSession, naam: str, regios: Sequence[int] | None = None
) -> int:
    """Forget NAME's region grants (all of them when `regios` is None); returns how many."""
    stmt = delete(rmc_toegang).where(rmc_toegang.c.naam == naam)
    if regios is not None:
        stmt = stmt.where(rmc_toegang.c.rmc_regio.in_(list(regios)))
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def list_region_grants(session: AsyncSession) -> list[RegionGrant]:
    rows = await session.execute(
        select(rmc_toegang).order_by(rmc_toegang.c.naam, rmc_toegang.c.rmc_regio)
    )
    return [
        RegionGrant(
            r.naam,
            r.rmc_regio,
            tuple(c for c in r.gemeenten.split(",") if c),
            r.granted_at,
            r.actor,
        )
        for r in rows
    ]
