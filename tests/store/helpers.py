"""Builders shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.berichten import add_bericht
from koppelpunt.store.outbox import NewSignalering

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


async def add_test_bericht(
    session: AsyncSession, bericht_id: str, *, received_at: datetime = T0
) -> int:
    return await add_bericht(
        session,
        bericht_id=bericht_id,
        soort="aanmeldstatus",
        sender="mbo-koppelpunt",
        sha256="0" * 64,
        raw=b"<bericht/>",
        received_at=received_at,
        receipt={"berichtId": bericht_id, "status": "ontvangen"},
    )


def signalering(
    signalering_id: str, *, bericht_pk: int | None = None, minutes: int = 0
) -> NewSignalering:
    return NewSignalering(
        signalering_id=signalering_id,
        type="AANMELDSTATUS",
        gemeentecode="GM0363",
        bsn="999993653",
        topic="vva.signalering.gm0363",
        payload=f"<signalering id='{signalering_id}'/>".encode(),
        headers=[("type", "AANMELDSTATUS"), ("signaleringId", signalering_id)],
        created_at=T0 + timedelta(minutes=minutes),
        bericht_pk=bericht_pk,
    )
