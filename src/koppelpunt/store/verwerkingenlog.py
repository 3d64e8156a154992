"""The verwerkingenlog: one line per processing step per person (Logius "Logboek dataverwerkingen").

Each line follows the draft standard's fields: `trace_id` (W3C Trace Context, taken from the
sender's traceparent or generated), `operation_id` (a span id), optional `parent_operation_id`,
`name`, `status_code` (OK / ERROR), start and end time, the registered processing activity
(`dpl.core.processing_activity_id` → `verwerkingsactiviteit`) and the data subject
(`dpl.core.data_subject_id` → the BSN, stored AES-256-GCM encrypted with a keyed HMAC blind
index for lookups). Other attributes (berichtId, topic, signalering type, foreign operation
such as the BRP call) go in `attributes`; they never hold a BSN, nor anything computed from one
without a key: a signalering id is a UUIDv5 over the BSN and a few public facts, so searching
the BSN space would recover the BSN from it. The log keeps `signaleringRef` instead, an HMAC of
the id under a subkey of the log key (LogCipher.signalering_ref); inzage recomputes it for the
person's signaleringen to show which one a line is about.

Append-only: this module has no update, and the only delete is retention: the purge's
`verwerkingenlog` rule (app/retention.py, by `end_time`), or `purge_before` here.
Lines are written in the caller's transaction, so a step and its log line commit together.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.model import Filtered, FilterReden, Forwarded
from koppelpunt.origin import Origin
from koppelpunt.pipeline.run import (
    LookupKey,
    LookupResult,
    LookupUnavailable,
    RecordOutcome,
    Verwerking,
)
from koppelpunt.store.bulk import insert_rows
from koppelpunt.store.outbox import OutboxItem
from koppelpunt.store.tables import verwerkingenlog

# Registered processing activities (the verwerkingsregister's ids; our choice of names).
ACTIVITY_SIGNALEREN = "vva-signaleren-gemeenten"  # WEB art. 8.0.x: receive, filter, forward
ACTIVITY_BEHEER = "vva-beheer"  # operator actions: replay, offsets, purge, parked retry
ACTIVITY_INZAGE = "avg-inzage"  # AVG art. 15: a data subject's access request

# Operation names, one per processing step.
OP_ONTVANGEN = "ontvangen"
OP_WOONGEMEENTE = "woongemeente_opvragen"
OP_BESLISSEN = "beslissen"
OP_PUBLICEREN = "publiceren"
OP_BEHEER_PREFIX = "beheer."

STATUS_OK = "OK"
STATUS_ERROR = "ERROR"

_AAD = b"koppelpunt verwerkingenlog v1"


def new_trace_id() -> str:
    """A W3C trace id: 16 random bytes as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def new_operation_id() -> str:
    """A W3C span (operation) id: 8 random bytes as 16 lowercase hex digits."""
    return secrets.token_hex(8)


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError("KOPPELPUNT_LOG_ENCRYPTION_KEY is not valid base64") from exc
    if len(key) != 32:
        raise ConfigurationError(
            f"KOPPELPUNT_LOG_ENCRYPTION_KEY must be 32 bytes (base64), got {len(key)}"
        )
    return key


# HKDF info of the subkey that keys signalering references (see signalering_ref).
SIGNALERING_REF_INFO = b"koppelpunt verwerkingenlog signalering ref"
# Hex digits kept of a signalering reference: 128 bits, no collisions among a log's ids.
SIGNALERING_REF_HEX = 32


@dataclass(frozen=True, slots=True)
class _Keyset:
    key_id: str
    aes: AESGCM
    index_key: bytes
    ref_key: bytes

    def blind_index(self, bsn: str) -> str:
        """HMAC-SHA256 of the BSN, hex (hmac.digest: the one-shot C implementation)."""
        return hmac.digest(self.index_key, bsn.encode("ascii"), "sha256").hex()

    def signalering_ref(self, signalering_id: str) -> str:
        """HMAC-SHA256 of a signalering id, the first SIGNALERING_REF_HEX hex digits."""
        digest = hmac.digest(self.ref_key, signalering_id.encode("utf-8"), "sha256")
        return digest.hex()[:SIGNALERING_REF_HEX]


