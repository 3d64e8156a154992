"""Pupil state repository on a real database: round trip, resends, delivery-order property."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from koppelpunt.model import AanmeldstatusRecord
from koppelpunt.pipeline.derive import LastGemeente
from koppelpunt.pipeline.leerlingen import add_status
from koppelpunt.store import leerlingen
from koppelpunt.store.db import session_factory
from koppelpunt.store.tables import aanmelding_statussen, aanmeldingen
from tests.strategies import status_deliveries

NOW = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
BSN = "999990007"


async def deliver_one_by_one(engine: AsyncEngine, records: list[AanmeldstatusRecord]) -> None:
    """Each record in its own transaction, as separate messages would be."""
    sessions = session_factory(engine)
    for record in records:
        async with sessions.begin() as session:
            states = await leerlingen.load_states(session, [BSN])
            before = dict(states)
            states[BSN], _ = add_status(states.get(BSN), record, leerlingen.max_seq(states) + 1)
            await leerlingen.save_states(session, before, states, bericht_pk=None, now=NOW)


async def snapshot(engine: AsyncEngine) -> dict[tuple[str, str], tuple[object, ...]]:
    async with session_factory(engine)() as session:
        state = (await leerlingen.load_states(session, [BSN])).get(BSN)
        rows = (await session.execute(select(aanmeldingen))).all()
    assert state is not None
    stored_current = {(r.instelling_brin, r.aanmelding_id): (r.status, r.statusdatum) for r in rows}
    loaded = {
        a.key: (
            a.current.key,
            frozenset(f.key for f in a.history),
            a.buiten_flow,
        )
        for a in state.aanmeldingen
    }
    # The denormalised current status equals the one derived from the history.
    assert stored_current == {k: (v[0][0].value, v[0][1]) for k, v in loaded.items()}  # type: ignore[index]
    return loaded


async def clear(engine: AsyncEngine) -> None:
    async with session_factory(engine).begin() as session:
        await session.execute(delete(aanmelding_statussen))
        await session.execute(delete(aanmeldingen))


class TestPupilStateStore:
    async def test_resend_stores_nothing_twice(self, engine: AsyncEngine) -> None:
        """A status delivered twice is one history row."""
        records = [r for r in [*_one()]]
        await deliver_one_by_one(engine, records + records)
        async with session_factory(engine)() as session:
            n = await session.scalar(select(func.count()).select_from(aanmelding_statussen))
        assert n == len(records)

    async def test_last_gemeente_round_trip(self, engine: AsyncEngine) -> None:
        """The last-signalled gemeente is stored and replaced per pupil."""
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            await leerlingen.save_last_gemeenten(
                session, {BSN: LastGemeente("GM0363", date(2027, 1, 15))}, NOW
            )
        async with sessions.begin() as session:
            await leerlingen.save_last_gemeenten(
                session, {BSN: LastGemeente("GM0599", date(2027, 3, 1))}, NOW
            )
        async with sessions() as session:
            found = await leerlingen.load_last_gemeenten(session, [BSN, "999990019"])
        assert found == {BSN: LastGemeente("GM0599", date(2027, 3, 1))}

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(records=status_deliveries(), seed=st.integers(0, 2**32 - 1))
    async def test_random_order_with_resends_equals_sorted_delivery(
        self, engine: AsyncEngine, records: list[AanmeldstatusRecord], seed: int
    ) -> None:
        """Stored state after random order + resends equals that of delivery sorted by date."""
        rnd = random.Random(seed)
        shuffled = list(records)
        rnd.shuffle(shuffled)
        resent = shuffled + [rnd.choice(shuffled) for _ in range(len(shuffled) // 2 + 1)]
        rnd.shuffle(resent)
        first: list[AanmeldstatusRecord] = []
        for r in resent:
            if r not in first:
                first.append(r)
        await clear(engine)
        await deliver_one_by_one(engine, resent)
        got = await snapshot(engine)
        await clear(engine)
        await deliver_one_by_one(engine, sorted(first, key=lambda r: r.statusdatum))
        assert got == await snapshot(engine)


def _one() -> list[AanmeldstatusRecord]:
    from koppelpunt.model import Leerling, Opleiding, Status

    return [
        AanmeldstatusRecord(
            index=0,
            aanmelding_id="A-1",
            leerling=Leerling(BSN, None, date(2010, 5, 13)),
            instelling_brin="30RT",
            opleiding=Opleiding("25180", 2, "BOL"),
            status=status,
            statusdatum=day,
            hoogste_diploma=None,
            latende_school_brin=None,
        )
        for status, day in (
            (Status.AANGEMELD, date(2027, 2, 1)),
            (Status.INGESCHREVEN, date(2027, 8, 1)),
        )
    ]
