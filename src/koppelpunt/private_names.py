"""Every private name of a library that this code uses, in one place.

Each is used because the library offers no public way to do what the using module needs (it
says why). The libraries are pinned in pyproject.toml to the minor versions tested, and
tests/test_private_names.py fails when a name below is gone from the installed version. The
SQLite driver also checks its names at run time and falls back to the stock adapter.

uvicorn's HTTP protocol, which api/server.py subclasses, is an internal module without private
names in use; tests/api/test_server.py (TestUvicornContract) checks the names it relies on.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrivateName:
    library: str
    owner: str  # "module:Class"
    name: str
    on_instance: bool  # set in an __init__ (self.<name> = ...), not an attribute of the class
    used_in: str


PRIVATE_NAMES: tuple[PrivateName, ...] = (
    # The batch publisher builds record batches itself (one per partition and round) and needs
    # what send() does per record: metadata, the size check, the partitioner.
    PrivateName(
        "aiokafka",
        "aiokafka.client:AIOKafkaClient",
        "_wait_on_metadata",
        False,
        "koppelpunt.kafka.publisher",
    ),
    PrivateName(
        "aiokafka",
        "aiokafka.producer.producer:AIOKafkaProducer",
        "_serialize",
        False,
        "koppelpunt.kafka.publisher",
    ),
    PrivateName(
        "aiokafka",
        "aiokafka.producer.producer:AIOKafkaProducer",
        "_partition",
        False,
        "koppelpunt.kafka.publisher",
    ),
    # Abandoning a producer without delivering its queue: aiokafka has no public abort.
    PrivateName(
        "aiokafka",
        "aiokafka.producer.producer:AIOKafkaProducer",
        "_closed",
        True,
        "koppelpunt.kafka.publisher",
    ),
    PrivateName(
        "aiokafka",
        "aiokafka.producer.producer:AIOKafkaProducer",
        "_sender",
        True,
        "koppelpunt.kafka.publisher",
    ),
    # The SQLite driver runs short statements on the loop's thread and long ones in aiosqlite's.
    PrivateName(
        "sqlite",
        "aiosqlite.core:Connection",
        "_execute",
        False,
        "koppelpunt.store.sqlite_driver",
    ),
    PrivateName(
        "sqlite", "aiosqlite.core:Connection", "_conn", False, "koppelpunt.store.sqlite_driver"
    ),
    PrivateName(
        "sqlite",
        "sqlalchemy.dialects.sqlite.aiosqlite:AsyncAdapt_aiosqlite_connection",
        "_cursor_cls",
        False,
        "koppelpunt.store.sqlite_driver",
    ),
    PrivateName(
        "sqlite",
        "sqlalchemy.dialects.sqlite.aiosqlite:AsyncAdapt_aiosqlite_connection",
        "_handle_exception",
        False,
        "koppelpunt.store.sqlite_driver",
    ),
    PrivateName(
        "sqlite",
        "sqlalchemy.dialects.sqlite.aiosqlite:AsyncAdapt_aiosqlite_connection",
        "_connection",
        True,
        "koppelpunt.store.sqlite_driver",
    ),
    PrivateName(
        "sqlite",
        "sqlalchemy.dialects.sqlite.aiosqlite:AsyncAdapt_aiosqlite_connection",
        "_execute_mutex",
        True,
        "koppelpunt.store.sqlite_driver",
    ),
)


def present(entry: PrivateName) -> bool:
    """The installed library still has `entry`: on the class, or assigned in an __init__ of
    the class or a base class."""
    module_name, _, qualname = entry.owner.partition(":")
    try:
        owner = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError):
        return False
    if not entry.on_instance:
        return hasattr(owner, entry.name)
    assignment = re.compile(rf"self\.{re.escape(entry.name)}\b\s*(?::[^=\n]*)?=(?!=)")
    for klass in inspect.getmro(owner):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            source = inspect.getsource(init)
        except (OSError, TypeError):
            continue
        if assignment.search(source):
            return True
    return False


def missing(library: str | None = None) -> tuple[PrivateName, ...]:
    """The names (of `library`, or of all) that the installed versions no longer have."""
    return tuple(
        entry
        for entry in PRIVATE_NAMES
        if (library is None or entry.library == library) and not present(entry)
    )
