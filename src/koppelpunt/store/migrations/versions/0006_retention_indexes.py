"""Indexes on the columns the retention purge selects on, so a purge batch does not scan.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): the timestamp each retention rule compares with its cutoff
# (app/retention.py). afwijzingen.received_at and verwerkingenlog.end_time had one.
INDEXED = (
    ("berichten", "received_at"),
    ("signaleringen", "created_at"),
    ("leerling_prognoses", "verzonden"),
    ("aanmeldingen", "updated_at"),
    ("leerling_gemeenten", "updated_at"),
)


def upgrade() -> None:
    for table, column in INDEXED:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in reversed(INDEXED):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
