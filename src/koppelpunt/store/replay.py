"""Reading stored messages back for a re-decision (`koppelpunt rules dry-run`). Read only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store._dialect import chunks
from koppelpunt.store.tables import berichten, beslissingen


@dataclass(frozen=True, slots=True)
class RawBericht:
    pk: int
    bericht_id: str
    soort: str
    raw: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class KnownDecision:
    """What was decided for one stored record: enough to reuse its woongemeente."""

    uitkomst: str
    reden: str | None
    gemeentecode: str | None  # the routed CBS code (GM0363) when doorgestuurd


async def berichten_since(
    session: AsyncSession,
    since: datetime | None,
    *,
    until: datetime | None = None,
    after_pk: int = 0,
    limit: int = 100,
) -> list[RawBericht]:
    """Stored messages received at or after `since` (None: from the first), before `until`,
    in pk order, one page."""
    query = select(
        berichten.c.id,
        berichten.c.bericht_id,
        berichten.c.soort,
        berichten.c.raw,
        berichten.c.received_at,
    ).where(berichten.c.id > after_pk)
    if since is not None:
        query = query.where(berichten.c.received_at >= since)
    if until is not None:
        query = query.where(berichten.c.received_at < until)
    rows = await session.execute(query.order_by(berichten.c.id).limit(limit))
    return [RawBericht(r.id, r.bericht_id, r.soort, bytes(r.raw), r.received_at) for r in rows]


async def known_decisions(
    session: AsyncSession, bericht_pks: Sequence[int]
) -> dict[tuple[int, int], KnownDecision]:
    """The stored decision per (bericht pk, record index) of these messages."""
    found: dict[tuple[int, int], KnownDecision] = {}
    for chunk in chunks(list(bericht_pks), 500):
        rows = await session.execute(
            select(
                beslissingen.c.bericht_pk,
                beslissingen.c.record_index,
                beslissingen.c.uitkomst,
                beslissingen.c.reden,
                beslissingen.c.gemeentecode,
            )
            .where(beslissingen.c.bericht_pk.in_(chunk))
            .order_by(beslissingen.c.id)
        )
        for r in rows:
            found[(r.bericht_pk, r.record_index)] = KnownDecision(
                r.uitkomst, r.reden, r.gemeentecode
            )
    return found
