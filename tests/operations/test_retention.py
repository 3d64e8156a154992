"""Retention purge on the real database: what is past its term goes, nothing else."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from koppelpunt.config import Settings
from koppelpunt.operations.retention import RULES, plan_purge, purge
from koppelpunt.runtime import Runtime
from koppelpunt.store.berichten import BeslissingRow, add_afwijzing, add_beslissingen
from koppelpunt.store.outbox import mark_published
from koppelpunt.store.tables import afwijzingen, berichten, beslissingen, outbox, signaleringen
from tests.store.helpers import add_test_bericht

from .helpers import built, invoke_cli, new_signalering, store

# Relative to the real clock, so the CLI (which uses it) sees the same terms passed.
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)  # past every default term but the verwerkingenlog's
RECENT = NOW - timedelta(days=10)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with built(settings.model_copy(update={"retention_batch_size": 2})) as rt:
        rt.clock = lambda: NOW
        yield rt


async def _count(runtime: Runtime, table: object) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def _fill(runtime: Runtime) -> None:
    """Old and recent: messages with decisions, refusals, published and unpublished
    signaleringen (the old unpublished one must survive)."""
    async with runtime.sessions.begin() as session:
        for n, when in enumerate([OLD, OLD, OLD, RECENT]):
            pk = await add_test_bericht(session, f"B-{n}", received_at=when)
            await add_beslissingen(
                session,
                pk,
                [BeslissingRow(0, "doorgestuurd", None, None, "GM0363", "v1", "999993653")],
            )
        for when in (OLD, RECENT):
            await add_afwijzing(
                session,
                received_at=when,
                sender="koppelpunt-vo",
                soort="prognose",
                bericht_id=None,
                status_code=400,
                reasons=[{"reden": "kapot"}],
                raw=b"<x/>",
                content_type="application/xml",
            )
    settings = runtime.settings
    old = [new_signalering(settings, n) for n in range(3)]
    old = [dataclasses.replace(s, created_at=OLD, bericht_pk=1) for s in old]
    recent = new_signalering(settings, 9)
    recent = dataclasses.replace(recent, created_at=RECENT)
    await store(runtime, [*old, recent])
    async with runtime.sessions.begin() as session:
        ids = list(await session.scalars(select(outbox.c.id).order_by(outbox.c.id)))
        await mark_published(session, [ids[0], ids[1], ids[3]], NOW)  # old[2] never published


class TestPurge:
    async def test_dry_run_counts_and_deletes_nothing(self, runtime: Runtime) -> None:
        """A dry run reports per kind what is past its term and leaves everything."""
        await _fill(runtime)
        counts = await purge(runtime, dry_run=True)
        assert counts == {"signaleringen": 2, "berichten": 3, "afwijzingen": 1}
        assert await _count(runtime, berichten) == 4

    async def test_deletes_in_batches_what_is_past_its_term(self, runtime: Runtime) -> None:
        """Old messages go with their decisions, old published signaleringen with their
        outbox rows; recent rows and the unpublished old signalering stay."""
        await _fill(runtime)
        progress: list[tuple[str, int, int]] = []
        counts = await purge(runtime, on_progress=lambda *a: progress.append(a))
        assert counts == {"signaleringen": 2, "berichten": 3, "afwijzingen": 1}
        assert ("berichten", 2, 3) in progress  # batches of retention_batch_size
        assert await _count(runtime, berichten) == 1
        assert await _count(runtime, beslissingen) == 1
        assert await _count(runtime, afwijzingen) == 1
        async with runtime.sessions() as session:
            left = set(await session.scalars(select(signaleringen.c.signalering_id)))
            links = set(await session.scalars(select(signaleringen.c.bericht_pk)))
        assert left == {"sig-GM0363-0002", "sig-GM0363-0009"}
        assert links == {None}  # the unpublished one lost the link to its purged message
        assert await _count(runtime, outbox) == 2
        assert await purge(runtime) == {"signaleringen": 0, "berichten": 0, "afwijzingen": 0}

    async def test_zero_days_keeps_forever(self, runtime: Runtime) -> None:
        """A term of 0 skips that kind entirely."""
        await _fill(runtime)
        runtime.settings = runtime.settings.model_copy(update={"retention_berichten_days": 0})
        plans = {p.name for p in await plan_purge(runtime)}
        assert plans == {"signaleringen"}

    def test_registry_names_a_setting_for_every_rule(self, settings: Settings) -> None:
        """Each rule's term is a real setting (a typo would otherwise fail at 3 a.m.)."""
        for rule in RULES:
            assert isinstance(getattr(settings, rule.setting), int)
            assert rule.timestamp in rule.table.c


class TestCli:
    async def test_purge_dry_run_and_purge(self, runtime: Runtime, cli_env: None) -> None:
        """`koppelpunt purge --dry-run` prints counts and deletes nothing; `koppelpunt purge`
        deletes and says how much."""
        await _fill(runtime)
        dry = await invoke_cli(["purge", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would delete 3 berichten" in dry.output
        assert await _count(runtime, berichten) == 4
        done = await invoke_cli(["purge"])
        assert done.exit_code == 0, done.output
        assert "deleted 2 signaleringen, deleted 3 berichten, deleted 1 afwijzingen" in done.output
        assert await _count(runtime, berichten) == 1


class TestDailyPurge:
    async def test_the_service_purges_on_its_own(self, settings: Settings) -> None:
        """`serve` runs the purge in the background every RETENTION_PURGE_INTERVAL_HOURS."""
        from asgi_lifespan import LifespanManager

        from koppelpunt.api.app import create_app

        fast = settings.model_copy(
            update={"retention_purge_interval_hours": 0.0002, "relay_enabled": False}
        )
        async with built(fast) as runtime:
            await _fill(runtime)
            async with LifespanManager(create_app(fast, runtime)):
                async with asyncio.timeout(30):
                    while True:  # until the background purge has run
                        if await _count(runtime, afwijzingen) == 1:
                            break
                        await asyncio.sleep(0.2)
            assert await _count(runtime, berichten) == 1
