"""Retention purge on the real database: what is past its term goes, nothing else."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, update

from koppelpunt.app.retention import plan_purge, purge
from koppelpunt.config import Settings
from koppelpunt.runtime import Runtime
from koppelpunt.store.berichten import BeslissingRow, add_afwijzing, add_beslissingen
from koppelpunt.store.outbox import mark_published
from koppelpunt.store.retention import RULES
from koppelpunt.store.tables import afwijzingen, berichten, beslissingen, outbox, signaleringen
from koppelpunt.store.verwerkingenlog import list_lines
from tests.store.helpers import add_test_bericht

from .helpers import built, invoke_cli, new_signalering, store

# Relative to the real clock, so the CLI (which uses it) sees the same terms passed.
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)  # past every default term but the verwerkingenlog's
RECENT = NOW - timedelta(days=10)
ANCIENT = NOW - timedelta(days=2000)  # past the verwerkingenlog's term too
NOTHING = {r.name: 0 for r in RULES}


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
        assert counts == {**NOTHING, "signaleringen": 2, "berichten": 3, "afwijzingen": 1}
        assert await _count(runtime, berichten) == 4

    async def test_deletes_in_batches_what_is_past_its_term(self, runtime: Runtime) -> None:
        """Old messages go with their decisions, old published signaleringen with their
        outbox rows; recent rows and the unpublished old signalering stay."""
        await _fill(runtime)
        progress: list[tuple[str, int, int]] = []
        counts = await purge(runtime, on_progress=lambda *a: progress.append(a))
        assert counts == {**NOTHING, "signaleringen": 2, "berichten": 3, "afwijzingen": 1}
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
        assert await purge(runtime) == NOTHING

    async def test_zero_days_keeps_forever(self, runtime: Runtime) -> None:
        """A term of 0 skips that kind entirely."""
        await _fill(runtime)
        runtime.settings = runtime.settings.model_copy(update={"retention_berichten_days": 0})
        plans = {p.name for p in await plan_purge(runtime)}
        assert plans == {n for n in NOTHING if n not in ("berichten", "afwijzingen")}

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
                    while True:  # until the background purge has run (its last step: the log)
                        async with runtime.sessions() as session:
                            lines = await list_lines(session, name_prefix="beheer.purge")
                        if lines:
                            break
                        await asyncio.sleep(0.2)
            assert await _count(runtime, berichten) == 1
            assert await _count(runtime, afwijzingen) == 1
            assert lines[-1].actor == "koppelpunt"  # the service itself
            assert lines[-1].attributes["aantallen"]["berichten"] == 3


async def _fill_pupil_state(runtime: Runtime) -> int:
    """Pupil state old and recent, linked to an old message; verwerkingenlog lines ancient and
    recent. Returns the old message's pk."""
    from datetime import date

    from koppelpunt.store.tables import (
        aanmelding_statussen,
        aanmeldingen,
        leerling_gemeenten,
        leerling_prognoses,
        verwerkingenlog,
    )

    async with runtime.sessions.begin() as session:
        old_pk = await add_test_bericht(session, "B-old", received_at=OLD)
        prognose = {
            "bsn": "999993653",
            "geboortedatum": date(2010, 5, 1),
            "hoogste_diploma": None,
            "brin": "00AA",
            "vestiging": None,
            "onderwijssoort": "VMBO_BB",
        }
        await session.execute(
            insert(leerling_prognoses),
            [
                # Same bsn, two schooljaren: only the old one is past its term.
                {**prognose, "schooljaar": "2023-2024", "verzonden": ANCIENT, "bericht_pk": old_pk},
                {**prognose, "schooljaar": "2026-2027", "verzonden": RECENT, "bericht_pk": old_pk},
            ],
        )
        aanmelding = {
            "instelling_brin": "25LG",
            "bsn": "999993653",
            "geboortedatum": date(2010, 5, 1),
            "hoogste_diploma": None,
            "crebo": "25187",
            "niveau": 2,
            "leerweg": "BOL",
            "status": "AANGEMELD",
            "statusdatum": date(2024, 3, 1),
            "eerste_statusdatum": date(2024, 3, 1),
        }
        await session.execute(
            insert(aanmeldingen),
            [
                {**aanmelding, "aanmelding_id": "A-old", "updated_at": ANCIENT},
                {**aanmelding, "aanmelding_id": "A-new", "updated_at": RECENT},
            ],
        )
        status = {"instelling_brin": "25LG", "bericht_pk": old_pk, "received_at": ANCIENT}
        await session.execute(
            insert(aanmelding_statussen),
            [
                {
                    **status,
                    "aanmelding_id": "A-old",
                    "status": "AANGEMELD",
                    "statusdatum": date(2024, 3, 1),
                },
                {
                    **status,
                    "aanmelding_id": "A-old",
                    "status": "INGESCHREVEN",
                    "statusdatum": date(2024, 6, 1),
                },
                {
                    **status,
                    "aanmelding_id": "A-new",
                    "status": "AANGEMELD",
                    "statusdatum": date(2024, 3, 1),
                },
            ],
        )
        await session.execute(
            insert(leerling_gemeenten),
            [
                {
                    "bsn": "999993653",
                    "gemeentecode": "GM0363",
                    "peildatum": date(2024, 1, 1),
                    "updated_at": ANCIENT,
                },
                {
                    "bsn": "999993665",
                    "gemeentecode": "GM0363",
                    "peildatum": date(2026, 1, 1),
                    "updated_at": RECENT,
                },
            ],
        )
        line = {
            "trace_id": "0" * 32,
            "operation_id": "0" * 16,
            "name": "ontvangen",
            "status_code": "OK",
            "verwerkingsactiviteit": "test",
            "attributes": {},
        }
        await session.execute(
            insert(verwerkingenlog),
            [
                {**line, "start_time": ANCIENT, "end_time": ANCIENT},
                {**line, "start_time": RECENT, "end_time": RECENT},
            ],
        )
    return old_pk


