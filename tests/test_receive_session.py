"""One session per message on the receive path: idempotency check, lookup and writes share it.

Checked on the real database (SQLite, or PostgreSQL with KOPPELPUNT_DATABASE_URL): connections
checked out per message are counted with the pool's own events, per asyncio task, so the relay
running beside the test does not count.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.app.receive import receive
from koppelpunt.config import Settings
from koppelpunt.lookup.port import WoongemeenteLookup
from koppelpunt.model import Soort
from koppelpunt.pipeline.run import LookupKey, LookupResult
from koppelpunt.runtime import Runtime
from koppelpunt.store import berichten
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import berichten as berichten_table
from koppelpunt.store.tables import outbox
from tests.conftest import Running
from tests.db_fixtures import postgres_only
from tests.messages import BSN, ONDERWIJSNUMMER, A, L, aanmeldstatus_xml, prognose_xml

SENDER = "koppelpunt-mbo"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A transaction per message: these tests are about that one transaction (the group
    commit of concurrent messages is tested in tests/test_group_commit.py)."""
    return settings.model_copy(update={"receive_group_size": 1})


@contextmanager
def checkouts(runtime: Runtime) -> Iterator[Counter[Any]]:
    """Pool checkouts per asyncio task while the block runs, and connections held ("held":
    checkouts minus checkins in that task; a session closed by its context manager may give
    its connection back from another task, so only "held" at a given moment is meaningful)."""
    counts: Counter[Any] = Counter()
    pool = runtime.engine.sync_engine.pool

    def on_checkout(*_: Any) -> None:
        task = asyncio.current_task()
        counts[("out", task)] += 1
        counts[("held", task)] += 1

    def on_checkin(*_: Any) -> None:
        counts[("held", asyncio.current_task())] -= 1

    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)
    try:
        yield counts
    finally:
        event.remove(pool, "checkout", on_checkout)
        event.remove(pool, "checkin", on_checkin)


class Recording:
    """The real lookup, recording its calls; `remote` makes it act as a BRP over HTTP would
    (shares no session) and record how many connections its task held when it was asked."""

    def __init__(
        self,
        inner: WoongemeenteLookup,
        *,
        remote: bool = False,
        held: Counter[Any] | None = None,
        barrier: asyncio.Barrier | None = None,
    ) -> None:
        self.inner = inner
        self.shares_session = not remote
        self.calls: list[tuple[list[LookupKey], bool]] = []
        self.held_during_call: list[int] = []
        self._held = held
        self._barrier = barrier

    async def lookup(
        self, keys: Sequence[LookupKey], session: AsyncSession | None = None
    ) -> dict[LookupKey, LookupResult]:
        self.calls.append((list(keys), session is not None))
        if self._held is not None:
            self.held_during_call.append(self._held[("held", asyncio.current_task())])
        if self._barrier is not None:
            await self._barrier.wait()  # both deliveries have passed the idempotency check
        return await self.inner.lookup(keys, session if self.shares_session else None)


async def register(runtime: Runtime) -> None:
    async with runtime.sessions.begin() as session:
        await upsert_woonregister(session, [(BSN[0], "0363", None), (BSN[1], "0599", None)])


