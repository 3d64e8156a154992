"""Read access per RMC-regio: grant, revoke and re-sync a region's gemeente topics.

Built on the public grant/revoke of koppelpunt.kafka.access (called with the region's
gemeenten): the broker still only knows topics, and a region grant is our record of which
gemeenten were granted through which region (table rmc_toegang), so `access sync` can follow a
gemeente or region table import. The service never grants by itself: sync is an operator
command, a dry run unless applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from koppelpunt.config import Settings
from koppelpunt.kafka import access
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rmc import (
    RegionAssignment,
    SyncChange,
    assign_regions,
    plan_region_sync,
    region_codes,
)
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.gemeenten import gemeente_table_in_use
from koppelpunt.store.rmc import (
    RegionGrant,
    delete_region_grants,
    list_region_grants,
    record_region_grant,
    rmc_table_in_use,
)


@dataclass(frozen=True)
class RegionsInUse:
    gemeenten: GemeenteTable
    assignment: RegionAssignment
    grants: list[RegionGrant]


def _today() -> date:
    return datetime.now(UTC).date()


async def regions_in_use(settings: Settings, on: date | None = None) -> RegionsInUse:
    """The gemeente and region tables in use, the regions on `on` (today), the region grants."""
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            table = (await gemeente_table_in_use(session, settings.gemeenten_file)).table
            rmc = await rmc_table_in_use(session, settings.rmc_regios_file, table)
            grants = await list_region_grants(session)
    finally:
        await engine.dispose()
    assignment = assign_regions(rmc.table, table, on or _today(), rmc.overrides)
    return RegionsInUse(table, assignment, grants)


def codes_of(regions: RegionsInUse, regios: Sequence[int]) -> dict[int, list[str]]:
    """GMnnnn per region; an unknown region or one without gemeenten is an AccessError."""
    result: dict[int, list[str]] = {}
    for regio in regios:
        if regio not in regions.assignment.regios:
            raise access.AccessError(f"unknown RMC-regio {regio} (see `koppelpunt rmc list`)")
        codes = region_codes(regions.assignment, regio)
        if not codes:
            raise access.AccessError(f"RMC-regio {regio} has no gemeenten today")
        result[regio] = codes
    return result


async def grant_regions(
    settings: Settings,
    name: str,
    regios: Sequence[int],
    gemeenten: Sequence[str],
    *,
    keep_password: bool,
    actor: str,
) -> tuple[access.ConnectionConfig, dict[int, list[str]]]:
    """Grant NAME the topics of the regions' gemeenten of today (plus `gemeenten`), and record
    each region grant. Returns the connection config and the gemeenten per region."""
    access.check_name(name, settings)
    regions = await regions_in_use(settings)
    per_regio = codes_of(regions, regios)
    codes = [*gemeenten, *(c for cs in per_regio.values() for c in cs)]
    config = await access.grant(
        settings, name, codes, table=regions.gemeenten, keep_password=keep_password
    )
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine).begin() as session:
            for regio, region_gemeenten in per_regio.items():
                await record_region_grant(
                    session,
                    naam=name,
                    regio=regio,
                    gemeenten=region_gemeenten,
                    at=datetime.now(UTC),
                    actor=actor,
                )
    finally:
        await engine.dispose()
    return config, per_regio


async def revoke_regions(
    settings: Settings, name: str, regios: Sequence[int], gemeenten: Sequence[str]
) -> tuple[list[access.AclBinding], list[str]]:
    """Take NAME's access to the gemeenten granted through these regions (and `gemeenten`),
    except those still granted through another of its regions; forget the region grants."""
    access.check_name(name, settings)
    regions = await regions_in_use(settings)
    mine = {g.regio: g for g in regions.grants if g.naam == name}
    unknown = [r for r in regios if r not in mine]
    if unknown:
        raise access.AccessError(
            f"{name!r} holds no grant of RMC-regio {', '.join(map(str, unknown))}"
        )
    kept = {c for r, g in mine.items() if r not in regios for c in g.gemeenten}
    codes = sorted({c for r in regios for c in mine[r].gemeenten} - kept | set(gemeenten))
    removed = await access.revoke(settings, name, codes, table=regions.gemeenten) if codes else []
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine).begin() as session:
            await delete_region_grants(session, name, list(regios))
    finally:
        await engine.dispose()
    return removed, codes


async def forget_all(settings: Settings, name: str) -> int:
    """Forget NAME's region grants (after a full `access revoke NAME`)."""
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine).begin() as session:
            return await delete_region_grants(session, name)
    finally:
        await engine.dispose()


async def plan_sync(settings: Settings) -> list[SyncChange]:
    """What `access sync` would change: recorded region grants against today's regions."""
    regions = await regions_in_use(settings)
    granted = {(g.naam, g.regio): g.gemeenten for g in regions.grants}
    return plan_region_sync(granted, regions.assignment)


async def apply_sync(settings: Settings, changes: Sequence[SyncChange], actor: str) -> None:
    """Grant and revoke as planned (passwords kept), then record the regions' new gemeenten."""
    regions = await regions_in_use(settings)
    for change in changes:
        if change.grant:
            await access.grant(
                settings, change.naam, change.grant, table=regions.gemeenten, keep_password=True
            )
        if change.revoke:
            await access.revoke(settings, change.naam, change.revoke, table=regions.gemeenten)
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine).begin() as session:
                await record_region_grant(
                    session,
                    naam=change.naam,
                    regio=change.regio,
                    gemeenten=change.now,
                    at=datetime.now(UTC),
                    actor=actor,
                )
        finally:
            await engine.dispose()