def _keyset(master: bytes) -> _Keyset:
    return _Keyset(
        key_id=_hkdf(master, b"koppelpunt key id")[:6].hex(),
        aes=AESGCM(_hkdf(master, b"koppelpunt verwerkingenlog aes-256-gcm")),
        index_key=_hkdf(master, b"koppelpunt verwerkingenlog blind index"),
        ref_key=_hkdf(master, SIGNALERING_REF_INFO),
    )


class LogCipher:
    """Encrypts BSNs for the log and computes their blind index; keys derived with HKDF.

    One master key writes; older master keys (after a rotation) still decrypt and find lines.
    """

    def __init__(self, master: bytes, old: Sequence[bytes] = ()) -> None:
        self._current = _keyset(master)
        self._all = {k.key_id: k for k in [self._current, *(_keyset(m) for m in old)]}

    @classmethod
    def from_settings(cls, settings: Settings) -> LogCipher:
        settings.refuse_public_log_key()  # every use of the key, unless development mode
        return _cipher(
            settings.log_encryption_key.get_secret_value(),
            tuple(k.get_secret_value() for k in settings.log_encryption_old_keys),
        )

    @property
    def key_id(self) -> str:
        return self._current.key_id

    def encrypt(self, bsn: str) -> bytes:
        """nonce (12 bytes) + AES-GCM ciphertext and tag."""
        nonce = os.urandom(12)
        return nonce + self._current.aes.encrypt(nonce, bsn.encode("ascii"), _AAD)

    def decrypt(self, blob: bytes, key_id: str) -> str:
        keyset = self._all.get(key_id)
        if keyset is None:
            raise ConfigurationError(f"no log encryption key with id {key_id} is configured")
        try:
            return keyset.aes.decrypt(blob[:12], blob[12:], _AAD).decode("ascii")
        except InvalidTag as exc:
            raise ConfigurationError(f"log line does not decrypt with key {key_id}") from exc

    def blind_index(self, bsn: str) -> str:
        return self._current.blind_index(bsn)

    def blind_indexes(self, bsn: str) -> list[str]:
        """The index under every configured key: finds lines written before a rotation."""
        return [k.blind_index(bsn) for k in self._all.values()]

    def signalering_ref(self, signalering_id: str) -> str:
        """What the log keeps of a signalering id: a keyed HMAC, from which neither the id
        nor the BSN in it can be computed without the key (the id itself is an unkeyed
        UUIDv5 over the BSN and public facts)."""
        return self._current.signalering_ref(signalering_id)

    def signalering_refs(self, signalering_id: str) -> list[str]:
        """The reference under every configured key: matches lines written before a rotation."""
        return [k.signalering_ref(signalering_id) for k in self._all.values()]


@lru_cache(maxsize=8)
def _cipher(master: str, old: tuple[str, ...]) -> LogCipher:
    return LogCipher(_decode_key(master), [_decode_key(k) for k in old])


@dataclass(slots=True)
class LogLine:
    """One line to append. `bsn` is encrypted on write and never leaves this module in clear.

    Not frozen: a frozen dataclass sets each field through object.__setattr__, and a message
    makes up to three lines per record (receive_lines), so that was most of their cost. It
    could not be hashed anyway (its attributes are a dict).
    """

    trace_id: str
    name: str
    start_time: datetime
    end_time: datetime
    verwerkingsactiviteit: str
    status_code: str = STATUS_OK
    operation_id: str = field(default_factory=new_operation_id)
    parent_operation_id: str | None = None
    bsn: str | None = None
    actor: str | None = None
    gemeentecode: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A line as read back (for inzage). The BSN is not returned: the caller searched by it."""

    id: int
    trace_id: str
    operation_id: str
    parent_operation_id: str | None
    name: str
    status_code: str
    start_time: datetime
    end_time: datetime
    verwerkingsactiviteit: str
    actor: str | None
    gemeentecode: str | None
    attributes: dict[str, Any]


async def append(session: AsyncSession, cipher: LogCipher, lines: Sequence[LogLine]) -> None:
    """Insert lines in one executemany; each distinct BSN is encrypted once per call."""
    await insert_line_rows(session, line_rows(cipher, lines))


async def insert_line_rows(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows made by line_rows (in the caller's transaction)."""
    await insert_rows(session, verwerkingenlog, _LINE_COLUMNS, rows)


