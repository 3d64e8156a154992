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
    UniqueConstraint,
    false,
    text,
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
    Column("received_at", UTCDateTime, nullable=False, index=True),
    Column("receipt", JSON, nullable=False),
    Column("trace_id", String(64), nullable=True),
    # Who sent it, for an audit: the OIN of the verified client certificate (None for a sender
    # known by its key only), and the request's transaction id (FSC, a UUID).
    Column("sender_oin", String(20), nullable=True),
    Column("transaction_id", String(36), nullable=True),
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
    Column("created_at", UTCDateTime, nullable=False, index=True),
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
    # The unpublished rows in id order (the relay's claim on PostgreSQL): without it the claim
    # walked the primary key through every published row first (migration 0007).
    Index(
        "ix_outbox_unpublished",
        "id",
        postgresql_where=text("published_at IS NULL"),
        sqlite_where=text("published_at IS NULL"),
    ),
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

# --- pupil state (migration 0002) ------------------------------------------------------------

# The latest prognose per leerling and schooljaar (a later `verzonden` replaces it).
leerling_prognoses = Table(
    "leerling_prognoses",
    metadata,
    Column("bsn", String(16), primary_key=True),
    Column("schooljaar", String(9), primary_key=True),
    Column("geboortedatum", Date, nullable=False),
    Column("hoogste_diploma", String(32), nullable=True),
    Column("brin", String(4), nullable=False),
    Column("vestiging", String(2), nullable=True),
    Column("onderwijssoort", String(32), nullable=False),
    Column("verzonden", UTCDateTime, nullable=False, index=True),
    Column("bericht_pk", BigIntId, ForeignKey("berichten.id"), nullable=True),
)

# One row per aanmelding (key: instelling BRIN + aanmeldingId) with the pupil's details as of
# its newest status; the current status is derived from aanmelding_statussen.
aanmeldingen = Table(
    "aanmeldingen",
    metadata,
    Column("instelling_brin", String(4), primary_key=True),
    Column("aanmelding_id", String(64), primary_key=True),
    Column("bsn", String(16), nullable=False, index=True),
    Column("geboortedatum", Date, nullable=False),
    Column("hoogste_diploma", String(32), nullable=True),
    Column("crebo", String(5), nullable=False),
    Column("niveau", Integer, nullable=False),
    Column("leerweg", String(8), nullable=False),
    Column("status", String(40), nullable=False),
    Column("statusdatum", Date, nullable=False),
    Column("eerste_statusdatum", Date, nullable=False),
    # Some transition in its history lies outside the legal flow (for operators).
    Column("buiten_flow", Boolean, nullable=False, server_default=false()),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
)

# The full status history: every distinct (status, statusdatum) received, in receipt order (id).
aanmelding_statussen = Table(
    "aanmelding_statussen",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("instelling_brin", String(4), nullable=False),
    Column("aanmelding_id", String(64), nullable=False),
    Column("status", String(40), nullable=False),
    Column("statusdatum", Date, nullable=False),
    Column("buiten_flow", Boolean, nullable=False, server_default=false()),
    Column("received_at", UTCDateTime, nullable=False),
    Column("bericht_pk", BigIntId, ForeignKey("berichten.id"), nullable=True),
    UniqueConstraint(
        "instelling_brin",
        "aanmelding_id",
        "status",
        "statusdatum",
        name="uq_aanmelding_statussen_feit",
    ),
)

# Per leerling the gemeente that received the latest signalering (to notice moves).
leerling_gemeenten = Table(
    "leerling_gemeenten",
    metadata,
    Column("bsn", String(16), primary_key=True),
    Column("gemeentecode", String(8), nullable=False),
    Column("peildatum", Date, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
)

# Peildatum checks that ran (not dry runs), so the in-service scheduler does not rerun them.
peildatum_runs = Table(
    "peildatum_runs",
    metadata,
    Column("peildatum", Date, primary_key=True),
    Column("ran_at", UTCDateTime, nullable=False),
    Column("counts", JSON, nullable=False),
)

# The verwerkingenlog (Logius "Logboek dataverwerkingen"): one line per processing step per
# person, append-only (store/verwerkingenlog.py has no update and deletes only past retention).
# The BSN (dpl.core.data_subject_id) is stored AES-GCM encrypted; `bsn_index` is a keyed HMAC
# of it (blind index) so a person's lines can be found without decrypting every row.
verwerkingenlog = Table(
    "verwerkingenlog",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False, index=True),
    Column("operation_id", String(16), nullable=False),
    Column("parent_operation_id", String(16), nullable=True),
    Column("name", String(64), nullable=False),
    Column("status_code", String(8), nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False, index=True),
    Column("verwerkingsactiviteit", String(64), nullable=False),
    Column("actor", String(128), nullable=True),
    Column("gemeentecode", String(8), nullable=True),
    Column("bsn_encrypted", LargeBinary, nullable=True),
    Column("bsn_index", String(64), nullable=True, index=True),
    Column("key_id", String(16), nullable=True),
    Column("attributes", JSON, nullable=False),
)

# Imported RvIG Tabel 33 files (`koppelpunt gemeenten import`): the newest row is the gemeente
# table in use; without any row the packaged data/rvig-tabel33-gemeenten.csv applies. The CSV
# is kept as imported, so the table is replaceable by a newer RvIG file without code changes.
gemeentetabellen = Table(
    "gemeentetabellen",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("imported_at", UTCDateTime, nullable=False),
    Column("source", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("aantal", Integer, nullable=False),
    Column("csv", Text, nullable=False),
)

# Imported RMC-regio tables (`koppelpunt rmc import`, 0011): the region CSV and the operator's
# override CSV as imported; the newest row is the region table in use.
rmc_tabellen = Table(
    "rmc_tabellen",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("imported_at", UTCDateTime, nullable=False),
    Column("source", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("csv", Text, nullable=False),
    Column("overrides_source", String(255), nullable=True),
    Column("overrides_csv", Text, nullable=True),
)

# Region grants (`koppelpunt access grant NAME --rmc-regio N`, 0011): per principal and region
# the gemeenten (comma-separated GMnnnn) whose topics were granted through the region, so
# `access sync` can grant new members and revoke those that left.
rmc_toegang = Table(
    "rmc_toegang",
    metadata,
    Column("naam", String(63), primary_key=True),
    Column("rmc_regio", Integer, primary_key=True),
    Column("gemeenten", Text, nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("actor", String(255), nullable=False),
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

# /beheer login sessions, kept server-side: the cookie holds a random id, this table only its
# SHA-256 (a copy of the database opens no session). A session ends at expires_at, at logout
# (revoked_at) or when its operator leaves the senders file or gets another key (checked per
# request).
beheer_sessions = Table(
    "beheer_sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("operator", String(128), nullable=False),
    # api.auth.key_id of the key the session was opened with: a rotated key ends it.
    Column("key_id", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# One row the readiness probe (/readyz) updates and commits now and then: proof that the
# database takes writes, not only answers reads (store/db.py, WriteProbe).
heartbeat = Table(
    "heartbeat",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("beat_at", UTCDateTime, nullable=False),
)
