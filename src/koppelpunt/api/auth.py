"""Sender authentication: bearer keys checked against SHA-256 hashes from the senders file.

The file holds hashes only, so a leaked config does not leak keys. Each presented key is hashed
and compared with every known hash in constant time (hmac.compare_digest, no early exit), so
timing reveals neither which sender nor how much of a hash matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from koppelpunt.errors import AuthenticationError, ConfigurationError, ForbiddenError


class Role(StrEnum):
    VO = "vo"  # Koppelpunt VO: posts prognoses
    MBO = "mbo"  # Koppelpunt MBO: posts aanmeldstatussen
    OPERATOR = "operator"  # beheer: reads receipts, replays, inspects


class _SenderEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    role: Role
    key_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class _SendersFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    senders: list[_SenderEntry]


@dataclass(frozen=True, slots=True)
class Sender:
    name: str
    role: Role


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)


class SenderRegistry:
    def __init__(self, entries: list[tuple[bytes, Sender]]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> SenderRegistry:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read senders file {path}: {exc.strerror} "
                "(set KOPPELPUNT_SENDERS_FILE; see README)"
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
        return cls([(bytes.fromhex(s.key_sha256), Sender(s.name, s.role)) for s in parsed.senders])

    def authenticate(self, authorization: str | None) -> Sender:
        """The sender for an Authorization header; AuthenticationError (401) otherwise."""
        if not authorization:
            raise AuthenticationError("Authorization: Bearer <sleutel> ontbreekt")
        m = _BEARER.match(authorization)
        if not m:
            raise AuthenticationError("Authorization moet de vorm 'Bearer <sleutel>' hebben")
        digest = hashlib.sha256(m.group(1).encode("utf-8")).digest()
        found: Sender | None = None
        for known, sender in self._entries:
            if hmac.compare_digest(known, digest):
                found = sender
        if found is None:
            raise AuthenticationError("onbekende sleutel")
        return found


def require_role(sender: Sender, *roles: Role) -> None:
    if sender.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise ForbiddenError(
            f"afzender {sender.name} (rol {sender.role.value}) mag dit niet; toegestaan: {allowed}"
        )
