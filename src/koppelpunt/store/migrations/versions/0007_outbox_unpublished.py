"""A partial index on the unpublished outbox rows, in id order, for the relay's claim.

On PostgreSQL the claim (oldest due rows, FOR UPDATE SKIP LOCKED) walked the primary key from
the first row, through every published one, before it found the pending ones: a cost that grew
with everything ever published. ix_outbox_pending (published_at, next_attempt_at) does not
give id order there; this index holds only the unpublished rows, in id order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPUBLISHED = sa.text("published_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        postgresql_where=UNPUBLISHED,
        sqlite_where=UNPUBLISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
