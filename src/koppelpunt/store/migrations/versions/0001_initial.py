"""Initial schema: berichten, beslissingen, afwijzingen, signaleringen, outbox, woonregister.

Written out by hand instead of importing tables.py, so this revision keeps describing the
schema as it was even after tables.py moves on.

Revision ID: 0001_initial
Revises:
Create Date: 2024-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "berichten",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("bericht_id", sa.String(64), nullable=False),
        sa.Column("soort", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_berichten"),
        sa.UniqueConstraint("bericht_id", name="uq_berichten_bericht_id"),
    )
    op.create_table(
        "beslissingen",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("bericht_pk", BIGINT_ID, nullable=False),
        sa.Column("record_index", sa.Integer(), nullable=False),
        sa.Column("uitkomst", sa.String(16), nullable=False),
        sa.Column("reden", sa.String(64), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("gemeentecode", sa.String(8), nullable=True),
        sa.Column("rules_version", sa.String(64), nullable=False),
        sa.Column("bsn", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_beslissingen"),
        sa.ForeignKeyConstraint(
            ["bericht_pk"], ["berichten.id"], name="fk_beslissingen_bericht_pk_berichten"
        ),
    )
    op.create_index("ix_beslissingen_bericht_pk", "beslissingen", ["bericht_pk"])
    op.create_index("ix_beslissingen_bsn", "beslissingen", ["bsn"])
    op.create_table(
        "afwijzingen",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("sender", sa.String(128), nullable=True),
        sa.Column("soort", sa.String(32), nullable=True),
        sa.Column("bericht_id", sa.String(64), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_afwijzingen"),
    )
    op.create_index("ix_afwijzingen_received_at", "afwijzingen", ["received_at"])
    op.create_table(
        "signaleringen",
        sa.Column("signalering_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("gemeentecode", sa.String(8), nullable=False),
        sa.Column("bsn", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("bericht_pk", BIGINT_ID, nullable=True),
        sa.PrimaryKeyConstraint("signalering_id", name="pk_signaleringen"),
        sa.ForeignKeyConstraint(
            ["bericht_pk"], ["berichten.id"], name="fk_signaleringen_bericht_pk_berichten"
        ),
    )
    op.create_index("ix_signaleringen_gemeentecode", "signaleringen", ["gemeentecode"])
    op.create_index("ix_signaleringen_bsn", "signaleringen", ["bsn"])
    op.create_index("ix_signaleringen_bericht_pk", "signaleringen", ["bericht_pk"])
    op.create_table(
        "outbox",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("signalering_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("signalering_id", name="uq_outbox_signalering_id"),
        sa.ForeignKeyConstraint(
            ["signalering_id"],
            ["signaleringen.signalering_id"],
            name="fk_outbox_signalering_id_signaleringen",
        ),
    )
    op.create_index("ix_outbox_pending", "outbox", ["published_at", "next_attempt_at"])
    op.create_table(
        "woonregister",
        sa.Column("bsn", sa.String(16), nullable=False),
        sa.Column("geldig_vanaf", sa.Date(), nullable=False),
        sa.Column("gemeentecode", sa.String(4), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("bsn", "geldig_vanaf", name="pk_woonregister"),
    )


def downgrade() -> None:
    op.drop_table("woonregister")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    for column in ("bericht_pk", "bsn", "gemeentecode"):
        op.drop_index(f"ix_signaleringen_{column}", table_name="signaleringen")
    op.drop_table("signaleringen")
    op.drop_index("ix_afwijzingen_received_at", table_name="afwijzingen")
    op.drop_table("afwijzingen")
    op.drop_index("ix_beslissingen_bsn", table_name="beslissingen")
    op.drop_index("ix_beslissingen_bericht_pk", table_name="beslissingen")
    op.drop_table("beslissingen")
    op.drop_table("berichten")
