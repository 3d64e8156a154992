"""Repository for /beheer sessions: hash-only storage, expiry, revocation, purge."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store import beheer_sessions as repo
from koppelpunt.store.tables import beheer_sessions

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def test_only_the_hash_is_stored(session: AsyncSession) -> None:
    sid = await repo.create(session, "beheer", "k" * 16, T0, HOUR)
    await session.commit()
    stored = await session.scalar(select(beheer_sessions.c.id_sha256))
    assert stored == hashlib.sha256(sid.encode()).hexdigest()
    found = await repo.find(session, sid, T0 + timedelta(minutes=59))
    assert found == repo.BeheerSessionRow("beheer", "k" * 16, T0, T0 + HOUR)


async def test_unknown_expired_and_revoked_sessions_are_not_found(session: AsyncSession) -> None:
    sid = await repo.create(session, "beheer", "k" * 16, T0, HOUR)
    await session.commit()
    assert await repo.find(session, sid + "x", T0) is None
    assert await repo.find(session, "", T0) is None
    assert await repo.find(session, "x" * 10_000, T0) is None
    assert await repo.find(session, sid, T0 + HOUR) is None
    assert await repo.revoke(session, sid, T0) is True
    assert await repo.revoke(session, sid, T0) is False  # already ended
    await session.commit()
    assert await repo.find(session, sid, T0) is None


async def test_expired_sessions_are_purged_at_the_next_login(session: AsyncSession) -> None:
    old = await repo.create(session, "beheer", "k" * 16, T0, HOUR)
    ended = await repo.create(session, "beheer", "k" * 16, T0, 2 * HOUR)
    await repo.revoke(session, ended, T0)
    await session.commit()
    live = await repo.create(session, "ander", "j" * 16, T0 + 2 * HOUR, HOUR)
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(beheer_sessions)) == 1
    assert await repo.find(session, old, T0) is None
    assert (await repo.find(session, live, T0 + 2 * HOUR)) is not None
