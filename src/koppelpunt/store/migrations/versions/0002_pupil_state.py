"""Pupil state: latest prognoses, aanmeldingen with status history, last gemeente, peildatum runs.

Revision ID: 0002
Revises: 0001_initial
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leerling_prognoses",
        sa.Column("bsn", sa.String(16), nullable=False),
        sa.Column("schooljaar", sa.String(9), nullable=False),
        sa.Column("geboortedatum", sa.Date(), nullable=False),
        sa.Column("hoogste_diploma", sa.String(32), nullable=True),
        sa.Column("brin", sa.String(4), nullable=False),
        sa.Column("vestiging", sa.String(2), nullable=True),
        sa.Column("onderwijssoort", sa.String(32), nullable=False),
        sa.Column("verzonden", TIMESTAMP, nullable=False),
        sa.Column("bericht_pk", BIGINT_ID, nullable=True),
        sa.PrimaryKeyConstraint("bsn", "schooljaar", name="pk_leerling_prognoses"),
        sa.ForeignKeyConstraint(
            ["bericht_pk"], ["berichten.id"], name="fk_leerling_prognoses_bericht_pk_berichten"
        ),
    )
    op.create_table(
        "aanmeldingen",
        sa.Column("instelling_brin", sa.String(4), nullable=False),
        sa.Column("aanmelding_id", sa.String(64), nullable=False),
        sa.Column("bsn", sa.String(16), nullable=False),
        sa.Column("geboortedatum", sa.Date(), nullable=False),
        sa.Column("hoogste_diploma", sa.String(32), nullable=True),
        sa.Column("crebo", sa.String(5), nullable=False),
        sa.Column("niveau", sa.Integer(), nullable=False),
        sa.Column("leerweg", sa.String(8), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("statusdatum", sa.Date(), nullable=False),
        sa.Column("eerste_statusdatum", sa.Date(), nullable=False),
        sa.Column("buiten_flow", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("instelling_brin", "aanmelding_id", name="pk_aanmeldingen"),
    )
    op.create_index("ix_aanmeldingen_bsn", "aanmeldingen", ["bsn"])
    op.create_table(
        "aanmelding_statussen",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("instelling_brin", sa.String(4), nullable=False),
        sa.Column("aanmelding_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("statusdatum", sa.Date(), nullable=False),
        sa.Column("buiten_flow", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("bericht_pk", BIGINT_ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_aanmelding_statussen"),
        sa.UniqueConstraint(
            "instelling_brin",
            "aanmelding_id",
            "status",
            "statusdatum",
            name="uq_aanmelding_statussen_feit",
        ),
        sa.ForeignKeyConstraint(
            ["bericht_pk"], ["berichten.id"], name="fk_aanmelding_statussen_bericht_pk_berichten"
        ),
    )
    op.create_table(
        "leerling_gemeenten",
        sa.Column("bsn", sa.String(16), nullable=False),
        sa.Column("gemeentecode", sa.String(8), nullable=False),
        sa.Column("peildatum", sa.Date(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("bsn", name="pk_leerling_gemeenten"),
    )
    op.create_table(
        "peildatum_runs",
        sa.Column("peildatum", sa.Date(), nullable=False),
        sa.Column("ran_at", TIMESTAMP, nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("peildatum", name="pk_peildatum_runs"),
    )


def downgrade() -> None:
    op.drop_table("peildatum_runs")
    op.drop_table("leerling_gemeenten")
    op.drop_table("aanmelding_statussen")
    op.drop_index("ix_aanmeldingen_bsn", table_name="aanmeldingen")
    op.drop_table("aanmeldingen")
    op.drop_table("leerling_prognoses")
