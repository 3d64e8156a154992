"""Derived signaleringen end to end: real broker, real database, the running app.

GEEN_PLAATSING on receipt, NIET_AANGEMELD / NIET_INGESCHREVEN on their peildatum (service
function, CLI and scheduler), moves, a herindeling, and parked records decided once the lookup
is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime

import httpx
import structlog
import structlog.testing
from click.testing import Result
from lxml import etree
from sqlalchemy import func, select
from typer.testing import CliRunner

from koppelpunt.app.derived import run_peildatum
from koppelpunt.app.parked import retry_parked
from koppelpunt.app.scheduler import Scheduler
from koppelpunt.cli.main import app as cli
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.lookup.port import WoongemeenteLookup
from koppelpunt.pipeline.run import UNAVAILABLE, LookupKey, LookupResult
from koppelpunt.store import leerlingen
from koppelpunt.store import parked as parked_store
from koppelpunt.store.tables import aanmelding_statussen, outbox, peildatum_runs, signaleringen
from tests.conftest import Running, auth
from tests.kafka_fixtures import consume_all
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml
from tests.test_end_to_end import NS, parse, records_on, register, text

XML = {"Content-Type": "application/xml"}
APRIL_1 = date(2027, 4, 1)
OCT_1 = date(2027, 10, 1)


async def post_status(
    client: httpx.AsyncClient, bericht_id: str, rows: list[A]
) -> dict[str, object]:
    r = await client.post(
        "/v1/aanmeldstatussen",
        content=aanmeldstatus_xml(bericht_id, rows),
        headers={**XML, **auth("koppelpunt-mbo")},
    )
    assert r.status_code == 202, r.text
    body: dict[str, object] = r.json()
    return body


async def post_prognose(
    client: httpx.AsyncClient, bericht_id: str, rows: list[L]
) -> dict[str, object]:
    r = await client.post(
        "/v1/prognoses",
        content=prognose_xml(bericht_id, rows),
        headers={**XML, **auth("koppelpunt-vo")},
    )
    assert r.status_code == 202, r.text
    body: dict[str, object] = r.json()
    return body


async def types_on(running: Running, settings: Settings, gemeente: str, expect: int) -> list[str]:
    """The types on a gemeente's topic once everything stored is published."""
    await settled(running)
    found = await records_on(
        settings.kafka_bootstrap, topic_for(settings.topic_prefix, gemeente), expect
    )
    return [text(parse(r)[0], "s:type") for r in found]


async def settled(running: Running, timeout: float = 30) -> None:  # noqa: ASYNC109
    """Wait until the app's own relay has published every outbox row (no second relay: two
    relays on one SQLite database may both send a row, which is at-least-once, not a bug)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with running.runtime.sessions() as session:
            pending = await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
        if not pending or asyncio.get_running_loop().time() > deadline:
            return
        running.relay.wake()
        await asyncio.sleep(0.2)


async def stored_types(running: Running) -> list[tuple[str, str]]:
    async with running.runtime.sessions() as session:
        rows = await session.execute(
            select(signaleringen.c.gemeentecode, signaleringen.c.type).order_by(
                signaleringen.c.created_at, signaleringen.c.signalering_id
            )
        )
        return sorted((r.gemeentecode, r.type) for r in rows)


def run_cli(args: list[str], env: dict[str, str]) -> Result:
    """Invoke the CLI in-process; the command configures logging onto CliRunner's streams,
    which close afterwards, so the test session's logging set-up is put back."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(cli, args, env=env)
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


class FlakyLookup:
    """A BRP that can be switched off: answers UNAVAILABLE while down (a test double of a BRP,
    not of infrastructure: the register behind it is the real local one)."""

    shares_session = False  # like a remote BRP: asked outside the caller's transaction

    def __init__(self, inner: WoongemeenteLookup) -> None:
        self.inner = inner
        self.down = True

    async def lookup(
        self, keys: Sequence[LookupKey], session: object = None
    ) -> dict[LookupKey, LookupResult]:
        if self.down:
            return dict.fromkeys(keys, UNAVAILABLE)
        return await self.inner.lookup(keys)