def line_rows(cipher: LogCipher, lines: Sequence[LogLine]) -> list[tuple[Any, ...]]:
    """The table rows of `lines`, BSNs encrypted (each distinct one once): apart from the
    INSERT, so that the receive path can make them before it locks the pupils."""
    encrypted: dict[str, tuple[bytes, str]] = {}
    rows: list[tuple[Any, ...]] = []
    key_id = cipher.key_id
    for line in lines:
        blob: bytes | None = None
        index: str | None = None
        if line.bsn is not None:
            if line.bsn not in encrypted:
                encrypted[line.bsn] = (cipher.encrypt(line.bsn), cipher.blind_index(line.bsn))
            blob, index = encrypted[line.bsn]
        rows.append(
            (
                line.trace_id,
                line.operation_id,
                line.parent_operation_id,
                line.name,
                line.status_code,
                line.start_time,
                line.end_time,
                line.verwerkingsactiviteit,
                line.actor,
                line.gemeentecode,
                blob,
                index,
                key_id if blob is not None else None,
                dict(line.attributes),
            )
        )
    return rows


_LINE_COLUMNS = (
    "trace_id",
    "operation_id",
    "parent_operation_id",
    "name",
    "status_code",
    "start_time",
    "end_time",
    "verwerkingsactiviteit",
    "actor",
    "gemeentecode",
    "bsn_encrypted",
    "bsn_index",
    "key_id",
    "attributes",
)


def receive_lines(
    verwerking: Verwerking,
    found: Mapping[LookupKey, LookupResult],
    *,
    trace_id: str,
    bericht_id: str,
    sender: str,
    received_at: datetime,
    lookup_started: datetime,
    decided_at: datetime,
    origin: Origin | None = None,
) -> list[LogLine]:
    """Per person in a message: received, woongemeente looked up (if it was), decided."""
    # Operation ids as new_operation_id() makes them (8 random bytes, 16 hex digits), drawn
    # in one os.urandom call per message instead of one per line: at most 3 lines a person.
    ids = os.urandom(24 * len(verwerking.outcomes)).hex()
    next_id = 0
    soort = verwerking.bericht.soort.value
    lines: list[LogLine] = []
    append = lines.append
    for outcome in verwerking.outcomes:
        bsn = outcome.bsn
        base: dict[str, Any] = {"berichtId": bericht_id, "record": outcome.index}
        if origin is not None:
            base["transactionId"] = origin.transaction_id
            if origin.oin is not None:
                base["oin"] = origin.oin
        received_id = ids[next_id : next_id + 16]
        next_id += 16
        append(
            LogLine(
                trace_id=trace_id,
                name=OP_ONTVANGEN,
                start_time=received_at,
                end_time=decided_at,
                verwerkingsactiviteit=ACTIVITY_SIGNALEREN,
                operation_id=received_id,
                bsn=bsn,
                actor=sender,
                attributes={**base, "soort": soort},
            )
        )
        key = (bsn, outcome.peildatum) if bsn is not None else None
        if key is not None and key in found and _passed_pre_lookup(outcome):
            result = found.get(key)
            unavailable = outcome.parked or isinstance(result, LookupUnavailable)
            append(
                LogLine(
                    trace_id=trace_id,
                    name=OP_WOONGEMEENTE,
                    start_time=lookup_started,
                    end_time=decided_at,
                    verwerkingsactiviteit=ACTIVITY_SIGNALEREN,
                    status_code=STATUS_ERROR if unavailable else STATUS_OK,
                    operation_id=ids[next_id : next_id + 16],
                    parent_operation_id=received_id,
                    bsn=bsn,
                    attributes={
                        **base,
                        "foreign_operation": "woongemeente_lookup",
                        "peildatum": outcome.peildatum.isoformat(),
                        "gevonden": (not unavailable) and result is not None,
                    },
                )
            )
            next_id += 16
        decision = outcome.decision
        uitkomst = "geparkeerd"
        extra: dict[str, Any] = {}
        gemeentecode: str | None = None
        if isinstance(decision, Forwarded):
            uitkomst, gemeentecode = "doorgestuurd", decision.gemeentecode
        elif isinstance(decision, Filtered):
            uitkomst, extra = "gefilterd", {"reden": decision.reden.value}
        append(
            LogLine(
                trace_id=trace_id,
                name=OP_BESLISSEN,
                start_time=decided_at,
                end_time=decided_at,
                verwerkingsactiviteit=ACTIVITY_SIGNALEREN,
                operation_id=ids[next_id : next_id + 16],
                parent_operation_id=received_id,
                bsn=bsn,
                gemeentecode=gemeentecode,
                attributes={**base, "uitkomst": uitkomst, **extra},
            )
        )
        next_id += 16
    return lines


