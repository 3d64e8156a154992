"""Server-side /beheer sessions: the SHA-256 of each session id, its operator, the key it was
opened with, and its term.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "beheer_sessions",
        sa.Column("id_sha256", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id_sha256", name="pk_beheer_sessions"),
    )
    op.create_index("ix_beheer_sessions_expires_at", "beheer_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_beheer_sessions_expires_at", table_name="beheer_sessions")
    op.drop_table("beheer_sessions")
