"""Imported RMC-regio tables (`koppelpunt rmc import`) with overrides; region access grants.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
# Re-chained after 0010 at merge.
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rmc_tabellen",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("imported_at", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("csv", sa.Text(), nullable=False),
        sa.Column("overrides_source", sa.String(255), nullable=True),
        sa.Column("overrides_csv", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rmc_tabellen"),
    )
    op.create_table(
        "rmc_toegang",
        sa.Column("naam", sa.String(63), nullable=False),
        sa.Column("rmc_regio", sa.Integer(), nullable=False),
        sa.Column("gemeenten", sa.Text(), nullable=False),
        sa.Column("granted_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("naam", "rmc_regio", name="pk_rmc_toegang"),
    )


def downgrade() -> None:
    op.drop_table("rmc_toegang")
    op.drop_table("rmc_tabellen")
