"""Derived signaleringen, decided without any service: boundaries, moves, herindelingen."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koppelpunt.model import (
    AanmeldstatusRecord,
    Leerling,
    Opleiding,
    School,
    SignaleringType,
    Status,
)
from koppelpunt.pipeline import derive
from koppelpunt.pipeline.derive import LastGemeente
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.leerlingen import PrognoseFact, PupilState, add_status
from koppelpunt.pipeline.rules import RuleSet, load_rules
from tests.strategies import status_deliveries

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 4, 2, 8, 0, tzinfo=UTC)
BSN = "999990007"
SJ = "2026-2027"
APRIL_1 = date(2027, 4, 1)
OCT_1 = date(2027, 10, 1)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(ROOT / "routing_rules")


@pytest.fixture(scope="module")
def gemeenten() -> GemeenteTable:
    return GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")


def rec(
    status: Status,
    day: date,
    aanmelding_id: str = "A-1",
    geboortedatum: date = date(2010, 5, 13),
) -> AanmeldstatusRecord:
    return AanmeldstatusRecord(
        index=0,
        aanmelding_id=aanmelding_id,
        leerling=Leerling(BSN, None, geboortedatum),
        instelling_brin="30RT",
        opleiding=Opleiding("25180", 2, "BOL"),
        status=status,
        statusdatum=day,
        hoogste_diploma=None,
        latende_school_brin=None,
    )


def pupil(
    *records: AanmeldstatusRecord,
    prognose: bool = True,
    geboortedatum: date = date(2010, 5, 13),
    diploma: str | None = None,
) -> PupilState:
    state = PupilState(
        BSN,
        geboortedatum,
        diploma,
        (
            (PrognoseFact(SJ, School("25LX", "01"), "vmbo-tl", datetime(2027, 1, 15, tzinfo=UTC)),)
            if prognose
            else ()
        ),
    )
    for seq, r in enumerate(records, start=1):
        state, _ = add_status(state, r, seq)
    return state


class TestTransition:
    def test_schooljaar_of(self, rules: RuleSet) -> None:
        """The teldatum closes a transition: it belongs to it, the next day starts the next."""
        assert derive.schooljaar_of(rules, date(2026, 10, 2)) == SJ
        assert derive.schooljaar_of(rules, OCT_1) == SJ
        assert derive.schooljaar_of(rules, date(2027, 10, 2)) == "2027-2028"
        assert derive.window(rules, SJ) == (date(2026, 10, 1), OCT_1)

    def test_checks_due(self, rules: RuleSet) -> None:
        """1 April: NIET_AANGEMELD; 1 October: NIET_INGESCHREVEN; other days nothing."""
        assert derive.checks_due(rules, APRIL_1) == [(SignaleringType.NIET_AANGEMELD, SJ)]
        assert derive.checks_due(rules, OCT_1) == [(SignaleringType.NIET_INGESCHREVEN, SJ)]
        assert derive.checks_due(rules, date(2027, 4, 2)) == []

    def test_disabled_type_is_not_due(self, rules: RuleSet) -> None:
        """A type switched off in routing_rules/ is never checked."""
        off = rules.model_copy(
            update={"signaleringen": {**rules.signaleringen, SignaleringType.NIET_AANGEMELD: False}}
        )
        assert derive.checks_due(off, APRIL_1) == []


class TestNietAangemeld:
    def test_prognose_without_aanmelding(self, rules: RuleSet) -> None:
        """A prognose and no aanmelding by the peildatum is a candidate."""
        found = derive.candidates([pupil()], rules, APRIL_1)
        assert [(c.soort, c.schooljaar) for c in found] == [(SignaleringType.NIET_AANGEMELD, SJ)]

    def test_status_exactly_on_the_peildatum_counts(self, rules: RuleSet) -> None:
        """An aanmelding with statusdatum on the peildatum itself means: aangemeld."""
        assert derive.candidates([pupil(rec(Status.AANGEMELD, APRIL_1))], rules, APRIL_1) == []

    def test_status_the_day_after_does_not_count(self, rules: RuleSet) -> None:
        """An aanmelding dated after the peildatum came too late."""
        state = pupil(rec(Status.AANGEMELD, date(2027, 4, 2)))
        assert len(derive.candidates([state], rules, APRIL_1)) == 1

    def test_withdrawn_aanmelding_still_counts_as_aangemeld(self, rules: RuleSet) -> None:
        """NIET_AANGEMELD asks whether there was an aanmelding; GEEN_PLAATSING covers the rest."""
        state = pupil(
            rec(Status.AANGEMELD, date(2027, 2, 1)), rec(Status.INGETROKKEN, date(2027, 3, 1))
        )
        assert derive.candidates([state], rules, APRIL_1) == []

    def test_turning_23_between_prognose_and_peildatum(self, rules: RuleSet) -> None:
        """Younger than 23 at the prognose, 23 on the peildatum: filtered on the peildatum."""
        assert len(derive.candidates([pupil(geboortedatum=date(2004, 4, 2))], rules, APRIL_1)) == 1
        assert derive.candidates([pupil(geboortedatum=date(2004, 4, 1))], rules, APRIL_1) == []

    def test_startkwalificatie_is_filtered(self, rules: RuleSet) -> None:
        """A pupil with a startkwalificatie is not signalled."""
        assert derive.candidates([pupil(diploma="havo")], rules, APRIL_1) == []

    def test_signalering_after_lookup(self, rules: RuleSet) -> None:
        """With a woongemeente: the signalering carries peildatum, schooljaar and prognose."""
        state = pupil()
        [c] = derive.candidates([state], rules, APRIL_1)
        s = derive.peildatum_signalering(c, state, "GM0363", rules, NOW)
        assert s is not None
        assert (s.type, s.gemeentecode, s.peildatum, s.schooljaar) == (
            SignaleringType.NIET_AANGEMELD,
            "GM0363",
            APRIL_1,
            SJ,
        )
        assert s.prognose is not None and s.prognose.school.brin == "25LX"
        assert derive.peildatum_signalering(c, state, None, rules, NOW) is None


class TestNietIngeschreven:
    def test_no_ingeschreven_on_teldatum(self, rules: RuleSet) -> None:
        """Aangemeld but not ingeschreven by the teldatum: the zomerlek."""
        state = pupil(rec(Status.AANGEMELD, date(2027, 3, 1)))
        found = derive.candidates([state], rules, OCT_1)
        assert [c.soort for c in found] == [SignaleringType.NIET_INGESCHREVEN]

    def test_ingeschreven_exactly_on_teldatum(self, rules: RuleSet) -> None:
        """INGESCHREVEN dated on the teldatum counts."""
        state = pupil(rec(Status.AANGEMELD, date(2027, 3, 1)), rec(Status.INGESCHREVEN, OCT_1))
        assert derive.candidates([state], rules, OCT_1) == []

    def test_aanmelding_without_prognose(self, rules: RuleSet) -> None:
        """An aanmelding alone makes a pupil part of the transition."""
        state = pupil(rec(Status.AANGEMELD, date(2027, 3, 1)), prognose=False)
        assert len(derive.candidates([state], rules, OCT_1)) == 1

    def test_status_shown_as_of_teldatum(self, rules: RuleSet) -> None:
        """The signalering shows each aanmelding's status as known on the teldatum."""
        state = pupil(
            rec(Status.AANGEMELD, date(2027, 3, 1)), rec(Status.INGESCHREVEN, date(2027, 10, 5))
        )
        [c] = derive.candidates([state], rules, OCT_1)
        s = derive.peildatum_signalering(c, state, "GM0363", rules, NOW)
        assert s is not None
        assert [a.status for a in s.aanmeldingen] == [Status.AANGEMELD]


