"""Alembic migrations: apply on an empty database, idempotent, and equal to tables.py."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from koppelpunt.errors import ConfigurationError
from koppelpunt.store.db import create_engine, upgrade, upgrade_sync
from koppelpunt.store.tables import metadata

TABLES = {
    "berichten",
    "beslissingen",
    "afwijzingen",
    "signaleringen",
    "outbox",
    "woonregister",
    "gemeentetabellen",
    # pupil state (0002), verwerkingenlog (0005)
    "leerling_prognoses",
    "aanmeldingen",
    "aanmelding_statussen",
    "leerling_gemeenten",
    "peildatum_runs",
    "verwerkingenlog",
    # replay progress (0004)
    "replays",
    # server-side /beheer sessions (0008)
    "beheer_sessions",
    # imported RMC-regio tables (0011)
    "rmc_tabellen",
    "rmc_toegang",
}


def head_revision() -> str:
    """The single head of the migration chain (a second head would be a merge mistake)."""
    from alembic.script import ScriptDirectory

    from koppelpunt.store.db import alembic_config

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads
    return heads[0]


async def _state(url: str) -> tuple[set[str], str | None, list[object]]:
    def inspect_sync(connection: Connection) -> tuple[set[str], list[object]]:
        names = set(inspect(connection).get_table_names())
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
        return names, diff

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names, diff = await connection.run_sync(inspect_sync)
            version = (
                await connection.scalar(text("SELECT version_num FROM alembic_version"))
                if "alembic_version" in names
                else None
            )
    finally:
        await engine.dispose()
    return names, version, diff


class TestUpgrade:
    async def test_applies_on_empty_database(self, empty_database_url: str) -> None:
        """upgrade creates every table on an empty database and records the head revision."""
        await upgrade(empty_database_url)
        names, version, _ = await _state(empty_database_url)
        assert names >= TABLES
        assert version == head_revision()

    async def test_idempotent(self, empty_database_url: str) -> None:
        """A second upgrade on a migrated database changes nothing and does not fail."""
        await upgrade(empty_database_url)
        await upgrade(empty_database_url)
        names, version, _ = await _state(empty_database_url)
        assert names >= TABLES
        assert version == head_revision()

    async def test_schema_matches_tables_module(self, empty_database_url: str) -> None:
        """The migrated schema equals tables.py, so the two cannot drift apart unnoticed."""
        await upgrade(empty_database_url)
        _, _, diff = await _state(empty_database_url)
        assert diff == []

    async def test_downgrade_and_upgrade_again(self, empty_database_url: str) -> None:
        """Downgrading to base removes the tables and a new upgrade restores them."""
        await upgrade(empty_database_url)
        engine = create_engine(empty_database_url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_downgrade_base, empty_database_url)
        finally:
            await engine.dispose()
        names, _, _ = await _state(empty_database_url)
        assert not names & TABLES
        await upgrade(empty_database_url)
        names, _, _ = await _state(empty_database_url)
        assert names >= TABLES

    async def test_upgrade_sync(self, empty_database_url: str) -> None:
        """upgrade_sync migrates from synchronous code (here: a worker thread)."""
        await asyncio.to_thread(functools.partial(upgrade_sync, empty_database_url, create=True))
        names, version, _ = await _state(empty_database_url)
        assert names >= TABLES
        assert version == head_revision()

    def test_only_create_makes_a_sqlite_file(self, tmp_path: Path) -> None:
        """Without `create` a missing SQLite file is refused (named), and none is created."""
        path = tmp_path / "var" / "koppelpunt.db"
        with pytest.raises(ConfigurationError, match=f"no database at {path}"):
            upgrade_sync(f"sqlite+aiosqlite:///{path}")
        assert not path.exists() and not path.parent.exists()


def _downgrade_base(connection: Connection, url: str) -> None:
    from alembic import command

    from koppelpunt.store.db import alembic_config

    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.downgrade(config, "base")
