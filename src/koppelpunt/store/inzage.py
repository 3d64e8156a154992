"""Queries of an AVG art. 15 inzage: every row stored about one BSN (app/inzage.py).

Each function reads one kind of row for one person, in the caller's transaction, ordered as
the inzage lists them. The rows are returned as they come (attribute access by column name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.tables import (
    aanmelding_statussen,
    aanmeldingen,
    berichten,
    beslissingen,
    leerling_gemeenten,
    leerling_prognoses,
    outbox,
    signaleringen,
    woonregister,
)

# A row of any shape: each query selects its own columns.
AnyRow = Row[*tuple[Any, ...]]


async def beslissingen_of(session: AsyncSession, bsn: str) -> Sequence[AnyRow]:
    """The decisions on the records that carried `bsn`, with the message they came in."""
    result = await session.execute(
        select(
            berichten.c.bericht_id,
            berichten.c.soort,
            berichten.c.sender,
            berichten.c.received_at,
            beslissingen.c.record_index,
            beslissingen.c.uitkomst,
            beslissingen.c.reden,
            beslissingen.c.gemeentecode,
        )
        .join(berichten, berichten.c.id == beslissingen.c.bericht_pk)
        .where(beslissingen.c.bsn == bsn)
        .order_by(berichten.c.received_at, beslissingen.c.id)
    )
    return result.all()


async def signaleringen_of(session: AsyncSession, bsn: str) -> Sequence[AnyRow]:
    """The signaleringen about `bsn` and when each was published (None: not yet)."""
    result = await session.execute(
        select(
            signaleringen.c.signalering_id,
            signaleringen.c.type,
            signaleringen.c.gemeentecode,
            signaleringen.c.topic,
            signaleringen.c.created_at,
            outbox.c.published_at,
        )
        .outerjoin(outbox, outbox.c.signalering_id == signaleringen.c.signalering_id)
        .where(signaleringen.c.bsn == bsn)
        .order_by(signaleringen.c.created_at, signaleringen.c.signalering_id)
    )
    return result.all()


async def woonregister_of(session: AsyncSession, bsn: str) -> Sequence[AnyRow]:
    """The local woonregister rows of `bsn`, oldest first."""
    result = await session.execute(
        select(woonregister).where(woonregister.c.bsn == bsn).order_by(woonregister.c.geldig_vanaf)
    )
    return result.all()


async def prognoses_of(session: AsyncSession, bsn: str) -> Sequence[AnyRow]:
    """The pupil's prognoses per schooljaar, with the bericht_id they came in."""
    result = await session.execute(
        select(leerling_prognoses, berichten.c.bericht_id)
        .outerjoin(berichten, berichten.c.id == leerling_prognoses.c.bericht_pk)
        .where(leerling_prognoses.c.bsn == bsn)
        .order_by(leerling_prognoses.c.schooljaar)
    )
    return result.all()


async def aanmeldingen_of(session: AsyncSession, bsn: str) -> Sequence[AnyRow]:
    """The pupil's aanmeldingen (their current state)."""
    result = await session.execute(
        select(aanmeldingen)
        .where(aanmeldingen.c.bsn == bsn)
        .order_by(aanmeldingen.c.instelling_brin, aanmeldingen.c.aanmelding_id)
    )
    return result.all()


async def status_history_of(session: AsyncSession, bsn: str) -> Sequence[AnyRow]:
    """Every status of the pupil's aanmeldingen, in the order they were stored."""
    result = await session.execute(
        select(aanmelding_statussen, berichten.c.bericht_id)
        .outerjoin(berichten, berichten.c.id == aanmelding_statussen.c.bericht_pk)
        .join(
            aanmeldingen,
            (aanmeldingen.c.instelling_brin == aanmelding_statussen.c.instelling_brin)
            & (aanmeldingen.c.aanmelding_id == aanmelding_statussen.c.aanmelding_id),
        )
        .where(aanmeldingen.c.bsn == bsn)
        .order_by(aanmelding_statussen.c.id)
    )
    return result.all()


async def leerling_gemeente_of(session: AsyncSession, bsn: str) -> AnyRow | None:
    """The gemeente last signalled about the pupil, if any."""
    result = await session.execute(
        select(leerling_gemeenten).where(leerling_gemeenten.c.bsn == bsn)
    )
    return result.first()