class TestGeenPlaatsing:
    def test_only_aanmelding_withdrawn(self, rules: RuleSet) -> None:
        """The only aanmelding is withdrawn: GEEN_PLAATSING dated on its statusdatum."""
        state = pupil(rec(Status.AANGEMELD, date(2027, 2, 1)))
        state, applied = add_status(state, rec(Status.INGETROKKEN, date(2027, 3, 1)), 10)
        s = derive.geen_plaatsing(state, applied, rules, "GM0363", NOW)
        assert s is not None and s.type is SignaleringType.GEEN_PLAATSING
        assert s.peildatum == date(2027, 3, 1) and s.schooljaar == SJ

    def test_two_aanmeldingen_one_withdrawn(self, rules: RuleSet) -> None:
        """One of two withdrawn: the other is open, so nothing; both closed: GEEN_PLAATSING."""
        state = pupil(
            rec(Status.AANGEMELD, date(2027, 2, 1), "A-1"),
            rec(Status.AANGEMELD, date(2027, 2, 2), "B-2"),
        )
        state, applied = add_status(state, rec(Status.INGETROKKEN, date(2027, 3, 1), "A-1"), 10)
        assert derive.geen_plaatsing(state, applied, rules, "GM0363", NOW) is None
        state, applied = add_status(
            state, rec(Status.GEEN_INSCHRIJVING, date(2027, 3, 5), "B-2"), 11
        )
        s = derive.geen_plaatsing(state, applied, rules, "GM0363", NOW)
        assert s is not None and len(s.aanmeldingen) == 2

    def test_late_older_status_yields_nothing(self, rules: RuleSet) -> None:
        """INGESCHREVEN is current; a late GEEN_INSCHRIJVING dated earlier signals nothing."""
        state = pupil(rec(Status.INGESCHREVEN, date(2027, 8, 1)))
        state, applied = add_status(state, rec(Status.GEEN_INSCHRIJVING, date(2027, 4, 1)), 10)
        assert derive.geen_plaatsing(state, applied, rules, "GM0363", NOW) is None

    @settings(max_examples=150, deadline=None)
    @given(status_deliveries(), st.randoms(use_true_random=False))
    def test_resends_never_add_a_signalering(
        self, records: list[AanmeldstatusRecord], rnd: random.Random
    ) -> None:
        """Delivering with resends yields exactly the GEEN_PLAATSING ids of delivering once."""
        rules = load_rules(ROOT / "routing_rules")

        def ids(delivery: list[AanmeldstatusRecord]) -> set[str]:
            state: PupilState | None = None
            found: set[str] = set()
            for seq, r in enumerate(delivery, start=1):
                state, applied = add_status(state, r, seq)
                s = derive.geen_plaatsing(state, applied, rules, "GM0363", NOW)
                if s is not None:
                    found.add(s.signalering_id)
            return found

        order = list(records)
        rnd.shuffle(order)
        resent = list(order)
        for _ in range(len(order)):
            resent.insert(rnd.randrange(len(resent) + 1), rnd.choice(order))
        # A resend only counts if it repeats something already delivered.
        first: list[AanmeldstatusRecord] = []
        for r in resent:
            if r not in first:
                first.append(r)
        assert ids(resent) == ids(first)


