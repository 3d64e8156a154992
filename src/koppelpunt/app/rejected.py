"""Rejected messages and records, as operators see them (CLI and /v1/beheer/afwijzingen).

Two kinds, one list: a message refused as a whole (400/409/413/415…, table afwijzingen, id
`12`) and a record rejected on content inside an accepted message (beslissingen with uitkomst
afgewezen, id `R34`). Both carry time, sender and reasons; raw bytes are the refused body, or
for a record the message it came in.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from koppelpunt.errors import NotFoundError
from koppelpunt.runtime import Runtime
from koppelpunt.store import berichten, rejected
from koppelpunt.store.berichten import StoredAfwijzing
from koppelpunt.store.rejected import RejectedRecord

RECORD_PREFIX = "R"


@dataclass(frozen=True, slots=True)
class Rejection:
    id: str  # "12" (a message) or "R34" (a record)
    kind: str  # bericht | record
    received_at: datetime
    sender: str | None
    soort: str | None
    bericht_id: str | None
    status_code: int | None
    reasons: list[dict[str, Any]]
    record_index: int | None
    content_type: str | None
    raw_size: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "soort": self.kind,
            "ontvangen": self.received_at.isoformat(),
            "afzender": self.sender,
            "berichtsoort": self.soort,
            "berichtId": self.bericht_id,
            "status": self.status_code,
            "redenen": self.reasons,
            "recordIndex": self.record_index,
            "contentType": self.content_type,
            "grootte": self.raw_size,
        }


def _from_afwijzing(a: StoredAfwijzing) -> Rejection:
    return Rejection(
        id=str(a.id),
        kind="bericht",
        received_at=a.received_at,
        sender=a.sender,
        soort=a.soort,
        bericht_id=a.bericht_id,
        status_code=a.status_code,
        reasons=a.reasons,
        record_index=None,
        content_type=a.content_type,
        raw_size=a.raw_size,
    )


def _from_record(r: RejectedRecord) -> Rejection:
    reason: dict[str, Any] = {"reden": r.details or r.reden}
    if r.reden and r.details:
        reason["code"] = r.reden
    return Rejection(
        id=f"{RECORD_PREFIX}{r.id}",
        kind="record",
        received_at=r.received_at,
        sender=r.sender,
        soort=r.soort,
        bericht_id=r.bericht_id,
        status_code=None,
        reasons=[reason],
        record_index=r.record_index,
        content_type=None,
        raw_size=None,
    )


async def list_rejections(
    runtime: Runtime,
    *,
    since: datetime | None = None,
    sender: str | None = None,
    limit: int = 100,
) -> list[Rejection]:
    """Newest first; at most `limit` of each kind."""
    async with runtime.sessions() as session:
        messages = await berichten.list_afwijzingen(
            session, since=since, sender=sender, limit=limit
        )
        records = await rejected.list_rejected_records(
            session, since=since, sender=sender, limit=limit
        )
    found = [_from_afwijzing(a) for a in messages] + [_from_record(r) for r in records]
    return sorted(found, key=lambda r: r.received_at, reverse=True)


_MAX_ID = 2**63 - 1  # the largest BIGINT (PostgreSQL) and INTEGER (SQLite)


def _parse_id(rejection_id: str) -> tuple[str, int]:
    text = rejection_id.strip()
    kind = "bericht"
    if text[:1].upper() == RECORD_PREFIX:
        kind, text = "record", text[1:]
    # ASCII digits only (str.isdigit also takes "²" and "٣"), and within the 64-bit keys of
    # the tables: a larger number cannot be an id, and the database drivers refuse it.
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > _MAX_ID:
        raise NotFoundError(f"geen afwijzing met id {rejection_id} (verwacht 12 of R34)")
    return kind, int(text)


async def get_rejection(runtime: Runtime, rejection_id: str) -> tuple[Rejection, bytes | None]:
    """One rejection with its raw bytes (NotFoundError when unknown)."""
    kind, number = _parse_id(rejection_id)
    async with runtime.sessions() as session:
        if kind == "bericht":
            found = await berichten.get_afwijzing(session, number)
            if found is not None:
                return _from_afwijzing(found), await berichten.get_afwijzing_raw(session, number)
        else:
            record = await rejected.get_rejected_record(session, number)
            if record is not None:
                raw = await rejected.get_bericht_raw_for_record(session, number)
                return _from_record(record), raw
    raise NotFoundError(f"geen afwijzing met id {rejection_id}")


async def export_rejections(
    runtime: Runtime, *, since: datetime | None = None, sender: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every rejection (no limit) as JSON objects with the raw bytes in base64 (`raw`)."""
    page = 10_000
    for rejection in await list_rejections(runtime, since=since, sender=sender, limit=page * 100):
        _, raw = await get_rejection(runtime, rejection.id)
        yield {
            **rejection.as_json(),
            "raw": base64.b64encode(raw).decode("ascii") if raw is not None else None,
        }
