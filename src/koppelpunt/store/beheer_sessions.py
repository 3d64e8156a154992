"""Repository for /beheer login sessions (table beheer_sessions).

The browser holds a random session id (secrets.token_urlsafe(32): 256 bits), in a cookie that
api/beheer_signing.py signs; the database holds only its SHA-256, so reading the table (or a
backup of it) opens no session. A session is valid while it is not revoked and not expired;
whether its operator still exists with the same key is the caller's check (the senders file is
not in the database). Expired rows are deleted at each login.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.tables import beheer_sessions

# Longer than any id we hand out; anything longer is refused before hashing.
MAX_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class BeheerSessionRow:
    operator: str
    key_id: str
    created_at: datetime
    expires_at: datetime


def digest(session_id: str) -> str:
    """What the table keeps of a session id (its SHA-256, hex); the /beheer forms' CSRF tokens
    are bound to it (api/beheer_signing.py)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


async def create(
    session: AsyncSession, operator: str, key_id: str, now: datetime, lifetime: timedelta
) -> str:
    """A new session for `operator`, opened with the key `key_id`: returns its id (for the
    cookie; only its hash is stored)."""
    await purge_expired(session, now)
    session_id = secrets.token_urlsafe(32)
    await session.execute(
        insert(beheer_sessions).values(
            id_sha256=digest(session_id),
            operator=operator,
            key_id=key_id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return session_id


async def find(session: AsyncSession, session_id: str, now: datetime) -> BeheerSessionRow | None:
    """The session with this id when it is neither revoked nor expired."""
    if not session_id or len(session_id) > MAX_ID_CHARS:
        return None
    row = (
        await session.execute(
            select(
                beheer_sessions.c.operator,
                beheer_sessions.c.key_id,
                beheer_sessions.c.created_at,
                beheer_sessions.c.expires_at,
            ).where(
                beheer_sessions.c.id_sha256 == digest(session_id),
                beheer_sessions.c.revoked_at.is_(None),
                beheer_sessions.c.expires_at > now,
            )
        )
    ).first()
    return (
        None
        if row is None
        else BeheerSessionRow(row.operator, row.key_id, row.created_at, row.expires_at)
    )


async def revoke(session: AsyncSession, session_id: str, now: datetime) -> bool:
    """End the session (logout); True when there was a live one."""
    if not session_id or len(session_id) > MAX_ID_CHARS:
        return False
    result = await session.execute(
        update(beheer_sessions)
        .where(
            beheer_sessions.c.id_sha256 == digest(session_id),
            beheer_sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    """Delete expired sessions (revoked ones too, once their term has passed)."""
    result = await session.execute(
        delete(beheer_sessions).where(beheer_sessions.c.expires_at <= now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
