"""The wired-up parts of a running koppelpunt: built once from Settings, shared by API and CLI.

Loading everything here at start-up means a bad rules file, senders file, gemeente table or XSD
stops the process with a clear message before it accepts a single message.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from koppelpunt.app.group_commit import GroupCommit
from koppelpunt.config import Settings
from koppelpunt.lookup.haal_centraal import HaalCentraalLookup
from koppelpunt.lookup.port import WoongemeenteLookup
from koppelpunt.lookup.register import LocalRegisterLookup
from koppelpunt.metrics import Metrics
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.parse import SchemaRegistry, XmlLimits
from koppelpunt.pipeline.rules import RuleSet, load_rules
from koppelpunt.store.db import create_engine, session_factory
from koppelpunt.store.gemeenten import file_sha256, gemeente_table_in_use


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    schemas: SchemaRegistry
    rules: RuleSet
    gemeenten: GemeenteTable
    lookup: WoongemeenteLookup
    # Where the gemeente table in use came from: the packaged file or an import in the database.
    gemeenten_source: str = "packaged"
    # sha256 of the table's UTF-8 text, so re-importing the table in use is a no-op.
    gemeenten_sha256: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utcnow
    # Called after a transaction that added outbox rows commits, to wake the in-process relay.
    on_outbox: Callable[[], None] = lambda: None
    # The group commit of small messages (receive.py); started with the first such message.
    group_commit: GroupCommit[Any, Any] | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.database_url)
        sessions = session_factory(engine)
        rules = load_rules(settings.rules_dir)
        gemeenten = GemeenteTable.load(settings.gemeenten_file)
        gemeenten = GemeenteTable(gemeenten.gemeenten, rules.woongemeente.geen_gemeente)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            schemas=SchemaRegistry.load(settings.schemas_dir, xml_limits(settings)),
            rules=rules,
            gemeenten=gemeenten,
            lookup=build_lookup(settings, sessions),
            gemeenten_source=str(settings.gemeenten_file),
            gemeenten_sha256=file_sha256(settings.gemeenten_file),
        )

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        """build() plus the async start-up steps (the gemeente table in use): for CLI commands."""
        runtime = cls.build(settings)
        try:
            await runtime.load_gemeenten()
        except BaseException:
            await runtime.close()
            raise
        return runtime

    async def load_gemeenten(self) -> None:
        """Use the gemeente table in use: the newest one imported into the database, else the
        packaged file (store.gemeenten.gemeente_table_in_use, shared with every command).

        Runtime.build is synchronous and starts with the packaged file; the API lifespan and
        the CLI commands await this once at start. A running service picks up a newly imported
        table when it restarts.
        """
        async with self.sessions() as session:
            in_use = await gemeente_table_in_use(session, self.settings.gemeenten_file)
        self.gemeenten = GemeenteTable(
            in_use.table.gemeenten, self.rules.woongemeente.geen_gemeente
        )
        self.gemeenten_sha256 = in_use.sha256
        self.gemeenten_source = in_use.source

    async def close(self) -> None:
        if self.group_commit is not None:
            await self.group_commit.close()
        if isinstance(self.lookup, HaalCentraalLookup):
            await self.lookup.close()
        await self.engine.dispose()


# Collections of generation 1 before a full one is considered: CPython's default is 10.
FULL_COLLECTION_AFTER = 1000


def frozen_heap() -> tuple[int, int, int]:
    """Move every object allocated so far out of the garbage collector's reach (gc.freeze),
    and make full collections rare. Returns the thresholds it replaced (thawed_heap).

    After start-up a process holds ~190,000 long-lived objects (schemas, rules, gemeente
    table, SQLAlchemy metadata, modules). Each full collection walked all of them: 40–80 ms
    in which no request was answered, which showed up as the receipt latency tail
    (bench/ROUNDS.md). Frozen, they are no longer scanned; what they reference stays alive
    anyway, and objects freed by reference counting are still freed.

    A message of 2,000 records keeps ~10^5 objects alive across its awaits, so they survive
    the young collections and reach the oldest generation, where they soon die by reference
    counting. With CPython's default a full collection followed every 10 collections of
    generation 1, ~27 ms each: 30 in a 40,000-record run, and the event loop spent ~15% more
    CPU per record than with FULL_COLLECTION_AFTER (bench/thread_cpu.py, bench/ROUNDS.md).
    Generations 0 and 1 keep the interpreter's thresholds: their pauses stay short. Cyclic
    garbage that reached the oldest generation waits longer; the bench's memory figure (6)
    checks that RSS stays flat.

    For long-running processes only (serve, relay): an app started and stopped many times in
    one process (tests) would keep each start's cyclic garbage.
    """
    gc.collect()
    gc.freeze()
    previous = gc.get_threshold()
    gc.set_threshold(previous[0], previous[1], FULL_COLLECTION_AFTER)
    return previous


def thawed_heap(previous: tuple[int, int, int]) -> None:
    """Undo frozen_heap (at shutdown): the heap back in the collector's reach, `previous`
    thresholds restored."""
    gc.unfreeze()
    gc.set_threshold(*previous)


def build_lookup(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> WoongemeenteLookup:
    """The woongemeente lookup chosen by KOPPELPUNT_BRP_LOOKUP."""
    if settings.brp_lookup == "haal-centraal":
        return HaalCentraalLookup.from_settings(settings)
    return LocalRegisterLookup(sessions)


def xml_limits(settings: Settings) -> XmlLimits:
    """The limits on an XML message's shape, from the settings (for the pure parse step)."""
    return XmlLimits(
        max_attributes=settings.xml_max_attributes,
        max_namespace_declarations=settings.xml_max_namespace_declarations,
        max_name_length=settings.xml_max_name_length,
        max_elements_per_record=settings.xml_max_elements_per_record,
        detailed_report_max_nodes=settings.xml_detailed_report_max_nodes,
        detailed_report_max_seconds=settings.xml_detailed_report_max_seconds,
    )
