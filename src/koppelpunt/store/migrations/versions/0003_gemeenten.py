"""Imported RvIG Tabel 33 gemeente tables (`koppelpunt gemeenten import`).

Revision ID: 0003_gemeenten
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_gemeenten"
# Re-chained after 0002 at merge.
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gemeentetabellen",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("imported_at", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("aantal", sa.Integer(), nullable=False),
        sa.Column("csv", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gemeentetabellen"),
    )


def downgrade() -> None:
    op.drop_table("gemeentetabellen")