async def log_published(
    session: AsyncSession,
    settings: Settings,
    items: Sequence[OutboxItem],
    *,
    started: datetime,
    ended: datetime,
) -> None:
    """The relay hook: one `publiceren` line per signalering Kafka acknowledged (a disclosure
    to that gemeente), in the trace of the message that caused it, in claim order.

    `items` are the relay's claimed outbox items: the claim already read the signalering's
    type, gemeente, topic and its message's trace and id, so nothing is read again here.
    """
    if not items:
        return
    cipher = LogCipher.from_settings(settings)
    lines = [
        LogLine(
            trace_id=item.trace_id or new_trace_id(),
            name=OP_PUBLICEREN,
            start_time=started,
            end_time=ended,
            verwerkingsactiviteit=ACTIVITY_SIGNALEREN,
            bsn=item.key,
            gemeentecode=item.gemeentecode,
            attributes={
                "signaleringRef": cipher.signalering_ref(item.signalering_id),
                "type": item.type,
                "topic": item.topic,
                **({"berichtId": item.bericht_id} if item.bericht_id else {}),
            },
        )
        for item in items
    ]
    await append(session, cipher, lines)


def replay_trace_id(replay_id: str) -> str:
    """The trace of a replay: its `beheer.replay` line and every disclosure it made. A replay
    id is a UUIDv4, whose 32 hex digits are a valid W3C trace id."""
    return uuid.UUID(replay_id).hex


@dataclass(frozen=True, slots=True)
class Replayed:
    """A signalering a replay re-published and Kafka acknowledged."""

    signalering_id: str
    bsn: str
    type: str
    topic: str  # where it went: the gemeente topic or the replay's toTopic


async def log_replayed(
    session: AsyncSession,
    settings: Settings,
    items: Sequence[Replayed],
    *,
    replay_id: str,
    gemeentecode: str,
    actor: str,
    started: datetime,
    ended: datetime,
) -> None:
    """One `publiceren` line per signalering a replay disclosed again (a disclosure as much as
    the first publication), with the topic it went to and the replay id, in the replay's trace
    and with the operator who asked for it; written with the replay's progress."""
    if not items:
        return
    cipher = LogCipher.from_settings(settings)
    trace_id = replay_trace_id(replay_id)
    lines = [
        LogLine(
            trace_id=trace_id,
            name=OP_PUBLICEREN,
            start_time=started,
            end_time=ended,
            verwerkingsactiviteit=ACTIVITY_SIGNALEREN,
            bsn=item.bsn,
            actor=actor,
            gemeentecode=gemeentecode,
            attributes={
                "signaleringRef": cipher.signalering_ref(item.signalering_id),
                "type": item.type,
                "topic": item.topic,
                "replayId": replay_id,
            },
        )
        for item in items
    ]
    await append(session, cipher, lines)


