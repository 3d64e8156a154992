"""Pupil state repository on a real database: round trip, resends, delivery-order property."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koppelpunt.model import (
    AanmeldstatusRecord,
    Leerling,
    Opleiding,
    PrognoseBericht,
    School,
    Status,
)
from koppelpunt.pipeline.derive import LastGemeente
from koppelpunt.pipeline.leerlingen import (
    Aanmelding,
    PrognoseFact,
    PupilState,
    StatusFact,
    add_prognose,
    add_status,
)
from koppelpunt.store import leerlingen
from koppelpunt.store._dialect import chunks
from koppelpunt.store.db import session_factory
from koppelpunt.store.tables import aanmelding_statussen, aanmeldingen, leerling_prognoses
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


async def reference_load_states(
    session: AsyncSession, bsns: Iterable[str]
) -> dict[str, PupilState]:
    """The former load_states (whole rows, attribute access), kept as the reference."""
    wanted = sorted(set(bsns))
    prognoses: dict[str, list[Any]] = defaultdict(list)
    current: dict[str, list[Any]] = defaultdict(list)
    history: dict[tuple[str, str], list[StatusFact]] = defaultdict(list)
    for chunk in chunks(wanted, leerlingen.BATCH):
        for row in await session.execute(
            select(leerling_prognoses).where(leerling_prognoses.c.bsn.in_(chunk))
        ):
            prognoses[row.bsn].append(row)
        for row in await session.execute(select(aanmeldingen).where(aanmeldingen.c.bsn.in_(chunk))):
            current[row.bsn].append(row)
        for row in await session.execute(
            select(aanmelding_statussen)
            .join(
                aanmeldingen,
                (aanmeldingen.c.instelling_brin == aanmelding_statussen.c.instelling_brin)
                & (aanmeldingen.c.aanmelding_id == aanmelding_statussen.c.aanmelding_id),
            )
            .where(aanmeldingen.c.bsn.in_(chunk))
        ):
            history[(row.instelling_brin, row.aanmelding_id)].append(
                StatusFact(Status(row.status), row.statusdatum, row.id, row.buiten_flow)
            )
    states: dict[str, PupilState] = {}
    for bsn in wanted:
        p_rows, a_rows = prognoses.get(bsn, []), current.get(bsn, [])
        if not p_rows and not a_rows:
            continue
        facts = tuple(
            PrognoseFact(r.schooljaar, School(r.brin, r.vestiging), r.onderwijssoort, r.verzonden)
            for r in sorted(p_rows, key=lambda r: r.schooljaar)
        )
        ams = tuple(
            Aanmelding(
                r.instelling_brin,
                r.aanmelding_id,
                Opleiding(r.crebo, r.niveau, r.leerweg),
                tuple(
                    sorted(
                        history[(r.instelling_brin, r.aanmelding_id)],
                        key=lambda f: (f.statusdatum, f.seq),
                    )
                ),
            )
            for r in a_rows
        )
        if a_rows:
            newest = max(a_rows, key=lambda r: r.statusdatum)
        else:
            newest = max(p_rows, key=lambda r: r.verzonden)
        states[bsn] = PupilState(bsn, newest.geboortedatum, newest.hoogste_diploma, facts, ams)
    return states


PUPILS = ["999990007", "999990019", "999990032", "999990044", "999990056"]
_ANY_PUPIL = st.sampled_from(PUPILS)
_DAY = st.dates(min_value=date(2027, 2, 1), max_value=date(2027, 2, 4))  # ties are common
_DIPLOMA = st.sampled_from([None, "vmbo-tl", "havo"])
_BORN = st.sampled_from([date(2010, 5, 13), date(2011, 1, 2)])


@st.composite
def _status_messages(draw: st.DrawFn) -> list[list[AanmeldstatusRecord | PrognoseBericht]]:
    """Messages of aanmeldstatussen and prognoses for a few pupils: several aanmeldingen each,
    ties on statusdatum, differing personal details, resends, any order."""
    messages: list[list[AanmeldstatusRecord | PrognoseBericht]] = []
    for _ in range(draw(st.integers(1, 4))):
        message: list[AanmeldstatusRecord | PrognoseBericht] = []
        for _ in range(draw(st.integers(1, 6))):
            bsn = draw(_ANY_PUPIL)
            if draw(st.integers(0, 4)) == 0:
                message.append(
                    PrognoseBericht(
                        bsn,  # bericht_id unused here: carries the BSN for the test
                        datetime(2027, 1, draw(st.integers(10, 12)), tzinfo=UTC),
                        School(draw(st.sampled_from(["25LX", "30RT"])), "01"),
                        draw(st.sampled_from(["2026-2027", "2027-2028"])),
                        (),
                    )
                )
                continue
            message.append(
                AanmeldstatusRecord(
                    index=0,
                    aanmelding_id=f"{bsn}-{draw(st.integers(1, 3))}",
                    leerling=Leerling(bsn, None, draw(_BORN)),
                    instelling_brin="30RT",
                    opleiding=Opleiding(draw(st.sampled_from(["25180", "25999"])), 2, "BOL"),
                    status=draw(st.sampled_from(list(Status))),
                    statusdatum=draw(_DAY),
                    hoogste_diploma=draw(_DIPLOMA),
                    latende_school_brin=None,
                )
            )
        messages.append(message)
    return messages


class TestLoadStates:
    @pytest.mark.parametrize("batch", [2, 500])
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(messages=_status_messages())
    async def test_load_states_equals_reference(
        self,
        engine: AsyncEngine,
        monkeypatch: pytest.MonkeyPatch,
        batch: int,
        messages: list[list[AanmeldstatusRecord | PrognoseBericht]],
    ) -> None:
        """Loading gives exactly the states the former whole-row loader gave (also across
        chunks, for pupils with only prognoses, and for unknown pupils)."""
        monkeypatch.setattr(leerlingen, "BATCH", batch)
        async with session_factory(engine).begin() as session:
            await session.execute(delete(aanmelding_statussen))
            await session.execute(delete(aanmeldingen))
            await session.execute(delete(leerling_prognoses))
        sessions = session_factory(engine)
        for message in messages:
            async with sessions.begin() as session:
                states = await leerlingen.load_states(session, PUPILS)
                before = dict(states)
                seq = leerlingen.max_seq(states) + 1
                for n, item in enumerate(message):
                    if isinstance(item, PrognoseBericht):
                        bsn = item.bericht_id
                        states[bsn], _ = add_prognose(
                            states.get(bsn), item, bsn, date(2010, 5, 13), "vmbo-tl", None
                        )
                    else:
                        assert item.leerling.bsn is not None
                        bsn = item.leerling.bsn
                        states[bsn], _ = add_status(states.get(bsn), item, seq + n)
                await leerlingen.save_states(session, before, states, bericht_pk=None, now=NOW)
        async with sessions() as session:
            wanted = [*PUPILS, "999990068"]  # the last has no state
            got = await leerlingen.load_states(session, wanted)
            expected = await reference_load_states(session, wanted)
        assert got == expected
        assert list(got) == list(expected)


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