class TestOneSessionPerMessage:
    async def test_a_new_message_checks_out_one_connection(self, running: Running) -> None:
        """Idempotency check, local-register lookup and all writes: one pooled connection."""
        runtime = running.runtime
        await register(runtime)
        body = aanmeldstatus_xml("one-1", [A(bsn=BSN[0]), A(bsn=BSN[1], aanmelding_id="X-2")])
        with checkouts(runtime) as counts:
            received = await receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
            task = asyncio.current_task()
        assert received.status_code == 202
        assert received.receipt["aantalSignaleringen"] == 2
        assert counts[("out", task)] == 1

    async def test_the_local_lookup_reads_through_the_callers_session(
        self, running: Running
    ) -> None:
        """The register lookup is handed the message's session and answers from it."""
        runtime = running.runtime
        await register(runtime)
        recording = Recording(runtime.lookup)
        runtime.lookup = recording
        body = aanmeldstatus_xml("one-2", [A(bsn=BSN[0])])
        received = await receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
        assert received.status_code == 202
        assert received.receipt["aantalSignaleringen"] == 1
        assert [with_session for _, with_session in recording.calls] == [True]

    async def test_a_resend_does_no_lookup(self, running: Running) -> None:
        """An identical resend is answered from the stored receipt: no lookup, one connection."""
        runtime = running.runtime
        await register(runtime)
        recording = Recording(runtime.lookup)
        runtime.lookup = recording
        body = aanmeldstatus_xml("one-3", [A(bsn=BSN[0])])
        first = await receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
        with checkouts(runtime) as counts:
            again = await receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
            task = asyncio.current_task()
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.receipt == first.receipt
        assert len(recording.calls) == 1  # only the first delivery looked up
        assert counts[("out", task)] == 1

    async def test_a_remote_lookup_runs_with_no_connection_held(self, running: Running) -> None:
        """A lookup that shares no session (the BRP over HTTP) is asked outside any
        transaction: the message's connection was given back first, and another is taken
        for the writes."""
        runtime = running.runtime
        await register(runtime)
        with checkouts(runtime) as counts:
            recording = Recording(runtime.lookup, remote=True, held=counts)
            runtime.lookup = recording
            body = aanmeldstatus_xml("one-4", [A(bsn=BSN[0])])
            received = await receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
            task = asyncio.current_task()
        assert received.status_code == 202
        assert received.receipt["aantalSignaleringen"] == 1
        assert [with_session for _, with_session in recording.calls] == [False]
        assert recording.held_during_call == [0]
        # check + writes, and the one the wrapped register lookup opens for itself
        assert counts[("out", task)] == 3


class TestConcurrentDeliveries:
    async def test_two_identical_deliveries_racing_store_once(self, running: Running) -> None:
        """Both pass the idempotency check before either stores: the unique berichtId lets one
        win (202); the other is answered as a resend (200, the same receipt)."""
        runtime = running.runtime
        await register(runtime)
        runtime.lookup = Recording(runtime.lookup, barrier=asyncio.Barrier(2))
        body = aanmeldstatus_xml("race-1", [A(bsn=BSN[0])])
        results = await asyncio.gather(
            receive(runtime, body, Soort.AANMELDSTATUS, SENDER),
            receive(runtime, body, Soort.AANMELDSTATUS, SENDER),
        )
        assert sorted(r.status_code for r in results) == [200, 202]
        assert results[0].receipt == results[1].receipt
        assert results[0].receipt["aantalSignaleringen"] == 1
        async with runtime.sessions() as session:
            stored = await berichten.find_bericht(session, "race-1")
            count = await session.scalar(select(func.count()).select_from(berichten_table))
            outbox_rows = await session.scalar(select(func.count()).select_from(outbox))
        assert stored is not None
        assert stored.receipt == results[0].receipt
        assert count == 1
        assert outbox_rows == 1

    async def test_a_commit_between_check_and_write_is_no_conflict(self, running: Running) -> None:
        """Message A has read (check, lookup) when message B commits; A still writes (202):
        its reads held no snapshot that B's commit could invalidate (SQLite: no BEGIN before
        the first write; PostgreSQL: READ COMMITTED)."""
        runtime = running.runtime
        await register(runtime)
        inner = runtime.lookup
        a_has_read, b_done = asyncio.Event(), asyncio.Event()

        class Paused:
            shares_session = True

            async def lookup(
                self, keys: Sequence[LookupKey], session: AsyncSession | None = None
            ) -> dict[LookupKey, LookupResult]:
                found = await inner.lookup(keys, session)
                if any(bsn == BSN[0] for bsn, _ in keys):
                    a_has_read.set()
                    await b_done.wait()
                return found

        runtime.lookup = Paused()
        a = asyncio.create_task(
            receive(
                runtime, aanmeldstatus_xml("ab-a", [A(bsn=BSN[0])]), Soort.AANMELDSTATUS, SENDER
            )
        )
        await a_has_read.wait()
        b = await receive(
            runtime,
            aanmeldstatus_xml("ab-b", [A(bsn=BSN[1], aanmelding_id="X-2")]),
            Soort.AANMELDSTATUS,
            SENDER,
        )
        b_done.set()
        assert b.status_code == 202
        assert (await a).status_code == 202
        async with runtime.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(berichten_table))
        assert count == 2


