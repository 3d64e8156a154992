"""The schema as SQLAlchemy Core tables (Core, not ORM: rows are written in bulk on the hot path).

Migrations under `migrations/` create exactly this; `tests/store/test_migrations.py` checks that
the two do not drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from koppelpunt.store.types import BigIntId, UTCDateTime

# Stable constraint names, so later migrations can drop or alter them on both backends.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Every accepted message, stored before it is acknowledged; the unique bericht_id makes a
# re-delivery idempotent (the stored receipt is returned again).
berichten = Table(
    "berichten",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("bericht_id", String(64), nullable=False, unique=True),
    Column("soort", String(32), nullable=False),
    Column("sender", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("receipt", JSON, nullable=False),
    Column("trace_id", String(64), nullable=True),
)

# One row per record of an accepted message: the audit trail of the filter. The BSN is kept
# because pupil state and AVG inzage requests need it.
beslissingen = Table(
    "beslissingen",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("bericht_pk", BigIntId, ForeignKey("berichten.id"), nullable=False, index=True),
    Column("record_index", Integer, nullable=False),
    Column("uitkomst", String(16), nullable=False),
    Column("reden", String(64), nullable=True),
    Column("details", Text, nullable=True),
    Column("gemeentecode", String(8), nullable=True),
    Column("rules_version", String(64), nullable=False),
    Column("bsn", String(16), nullable=True, index=True),
)

# Every message refused as a whole, with what could be read of it, so a sender can be helped.
afwijzingen = Table(
    "afwijzingen",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False, index=True),
    Column("sender", String(128), nullable=True),
    Column("soort", String(32), nullable=True),
    Column("bericht_id", String(64), nullable=True),
    Column("status_code", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("raw", LargeBinary, nullable=True),
    Column("content_type", String(255), nullable=True),
)

signaleringen = Table(
    "signaleringen",
    metadata,
    # Deterministic from the source (pipeline/signalering.py): a re-derived signalering
    # collides here and is not published twice.
    Column("signalering_id", String(64), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("gemeentecode", String(8), nullable=False, index=True),
    Column("bsn", String(16), nullable=False, index=True),
    Column("topic", String(255), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Derived signaleringen (e.g. NIET_AANGEMELD on 1 April) have no source message.
    Column("bericht_pk", BigIntId, ForeignKey("berichten.id"), nullable=True, index=True),
)

# Transactional outbox: written in the same transaction as the signalering, published to Kafka
# by the relay in id order.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "signalering_id",
        String(64),
        ForeignKey("signaleringen.signalering_id"),
        nullable=False,
        unique=True,
    ),
    Column("topic", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Index("ix_outbox_pending", "published_at", "next_attempt_at"),
)

# The local woongemeente register (`koppelpunt brp import`): one row per BSN and start date.
woonregister = Table(
    "woonregister",
    metadata,
    Column("bsn", String(16), primary_key=True),
    # 0001-01-01 when the source gives no date: a primary key column cannot be NULL.
    Column("geldig_vanaf", Date, primary_key=True),
    Column("gemeentecode", String(4), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per replay (`koppelpunt replay`, POST /v1/beheer/replays): its parameters, its state
# and the outbox id of the last signalering re-published, so an interrupted replay resumes
# after that signalering instead of starting over.
replays = Table(
    "replays",
    metadata,
    Column("replay_id", String(36), primary_key=True),
    Column("gemeentecode", String(8), nullable=False, index=True),
    Column("since", UTCDateTime, nullable=True),
    Column("until", UTCDateTime, nullable=True),
    Column("type", String(32), nullable=True),
    Column("to_topic", String(255), nullable=True),
    Column("dry_run", Boolean, nullable=False),
    # running | done | failed | interrupted
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("published", Integer, nullable=False, server_default="0"),
    Column("last_outbox_id", BigIntId, nullable=True),
    Column("error", Text, nullable=True),
    Column("requested_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
