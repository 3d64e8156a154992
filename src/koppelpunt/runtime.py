"""The wired-up parts of a running koppelpunt: built once from Settings, shared by API and CLI.

Loading everything here at start-up means a bad rules file, senders file, gemeente table or XSD
stops the process with a clear message before it accepts a single message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from koppelpunt.config import Settings
from koppelpunt.lookup.port import WoongemeenteLookup
from koppelpunt.lookup.register import LocalRegisterLookup
from koppelpunt.metrics import Metrics
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.parse import SchemaRegistry
from koppelpunt.pipeline.rules import RuleSet, load_rules
from koppelpunt.store.db import create_engine, session_factory


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
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = utcnow
    # Called after a transaction that added outbox rows commits, to wake the in-process relay.
    on_outbox: Callable[[], None] = lambda: None

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
            schemas=SchemaRegistry.load(settings.schemas_dir),
            rules=rules,
            gemeenten=gemeenten,
            lookup=LocalRegisterLookup(sessions),
        )

    async def close(self) -> None:
        await self.engine.dispose()
