"""Aggregate counts for the RMC-effectrapportage: only counts leave the database, no BSN."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import case, distinct, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.pipeline.rapportage import Count, Verslagperiode
from koppelpunt.store.tables import aanmeldingen, leerling_prognoses, signaleringen


async def count_signaleringen(
    session: AsyncSession,
    *,
    codes: Mapping[str, str],  # stored gemeentecode (GMnnnn) -> the region member it counts for
    periode: Verslagperiode,
    since: datetime,
    until: datetime,
) -> list[Count]:
    """Signaleringen created in [since, until) for these codes, counted per member gemeente,
    type and age group on 1 August, and once more for all members together (gemeente None).

    The birth date is the earliest one stored for the BSN in a prognose or aanmelding; a
    young person of whom none is stored any more (retention) counts as `onbekend`.
    """
    if not codes:
        return []
    births_all = union_all(
        select(leerling_prognoses.c.bsn, leerling_prognoses.c.geboortedatum),
        select(aanmeldingen.c.bsn, aanmeldingen.c.geboortedatum),
    ).subquery()
    births = (
        select(births_all.c.bsn, func.min(births_all.c.geboortedatum).label("geb"))
        .group_by(births_all.c.bsn)
        .subquery()
    )
    groep = case(
        (births.c.geb.is_(None), "onbekend"),
        (births.c.geb > periode.born_after_for_under(18), "onder18"),
        (births.c.geb > periode.born_after_for_under(23), "18tot23"),
        else_="23plus",
    )
    member = case(dict(codes), value=signaleringen.c.gemeentecode)
    base = (
        select(
            member.label("gemeente"),
            signaleringen.c.type.label("type"),
            groep.label("leeftijd"),
            signaleringen.c.bsn.label("bsn"),
        )
        .select_from(signaleringen.outerjoin(births, births.c.bsn == signaleringen.c.bsn))
        .where(
            signaleringen.c.gemeentecode.in_(list(codes)),
            signaleringen.c.created_at >= since,
            signaleringen.c.created_at < until,
        )
        .subquery()
    )
    result: list[Count] = []
    per_gemeente = select(
        base.c.gemeente,
        base.c.type,
        base.c.leeftijd,
        func.count(),
        func.count(distinct(base.c.bsn)),
    ).group_by(base.c.gemeente, base.c.type, base.c.leeftijd)
    for g, t, leeftijd, n, people in await session.execute(per_gemeente):
        result.append(Count(g, t, leeftijd, int(n), int(people)))
    total = select(
        base.c.type, base.c.leeftijd, func.count(), func.count(distinct(base.c.bsn))
    ).group_by(base.c.type, base.c.leeftijd)
    for t, leeftijd, n, people in await session.execute(total):
        result.append(Count(None, t, leeftijd, int(n), int(people)))
    return result
