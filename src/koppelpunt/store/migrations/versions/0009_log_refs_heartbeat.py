"""Signalering references instead of ids in the verwerkingenlog; the readiness heartbeat.

1. A signalering id is a UUIDv5 over the BSN and a few public facts, so the id in a log line
   gave the BSN away to a search over the BSN space, without the log key. The log now keeps
   `signaleringRef`, an HMAC-SHA256 of the id (first 32 hex digits) under a subkey derived
   with HKDF-SHA256 (info "koppelpunt verwerkingenlog signalering ref") from the log key
   (store/verwerkingenlog.py LogCipher.signalering_ref, which this must equal: tested). This
   migration rewrites the lines written before: `signaleringId` becomes `signaleringRef`, and
   the `signaleringIds` of `beheer.outbox_retry` lines become `signaleringRefs`. The key is
   the service's own, read as the service reads it (KOPPELPUNT_LOG_ENCRYPTION_KEY; `serve` and
   `koppelpunt db upgrade` run this with the environment they run with; the public development
   key is refused unless KOPPELPUNT_DEVELOPMENT_MODE is set, and no key is needed when no line
   holds an id). In batches by id, in
   Python (the JSON functions differ between SQLite and PostgreSQL), so it works on both.
   Downgrade keeps the references: an HMAC cannot be turned back into an id.
2. `heartbeat`: one row that /readyz updates and commits now and then (store/db.py
   WriteProbe), so readiness says whether the database takes writes, not only whether it
   answers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

revision: str = "0009"
# Re-chained at merge onto whatever revision precedes it on main.
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
BATCH = 2000

_log = sa.table(
    "verwerkingenlog",
    sa.column("id", sa.BigInteger()),
    sa.column("attributes", sa.JSON()),
)


def upgrade() -> None:
    op.create_table(
        "heartbeat",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("beat_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeat")),
    )
    connection = op.get_bind()
    if _has_ids(connection):
        _replace_signalering_ids(connection, _ref_key())


def downgrade() -> None:
    op.drop_table("heartbeat")


def _has_ids(connection: sa.Connection) -> bool:
    """Some line holds an id (only such lines need the key; a new database has none)."""
    text = sa.cast(_log.c.attributes, sa.Text())
    return (
        connection.execute(
            sa.select(_log.c.id).where(text.like('%"signaleringId%')).limit(1)
        ).first()
        is not None
    )


def _ref_key() -> bytes:
    """The key of the references, from the service's log key. The public development key is
    refused as the service refuses it (unless KOPPELPUNT_DEVELOPMENT_MODE): references made
    with it are computable by anyone and cannot be made again with the real key later."""
    from koppelpunt.config import Settings

    settings = Settings()
    settings.refuse_public_log_key()
    master = base64.b64decode(settings.log_encryption_key.get_secret_value(), validate=True)
    if len(master) != 32:
        raise ValueError("KOPPELPUNT_LOG_ENCRYPTION_KEY must be 32 bytes (base64)")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"koppelpunt verwerkingenlog signalering ref",
    ).derive(master)


def _ref(key: bytes, signalering_id: Any) -> str:
    return hmac.digest(key, str(signalering_id).encode("utf-8"), "sha256").hex()[:32]


def _without_ids(key: bytes, attributes: Any) -> dict[str, Any] | None:
    """The attributes with references for ids; None when there is nothing to change."""
    if not isinstance(attributes, dict):
        return None
    if "signaleringId" not in attributes and "signaleringIds" not in attributes:
        return None
    changed = dict(attributes)
    if "signaleringId" in changed:
        changed["signaleringRef"] = _ref(key, changed.pop("signaleringId"))
    if "signaleringIds" in changed:
        ids = changed.pop("signaleringIds")
        changed["signaleringRefs"] = [_ref(key, i) for i in ids] if isinstance(ids, list) else []
    return changed


def _replace_signalering_ids(connection: sa.Connection, key: bytes) -> None:
    last = 0
    rewrite = (
        sa.update(_log)
        .where(_log.c.id == sa.bindparam("line_id"))
        .values(attributes=sa.bindparam("new_attributes", type_=sa.JSON()))
    )
    while True:
        rows = connection.execute(
            sa.select(_log.c.id, _log.c.attributes)
            .where(_log.c.id > last)
            .order_by(_log.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1].id
        changes = [
            {"line_id": row.id, "new_attributes": new}
            for row in rows
            if (new := _without_ids(key, row.attributes)) is not None
        ]
        if changes:
            connection.execute(rewrite, changes)
