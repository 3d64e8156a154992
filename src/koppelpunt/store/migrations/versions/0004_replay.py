"""Replays: parameters, state and resume position of each replay of a gemeente topic.

Revision ID: 0004
Revises: 0003_gemeenten
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003_gemeenten"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("replay_id", sa.String(36), nullable=False),
        sa.Column("gemeentecode", sa.String(8), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=True),
        sa.Column("until", TIMESTAMP, nullable=True),
        sa.Column("type", sa.String(32), nullable=True),
        sa.Column("to_topic", sa.String(255), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("published", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_outbox_id", BIGINT_ID, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("replay_id", name="pk_replays"),
    )
    op.create_index("ix_replays_gemeentecode", "replays", ["gemeentecode"])


def downgrade() -> None:
    op.drop_index("ix_replays_gemeentecode", table_name="replays")
    op.drop_table("replays")
