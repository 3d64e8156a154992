"""Repository for the local woongemeente register (filled by `koppelpunt brp import`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store._dialect import chunks, dialect_name
from koppelpunt.store.tables import woonregister

# A primary key column cannot be NULL: "valid since always" when the source has no date.
SINCE_ALWAYS = date(1, 1, 1)

# Rows per executemany call: bounds the memory of one call on a 100k-row import.
UPSERT_BATCH = 5000
# BSNs per IN list: keeps each lookup query small and its plan cacheable.
LOOKUP_BATCH = 500


async def upsert_woonregister(
    session: AsyncSession, rows: Sequence[tuple[str, str, date | None]]
) -> int:
    """Insert or overwrite (bsn, gemeentecode, geldig_vanaf) rows; returns how many were written.

    A later row for the same bsn and geldig_vanaf wins, so re-importing a corrected file works.
    """
    latest: dict[tuple[str, date], str] = {}
    for bsn, gemeentecode, geldig_vanaf in rows:
        if len(gemeentecode) != 4 or not gemeentecode.isdigit():
            raise ValueError(f"gemeentecode must be 4 digits (BRP code), got {gemeentecode!r}")
        latest[(bsn, geldig_vanaf or SINCE_ALWAYS)] = gemeentecode
    now = datetime.now(UTC)
    values = [
        {"bsn": bsn, "geldig_vanaf": vanaf, "gemeentecode": code, "updated_at": now}
        for (bsn, vanaf), code in latest.items()
    ]
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    statement = insert(woonregister)
    statement = statement.on_conflict_do_update(
        index_elements=[woonregister.c.bsn, woonregister.c.geldig_vanaf],
        set_={
            "gemeentecode": statement.excluded.gemeentecode,
            "updated_at": statement.excluded.updated_at,
        },
    )
    # executemany of one compiled statement: the drivers loop in C (sqlite3) or pipeline
    # (asyncpg); batches bound the memory of each call.
    for chunk in chunks(values, UPSERT_BATCH):
        await session.execute(statement, list(chunk))
    return len(values)


# Built once (constructing a statement costs more than executing it); the BSNs are expanding.
_FIND_WOONREGISTER = (
    select(woonregister.c.bsn, woonregister.c.geldig_vanaf, woonregister.c.gemeentecode)
    .where(woonregister.c.bsn.in_(bindparam("bsns", expanding=True)))
    .order_by(woonregister.c.bsn, woonregister.c.geldig_vanaf)
)


async def find_woonregister(
    session: AsyncSession, bsns: Collection[str]
) -> dict[str, list[tuple[date, str]]]:
    """All (geldig_vanaf, gemeentecode) rows per BSN, oldest first; unknown BSNs are absent."""
    found: dict[str, list[tuple[date, str]]] = defaultdict(list)
    for chunk in chunks(sorted(set(bsns)), LOOKUP_BATCH):
        result = await session.execute(_FIND_WOONREGISTER, {"bsns": chunk})
        for row in result:
            found[row.bsn].append((row.geldig_vanaf, row.gemeentecode))
    return dict(found)
