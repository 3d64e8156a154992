"""Where a message came from, as recorded with it: the sending organisation's OIN (from its
verified client certificate; None for a sender known by its bearer key only) and the
transaction id of the request (FSC logging: the `Fsc-Transaction-Id` header, or one of ours)."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    oin: str | None
    transaction_id: str


def new_transaction_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort by
    time. Python 3.11's uuid module has no uuid7."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # variant RFC 9562
    return str(uuid.UUID(int=value))


def parse_transaction_id(value: str) -> str | None:
    """The canonical form of a UUID given in a header; None when it is not one."""
    text = value.strip()
    if len(text) != 36:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