async def log_operator_action(
    session: AsyncSession,
    actor: str,
    action: str,
    details: Mapping[str, Any],
    *,
    settings: Settings | None = None,
    bsn: str | None = None,
    status_code: str = STATUS_OK,
    started: datetime | None = None,
    trace_id: str | None = None,
) -> str:
    """Log an operator action (replay, offsets_reset, inzage, purge, parked_retry, …) with who
    did it. `details` must not contain a BSN: pass it as `bsn` (then `settings` is needed to
    encrypt it). Returns the trace id. The caller commits."""
    if bsn is not None and settings is None:
        raise ValueError("log_operator_action: settings are needed to encrypt a bsn")
    now = datetime.now(UTC)
    activity = ACTIVITY_INZAGE if action == "inzage" else ACTIVITY_BEHEER
    trace = trace_id or new_trace_id()
    line = LogLine(
        trace_id=trace,
        name=OP_BEHEER_PREFIX + action,
        start_time=started or now,
        end_time=now,
        verwerkingsactiviteit=activity,
        status_code=status_code,
        bsn=bsn,
        actor=actor,
        attributes=dict(details),
    )
    cipher = LogCipher.from_settings(settings) if settings is not None else _NO_BSN_CIPHER
    await append(session, cipher, [line])
    return trace


# Used only for lines without a BSN, where no key is touched.
_NO_BSN_CIPHER = LogCipher(b"\0" * 32)


def _stored(row: Any) -> StoredLine:
    return StoredLine(
        id=row.id,
        trace_id=row.trace_id,
        operation_id=row.operation_id,
        parent_operation_id=row.parent_operation_id,
        name=row.name,
        status_code=row.status_code,
        start_time=row.start_time,
        end_time=row.end_time,
        verwerkingsactiviteit=row.verwerkingsactiviteit,
        actor=row.actor,
        gemeentecode=row.gemeentecode,
        attributes=dict(row.attributes or {}),
    )


async def find_by_bsn(session: AsyncSession, cipher: LogCipher, bsn: str) -> list[StoredLine]:
    """Every line about this person, oldest first (found through the blind index)."""
    rows = await session.execute(
        select(verwerkingenlog)
        .where(verwerkingenlog.c.bsn_index.in_(cipher.blind_indexes(bsn)))
        .order_by(verwerkingenlog.c.id)
    )
    return [_stored(row) for row in rows]


async def list_lines(
    session: AsyncSession, *, name_prefix: str | None = None, limit: int = 100
) -> list[StoredLine]:
    """The newest lines (optionally one kind, e.g. 'beheer.'), newest first."""
    query = select(verwerkingenlog).order_by(verwerkingenlog.c.id.desc()).limit(limit)
    if name_prefix is not None:
        query = query.where(verwerkingenlog.c.name.startswith(name_prefix))
    return [_stored(row) for row in await session.execute(query)]


async def purge_before(session: AsyncSession, cutoff: datetime, *, batch_size: int = 5000) -> int:
    """Retention, the only delete: remove up to `batch_size` lines that ended before `cutoff`.

    Returns how many were deleted; call (and commit) until it returns 0.
    """
    ids = list(
        await session.scalars(
            select(verwerkingenlog.c.id)
            .where(verwerkingenlog.c.end_time < cutoff)
            .order_by(verwerkingenlog.c.id)
            .limit(batch_size)
        )
    )
    if not ids:
        return 0
    await session.execute(delete(verwerkingenlog).where(verwerkingenlog.c.id.in_(ids)))
    return len(ids)


def _passed_pre_lookup(outcome: RecordOutcome) -> bool:
    """Whether this record itself needed the woongemeente (a message can carry one BSN twice,
    once filtered before the lookup): only then does its trail show a lookup step."""
    decision = outcome.decision
    if outcome.parked or isinstance(decision, Forwarded):
        return True
    return isinstance(decision, Filtered) and decision.reden is FilterReden.GEEN_WOONGEMEENTE
