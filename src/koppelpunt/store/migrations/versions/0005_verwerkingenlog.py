"""The verwerkingenlog (Logius "Logboek dataverwerkingen"): append-only processing log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
# Re-chained at merge onto whatever revision precedes it on main.
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "verwerkingenlog",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("operation_id", sa.String(16), nullable=False),
        sa.Column("parent_operation_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status_code", sa.String(8), nullable=False),
        sa.Column("start_time", TIMESTAMP, nullable=False),
        sa.Column("end_time", TIMESTAMP, nullable=False),
        sa.Column("verwerkingsactiviteit", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("gemeentecode", sa.String(8), nullable=True),
        sa.Column("bsn_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("bsn_index", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(16), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verwerkingenlog"),
    )
    op.create_index("ix_verwerkingenlog_trace_id", "verwerkingenlog", ["trace_id"])
    op.create_index("ix_verwerkingenlog_end_time", "verwerkingenlog", ["end_time"])
    op.create_index("ix_verwerkingenlog_bsn_index", "verwerkingenlog", ["bsn_index"])


def downgrade() -> None:
    op.drop_table("verwerkingenlog")