class TestMoves:
    def test_move_gives_overdracht_and_verhuisd(
        self, rules: RuleSet, gemeenten: GemeenteTable
    ) -> None:
        """New gemeente: OVERDRACHT with the state; old one: VERHUISD without any details."""
        state = pupil(rec(Status.AANGEMELD, date(2027, 2, 1)))
        found, last = derive.moves(
            state,
            BSN,
            state.geboortedatum,
            LastGemeente("GM0363", date(2027, 1, 15)),
            "GM0599",
            date(2027, 3, 1),
            gemeenten,
            rules,
            NOW,
            NOW.date(),
        )
        by_type = {s.type: s for s in found}
        assert set(by_type) == {SignaleringType.OVERDRACHT, SignaleringType.VERHUISD}
        over, weg = by_type[SignaleringType.OVERDRACHT], by_type[SignaleringType.VERHUISD]
        assert over.gemeentecode == "GM0599" and over.prognose is not None
        assert [a.aanmelding_id for a in over.aanmeldingen] == ["A-1"]
        assert weg.gemeentecode == "GM0363"
        assert weg.prognose is None and weg.aanmeldingen == () and weg.schooljaar is None
        assert last == LastGemeente("GM0599", date(2027, 3, 1))

    def test_same_gemeente_is_no_move(self, rules: RuleSet, gemeenten: GemeenteTable) -> None:
        """The same gemeente again: nothing to signal."""
        found, _ = derive.moves(
            None,
            BSN,
            date(2010, 5, 13),
            LastGemeente("GM0363", date(2027, 1, 15)),
            "GM0363",
            date(2027, 3, 1),
            gemeenten,
            rules,
            NOW,
            NOW.date(),
        )
        assert found == []

    def test_older_fact_is_no_move(self, rules: RuleSet, gemeenten: GemeenteTable) -> None:
        """A late fact about an earlier date says nothing about where the pupil lives now."""
        found, last = derive.moves(
            None,
            BSN,
            date(2010, 5, 13),
            LastGemeente("GM0599", date(2027, 3, 1)),
            "GM0363",
            date(2027, 2, 1),
            gemeenten,
            rules,
            NOW,
            NOW.date(),
        )
        assert found == [] and last is None

    def test_herindeling_is_no_move(self, rules: RuleSet, gemeenten: GemeenteTable) -> None:
        """Molenwaard (1927) merged into Molenlanden (1978) on 2019-01-01: not a move."""
        found, last = derive.moves(
            None,
            BSN,
            date(2001, 5, 13),
            LastGemeente("GM1927", date(2018, 6, 1)),
            "GM1978",
            date(2019, 3, 1),
            gemeenten,
            rules,
            datetime(2019, 3, 2, tzinfo=UTC),
            date(2019, 3, 2),
        )
        assert found == [] and last == LastGemeente("GM1978", date(2019, 3, 1))


class TestRerun:
    @settings(max_examples=50, deadline=None)
    @given(status_deliveries())
    def test_peildatum_rerun_gives_the_same_ids(self, records: list[AanmeldstatusRecord]) -> None:
        """Running a check twice derives the same signalering ids: nothing new the second time."""
        rules = load_rules(ROOT / "routing_rules")
        state = pupil(*[r for r in records])
        for day in (APRIL_1, OCT_1):
            runs = []
            for _ in range(2):
                runs.append(
                    {
                        s.signalering_id
                        for c in derive.candidates([state], rules, day)
                        if (s := derive.peildatum_signalering(c, state, "GM0363", rules, NOW))
                    }
                )
            assert runs[0] == runs[1]
