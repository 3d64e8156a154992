"""Repository for received messages, their per-record decisions and refused messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.origin import Origin
from koppelpunt.pipeline.envelope import BeslissingRow
from koppelpunt.store._dialect import chunks
from koppelpunt.store.bulk import insert_rows
from koppelpunt.store.tables import afwijzingen, berichten, beslissingen


@dataclass(frozen=True, slots=True)
class StoredBericht:
    """A stored message without its raw bytes (a re-delivery only needs the receipt)."""

    pk: int
    bericht_id: str
    soort: str
    sender: str
    sha256: str
    receipt: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoredAfwijzing:
    """A refused message; `raw_size` instead of its bytes keeps lists small (get_afwijzing_raw)."""

    id: int
    received_at: datetime
    sender: str | None
    soort: str | None
    bericht_id: str | None
    status_code: int
    reasons: list[dict[str, Any]]
    content_type: str | None
    raw_size: int | None


_STORED_COLUMNS = (
    berichten.c.id,
    berichten.c.bericht_id,
    berichten.c.soort,
    berichten.c.sender,
    berichten.c.sha256,
    berichten.c.receipt,
    berichten.c.received_at,
)

# Built once: constructing a statement costs more than executing it (bench/ROUNDS.md, seventh
# round); the ids are an expanding parameter, rendered per execution.
_FIND_BERICHT = select(*_STORED_COLUMNS).where(berichten.c.bericht_id == bindparam("bericht_id"))
_FIND_BERICHTEN = select(*_STORED_COLUMNS).where(
    berichten.c.bericht_id.in_(bindparam("bericht_ids", expanding=True))
)
_INSERT_BERICHT = insert(berichten)


async def find_bericht(session: AsyncSession, bericht_id: str) -> StoredBericht | None:
    """The stored message with this bericht_id, to answer a re-delivery idempotently."""
    row = (await session.execute(_FIND_BERICHT, {"bericht_id": bericht_id})).one_or_none()
    return None if row is None else _stored(row)


async def find_berichten(
    session: AsyncSession, bericht_ids: Sequence[str]
) -> dict[str, StoredBericht]:
    """find_bericht for several ids in one query (a group commit): the ones stored, by id."""
    found: dict[str, StoredBericht] = {}
    for chunk in chunks(sorted(set(bericht_ids)), 500):
        for row in await session.execute(_FIND_BERICHTEN, {"bericht_ids": chunk}):
            found[row.bericht_id] = _stored(row)
    return found


def _stored(row: Any) -> StoredBericht:
    return StoredBericht(
        pk=row.id,
        bericht_id=row.bericht_id,
        soort=row.soort,
        sender=row.sender,
        sha256=row.sha256,
        receipt=row.receipt,
        received_at=row.received_at,
    )


async def add_bericht(
    session: AsyncSession,
    *,
    bericht_id: str,
    soort: str,
    sender: str,
    sha256: str,
    raw: bytes,
    received_at: datetime,
    receipt: dict[str, Any],
    trace_id: str | None = None,
    origin: Origin | None = None,
) -> int:
    """Store a message and return its pk.

    Raises IntegrityError when the bericht_id exists: two deliveries of one message can race,
    and only the database decides which one wins (the loser returns the winner's receipt).
    """
    # No explicit RETURNING: the dialect fetches the new pk its cheapest way (PostgreSQL adds
    # RETURNING itself; SQLite reads the cursor's lastrowid, saving a fetch round trip).
    result = await session.execute(
        _INSERT_BERICHT,
        {
            "bericht_id": bericht_id,
            "soort": soort,
            "sender": sender,
            "sha256": sha256,
            "raw": raw,
            "received_at": received_at,
            "receipt": receipt,
            "trace_id": trace_id,
            "sender_oin": origin.oin if origin else None,
            "transaction_id": origin.transaction_id if origin else None,
        },
    )
    assert isinstance(result, CursorResult)  # an INSERT's result
    inserted = result.inserted_primary_key
    assert inserted is not None and inserted[0] is not None
    pk = inserted[0]
    return int(pk)


@dataclass(frozen=True, slots=True)
class NewBericht:
    """A message to store in a group (add_berichten)."""

    bericht_id: str
    soort: str
    sender: str
    sha256: str
    raw: bytes
    received_at: datetime
    receipt: dict[str, Any]
    trace_id: str | None
    origin: Origin | None = None  # the sender's OIN and the request's transaction id


async def add_berichten(session: AsyncSession, items: Sequence[NewBericht]) -> list[int]:
    """add_bericht for several messages in one statement; their pks, in input order.

    Raises IntegrityError when any bericht_id exists (the group is then retried one by one).
    """
    if len(items) == 1:  # the single INSERT reads the pk from the cursor: no fetch
        item = items[0]
        pk = await add_bericht(
            session,
            bericht_id=item.bericht_id,
            soort=item.soort,
            sender=item.sender,
            sha256=item.sha256,
            raw=item.raw,
            received_at=item.received_at,
            receipt=item.receipt,
            trace_id=item.trace_id,
            origin=item.origin,
        )
        return [pk]
    if not items:
        return []
    # One executemany, then the pks by berichtId: two statements for the whole group (an
    # INSERT … RETURNING in parameter order is one statement per row on SQLite).
    await insert_rows(
        session,
        berichten,
        (
            "bericht_id",
            "soort",
            "sender",
            "sha256",
            "raw",
            "received_at",
            "receipt",
            "trace_id",
            "sender_oin",
            "transaction_id",
        ),
        [
            (
                item.bericht_id,
                item.soort,
                item.sender,
                item.sha256,
                item.raw,
                item.received_at,
                item.receipt,
                item.trace_id,
                item.origin.oin if item.origin else None,
                item.origin.transaction_id if item.origin else None,
            )
            for item in items
        ],
    )
    pks: dict[str, int] = {}
    for chunk in chunks([item.bericht_id for item in items], 500):
        for bericht_id, pk in await session.execute(
            select(berichten.c.bericht_id, berichten.c.id).where(berichten.c.bericht_id.in_(chunk))
        ):
            pks[bericht_id] = int(pk)
    return [pks[item.bericht_id] for item in items]


async def add_beslissingen(
    session: AsyncSession, bericht_pk: int, rows: Sequence[BeslissingRow]
) -> None:
    """Store the decision per record in one executemany (10,000 records per message)."""
    await add_beslissingen_of(session, [(bericht_pk, rows)])


async def add_beslissingen_of(
    session: AsyncSession, per_bericht: Sequence[tuple[int, Sequence[BeslissingRow]]]
) -> None:
    """The decisions of several messages (a group commit) in one executemany, in order."""
    await insert_rows(
        session,
        beslissingen,
        _BESLISSING_COLUMNS,
        [
            (
                bericht_pk,
                row.record_index,
                row.uitkomst,
                row.reden,
                row.details,
                row.gemeentecode,
                row.rules_version,
                row.bsn,
            )
            for bericht_pk, rows in per_bericht
            for row in rows
        ],
    )


_BESLISSING_COLUMNS = (
    "bericht_pk",
    "record_index",
    "uitkomst",
    "reden",
    "details",
    "gemeentecode",
    "rules_version",
    "bsn",
)


async def list_beslissingen(session: AsyncSession, bericht_pk: int) -> list[BeslissingRow]:
    """The decisions of one message in record order (receipts, inspection, tests)."""
    result = await session.execute(
        select(
            beslissingen.c.record_index,
            beslissingen.c.uitkomst,
            beslissingen.c.reden,
            beslissingen.c.details,
            beslissingen.c.gemeentecode,
            beslissingen.c.rules_version,
            beslissingen.c.bsn,
        )
        .where(beslissingen.c.bericht_pk == bericht_pk)
        .order_by(beslissingen.c.record_index, beslissingen.c.id)
    )
    return [BeslissingRow(**row._mapping) for row in result]


async def add_afwijzing(
    session: AsyncSession,
    *,
    received_at: datetime,
    sender: str | None,
    soort: str | None,
    bericht_id: str | None,
    status_code: int,
    reasons: list[dict[str, Any]],
    raw: bytes | None,
    content_type: str | None,
) -> int:
    """Record a message refused as a whole, so operators can help the sender; returns its id."""
    pk = await session.scalar(
        insert(afwijzingen)
        .values(
            received_at=received_at,
            sender=sender,
            soort=soort,
            bericht_id=bericht_id,
            status_code=status_code,
            reasons=reasons,
            raw=raw,
            content_type=content_type,
        )
        .returning(afwijzingen.c.id)
    )
    assert pk is not None
    return int(pk)


_AFWIJZING_COLUMNS = (
    afwijzingen.c.id,
    afwijzingen.c.received_at,
    afwijzingen.c.sender,
    afwijzingen.c.soort,
    afwijzingen.c.bericht_id,
    afwijzingen.c.status_code,
    afwijzingen.c.reasons,
    afwijzingen.c.content_type,
    func.length(afwijzingen.c.raw).label("raw_size"),
)


async def list_afwijzingen(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    sender: str | None = None,
    limit: int = 100,
) -> list[StoredAfwijzing]:
    """Refused messages, newest first, optionally from `since` on and for one sender."""
    query = select(*_AFWIJZING_COLUMNS)
    if since is not None:
        query = query.where(afwijzingen.c.received_at >= since)
    if sender is not None:
        query = query.where(afwijzingen.c.sender == sender)
    query = query.order_by(afwijzingen.c.received_at.desc(), afwijzingen.c.id.desc()).limit(limit)
    return [StoredAfwijzing(**row._mapping) for row in await session.execute(query)]


async def get_afwijzing(session: AsyncSession, afwijzing_id: int) -> StoredAfwijzing | None:
    """One refused message by id, without its raw bytes."""
    row = (
        await session.execute(select(*_AFWIJZING_COLUMNS).where(afwijzingen.c.id == afwijzing_id))
    ).one_or_none()
    return None if row is None else StoredAfwijzing(**row._mapping)


async def get_afwijzing_raw(session: AsyncSession, afwijzing_id: int) -> bytes | None:
    """The raw body of a refused message (None when unknown or not kept)."""
    raw = await session.scalar(select(afwijzingen.c.raw).where(afwijzingen.c.id == afwijzing_id))
    return None if raw is None else bytes(raw)
