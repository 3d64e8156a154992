"""All configuration in one place: environment variables with prefix KOPPELPUNT_.

Built once (in the CLI) and passed into create_app(settings) and the other entry points; never
imported as a global, so tests can run several differently configured instances side by side.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOPPELPUNT_", extra="ignore")

    # --- storage -------------------------------------------------------------------------
    # SQLite is the embedded default so `make run` needs no server; PostgreSQL in production
    # (postgresql+asyncpg://user:pw@host/db). Every received message is stored here before it
    # is acknowledged.
    database_url: str = "sqlite+aiosqlite:///var/koppelpunt.db"

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    # One topic per gemeente: {topic_prefix}.{gm0363}.
    topic_prefix: str = "vva.signalering"
    # Partitions per gemeente topic for `koppelpunt topics ensure`; key = BSN keeps a pupil's
    # signaleringen in order within one partition.
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # Optional SASL/SCRAM credentials of the service's own principal.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_username: str | None = None
    kafka_password: str | None = None
    # Run the outbox relay inside the API process (default) or as `koppelpunt relay`.
    relay_enabled: bool = True
    # Idle poll interval of the relay; new signaleringen also wake it at once.
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    relay_batch_size: int = Field(default=500, ge=1)
    # PostgreSQL with several relays: the outbox is split into this many shards by a hash of
    # the BSN; a relay publishes a shard only while it holds the shard's advisory lock, so a
    # pupil's signaleringen stay in order. Use the same value on every replica.
    relay_shards: int = Field(default=16, ge=1)
    # Back-off for a signalering whose publication failed: min(base * 2^attempts, max).
    relay_backoff_base_seconds: float = Field(default=1.0, gt=0)
    relay_backoff_max_seconds: float = Field(default=300.0, gt=0)

    # --- HTTP ----------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Largest accepted body: 10,000 records of a few hundred bytes fit comfortably; more is
    # refused with 413 before it is read into memory.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    # --- senders, rules, reference data --------------------------------------------------
    # YAML with {name, role, key_sha256} per sender: hashes only, never keys.
    senders_file: Path = Path("senders.yaml")
    rules_dir: Path = PROJECT_ROOT / "routing_rules"
    gemeenten_file: Path = PROJECT_ROOT / "data" / "rvig-tabel33-gemeenten.csv"
    schemas_dir: Path = PROJECT_ROOT / "schemas"

    # --- logging -------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True
