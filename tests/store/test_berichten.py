"""Repository for messages, decisions and refused messages."""

from __future__ import annotations

import time
from datetime import UTC, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koppelpunt.store.berichten import (
    BeslissingRow,
    add_afwijzing,
    add_beslissingen,
    find_bericht,
    get_afwijzing,
    get_afwijzing_raw,
    list_afwijzingen,
    list_beslissingen,
)
from koppelpunt.store.db import session_factory

from .helpers import T0, add_test_bericht


class TestBerichten:
    async def test_add_and_find(self, session: AsyncSession) -> None:
        """A stored message is found by bericht_id with its receipt and an aware UTC time."""
        pk = await add_test_bericht(
            session, "B-1", received_at=T0.astimezone(timezone(timedelta(hours=2)))
        )
        await session.commit()
        found = await find_bericht(session, "B-1")
        assert found is not None
        assert found.pk == pk
        assert (found.soort, found.sender, found.sha256) == (
            "aanmeldstatus",
            "mbo-koppelpunt",
            "0" * 64,
        )
        assert found.receipt == {"berichtId": "B-1", "status": "ontvangen"}
        assert found.received_at == T0
        assert found.received_at.tzinfo == UTC

    async def test_find_unknown(self, session: AsyncSession) -> None:
        """An unknown bericht_id gives None."""
        assert await find_bericht(session, "nope") is None

    async def test_duplicate_raises(self, engine: AsyncEngine) -> None:
        """Storing a bericht_id twice raises IntegrityError (callers resolve the race)."""
        factory = session_factory(engine)
        async with factory() as session:
            await add_test_bericht(session, "B-1")
            await session.commit()
        async with factory() as session:
            with pytest.raises(IntegrityError):
                await add_test_bericht(session, "B-1")


class TestBeslissingen:
    async def test_ten_thousand_rows_fast(self, session: AsyncSession) -> None:
        """10,000 decisions of one message are stored in one go, quickly, in record order."""
        pk = await add_test_bericht(session, "B-1")
        rows = [
            BeslissingRow(
                record_index=i,
                uitkomst="doorgestuurd" if i % 2 else "gefilterd",
                reden=None if i % 2 else "leeftijd",
                details=None if i % 2 else "23 jaar op 2024-03-01",
                gemeentecode="GM0363" if i % 2 else None,
                rules_version="2024.1",
                bsn=f"{i:09d}",
            )
            for i in range(10_000)
        ]
        started = time.perf_counter()
        await add_beslissingen(session, pk, rows)
        await session.commit()
        elapsed = time.perf_counter() - started
        assert await list_beslissingen(session, pk) == rows
        assert elapsed < 5, f"10,000 decisions took {elapsed:.2f}s"

    async def test_no_rows(self, session: AsyncSession) -> None:
        """An empty list stores nothing and does not fail."""
        pk = await add_test_bericht(session, "B-1")
        await add_beslissingen(session, pk, [])
        assert await list_beslissingen(session, pk) == []


class TestAfwijzingen:
    async def _add(self, session: AsyncSession, minutes: int, sender: str | None) -> int:
        return await add_afwijzing(
            session,
            received_at=T0 + timedelta(minutes=minutes),
            sender=sender,
            soort=None,
            bericht_id=None,
            status_code=422,
            reasons=[{"reason": "not well-formed", "line": 1}],
            raw=b"<x" if sender else None,
            content_type="application/xml",
        )

    async def test_list_newest_first_with_filters(self, session: AsyncSession) -> None:
        """Listing gives newest first and honours since, sender and limit."""
        ids = [await self._add(session, m, s) for m, s in [(0, "vo"), (1, "mbo"), (2, "vo")]]
        await session.commit()
        assert [a.id for a in await list_afwijzingen(session)] == ids[::-1]
        assert [a.id for a in await list_afwijzingen(session, sender="vo")] == [ids[2], ids[0]]
        since = T0 + timedelta(minutes=1)
        assert [a.id for a in await list_afwijzingen(session, since=since)] == [ids[2], ids[1]]
        assert [a.id for a in await list_afwijzingen(session, limit=1)] == [ids[2]]

    async def test_get_with_raw(self, session: AsyncSession) -> None:
        """One refused message comes back with reasons, aware time and raw size; raw apart."""
        pk = await self._add(session, 0, "vo")
        none_pk = await self._add(session, 1, None)
        await session.commit()
        found = await get_afwijzing(session, pk)
        assert found is not None
        assert found.reasons == [{"reason": "not well-formed", "line": 1}]
        assert found.received_at == T0 and found.received_at.tzinfo == UTC
        assert (found.status_code, found.raw_size) == (422, 2)
        assert await get_afwijzing_raw(session, pk) == b"<x"
        assert await get_afwijzing_raw(session, none_pk) is None
        assert await get_afwijzing(session, 999) is None