class TestPupilStateAndLog:
    async def test_pupil_state_and_log_past_their_term_go(self, runtime: Runtime) -> None:
        """Old prognoses, aanmeldingen (with their whole status history), last gemeenten and
        log lines go; a newer prognose of the same BSN (composite key) stays, and so does
        state that pointed at a purged message (the link is cleared: PostgreSQL enforces it)."""
        from koppelpunt.store.tables import (
            aanmelding_statussen,
            aanmeldingen,
            leerling_gemeenten,
            leerling_prognoses,
            verwerkingenlog,
        )

        await _fill_pupil_state(runtime)
        counts = await purge(runtime)
        assert counts == {
            **NOTHING,
            "berichten": 1,
            "leerling_prognoses": 1,
            "aanmeldingen": 1,
            "leerling_gemeenten": 1,
            "verwerkingenlog": 1,
        }
        async with runtime.sessions() as session:
            prognoses = (await session.execute(select(leerling_prognoses))).all()
            assert [(p.schooljaar, p.bericht_pk) for p in prognoses] == [("2026-2027", None)]
            kept = set(await session.scalars(select(aanmeldingen.c.aanmelding_id)))
            assert kept == {"A-new"}
            history = (await session.execute(select(aanmelding_statussen))).all()
            assert [(h.aanmelding_id, h.bericht_pk) for h in history] == [("A-new", None)]
            assert set(await session.scalars(select(leerling_gemeenten.c.bsn))) == {"999993665"}
            names = list(
                await session.scalars(select(verwerkingenlog.c.name).order_by(verwerkingenlog.c.id))
            )
        # The recent line, and the purge itself (counts only, by the service).
        assert names == ["ontvangen", "beheer.purge"]

    async def test_purge_is_logged_with_counts_and_actor(self, runtime: Runtime) -> None:
        """`beheer.purge` names who purged and how many per kind; a dry run says so."""
        await _fill(runtime)
        await purge(runtime, dry_run=True, actor="cli:alice")
        await purge(runtime, actor="cli:bob")
        async with runtime.sessions() as session:
            lines = await list_lines(session, name_prefix="beheer.purge")
        bob, alice = lines
        assert (alice.actor, alice.attributes["dryRun"]) == ("cli:alice", True)
        assert (bob.actor, bob.attributes["dryRun"]) == ("cli:bob", False)
        assert bob.attributes["aantallen"]["berichten"] == 3
        assert bob.verwerkingsactiviteit == "vva-beheer"

    async def test_a_refreshed_row_is_not_deleted(self, runtime: Runtime) -> None:
        """The delete re-checks the term: an aanmelding refreshed after the batch was chosen
        keeps itself and its history (the key alone would take it)."""
        from koppelpunt.store.retention import RULES as rules
        from koppelpunt.store.retention import past_term as _condition
        from koppelpunt.store.tables import aanmelding_statussen, aanmeldingen

        await _fill_pupil_state(runtime)
        rule = next(r for r in rules if r.name == "aanmeldingen")
        cutoff = NOW - timedelta(days=runtime.settings.retention_leerlingstatus_days)
        async with runtime.sessions.begin() as session:
            keys = [("25LG", "A-old")]
            await session.execute(
                update(aanmeldingen)
                .where(aanmeldingen.c.aanmelding_id == "A-old")
                .values(updated_at=RECENT)
            )
            doomed = rule.key_in(keys) & _condition(rule, cutoff)
            assert rule.before_delete is not None
            await rule.before_delete(session, doomed)
            await session.execute(delete(aanmeldingen).where(doomed))
        async with runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(aanmeldingen)) == 2
            assert await session.scalar(select(func.count()).select_from(aanmelding_statussen)) == 3
