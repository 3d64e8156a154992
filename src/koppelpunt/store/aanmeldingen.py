"""Read-only queries on aanmeldingen for operators (`koppelpunt aanmeldingen buiten-flow`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store._dialect import chunks
from koppelpunt.store.tables import aanmelding_statussen, aanmeldingen

Key = tuple[str, str]  # (instelling BRIN, aanmeldingId)


@dataclass(frozen=True, slots=True)
class StatusStap:
    """One status in an aanmelding's history; `buiten_flow` when reaching it broke the flow."""

    status: str
    statusdatum: date
    buiten_flow: bool


async def count_buiten_flow(session: AsyncSession) -> int:
    result = await session.scalar(
        select(func.count()).select_from(aanmeldingen).where(aanmeldingen.c.buiten_flow.is_(True))
    )
    return int(result or 0)


async def histories(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, list[StatusStap]]:
    """The status history of these aanmeldingen, by statusdatum (ties: receipt order)."""
    found: dict[Key, list[StatusStap]] = defaultdict(list)
    t = aanmelding_statussen
    for chunk in chunks(list(keys), 200):
        rows = await session.execute(
            select(
                t.c.instelling_brin, t.c.aanmelding_id, t.c.status, t.c.statusdatum, t.c.buiten_flow
            )
            .where(tuple_(t.c.instelling_brin, t.c.aanmelding_id).in_(chunk))
            .order_by(t.c.statusdatum, t.c.id)
        )
        for r in rows:
            found[(r.instelling_brin, r.aanmelding_id)].append(
                StatusStap(r.status, r.statusdatum, bool(r.buiten_flow))
            )
    return dict(found)


async def bsns(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, str]:
    """The BSN of each aanmelding: only for an operator who asked for it (--show-bsn)."""
    found: dict[Key, str] = {}
    t = aanmeldingen
    for chunk in chunks(list(keys), 200):
        rows = await session.execute(
            select(t.c.instelling_brin, t.c.aanmelding_id, t.c.bsn).where(
                tuple_(t.c.instelling_brin, t.c.aanmelding_id).in_(chunk)
            )
        )
        for r in rows:
            found[(r.instelling_brin, r.aanmelding_id)] = r.bsn
    return found