class TestGeenPlaatsing:
    async def test_two_aanmeldingen_one_withdrawn_then_both(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """One of two withdrawn: nothing; the second closed too: one GEEN_PLAATSING, once."""
        await register(running, [(BSN[0], "0363", None)])
        await post_status(
            client,
            "gp-1",
            [
                A(aanmelding_id="A-1", statusdatum="2027-02-01"),
                A(aanmelding_id="B-2", statusdatum="2027-02-02", brin="25PZ"),
            ],
        )
        await post_status(
            client, "gp-2", [A(aanmelding_id="A-1", status="INGETROKKEN", statusdatum="2027-03-01")]
        )
        receipt = await post_status(
            client,
            "gp-3",
            [
                A(
                    aanmelding_id="B-2",
                    brin="25PZ",
                    status="GEEN_INSCHRIJVING",
                    statusdatum="2027-03-05",
                )
            ],
        )
        assert receipt["aantalSignaleringen"] == 2  # the status itself + GEEN_PLAATSING
        # Resent under a new berichtId: nothing new.
        again = await post_status(
            client,
            "gp-4",
            [
                A(
                    aanmelding_id="B-2",
                    brin="25PZ",
                    status="GEEN_INSCHRIJVING",
                    statusdatum="2027-03-05",
                )
            ],
        )
        assert again["aantalSignaleringen"] == 0
        types = await types_on(running, settings, "GM0363", 5)
        assert types.count("GEEN_PLAATSING") == 1 and len(types) == 5
        records = await consume_all(
            settings.kafka_bootstrap, topic_for(settings.topic_prefix, "GM0363")
        )
        gp = next(parse(r)[0] for r in records if text(parse(r)[0], "s:type") == "GEEN_PLAATSING")
        assert text(gp, "s:peildatum") == "2027-03-05"
        assert text(gp, "s:schooljaar") == "2026-2027"
        assert len(gp.findall("s:aanmeldstatus", NS)) == 2

    async def test_late_older_status_signals_nothing(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """INGESCHREVEN is current; a late GEEN_INSCHRIJVING dated earlier adds no GEEN_PLAATSING
        and stays in the history only."""
        await register(running, [(BSN[0], "0363", None)])
        await post_status(client, "late-1", [A(status="INGESCHREVEN", statusdatum="2027-08-20")])
        await post_status(
            client, "late-2", [A(status="GEEN_INSCHRIJVING", statusdatum="2027-04-01")]
        )
        assert ("GM0363", "GEEN_PLAATSING") not in await stored_types(running)
        async with running.runtime.sessions() as session:
            state = (await leerlingen.load_states(session, [BSN[0]]))[BSN[0]]
            n = await session.scalar(select(func.count()).select_from(aanmelding_statussen))
        assert state.aanmeldingen[0].current.statusdatum == date(2027, 8, 20)
        assert n == 2

    async def test_out_of_flow_is_flagged_for_operators(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """INGESCHREVEN → AANGEMELD is accepted and listed for operators (without BSN)."""
        await register(running, [(BSN[0], "0363", None)])
        await post_status(client, "flow-1", [A(status="INGESCHREVEN", statusdatum="2027-08-01")])
        with structlog.testing.capture_logs() as logs:
            await post_status(client, "flow-2", [A(status="AANGEMELD", statusdatum="2027-08-05")])
        [line] = [e for e in logs if e["event"] == "aanmeldstatus_buiten_flow"]
        assert line["aanmeldingId"] == "A-1" and line["instelling"] == "30RT"
        assert BSN[0] not in repr(line)
        async with running.runtime.sessions() as session:
            flagged = await leerlingen.list_buiten_flow(session)
        assert [(f.aanmelding_id, f.status) for f in flagged] == [("A-1", "AANGEMELD")]


class TestConcurrentMessages:
    async def test_concurrent_statuses_of_one_aanmelding(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Messages about one pupil received at the same time: none of their facts is lost and
        the current status is the one with the latest statusdatum."""
        await register(running, [(BSN[0], "0363", None)])
        days = ["2027-02-01", "2027-02-03", "2027-02-05", "2027-02-07"]
        statuses = ["AANGEMELD", "ONDERWIJSOVEREENKOMST_AANGEBODEN", "AANGEMELD", "INGESCHREVEN"]
        await asyncio.gather(
            *(
                post_status(client, f"cc-{n}", [A(status=status, statusdatum=day)])
                for n, (status, day) in enumerate(zip(statuses, days, strict=True))
            )
        )
        async with running.runtime.sessions() as session:
            state = (await leerlingen.load_states(session, [BSN[0]]))[BSN[0]]
        [aanmelding] = state.aanmeldingen
        assert len(aanmelding.history) == 4
        assert aanmelding.current.statusdatum == date(2027, 2, 7)
        assert aanmelding.current.status.value == "INGESCHREVEN"


class TestPeildatum:
    async def _pupils(self, client: httpx.AsyncClient, running: Running) -> None:
        await register(
            running,
            [(BSN[0], "0363", None), (BSN[1], "0599", None), (BSN[2], "0363", None)],
        )
        await post_prognose(
            client,
            "pd-prognose",
            [
                L(bsn=BSN[0]),  # no aanmelding: NIET_AANGEMELD
                L(bsn=BSN[1]),  # aanmelding exactly on 1 April: aangemeld
                L(bsn=BSN[2], geboortedatum="2004-04-01"),  # 22 at the prognose, 23 on 1 April
            ],
        )
        await post_status(
            client, "pd-status", [A(aanmelding_id="Q-1", bsn=BSN[1], statusdatum="2027-04-01")]
        )

    async def test_niet_aangemeld_once_with_boundaries(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Dry run writes nothing; the run signals only the pupil without aanmelding; a rerun
        adds nothing; Kafka gets it exactly once."""
        await self._pupils(client, running)
        dry = await run_peildatum(running.runtime, APRIL_1, dry_run=True)
        assert dry.counts() == {("GM0363", "NIET_AANGEMELD"): 1}
        assert ("GM0363", "NIET_AANGEMELD") not in await stored_types(running)

        first = await run_peildatum(running.runtime, APRIL_1)
        assert first.counts() == {("GM0363", "NIET_AANGEMELD"): 1}
        assert [s.bsn for s in first.new] == [BSN[0]]
        second = await run_peildatum(running.runtime, APRIL_1)
        assert second.new == [] and second.already == 1

        types = await types_on(running, settings, "GM0363", 3)
        assert sorted(types) == ["NIET_AANGEMELD", "PROGNOSE", "PROGNOSE"]
        records = await consume_all(
            settings.kafka_bootstrap, topic_for(settings.topic_prefix, "GM0363")
        )
        doc = next(parse(r)[0] for r in records if text(parse(r)[0], "s:type") == "NIET_AANGEMELD")
        assert text(doc, "s:peildatum") == "2027-04-01"
        assert text(doc, "s:prognose/s:school/s:brin") == "25LX"

    async def test_niet_ingeschreven_on_teldatum(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """At the teldatum: every pupil of the transition without INGESCHREVEN is signalled;
        INGESCHREVEN exactly on the teldatum counts."""
        await register(running, [(BSN[0], "0363", None), (BSN[1], "0599", None)])
        await post_status(
            client,
            "tel-1",
            [
                A(aanmelding_id="T-1", bsn=BSN[0], statusdatum="2027-03-01"),
                A(aanmelding_id="T-2", bsn=BSN[1], statusdatum="2027-03-01"),
            ],
        )
        await post_status(
            client,
            "tel-2",
            [A(aanmelding_id="T-2", bsn=BSN[1], status="INGESCHREVEN", statusdatum="2027-10-01")],
        )
        result = await run_peildatum(running.runtime, OCT_1)
        assert result.counts() == {("GM0363", "NIET_INGESCHREVEN"): 1}

    async def test_cli_twice_and_dry_run(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """`koppelpunt peildatum --datum`: dry run writes nothing, the second run adds nothing."""
        await self._pupils(client, running)
        env = {
            "KOPPELPUNT_DATABASE_URL": settings.database_url,
            "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
            "KOPPELPUNT_TOPIC_PARTITIONS": "1",
            "KOPPELPUNT_LOG_JSON": "false",
        }

        def invoke(*args: str) -> str:
            result = run_cli(["peildatum", *args], env)
            assert result.exit_code == 0, result.output
            return result.output

        dry = await asyncio.to_thread(invoke, "--datum", "2027-04-01", "--dry-run")
        assert "GM0363\tNIET_AANGEMELD\t1" in dry and "nothing written" in dry
        assert ("GM0363", "NIET_AANGEMELD") not in await stored_types(running)
        first = await asyncio.to_thread(invoke, "--datum", "2027-04-01")
        assert "GM0363\tNIET_AANGEMELD\t1" in first
        second = await asyncio.to_thread(invoke, "--datum", "2027-04-01")
        assert "0 new signaleringen" in second
        await settled(running)
        types = await types_on(running, settings, "GM0363", 3)
        assert sorted(types) == ["NIET_AANGEMELD", "PROGNOSE", "PROGNOSE"]
        bad = await asyncio.to_thread(run_cli, ["peildatum", "--datum", "1-4-2027"], env)
        assert bad.exit_code != 0

    async def test_scheduler_runs_a_passed_peildatum_once(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The day after the peildatum the scheduler runs it and records that; not again."""
        await self._pupils(client, running)
        running.runtime.clock = lambda: datetime(2027, 4, 2, 6, 0, tzinfo=UTC)
        scheduler = Scheduler(running.runtime)
        await scheduler.tick()
        await scheduler.tick()
        async with running.runtime.sessions() as session:
            runs = (await session.execute(select(peildatum_runs))).all()
        assert [r.peildatum for r in runs] == [APRIL_1]
        assert (await stored_types(running)).count(("GM0363", "NIET_AANGEMELD")) == 1


class TestMoves:
    async def test_move_between_gemeenten(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Moved from Amsterdam to Rotterdam: OVERDRACHT to the new, VERHUISD to the old one,
        which learns nothing about the new gemeente."""
        await register(running, [(BSN[0], "0363", None), (BSN[0], "0599", date(2027, 3, 1))])
        await post_prognose(client, "mv-1", [L(bsn=BSN[0])])
        await post_status(client, "mv-2", [A(statusdatum="2027-03-05")])
        new = await types_on(running, settings, "GM0599", 2)
        assert sorted(new) == ["AANMELDSTATUS", "OVERDRACHT"]
        old_records = await records_on(
            settings.kafka_bootstrap, topic_for(settings.topic_prefix, "GM0363"), 2
        )
        assert [text(parse(r)[0], "s:type") for r in old_records] == ["PROGNOSE", "VERHUISD"]
        assert old_records[1].value is not None
        verhuisd = etree.fromstring(old_records[1].value)
        assert b"0599" not in old_records[1].value
        assert verhuisd.find("s:prognose", NS) is None
        assert verhuisd.find("s:aanmeldstatus", NS) is None
        # A late, older status (still Amsterdam on its date) is no move back.
        await post_status(client, "mv-3", [A(aanmelding_id="Z-9", statusdatum="2027-02-01")])
        assert (await stored_types(running)).count(("GM0599", "OVERDRACHT")) == 1
        assert (await stored_types(running)).count(("GM0363", "OVERDRACHT")) == 0

    async def test_herindeling_routes_to_successor(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """A BRP code dissolved by a herindeling (Appingedam 0003 → Eemsdelta 1979) routes to
        the successor; the dissolved gemeente's topic gets nothing."""
        await register(running, [(BSN[0], "0003", None)])
        await post_prognose(client, "hi-1", [L(bsn=BSN[0])])
        await run_peildatum(running.runtime, APRIL_1)
        await settled(running)
        assert sorted(await types_on(running, settings, "GM1979", 2)) == [
            "NIET_AANGEMELD",
            "PROGNOSE",
        ]
        assert all(g == "GM1979" for g, _ in await stored_types(running))


class TestParked:
    async def test_lookup_down_then_up_publishes_once(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Lookup down: parked, nothing published; up again: decided and published once."""
        await register(running, [(BSN[0], "0363", None)])
        flaky = FlakyLookup(running.runtime.lookup)
        running.runtime.lookup = flaky
        receipt = await post_status(
            client, "pk-1", [A(status="INGETROKKEN", statusdatum="2027-03-01")]
        )
        assert receipt["geparkeerd"] == 1 and receipt["aantalSignaleringen"] == 0
        async with running.runtime.sessions() as session:
            parked = await parked_store.list_parked(session)
        assert [(p.bericht_id, p.record_index) for p in parked] == [("pk-1", 0)]

        still = await retry_parked(running.runtime)
        assert (still.decided, still.still_parked) == (0, 1)

        flaky.down = False
        await Scheduler(running.runtime).tick()  # the automatic retry
        again = await retry_parked(running.runtime)
        assert (again.decided, again.still_parked, again.signaleringen) == (0, 0, 0)
        async with running.runtime.sessions() as session:
            assert await parked_store.count_parked(session) == 0
        await settled(running)
        types = await types_on(running, settings, "GM0363", 2)
        assert sorted(types) == ["AANMELDSTATUS", "GEEN_PLAATSING"]

    async def test_peildatum_with_lookup_down_runs_again(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Lookup down during a peildatum run: pupils skipped and the run not recorded, so the
        scheduler runs it again; once the lookup is back the signalering comes, once."""
        await register(running, [(BSN[0], "0363", None)])
        await post_prognose(client, "pk-pd", [L(bsn=BSN[0])])
        flaky = FlakyLookup(running.runtime.lookup)
        running.runtime.lookup = flaky
        down = await run_peildatum(running.runtime, APRIL_1)
        assert (down.unavailable, down.new) == (1, [])
        async with running.runtime.sessions() as session:
            assert not await leerlingen.peildatum_ran(session, APRIL_1)
        flaky.down = False
        running.runtime.clock = lambda: datetime(2027, 4, 2, 6, 0, tzinfo=UTC)
        await Scheduler(running.runtime).tick()
        async with running.runtime.sessions() as session:
            assert await leerlingen.peildatum_ran(session, APRIL_1)
        assert (await stored_types(running)).count(("GM0363", "NIET_AANGEMELD")) == 1

    async def test_cli_parked_list_and_retry(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """`koppelpunt parked list` shows the record without BSN; `parked retry` decides it."""
        await register(running, [(BSN[0], "0363", None)])
        flaky = FlakyLookup(running.runtime.lookup)
        running.runtime.lookup = flaky
        await post_status(client, "pk-cli", [A()])
        env = {
            "KOPPELPUNT_DATABASE_URL": settings.database_url,
            "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
            "KOPPELPUNT_LOG_JSON": "false",
        }
        listed = await asyncio.to_thread(run_cli, ["parked", "list"], env)
        assert listed.exit_code == 0, listed.output
        assert "pk-cli\t0\taanmeldstatus" in listed.output and "1 parked records" in listed.output
        assert BSN[0] not in listed.output
        retried = await asyncio.to_thread(run_cli, ["parked", "retry"], env)
        assert retried.exit_code == 0, retried.output
        assert "decided 1, still parked 0" in retried.output
        await settled(running)
        assert await types_on(running, settings, "GM0363", 1) == ["AANMELDSTATUS"]
