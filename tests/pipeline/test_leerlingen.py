"""Pupil state as pure values: current status, late statuses, out-of-flow flags, properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from koppelpunt.model import (
    AanmeldstatusRecord,
    Leerling,
    Opleiding,
    PrognoseBericht,
    School,
    Status,
)
from koppelpunt.pipeline.leerlingen import (
    Aanmelding,
    PrognoseFact,
    PupilState,
    StatusApplied,
    StatusFact,
    add_prognose,
    add_status,
    legal,
    sort_history,
)
from tests.strategies import status_deliveries

BSN = "999990007"
OPL = Opleiding("25180", 2, "BOL")


def rec(
    status: Status, day: date, aanmelding_id: str = "A-1", brin: str = "30RT"
) -> AanmeldstatusRecord:
    return AanmeldstatusRecord(
        index=0,
        aanmelding_id=aanmelding_id,
        leerling=Leerling(BSN, None, date(2010, 5, 13)),
        instelling_brin=brin,
        opleiding=OPL,
        status=status,
        statusdatum=day,
        hoogste_diploma=None,
        latende_school_brin=None,
    )


def deliver(records: list[AanmeldstatusRecord]) -> PupilState | None:
    state: PupilState | None = None
    for seq, record in enumerate(records, start=1):
        state, _ = add_status(state, record, seq)
    return state


def summary(state: PupilState | None) -> dict[tuple[str, str], tuple[object, ...]]:
    """What must not depend on delivery order: current status and the set of facts."""
    if state is None:
        return {}
    return {
        a.key: (a.current.key, frozenset(f.key for f in a.history), a.buiten_flow)
        for a in state.aanmeldingen
    }


class TestCurrentStatus:
    def test_latest_statusdatum_is_current(self) -> None:
        """The status with the latest statusdatum is current, whatever arrived last."""
        state = deliver(
            [rec(Status.AANGEMELD, date(2027, 3, 1)), rec(Status.INGESCHREVEN, date(2027, 8, 1))]
        )
        assert state is not None
        assert state.aanmeldingen[0].current.status is Status.INGESCHREVEN

    def test_late_older_status_goes_to_history_only(self) -> None:
        """A status with an older statusdatum arriving late is kept but does not become current."""
        state = deliver([rec(Status.INGESCHREVEN, date(2027, 8, 1))])
        state, applied = add_status(state, rec(Status.GEEN_INSCHRIJVING, date(2027, 4, 1)), 9)
        a = state.aanmeldingen[0]
        assert a.current.status is Status.INGESCHREVEN
        assert [f.status for f in a.history] == [Status.GEEN_INSCHRIJVING, Status.INGESCHREVEN]
        assert applied.new and not applied.current

    def test_tie_latest_received_wins(self) -> None:
        """Two statuses on one statusdatum: the one received last is current."""
        day = date(2027, 5, 1)
        state = deliver([rec(Status.AANGEMELD, day), rec(Status.INGETROKKEN, day)])
        assert state is not None
        assert state.aanmeldingen[0].current.status is Status.INGETROKKEN

    def test_resend_is_not_new(self) -> None:
        """The same status and statusdatum again changes nothing."""
        state = deliver([rec(Status.AANGEMELD, date(2027, 3, 1))])
        again, applied = add_status(state, rec(Status.AANGEMELD, date(2027, 3, 1)), 5)
        assert again == state and not applied.new

    def test_status_on(self) -> None:
        """status_on gives the status known on a date, inclusive of that date."""
        state = deliver(
            [rec(Status.AANGEMELD, date(2027, 3, 1)), rec(Status.INGESCHREVEN, date(2027, 9, 1))]
        )
        assert state is not None
        a = state.aanmeldingen[0]
        assert a.status_on(date(2027, 2, 28)) is None
        assert a.status_on(date(2027, 3, 1)) is Status.AANGEMELD
        assert a.status_on(date(2027, 9, 1)) is Status.INGESCHREVEN


class TestFlow:
    def test_out_of_flow_transition_is_flagged(self) -> None:
        """INGESCHREVEN → AANGEMELD is accepted, stored and flagged."""
        state = deliver(
            [rec(Status.INGESCHREVEN, date(2027, 8, 1)), rec(Status.AANGEMELD, date(2027, 8, 5))]
        )
        assert state is not None
        a = state.aanmeldingen[0]
        assert a.current.status is Status.AANGEMELD
        assert a.buiten_flow
        assert [f.buiten_flow for f in a.history] == [False, True]

    def test_flags_do_not_depend_on_arrival_order(self) -> None:
        """A late status that fills a gap can clear a flag: flags follow the sorted history."""
        facts = sort_history([])
        assert facts == ()
        assert legal(None, Status.INGESCHREVEN)
        assert legal(Status.AANGEMELD, Status.AANGEMELD)
        assert not legal(Status.GEEN_INSCHRIJVING, Status.AANGEMELD)


class TestPrognose:
    def test_prognose_fact_equality(self) -> None:
        """Prognose facts are values (the store compares before/after)."""
        t = datetime(2027, 1, 15, tzinfo=UTC)
        assert PrognoseFact("2026-2027", School("25LX"), "vmbo-tl", t) == PrognoseFact(
            "2026-2027", School("25LX"), "vmbo-tl", t
        )


class TestProperties:
    @settings(max_examples=200, deadline=None)
    @given(status_deliveries(), st.randoms(use_true_random=False))
    def test_any_order_with_resends_equals_sorted_delivery(
        self, records: list[AanmeldstatusRecord], rnd: object
    ) -> None:
        """Random order plus resends gives the state of delivering them sorted by statusdatum."""
        import random

        assert isinstance(rnd, random.Random)
        shuffled = list(records)
        rnd.shuffle(shuffled)
        with_resends = shuffled + [rnd.choice(shuffled) for _ in range(len(shuffled) // 2)]
        rnd.shuffle(with_resends)
        # Ties are broken by arrival: sort the *actual* first arrivals stably by statusdatum.
        first_arrivals: list[AanmeldstatusRecord] = []
        for r in with_resends:
            if r not in first_arrivals:
                first_arrivals.append(r)
        in_order = sorted(first_arrivals, key=lambda r: r.statusdatum)
        assert summary(deliver(with_resends)) == summary(deliver(in_order))


# --- the incremental add_status/add_prognose against the full rebuild ------------------------


def reference_add_status(
    state: PupilState | None, record: AanmeldstatusRecord, seq: int
) -> tuple[PupilState, StatusApplied]:
    """The former add_status, kept as the reference: re-sorts and re-flags the whole history."""
    assert record.leerling.bsn is not None
    bsn = record.leerling.bsn
    if state is None:
        state = PupilState(bsn, record.leerling.geboortedatum, record.hoogste_diploma)
    key = (record.instelling_brin, record.aanmelding_id)
    existing = next((a for a in state.aanmeldingen if a.key == key), None)
    fact = StatusFact(record.status, record.statusdatum, seq)
    if existing is not None and any(f.key == fact.key for f in existing.history):
        return state, StatusApplied(bsn, key, new=False, current=False, buiten_flow=False)
    history = sort_history((*(existing.history if existing else ()), fact))
    placed = next(f for f in history if f.seq == seq)
    became_current = history[-1].seq == seq
    aanmelding = Aanmelding(
        record.instelling_brin,
        record.aanmelding_id,
        record.opleiding if became_current or existing is None else existing.opleiding,
        history,
    )
    others = tuple(a for a in state.aanmeldingen if a.key != key)
    latest = max((a.current.statusdatum for a in others), default=None)
    newest = latest is None or record.statusdatum >= latest
    state = replace(
        state,
        aanmeldingen=(*others, aanmelding),
        geboortedatum=record.leerling.geboortedatum if newest else state.geboortedatum,
        hoogste_diploma=record.hoogste_diploma if newest else state.hoogste_diploma,
    )
    return state, StatusApplied(bsn, key, True, became_current, placed.buiten_flow)


def reference_add_prognose(
    state: PupilState | None,
    bericht: PrognoseBericht,
    bsn: str,
    geboortedatum: date,
    onderwijssoort: str,
    hoogste_diploma: str | None,
) -> tuple[PupilState, bool]:
    """The former add_prognose, kept as the reference."""
    if state is None:
        state = PupilState(bsn, geboortedatum, hoogste_diploma)
    fact = PrognoseFact(bericht.schooljaar, bericht.school, onderwijssoort, bericht.verzonden)
    old = next((p for p in state.prognoses if p.schooljaar == bericht.schooljaar), None)
    if old is not None and old.verzonden > fact.verzonden:
        return state, False
    others = tuple(p for p in state.prognoses if p.schooljaar != bericht.schooljaar)
    state = replace(state, prognoses=(*others, fact))
    if not state.aanmeldingen:
        state = replace(state, geboortedatum=geboortedatum, hoogste_diploma=hoogste_diploma)
    return state, True


_DAYS = st.dates(min_value=date(2027, 2, 1), max_value=date(2027, 2, 6))  # ties are common
_OPLEIDINGEN = st.sampled_from([OPL, Opleiding("25999", 4, "BBL")])
_DIPLOMAS = st.sampled_from([None, "vmbo-tl", "havo"])


@st.composite
def _records(draw: st.DrawFn) -> AanmeldstatusRecord:
    return AanmeldstatusRecord(
        index=0,
        aanmelding_id=draw(st.sampled_from(["A-1", "A-2", "A-3"])),
        leerling=Leerling(BSN, None, draw(st.sampled_from([date(2010, 5, 13), date(2011, 1, 2)]))),
        instelling_brin=draw(st.sampled_from(["30RT", "25LX"])),
        opleiding=draw(_OPLEIDINGEN),
        status=draw(st.sampled_from(list(Status))),
        statusdatum=draw(_DAYS),
        hoogste_diploma=draw(_DIPLOMAS),
        latende_school_brin=None,
    )


@st.composite
def _stored_states(draw: st.DrawFn) -> PupilState:
    """A state as it might come from the store, including ones `add_status` would never leave:
    histories out of order or with stale flags (rows written by an older version)."""
    seqs = iter(draw(st.permutations(range(1, 16))))
    aanmeldingen = []
    for n in range(draw(st.integers(0, 3))):
        keys = draw(
            st.lists(
                st.tuples(st.sampled_from(list(Status)), _DAYS), min_size=1, max_size=4, unique=True
            )
        )
        facts = [StatusFact(s, d, next(seqs), draw(st.booleans())) for s, d in keys]
        if draw(st.booleans()):  # as the store loads it: sorted and correctly flagged
            facts = list(sort_history(facts))
        aanmeldingen.append(Aanmelding("30RT", f"A-{n}", draw(_OPLEIDINGEN), tuple(facts)))
    prognoses = tuple(
        PrognoseFact(sj, School("25LX", "01"), "vmbo-tl", datetime(2027, 1, day, tzinfo=UTC))
        for sj, day in draw(
            st.dictionaries(st.sampled_from(["2026-2027", "2027-2028"]), st.integers(10, 20))
        ).items()
    )
    return PupilState(BSN, date(2010, 5, 13), draw(_DIPLOMAS), prognoses, tuple(aanmeldingen))


class TestIncrementalEqualsFullRebuild:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_records(), min_size=1, max_size=12), st.randoms(use_true_random=False))
    def test_add_status_equals_reference(
        self, records: list[AanmeldstatusRecord], rnd: object
    ) -> None:
        """Statuses in any order, with ties and resends: the same state and StatusApplied as
        the full rebuild, after every step."""
        import random

        assert isinstance(rnd, random.Random)
        delivered = records + [rnd.choice(records) for _ in range(len(records) // 3)]
        rnd.shuffle(delivered)
        fast: PupilState | None = None
        ref: PupilState | None = None
        for seq, record in enumerate(delivered, start=1):
            fast, applied = add_status(fast, record, seq)
            ref, expected = reference_add_status(ref, record, seq)
            assert applied == expected
            assert fast == ref

    @settings(max_examples=300, deadline=None)
    @given(_stored_states(), st.lists(_records(), min_size=1, max_size=4))
    def test_add_status_on_stored_state_equals_reference(
        self, state: PupilState, records: list[AanmeldstatusRecord]
    ) -> None:
        """From any loaded state (even one with unsorted or stale-flagged history) the same
        result as the full rebuild."""
        fast, ref = state, state
        for seq, record in enumerate(records, start=100):
            fast, applied = add_status(fast, record, seq)
            ref, expected = reference_add_status(ref, record, seq)
            assert applied == expected
            assert fast == ref

    @settings(max_examples=200, deadline=None)
    @given(
        _stored_states(),
        st.lists(
            st.tuples(
                st.sampled_from(["2026-2027", "2027-2028"]),
                st.integers(5, 25),
                _DIPLOMAS,
                st.sampled_from(["vmbo-tl", "havo"]),
            ),
            min_size=1,
            max_size=5,
        ),
        st.booleans(),
    )
    def test_add_prognose_equals_reference(
        self,
        state: PupilState,
        prognoses: list[tuple[str, int, str | None, str]],
        from_scratch: bool,
    ) -> None:
        """Prognoses in any order, older and newer: the same state and answer as before."""
        fast: PupilState | None = None if from_scratch else state
        ref: PupilState | None = fast
        for schooljaar, day, diploma, soort in prognoses:
            bericht = PrognoseBericht(
                "b", datetime(2027, 1, day, tzinfo=UTC), School("25LX"), schooljaar, ()
            )
            born = date(2010, 1, day)
            fast, replaced = add_prognose(fast, bericht, BSN, born, soort, diploma)
            ref, expected = reference_add_prognose(ref, bericht, BSN, born, soort, diploma)
            assert replaced == expected
            assert fast == ref
