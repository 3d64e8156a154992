"""Each receipt is written once, by its message's INSERT, with its final count.

A receipt's count of signaleringen is known only once the pupils' state is derived and the
ids stored before are known; both are found before the message is stored, so no receipt is
corrected afterwards. Checked on the statements the real engine runs (SQLAlchemy's
`before_cursor_execute`): no UPDATE of `berichten`, for a lone message and for a group, with
derived signaleringen (a move) and with an id stored before (the same status under a new
berichtId); and the receipt stored is the one answered. On the real database (SQLite, or
PostgreSQL with KOPPELPUNT_DATABASE_URL).

The reads that decide a receipt stay valid until the commit: a concurrent writer holding the
pupil (SQLite: the database's write lock; PostgreSQL: the pupil's advisory lock) that stores a
signalering of the message meanwhile is seen, not counted again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, select

from koppelpunt.app.receive import ReceiptRaceError, receive
from koppelpunt.config import Settings
from koppelpunt.model import Parsed, Soort
from koppelpunt.pipeline import run
from koppelpunt.pipeline.envelope import to_outbox
from koppelpunt.pipeline.parse import parse_message
from koppelpunt.runtime import Runtime
from koppelpunt.store import berichten, leerlingen, outbox
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import berichten as berichten_table
from tests.messages import BSN, A, aanmeldstatus_xml

NOW = datetime(2027, 6, 1, 10, 0, tzinfo=UTC)
SENDER = "koppelpunt-mbo"
MOVER, STAYER, OTHER = BSN[0], BSN[1], BSN[2]
UPDATE_BERICHTEN = re.compile(r'^\s*UPDATE\s+"?berichten"?\s', re.IGNORECASE)


async def start(settings: Settings) -> Runtime:
    runtime = await Runtime.start(settings)
    runtime.clock = lambda: NOW
    async with runtime.sessions.begin() as session:
        await upsert_woonregister(
            session,
            [
                (MOVER, "0363", None),
                (MOVER, "0599", date(2027, 3, 15)),  # moves: both gemeenten are told
                (STAYER, "0599", None),
                (OTHER, "0363", None),
            ],
        )
    return runtime


@pytest_asyncio.fixture
async def lone(settings: Settings) -> AsyncIterator[Runtime]:
    """A transaction per message (a group of one)."""
    runtime = await start(settings.model_copy(update={"receive_group_size": 1}))
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest_asyncio.fixture
async def grouped(settings: Settings) -> AsyncIterator[Runtime]:
    """The group commit on: concurrent messages share a transaction."""
    runtime = await start(settings.model_copy(update={"receive_group_size": 32}))
    try:
        yield runtime
    finally:
        await runtime.close()


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL text of every statement the engine runs while the block runs."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def on_commit(_conn: Any) -> None:
        seen.append("COMMIT")

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "commit", on_commit)


def updates_of_berichten(seen: list[str]) -> list[str]:
    return [s for s in seen if UPDATE_BERICHTEN.match(s)]


async def stored_receipts(runtime: Runtime) -> dict[str, dict[str, Any]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(berichten_table.c.bericht_id, berichten_table.c.receipt)
        )
        return {bericht_id: receipt for bericht_id, receipt in rows}


FIRST = aanmeldstatus_xml("first", [A(bsn=MOVER, aanmelding_id="M-1", statusdatum="2027-03-01")])
# After the move: the status itself and the move, told to both gemeenten (derived).
MOVED = aanmeldstatus_xml(
    "moved",
    [
        A(
            bsn=MOVER,
            aanmelding_id="M-1",
            status="ONDERWIJSOVEREENKOMST_AANGEBODEN",
            statusdatum="2027-04-15",
        )
    ],
)
STATUS = aanmeldstatus_xml("status", [A(bsn=STAYER, aanmelding_id="S-1")])
# The same status under another berichtId: its signalering id is stored already.
SAME_STATUS = STATUS.replace(b"<berichtId>status<", b"<berichtId>status-again<")
PLAIN = aanmeldstatus_xml("plain", [A(bsn=OTHER, aanmelding_id="O-1")])


async def accept(runtime: Runtime, body: bytes) -> dict[str, Any]:
    received = await receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
    assert received.status_code == 202
    return received.receipt


class TestNoUpdateOfTheReceipt:
    async def test_a_lone_message_with_derived_signaleringen(self, lone: Runtime) -> None:
        await accept(lone, FIRST)
        with statements(lone) as seen:
            receipt = await accept(lone, MOVED)
        # its own status, and the move told to the old and the new gemeente
        assert receipt["aantalSignaleringen"] > 1
        assert updates_of_berichten(seen) == []
        assert (await stored_receipts(lone))["moved"] == receipt

    async def test_a_lone_message_whose_signalering_was_stored_before(self, lone: Runtime) -> None:
        assert (await accept(lone, STATUS))["aantalSignaleringen"] == 1
        with statements(lone) as seen:
            receipt = await accept(lone, SAME_STATUS)
        assert receipt["aantalSignaleringen"] == 0
        assert updates_of_berichten(seen) == []
        assert (await stored_receipts(lone))["status-again"] == receipt

    async def test_a_group(self, grouped: Runtime) -> None:
        """Three messages in one transaction: derived signaleringen, an id stored before, and
        one with neither."""
        await accept(grouped, FIRST)
        await accept(grouped, STATUS)
        with statements(grouped) as seen:
            receipts = await asyncio.gather(
                *(accept(grouped, body) for body in (MOVED, SAME_STATUS, PLAIN))
            )
        assert seen.count("COMMIT") < 3, "the messages were not grouped"
        assert receipts[0]["aantalSignaleringen"] > 1
        assert receipts[1]["aantalSignaleringen"] == 0
        assert receipts[2]["aantalSignaleringen"] == 1
        assert updates_of_berichten(seen) == []
        stored = await stored_receipts(grouped)
        assert [stored["moved"], stored["status-again"], stored["plain"]] == receipts

    async def test_a_lone_message_takes_the_lock_before_reading_state(self, lone: Runtime) -> None:
        """SQLite: the write transaction's first statement is a write (the verwerkingenlog
        rows), which takes the write lock before the pupil state is read (reads before the
        first write would take no lock, and another writer could make them stale)."""
        if lone.engine.dialect.name != "sqlite":
            pytest.skip("SQLite's write lock")
        with statements(lone) as seen:
            await accept(lone, PLAIN)
        first_write = next(n for n, s in enumerate(seen) if s.lstrip().startswith("INSERT"))
        first_state_read = next(
            n for n, s in enumerate(seen) if "FROM leerling_prognoses" in s and "SELECT" in s
        )
        assert "INTO verwerkingenlog" in seen[first_write]
        assert first_write < first_state_read

    async def test_without_verwerkingenlog_rows_the_lock_is_taken_by_itself(
        self, lone: Runtime
    ) -> None:
        """SQLite: a message whose every record is rejected has no verwerkingenlog rows; its
        transaction starts with BEGIN IMMEDIATE."""
        if lone.engine.dialect.name != "sqlite":
            pytest.skip("SQLite's write lock")
        body = aanmeldstatus_xml("rejected", [A(bsn="999990008", aanmelding_id="R-9")])
        with statements(lone) as seen:
            receipt = await accept(lone, body)
        assert len(receipt["afgewezen"]) == 1
        first_write = next(
            n for n, s in enumerate(seen) if s.lstrip().startswith(("INSERT", "BEGIN"))
        )
        assert seen[first_write] == "BEGIN IMMEDIATE"


class TestAConcurrentWriter:
    async def test_a_signalering_stored_meanwhile_is_not_counted(
        self, lone: Runtime, settings: Settings
    ) -> None:
        """Another process holds the pupil and stores the message's signalering while the
        message is between its lookup and its writes: the receipt, written once, says 0."""
        body = aanmeldstatus_xml("meanwhile", [A(bsn=OTHER, aanmelding_id="O-9")])
        parsed = parse_message(body, Soort.AANMELDSTATUS, lone.schemas)
        assert isinstance(parsed, Parsed)
        found = await lone.lookup.lookup(run.lookups_needed(parsed, lone.rules))
        verwerking = run.decide(parsed, lone.rules, lone.gemeenten, found, NOW)
        (signalering,) = verwerking.signaleringen
        other = await Runtime.start(settings)  # its own engine: another process's connections
        looked_up = asyncio.Event()
        inner = lone.lookup

        class Paused:
            shares_session = inner.shares_session

            async def lookup(self, keys: Any, session: Any = None) -> Any:
                result = await inner.lookup(keys, session)
                looked_up.set()
                return result

        lone.lookup = Paused()
        try:
            async with other.sessions() as writer:
                await writer.begin()
                await leerlingen.lock_pupils(writer, [OTHER])
                await outbox.add_signaleringen(
                    writer, [to_outbox(lone.settings.topic_prefix, signalering, None)]
                )
                task = asyncio.create_task(accept(lone, body))
                await looked_up.wait()
                # Let the message run up to where it waits for the writer's lock.
                for _ in range(20):
                    await asyncio.sleep(0.01)
                assert not task.done()
                await writer.commit()
            receipt = await task
        finally:
            lone.lookup = inner
            await other.close()
        assert receipt["aantalSignaleringen"] == 0
        async with lone.sessions() as session:
            stored = await berichten.find_bericht(session, "meanwhile")
        assert stored is not None
        assert stored.receipt == receipt

    async def test_a_signalering_stored_without_the_lock_fails_the_message(
        self, lone: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A writer that skipped the lock stored an id after the SELECT: the receipt would
        count a signalering its message did not store, so nothing is kept and the sender is
        asked to send again (503). Simulated by a SELECT that misses the stored id."""
        await accept(lone, STATUS)

        async def sees_nothing(_session: Any, _ids: Any) -> set[str]:
            return set()

        monkeypatch.setattr(leerlingen, "existing_signalering_ids", sees_nothing)
        with pytest.raises(ReceiptRaceError) as raised:
            await receive(lone, SAME_STATUS, Soort.AANMELDSTATUS, SENDER)
        assert raised.value.status == 503
        assert "status-again" not in await stored_receipts(lone)
        monkeypatch.undo()
        assert (await accept(lone, SAME_STATUS))["aantalSignaleringen"] == 0
