"""Pupil state as pure values: current status, late statuses, out-of-flow flags, properties."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from koppelpunt.model import AanmeldstatusRecord, Leerling, Opleiding, School, Status
from koppelpunt.pipeline.leerlingen import (
    PrognoseFact,
    PupilState,
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
