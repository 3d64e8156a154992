"""Sender authentication: the OIN of a verified client certificate and/or bearer keys checked
against SHA-256 hashes from the senders file.

A sender entry with an `oin` is matched only by a verified client certificate whose Subject
serialNumber is that OIN; with `key_sha256` as well, the bearer key must match too. A
certificate without an OIN, with a malformed one or with one not in the file gets 403 (the
handshake already proved the certificate; guessing does not apply). Without a certificate only
entries without `oin` can be matched, by their key (docs/beheer.md, TLS).

The file holds hashes only, so a leaked config does not leak keys. Each presented key is hashed
and compared with every known hash in constant time (hmac.compare_digest, no early exit), so
timing reveals neither which sender nor how much of a hash matched.

Failed authentications are throttled per client address and per presented key (AuthThrottle):
past the limit the answer is 429 with Retry-After, before the key is even compared.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from koppelpunt.api.tls import ClientCertificate
from koppelpunt.config import Settings
from koppelpunt.errors import (
    AuthenticationError,
    ConfigurationError,
    ForbiddenError,
    TooManyRequestsError,
)
from koppelpunt.metrics import Metrics

log = structlog.get_logger(__name__)


class Role(StrEnum):
    VO = "vo"  # Koppelpunt VO: posts prognoses
    MBO = "mbo"  # Koppelpunt MBO: posts aanmeldstatussen
    OPERATOR = "operator"  # beheer: reads receipts, replays, inspects


class _SenderEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    role: Role
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    oin: str | None = Field(default=None, pattern=r"^[0-9]{20}$")

    @model_validator(mode="after")
    def _identified(self) -> _SenderEntry:
        if self.key_sha256 is None and self.oin is None:
            raise ValueError(f"sender {self.name}: needs key_sha256, oin or both")
        return self


class _SendersFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    senders: list[_SenderEntry]


@dataclass(frozen=True, slots=True)
class Sender:
    name: str
    role: Role
    oin: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id(key: str) -> str:
    """A short identifier of a key (the start of its SHA-256): tells keys apart, reveals
    nothing of the key beyond what the senders file already holds."""
    return hash_key(key)[:16]


_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)


class Kind(StrEnum):
    """What kind of authentication failed (the only label of the metrics)."""

    BEARER = "bearer"  # Authorization: Bearer <key> (the API, and /beheer by script)
    BEHEER_LOGIN = "beheer_login"  # the /beheer login form


def client_bucket(host: str | None) -> str | None:
    """The throttle's address for a client: IPv4 as is, IPv6 by its /64 (one subscriber's
    whole prefix, which costs an attacker nothing to vary within), else the text as given."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AuthThrottle:
    """Failed authentications per client address and per presented key, in memory.

    A sliding window: each table keeps, per address or key, the times of its last `limit`
    failures; once `limit` failures lie within `window` seconds, attempts are refused until the
    oldest leaves the window. Each table holds at most `max_entries` (least recently failed
    evicted first), so its memory is bounded whatever an attacker sends. One process, one table:
    with N replicas an attacker gets N times the limit (docs/beheer.md, Rate limits).
    """

    def __init__(
        self,
        *,
        window: float,
        per_address: int,
        per_key: int,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._limits = {"address": per_address, "key": per_key}
        self._tables: dict[str, OrderedDict[object, deque[float]]] = {
            "address": OrderedDict(),
            "key": OrderedDict(),
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthThrottle:
        return cls(
            window=settings.auth_failure_window_seconds,
            per_address=settings.auth_failures_per_address,
            per_key=settings.auth_failures_per_key,
            max_entries=settings.auth_throttle_max_entries,
        )

    def entries(self) -> int:
        """Addresses and keys tracked now (both tables)."""
        return sum(len(t) for t in self._tables.values())

    def _ids(self, address: str | None, key: bytes | None) -> list[tuple[str, object]]:
        ids: list[tuple[str, object]] = []
        if address is not None:
            ids.append(("address", address))
        if key is not None:
            ids.append(("key", key))
        return ids

    def blocked(self, address: str | None, key: bytes | None) -> tuple[str, int] | None:
        """(which limit, seconds to wait) when this address or key may not try now."""
        now = self._clock()
        for limit, ident in self._ids(address, key):
            table = self._tables[limit]
            times = table.get(ident)
            if times is None:
                continue
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del table[ident]
            elif len(times) >= self._limits[limit]:
                return limit, max(1, math.ceil(times[0] + self.window - now))
        return None

    def failed(self, address: str | None, key: bytes | None) -> None:
        now = self._clock()
        for limit, ident in self._ids(address, key):
            table = self._tables[limit]
            times = table.get(ident)
            if times is None:
                times = table[ident] = deque(maxlen=self._limits[limit])
                while len(table) > self.max_entries:
                    table.popitem(last=False)
            else:
                table.move_to_end(ident)
            times.append(now)


Entry = tuple[bytes | None, Sender]  # (SHA-256 of the key or None, the sender)


def _parse(path: Path) -> list[Entry]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read senders file {path}: {exc.strerror} "
            "(set KOPPELPUNT_SENDERS_FILE; see docs/configuration.md)"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"senders file {path} is not valid YAML: {exc}") from exc
    try:
        parsed = _SendersFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(f"senders file {path} is invalid: {exc}") from exc
    names = [s.name for s in parsed.senders]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"senders file {path}: sender names must be unique")
    return [
        (
            bytes.fromhex(s.key_sha256) if s.key_sha256 else None,
            Sender(s.name, s.role, s.oin),
        )
        for s in parsed.senders
    ]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class SenderRegistry:
    """The senders file, read again when it changes, so removing a key or an operator takes
    effect on the next request without a restart. A changed file that does not load keeps the
    previous senders (logged as senders_file_invalid), as a reload of any server does.

    `throttle` (the service's) makes every authentication subject to the failure limits."""

    def __init__(
        self,
        entries: list[Entry],
        *,
        path: Path | None = None,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self._entries = entries
        self._path = path
        self._stamp = _stamp(path) if path is not None else None
        self.throttle = throttle

    @classmethod
    def load(cls, path: Path, *, throttle: AuthThrottle | None = None) -> SenderRegistry:
        stamp = _stamp(path)
        registry = cls(_parse(path), path=path, throttle=throttle)
        registry._stamp = stamp  # as it was before the read: a write during it reloads
        return registry

    def _refresh(self) -> None:
        if self._path is None:
            return
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._entries = _parse(self._path)
        except ConfigurationError as exc:
            log.error("senders_file_invalid", detail=exc.detail, kept="previous senders")
            return
        log.info("senders_file_reloaded", senders=len(self._entries))

    def operator_key_id(self, name: str) -> str | None:
        """key_id() of the operator's key as the senders file says now; None when that name is
        gone or no longer an operator. A /beheer session lives only while this still equals
        the key it was opened with (so removing the operator or rotating the key ends it)."""
        self._refresh()
        for digest, sender in self._entries:
            if sender.name == name and sender.role is Role.OPERATOR and digest is not None:
                return digest[:8].hex()
        return None

    def authenticate(
        self,
        authorization: str | None,
        *,
        client: str | None = None,
        kind: Kind = Kind.BEARER,
        role: Role | None = None,
        metrics: Metrics | None = None,
        certificate: ClientCertificate | None = None,
    ) -> Sender:
        """The sender for a verified client certificate and/or an Authorization header;
        AuthenticationError (401) or ForbiddenError (403, a certificate that names no known
        sender) otherwise.

        With a throttle: TooManyRequestsError (429) while `client` (an address) or the
        presented key has too many recent failures, checked before the key; an unknown key
        counts for both. `role`: a key of another role is a failure too (the /beheer login),
        counted for the address only.
        """
        self._refresh()
        if certificate is not None:
            return self._by_certificate(certificate, authorization, role)
        if not authorization:
            raise AuthenticationError("Authorization: Bearer <sleutel> ontbreekt")
        address = client_bucket(client)
        m = _BEARER.match(authorization)
        digest = hashlib.sha256(m.group(1).encode("utf-8")).digest() if m else None
        key = digest[:16] if digest is not None else None
        throttle = self.throttle
        if throttle is not None:
            blocked = throttle.blocked(address, key)
            if blocked is not None:
                limit, retry_after = blocked
                if metrics is not None:
                    metrics.auth_throttled.labels(kind.value, limit).inc()
                log.warning("auth_throttled", kind=kind.value, limit=limit)
                raise TooManyRequestsError(
                    f"te veel mislukte pogingen; probeer het over {retry_after} s opnieuw",
                    retry_after=retry_after,
                )
        found: Sender | None = None
        if digest is not None:
            for known, sender in self._entries:
                # An entry with an OIN needs its certificate: a key alone never matches it.
                matches = known is not None and hmac.compare_digest(known, digest)
                if matches and sender.oin is None:
                    found = sender
        if found is not None and (role is None or found.role is role):
            return found
        if throttle is not None:
            # A known key of another role is no guess: it counts for the address only, so the
            # per-key limit never blocks a valid key (not even its holder's misuse of it).
            throttle.failed(address, key if found is None else None)
        if metrics is not None:
            metrics.auth_failures.labels(kind.value).inc()
        if digest is None:
            raise AuthenticationError("Authorization moet de vorm 'Bearer <sleutel>' hebben")
        if found is None:
            raise AuthenticationError("onbekende sleutel")
        raise AuthenticationError(f"geen sleutel met rol {role}")

    def _by_certificate(
        self, certificate: ClientCertificate, authorization: str | None, role: Role | None
    ) -> Sender:
        """The sender whose `oin` is the certificate's (and whose key, if it has one, is the
        bearer key presented); ForbiddenError otherwise. The texts name no key or hash."""
        if certificate.oin is None:
            raise ForbiddenError(certificate.problem or "het clientcertificaat heeft geen OIN")
        candidates = [(d, s) for d, s in self._entries if s.oin == certificate.oin]
        if not candidates:
            raise ForbiddenError("het OIN van het clientcertificaat hoort bij geen afzender")
        m = _BEARER.match(authorization or "")
        digest = hashlib.sha256(m.group(1).encode("utf-8")).digest() if m else None
        found: Sender | None = None
        for known, sender in candidates:
            if known is None:
                found = found or sender
            elif digest is not None and hmac.compare_digest(known, digest):
                found = sender
        if found is None:
            raise AuthenticationError(
                "deze afzender heeft naast het certificaat een sleutel nodig: "
                "Authorization: Bearer <sleutel>"
            )
        if role is not None and found.role is not role:
            raise AuthenticationError(f"geen afzender met rol {role}")
        return found


def require_role(sender: Sender, *roles: Role) -> None:
    if sender.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise ForbiddenError(
            f"afzender {sender.name} (rol {sender.role.value}) mag dit niet; toegestaan: {allowed}"
        )
