"""Who sent a message: the sender's OIN and the request's transaction id on `berichten`.

The OIN comes from the sender's verified client certificate (two-way TLS; NULL for a sender
known by its bearer key only), the transaction id from `Fsc-Transaction-Id` or a new UUIDv7.
Both are nullable: rows stored before have neither.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
# Re-chained at merge onto whatever revision precedes it on main.
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("berichten") as batch:
        batch.add_column(sa.Column("sender_oin", sa.String(20), nullable=True))
        batch.add_column(sa.Column("transaction_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("berichten") as batch:
        batch.drop_column("transaction_id")
        batch.drop_column("sender_oin")