class TestRecordCounts:
    async def test_records_counted_per_outcome(self, running: Running) -> None:
        """koppelpunt_records_total moves by one per record and outcome, over two messages."""
        runtime = running.runtime
        async with runtime.sessions.begin() as session:
            await upsert_woonregister(session, [(BSN[0], "0363", None), (BSN[1], "1999", None)])
        records = [
            L(bsn=BSN[0]),  # doorgestuurd
            L(bsn=BSN[1]),  # RNI: geenWoongemeente
            L(bsn=BSN[2], geboortedatum="2000-01-01"),  # leeftijd
            L(bsn=None, onderwijsnummer=ONDERWIJSNUMMER),  # geenBsn
            L(bsn="999990008"),  # elfproef fails: afgewezen
            L(bsn=BSN[4]),  # not in the register: geenWoongemeente
        ]
        for bericht_id in ("cnt-1", "cnt-2"):
            received = await receive(
                runtime, prognose_xml(bericht_id, records), Soort.PROGNOSE, "koppelpunt-vo"
            )
            assert received.status_code == 202

        def value(outcome: str) -> float | None:
            return runtime.metrics.registry.get_sample_value(
                "koppelpunt_records_total", {"soort": "prognose", "outcome": outcome}
            )

        assert value("doorgestuurd") == 2
        assert value("gefilterd:geenWoongemeente") == 4
        assert value("gefilterd:leeftijd") == 2
        assert value("gefilterd:geenBsn") == 2
        assert value("afgewezen") == 2
        assert value("geparkeerd") is None


@postgres_only
class TestPupilLockScope:
    async def test_a_locked_pupil_holds_up_only_the_state_part(self, running: Running) -> None:
        """PostgreSQL: while another transaction holds a pupil's advisory lock, a message
        about that pupil has already written its verwerkingenlog lines (the waiting backend
        holds that table's write lock) and nothing that depends on the pupil's state: no
        aanmelding, signalering or outbox row, and no bericht (its receipt counts the derived
        signaleringen: it is written once, after them) or beslissing (it refers to the
        bericht). Once the lock is released it completes (202)."""
        runtime = running.runtime
        await register(runtime)
        body = aanmeldstatus_xml("lock-1", [A(bsn=BSN[0])])
        async with runtime.engine.connect() as holder, runtime.engine.connect() as observer:
            # the key lock_pupils uses for this BSN, held until `holder` commits
            await holder.execute(text("SELECT pg_advisory_xact_lock(hashtext(:b))"), {"b": BSN[0]})
            task = asyncio.create_task(receive(runtime, body, Soort.AANMELDSTATUS, SENDER))
            waiting: list[int] = []
            for _ in range(400):
                waiting = list(
                    await observer.scalars(
                        text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                    )
                )
                if waiting or task.done():
                    break
                await asyncio.sleep(0.05)
            assert waiting, "the message never waited for the pupil's lock"
            written = set(
                await observer.scalars(
                    text(
                        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE l.pid = :pid AND l.mode = 'RowExclusiveLock' AND l.granted"
                    ),
                    {"pid": waiting[0]},
                )
            )
            assert "verwerkingenlog" in written
            assert not written & {
                "berichten",
                "beslissingen",
                "aanmeldingen",
                "aanmelding_statussen",
                "signaleringen",
                "outbox",
            }
            assert not task.done()
            await holder.commit()
        received = await asyncio.wait_for(task, 30)
        assert received.status_code == 202
        assert received.receipt["aantalSignaleringen"] == 1
