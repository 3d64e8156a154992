"""Repository for signaleringen and the outbox the relay publishes from."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koppelpunt.store.db import session_factory
from koppelpunt.store.outbox import (
    add_signaleringen,
    backlog,
    backoff_seconds,
    claim_pending,
    get_signaleringen_for_bericht,
    mark_failed,
    mark_published,
    oldest_unpublished,
)
from koppelpunt.store.tables import outbox
from tests.db_fixtures import postgres_only

from .helpers import T0, add_test_bericht, signalering


async def _outbox_order(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(outbox.c.signalering_id).order_by(outbox.c.id)))


class TestAddSignaleringen:
    async def test_inserts_in_input_order(self, session: AsyncSession) -> None:
        """All new ids are returned and the outbox follows the input order."""
        pk = await add_test_bericht(session, "B-1")
        ids = ["s-c", "s-a", "s-b"]
        assert await add_signaleringen(session, [signalering(i, bericht_pk=pk) for i in ids]) == ids
        await session.commit()
        assert await _outbox_order(session) == ids
        stored = await get_signaleringen_for_bericht(session, pk)
        assert [s.signalering_id for s in stored] == ids
        first = stored[0]
        assert first.headers == [("type", "AANMELDSTATUS"), ("signaleringId", "s-c")]
        assert first.payload == b"<signalering id='s-c'/>"
        assert first.created_at == T0 and first.created_at.tzinfo == UTC
        assert (first.published_at, first.attempts, first.bericht_pk) == (None, 0, pk)

    async def test_skips_existing_ids(self, session: AsyncSession) -> None:
        """Ids stored before (or twice in one call) are skipped; the rest keep their order."""
        await add_signaleringen(session, [signalering("s-2"), signalering("s-4")])
        items = [signalering(i) for i in ["s-5", "s-2", "s-3", "s-4", "s-1", "s-3"]]
        assert await add_signaleringen(session, items) == ["s-5", "s-3", "s-1"]
        assert await _outbox_order(session) == ["s-2", "s-4", "s-5", "s-3", "s-1"]
        assert await backlog(session) == 5

    async def test_empty_input(self, session: AsyncSession) -> None:
        """No signaleringen, nothing stored."""
        assert await add_signaleringen(session, []) == []

    async def test_ten_thousand_fast(self, session: AsyncSession) -> None:
        """10,000 signaleringen of one message are stored quickly and in order."""
        items = [signalering(f"s-{i:05d}") for i in range(10_000)]
        started = time.perf_counter()
        inserted = await add_signaleringen(session, items)
        await session.commit()
        elapsed = time.perf_counter() - started
        assert inserted == [item.signalering_id for item in items]
        assert await _outbox_order(session) == inserted
        assert elapsed < 5, f"10,000 signaleringen took {elapsed:.2f}s"

    @postgres_only
    async def test_concurrent_insert_of_same_id(self, engine: AsyncEngine) -> None:
        """Two transactions storing the same id: the second waits and then skips it."""
        factory = session_factory(engine)
        async with factory() as first, factory() as second:
            assert await add_signaleringen(first, [signalering("s-1")]) == ["s-1"]
            waiting = asyncio.create_task(
                add_signaleringen(second, [signalering("s-1"), signalering("s-2")])
            )
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await first.commit()
            assert await asyncio.wait_for(waiting, 5) == ["s-2"]
            await second.commit()
            assert await backlog(second) == 2


class TestClaimAndMark:
    async def test_claim_publish(self, session: AsyncSession) -> None:
        """Claims come oldest first up to the limit; published items leave the backlog."""
        await add_signaleringen(session, [signalering(f"s-{i}", minutes=i) for i in range(5)])
        await session.commit()
        claimed = await claim_pending(session, limit=3, now=T0)
        assert [c.signalering_id for c in claimed] == ["s-0", "s-1", "s-2"]
        assert claimed[0].key == "999993653"
        assert claimed[0].topic == "vva.signalering.gm0363"
        assert claimed[0].headers == [("type", "AANMELDSTATUS"), ("signaleringId", "s-0")]
        await mark_published(session, [c.id for c in claimed], T0)
        await session.commit()
        assert await backlog(session) == 2
        oldest = await oldest_unpublished(session)
        assert oldest == T0 + timedelta(minutes=3) and oldest.tzinfo == UTC
        rest = await claim_pending(session, limit=10, now=T0)
        assert [c.signalering_id for c in rest] == ["s-3", "s-4"]
        await mark_published(session, [c.id for c in rest], T0)
        assert await backlog(session) == 0
        assert await oldest_unpublished(session) is None

    async def test_failed_backs_off(self, session: AsyncSession) -> None:
        """A failed item waits base * 2^attempts (capped) before it is claimed again."""
        await add_signaleringen(session, [signalering("s-0"), signalering("s-1")])
        claimed = await claim_pending(session, limit=10, now=T0)
        backoff = {"base_seconds": 10.0, "max_seconds": 25.0}
        await mark_failed(session, [claimed[0].id], error="broker down", now=T0, **backoff)
        await session.commit()
        assert [c.signalering_id for c in await claim_pending(session, limit=10, now=T0)] == ["s-1"]
        due = T0 + timedelta(seconds=10)
        again = await claim_pending(session, limit=10, now=due)
        assert [(c.signalering_id, c.attempts) for c in again] == [("s-0", 1), ("s-1", 0)]
        await mark_failed(session, [again[0].id], error="x" * 5000, now=due, **backoff)
        await session.commit()
        early = await claim_pending(session, limit=10, now=due + timedelta(seconds=19))
        assert [c.signalering_id for c in early] == ["s-1"]
        later = await claim_pending(session, limit=10, now=due + timedelta(seconds=20))
        assert [(c.signalering_id, c.attempts) for c in later] == [("s-0", 2), ("s-1", 0)]
        row = (await session.execute(select(outbox).where(outbox.c.id == again[0].id))).one()
        assert len(row.last_error) == 2000
        assert row.next_attempt_at == due + timedelta(seconds=20)
        assert row.next_attempt_at.tzinfo == UTC

    def test_backoff_capped(self) -> None:
        """The back-off doubles per attempt and never exceeds the maximum."""
        delays = [backoff_seconds(n, base_seconds=1, max_seconds=300) for n in (0, 1, 2, 8, 9, 500)]
        assert delays == [1, 2, 4, 256, 300, 300]

    async def test_published_clears_error(self, session: AsyncSession) -> None:
        """Publishing after a failure clears the error and the retry time."""
        await add_signaleringen(session, [signalering("s-0")])
        (item,) = await claim_pending(session, limit=1, now=T0)
        await mark_failed(session, [item.id], error="e", now=T0, base_seconds=1, max_seconds=1)
        await mark_published(session, [item.id], T0 + timedelta(seconds=1))
        row = (await session.execute(select(outbox))).one()
        assert (row.last_error, row.next_attempt_at, row.attempts) == (None, None, 1)
        assert row.published_at == T0 + timedelta(seconds=1)

    @postgres_only
    async def test_concurrent_claims_are_disjoint(self, engine: AsyncEngine) -> None:
        """Two relays claiming at the same time get different rows (FOR UPDATE SKIP LOCKED)."""
        factory = session_factory(engine)
        async with factory() as setup:
            await add_signaleringen(setup, [signalering(f"s-{i}") for i in range(10)])
            await setup.commit()
        async with factory() as first, factory() as second:
            a = await claim_pending(first, limit=4, now=T0)
            b = await claim_pending(second, limit=10, now=T0)
            assert [c.signalering_id for c in a] == [f"s-{i}" for i in range(4)]
            assert [c.signalering_id for c in b] == [f"s-{i}" for i in range(4, 10)]
            await mark_published(second, [c.id for c in b], T0)
            await second.commit()
            await first.rollback()
        async with factory() as after:
            left = await claim_pending(after, limit=10, now=T0)
            assert [c.signalering_id for c in left] == [f"s-{i}" for i in range(4)]
