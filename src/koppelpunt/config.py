"""All configuration in one place: environment variables with prefix KOPPELPUNT_.

Built once (in the CLI) and passed into create_app(settings) and the other entry points; never
imported as a global, so tests can run several differently configured instances side by side.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from koppelpunt.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# DEVELOPMENT ONLY (public in this repository): base64 of b"koppelpunt-dev-log-key-NOT-PROD!"
DEV_LOG_ENCRYPTION_KEY = "a29wcGVscHVudC1kZXYtbG9nLWtleS1OT1QtUFJPRCE="
# DEVELOPMENT ONLY (public in this repository): the /beheer signing key of `make run` and tests.
DEV_BEHEER_SECRET_KEY = "koppelpunt-dev-beheer-secret-key-NOT-FOR-PRODUCTION"  # noqa: S105
# The shortest /beheer signing key accepted: 32 characters of secrets.token_urlsafe are 192 bits.
MIN_BEHEER_SECRET_CHARS = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOPPELPUNT_", extra="ignore")

    # --- storage -------------------------------------------------------------------------
    # SQLite is the embedded default so `make run` needs no server; PostgreSQL in production
    # (postgresql+asyncpg://user:pw@host/db). Every received message is stored here before it
    # is acknowledged.
    database_url: str = "sqlite+aiosqlite:///var/koppelpunt.db"
    # Group commit: small messages (up to 100 records) that arrive while a transaction runs are
    # stored together in the next one, up to this many per transaction; each sender still gets
    # its receipt only after that commit. 1 turns it off (a transaction per message).
    receive_group_size: int = Field(default=64, ge=1)

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    # One topic per gemeente: {topic_prefix}.{gm0363}.
    topic_prefix: str = "vva.signalering"
    # Partitions per gemeente topic for `koppelpunt topics ensure`; key = BSN keeps a pupil's
    # signaleringen in order within one partition.
    topic_partitions: int = Field(default=3, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    # Topic-level min.insync.replicas of the topics koppelpunt creates: with acks=all a write
    # is refused unless this many replicas have it (2 with replication factor 3). At most
    # topic_replication_factor.
    topic_min_insync_replicas: int = Field(default=1, ge=1)
    # Optional SASL/SCRAM credentials of the service's own principal.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_username: str | None = None
    kafka_password: str | None = None
    # TLS to Kafka (SSL/SASL_SSL): the CA bundle (PEM) that signs the broker's certificate
    # (unset: the system's trust store) and, for brokers that want mutual TLS, the client's
    # certificate chain and key (PEM). The broker's host name is always checked.
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # The admin principal `koppelpunt access` uses to manage SCRAM users and ACLs (needs
    # ALTER on the cluster); falls back to kafka_username/kafka_password when unset.
    kafka_admin_username: str | None = None
    kafka_admin_password: str | None = None
    # Bootstrap written into a vendor's connection config by `koppelpunt access grant`
    # (the address vendors reach; default kafka_bootstrap).
    kafka_public_bootstrap: str | None = None
    # Run the outbox relay inside the API process (default) or as `koppelpunt relay`.
    relay_enabled: bool = True
    # Idle poll interval of the relay; new signaleringen also wake it at once.
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    # Rows per relay pass: with one partition per gemeente (342 topics) a larger batch puts
    # more records in each per-partition batch, which costs the broker less per record.
    relay_batch_size: int = Field(default=1000, ge=1)
    # PostgreSQL with several relays: the outbox is split into this many shards by a hash of
    # the BSN; a relay publishes a shard only while it holds the shard's advisory lock, so a
    # pupil's signaleringen stay in order. Use the same value on every replica.
    relay_shards: int = Field(default=16, ge=1)
    # Back-off for a signalering whose publication failed: min(base * 2^attempts, max).
    relay_backoff_base_seconds: float = Field(default=1.0, gt=0)
    relay_backoff_max_seconds: float = Field(default=300.0, gt=0)
    # After a wake-up the relay waits this long before claiming, so the commits of many
    # concurrent messages leave in one claim/produce/commit round (0: publish at once).
    relay_coalesce_seconds: float = Field(default=0.02, ge=0, le=1)

    # --- scheduler (peildatum checks, parked retry) ---------------------------------------
    # Run the scheduler inside `serve`: peildatum checks once their date has passed (recorded,
    # so a restart does not rerun them) and the periodic retry of parked records.
    scheduler_enabled: bool = True
    scheduler_poll_seconds: float = Field(default=60.0, gt=0)
    # A peildatum missed while the service was down is still run if at most this many days ago.
    peildatum_catch_up_days: int = Field(default=7, ge=1)
    # How often parked records (lookup was unavailable) are decided again.
    parked_retry_seconds: float = Field(default=300.0, gt=0)

    # --- HTTP ----------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Largest accepted body: 10,000 records of a few hundred bytes fit comfortably; more is
    # refused with 413 before it is read into memory.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # /readyz commits a heartbeat row to prove the database takes writes (store/db.py
    # WriteProbe). Timeout: how long that write may wait for the database and its write lock;
    # 2 s as the Kafka ping beside it, longer than a group commit of small messages holds
    # SQLite's lock (milliseconds) and short enough for a load balancer's probe. Interval: how
    # long a result is reused, so frequent probes cost one small commit per 5 s at most and a
    # database that stops taking writes shows within 5 s plus the timeout (0: every probe).
    readiness_write_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    readiness_write_interval_seconds: float = Field(default=5.0, ge=0, le=300)

    # The contact of this instance in the OpenAPI document (NL API Design Rules: info.contact
    # with name, email and url). The project cannot know them: set email and url in production.
    api_contact_name: str = "Beheer koppelpunt gemeenten"
    api_contact_email: str | None = None
    api_contact_url: str | None = None

    # --- the shape of an XML message (refused before XSD validation; docs/beheer.md) --------
    # The validators' cost grows with a message's shape, not only its size (an attribute bomb
    # of 19 KB took 14 s): shapes no schema accepts are refused first, in C, with these limits.
    # Names: the schemas' longest is 15 characters; a longer one is refused before it is read.
    xml_max_name_length: int = Field(default=128, ge=32)
    # Elements in one child of the root (record or head element): an aanmelding has at most 15.
    xml_max_elements_per_record: int = Field(default=64, ge=16)
    # Attributes on one element. The schemas declare none, so every attribute but the four
    # xsi: ones XML Schema allows is refused anyway; this bounds a schema that declares some.
    xml_max_attributes: int = Field(default=8, ge=4)
    # Namespace declarations on one element: a message needs one or two (xmlns, xmlns:xsi);
    # each one is copied and looked up for every element below it.
    xml_max_namespace_declarations: int = Field(default=16, ge=2)
    # xmlschema's report (it explains better than libxml2 but is pure Python, ~40 µs per node)
    # only for messages up to this many elements, attributes and namespace declarations
    # (~0.1 s), abandoned after this many seconds; libxml2's report (same paths) otherwise.
    xml_detailed_report_max_nodes: int = Field(default=2_000, ge=0)
    xml_detailed_report_max_seconds: float = Field(default=0.5, gt=0)
    # Every other body (operators' JSON, the /beheer forms): the largest real one, a replay
    # request, is well under 1 KiB. More gets 413 before it is read, so a client without a
    # key cannot make the service buffer a large body.
    max_form_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Request line plus headers: a bearer key, a traceparent and a session cookie take under
    # 2 KiB; 16 KiB is what h11 and Node.js allow. A larger head gets 431 before it is buffered.
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    # From the connect (or the first byte of the next request on a kept-alive connection)
    # until the headers are complete: real clients need milliseconds; a slow-loris client is
    # cut off (408) after this.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    # From the end of the headers until the whole body is in: MAX_BODY_BYTES (10 MiB) at
    # 3 Mbit/s. A slower body gets 408 and the connection is closed.
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Idle time between requests on a kept-alive connection (uvicorn's default; the bench's
    # load client forgets idle connections after 2 s, before the server closes them).
    http_keep_alive_seconds: int = Field(default=5, ge=1)
    # Open connections at once; a request on a connection beyond this gets 503 + Retry-After.
    # Two koppelpunten, a few operators and the probes need tens; the bench drives 200; 500
    # stays under the usual limit of 1024 open files with the database and Kafka beside it.
    http_max_connections: int = Field(default=500, ge=1)
    # Addresses or networks (JSON list, e.g. ["10.0.0.0/8"]) of the reverse proxies whose
    # X-Forwarded-For and X-Forwarded-Proto are believed. Empty: none is, so no client (not
    # even a local process) can choose the address that is logged and throttled.
    trusted_proxies: list[str] = Field(default_factory=list)

    # --- TLS on the API (docs/beheer.md, TLS) -------------------------------------------------
    # Server certificate chain and key (PEM). Unset: plain HTTP, for development only (a
    # warning at start); production serves HTTPS with its own PKIoverheid certificate.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Trust anchors for client certificates (PEM bundle): the PKIoverheid Private Root in
    # production. The sender is the OIN in the verified certificate's Subject serialNumber.
    tls_client_ca_file: Path | None = None
    # required | optional (no certificate: the bearer key) | none. Default: required when a
    # client CA is set, else none.
    tls_client_auth: Literal["required", "optional", "none"] | None = None
    # A TLS-terminating proxy (FSC inway, nginx) passes the client certificate it verified in
    # this header (URL-escaped PEM, nginx's $ssl_client_escaped_cert), believed only on
    # connections from tls_trusted_proxies (addresses or networks, JSON list); elsewhere ignored.
    tls_client_cert_header: str | None = None
    tls_trusted_proxies: list[str] = Field(default_factory=list)

    # --- senders, rules, reference data --------------------------------------------------
    # YAML with {name, role, key_sha256} per sender: hashes only, never keys.
    senders_file: Path = Path("senders.yaml")
    rules_dir: Path = PROJECT_ROOT / "routing_rules"
    gemeenten_file: Path = PROJECT_ROOT / "data" / "rvig-tabel33-gemeenten.csv"
    # RMC-regio's (bijlage C): in use until `koppelpunt rmc import` stores a newer table.
    rmc_regios_file: Path = PROJECT_ROOT / "data" / "rmc-regios-bijlage-c-2012.csv"
    # `koppelpunt rapportage`: counts from 1 up to this minus one are shown as "<N".
    rapportage_min_cell: int = Field(default=5, ge=1)
    schemas_dir: Path = PROJECT_ROOT / "schemas"

    # --- woongemeente lookup (BRP) -------------------------------------------------------
    # "register": the local woonregister table (`koppelpunt brp import`), the embedded default.
    # "haal-centraal": the VNG Haal Centraal BRP Personen bevragen API (POST {base}/personen).
    brp_lookup: Literal["register", "haal-centraal"] = "register"
    # Base URL without /personen, e.g. https://proefomgeving.haalcentraal.nl/haalcentraal/api/brp
    brp_base_url: str = "http://127.0.0.1:5010/haalcentraal/api/brp"
    # Sent as X-API-KEY; unset sends no key (e.g. behind a gateway that adds OAuth/mTLS).
    brp_api_key: SecretStr | None = None
    # Per HTTP request; a slow BRP must not hold a sender's request for long.
    brp_timeout_seconds: float = Field(default=5.0, gt=0)
    # Extra attempts after a 5xx, timeout or connection error (never after a 4xx), with
    # exponential back-off from brp_retry_backoff_seconds.
    brp_retries: int = Field(default=2, ge=0, le=10)
    brp_retry_backoff_seconds: float = Field(default=0.2, ge=0)
    # Requests of one lookup in flight at once (20 BSNs each): bursts of 10-50k records.
    brp_max_concurrent_requests: int = Field(default=4, ge=1, le=32)
    # Circuit breaker: after this many consecutive failed calls the BRP is not called at all
    # (records are parked at once) until brp_circuit_reset_seconds have passed; then one trial
    # call decides whether it closes again.
    brp_circuit_failures: int = Field(default=5, ge=1)
    brp_circuit_reset_seconds: float = Field(default=30.0, gt=0)
    # --- operations: replay and retention (bewaartermijnen) --------------------------------
    # Replay: signaleringen per publish batch, and the default rate limit (messages/second,
    # 0 = unlimited) so a replay of a whole school year does not flood a vendor's consumer.
    replay_batch_size: int = Field(default=200, ge=1)
    replay_rate: float = Field(default=0.0, ge=0)
    # Bewaartermijnen in days; 0 keeps forever. Our choice (the public record is silent):
    # raw messages (berichten, afwijzingen, with their beslissingen) half a year, enough to
    # help a sender; signaleringen 400 days, so a gemeente can be replayed a whole school
    # year; pupil state two years (NIET_INGESCHREVEN is decided on 1 October after the
    # school year starts); the verwerkingenlog five years (accountability under the AVG).
    retention_berichten_days: int = Field(default=183, ge=0)
    retention_signaleringen_days: int = Field(default=400, ge=0)
    retention_leerlingstatus_days: int = Field(default=730, ge=0)
    retention_verwerkingenlog_days: int = Field(default=1826, ge=0)
    # Rows deleted per transaction by `koppelpunt purge` (short locks, bounded memory).
    retention_batch_size: int = Field(default=1000, ge=1)
    # Run the purge inside `serve` once a day (hours between runs; 0 = not in the service).
    retention_purge_interval_hours: float = Field(default=24.0, ge=0)

    # --- logging -------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    # --- verwerkingenlog (Logius "Logboek dataverwerkingen") and the /beheer page ----------
    # Master key (base64 of 32 random bytes) for the verwerkingenlog: the BSN of each line is
    # stored AES-256-GCM encrypted, plus an HMAC blind index to find a person's lines. Separate
    # subkeys for both are derived with HKDF.
    # The default is a PUBLIC DEVELOPMENT KEY for `make run` and tests only: the service and
    # the CLI refuse it unless development_mode is set. Generate one with
    # `python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"`.
    log_encryption_key: SecretStr = SecretStr(DEV_LOG_ENCRYPTION_KEY)
    # Earlier master keys (rotation): still used to decrypt and to find old lines, never to
    # write new ones. Comma-separated in the environment is not supported: use a JSON list.
    log_encryption_old_keys: list[SecretStr] = Field(default_factory=list)
    # How long a /beheer login session lasts (a working day; logout or removing the operator
    # from the senders file ends it earlier).
    beheer_session_minutes: int = Field(default=480, ge=1)
    # Signs the /beheer session cookie and the forms' CSRF tokens (itsdangerous, HMAC-SHA256):
    # at least 32 characters, the same on every replica and kept across restarts (a new key
    # ends every session: the operators log in again). The default is a PUBLIC DEVELOPMENT KEY,
    # refused like the log key unless development_mode is set. Generate one with
    # `python -c "import secrets; print(secrets.token_urlsafe(32))"`.
    beheer_secret_key: SecretStr = SecretStr(DEV_BEHEER_SECRET_KEY)
    # DEVELOPMENT ONLY: allows the public development keys above (log encryption, /beheer
    # signing). Without it the service and every command refuse to start with such a key (exit
    # code 2), because anyone can read the repository: with the log key, the verwerkingenlog's
    # BSNs are readable by anyone who gets the database; with the /beheer key, anyone can sign
    # cookies and form tokens. `make run` and the tests set it; production must never set it.
    development_mode: bool = False

    # --- failed authentication (API bearer keys and the /beheer login) ------------------
    # Failed authentications are counted per client address (IPv6 per /64) and per presented
    # key, in memory per process, over a sliding window: at the limit, further attempts are
    # answered 429 with Retry-After until the oldest failure leaves the window. An address's
    # limit blocks every attempt from it (also with a correct key); a key's limit counts only
    # unknown keys, so failures from elsewhere never lock out a real key (docs/beheer.md).
    auth_failure_window_seconds: float = Field(default=300.0, gt=0)
    # 20 per 5 minutes per address: ample for a person mistyping a key or a sender whose key
    # was just rotated, and 4 guesses a minute for an attacker.
    auth_failures_per_address: int = Field(default=20, ge=1)
    # 10 per 5 minutes per key: one wrong key retried from many addresses (a stale key on a
    # cluster of senders) is refused before its hash is compared.
    auth_failures_per_key: int = Field(default=10, ge=1)
    # Addresses and keys tracked (each table; least recently failed evicted first): at most
    # about 1.1 KB each (measured), so 10,000 per table bound the throttle to about 25 MB
    # whatever an attacker sends.
    auth_throttle_max_entries: int = Field(default=10_000, ge=1)

    @property
    def uses_public_log_key(self) -> bool:
        """The public development key (in this repository) is the log encryption key."""
        return self.log_encryption_key.get_secret_value() == DEV_LOG_ENCRYPTION_KEY

    def refuse_public_log_key(self) -> None:
        """ConfigurationError (exit code 2) while the public development key is in use and
        KOPPELPUNT_DEVELOPMENT_MODE is not set."""
        if self.uses_public_log_key and not self.development_mode:
            raise ConfigurationError(
                "KOPPELPUNT_LOG_ENCRYPTION_KEY is the public development key from the "
                "repository: set a key of your own (base64 of 32 random bytes, see "
                "docs/beheer.md) or, for development only, KOPPELPUNT_DEVELOPMENT_MODE=true"
            )

    @property
    def uses_public_beheer_key(self) -> bool:
        """The public development key (in this repository) signs the /beheer cookies."""
        return self.beheer_secret_key.get_secret_value() == DEV_BEHEER_SECRET_KEY

    def refuse_public_beheer_key(self) -> None:
        """ConfigurationError (exit code 2) while the /beheer signing key is the public
        development key without KOPPELPUNT_DEVELOPMENT_MODE, or shorter than 32 characters.
        Checked here rather than by a field constraint, whose error would quote the value."""
        if self.uses_public_beheer_key and not self.development_mode:
            raise ConfigurationError(
                "KOPPELPUNT_BEHEER_SECRET_KEY is the public development key from the "
                'repository: set a key of your own (e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`, the same on every replica) or, for '
                "development only, KOPPELPUNT_DEVELOPMENT_MODE=true"
            )
        if len(self.beheer_secret_key.get_secret_value()) < MIN_BEHEER_SECRET_CHARS:
            raise ConfigurationError(
                f"KOPPELPUNT_BEHEER_SECRET_KEY must be at least {MIN_BEHEER_SECRET_CHARS} "
                "characters (e.g. secrets.token_urlsafe(32))"
            )

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        """A TLS setting that cannot work is an error at start, not a silent plain HTTP."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        if self.tls_client_auth in ("required", "optional") and self.tls_client_ca_file is None:
            raise ValueError(f"tls_client_auth={self.tls_client_auth} needs tls_client_ca_file")
        if self.tls_trusted_proxies and not self.tls_client_cert_header:
            raise ValueError("tls_trusted_proxies needs tls_client_cert_header")
        return self

    @property
    def effective_tls_client_auth(self) -> Literal["required", "optional", "none"]:
        """KOPPELPUNT_TLS_CLIENT_AUTH, or its default: required when a client CA is set."""
        if self.tls_client_auth is not None:
            return self.tls_client_auth
        return "required" if self.tls_client_ca_file is not None else "none"

    @model_validator(mode="after")
    def _min_insync_within_replication(self) -> Settings:
        """A topic whose min.insync.replicas exceeds its replicas accepts no acks=all write."""
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"KOPPELPUNT_TOPIC_MIN_INSYNC_REPLICAS ({self.topic_min_insync_replicas}) must "
                "be at most KOPPELPUNT_TOPIC_REPLICATION_FACTOR "
                f"({self.topic_replication_factor})"
            )
        return self

    @field_validator("trusted_proxies", "tls_trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Each entry an address or network: a typo must not silently trust nothing (or all)."""
        try:
            return [str(ipaddress.ip_network(v.strip(), strict=False)) for v in value]
        except ValueError as exc:
            raise ValueError(f"proxies: {exc}") from exc

    @property
    def uses_postgresql(self) -> bool:
        """The database is PostgreSQL (any driver): relay shards and LISTEN/NOTIFY need it;
        SQLite has one writer and no NOTIFY."""
        from sqlalchemy.engine import make_url  # SQLAlchemy costs ~150 ms: not at CLI start

        return make_url(self.database_url).get_backend_name() == "postgresql"
