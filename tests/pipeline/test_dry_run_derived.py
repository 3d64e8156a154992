"""The rules dry run with derived types: GEEN_PLAATSING, moves, NIET_AANGEMELD, NIET_INGESCHREVEN.

A small world (few pupils, few aanmeldingen, one transition) so that the derived types actually
fire: pupils get prognoses and several statuses, and move between gemeenten.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koppelpunt.model import (
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Leerling,
    Opleiding,
    Parsed,
    PrognoseBericht,
    PrognoseRecord,
    School,
    SignaleringType,
    Status,
)
from koppelpunt.pipeline.dry_run import DryRun, DryRunReport, lookups_needed_for_both
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rules import DagInJaar, LeeftijdRule, Peildata, RuleSet, load_rules
from koppelpunt.pipeline.run import LookupKey, LookupResult
from tests.messages import BSN

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "routing_rules")
TABLE = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
NOW = datetime(2027, 11, 1, 12, tzinfo=UTC)
SCHOOLJAAR = "2026-2027"
PERIOD = (date(2026, 10, 2), date(2027, 10, 31))  # covers 2027-04-01 and 2027-10-01
PUPILS = BSN[:4]
CODES = ["0363", "0599", None]
OPLEIDING = Opleiding("25180", 4, "BOL")

derived_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

statusdata = st.dates(min_value=date(2026, 10, 2), max_value=date(2027, 10, 1))


@st.composite
def prognose(draw: st.DrawFn, n: int) -> Parsed:
    pupils = draw(st.lists(st.sampled_from(PUPILS), min_size=1, max_size=3, unique=True))
    return Parsed(
        PrognoseBericht(
            bericht_id=f"p{n}",
            verzonden=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=n),
            school=School(brin="01AA", vestiging=None),
            schooljaar=SCHOOLJAAR,
            records=tuple(
                PrognoseRecord(
                    index=i,
                    leerling=Leerling(bsn, None, date(2010, 5, 1)),
                    onderwijssoort="VMBO-GL",
                    hoogste_diploma=None,
                )
                for i, bsn in enumerate(pupils)
            ),
        )
    )


@st.composite
def statussen(draw: st.DrawFn, n: int) -> Parsed:
    count = draw(st.integers(1, 3))
    records = []
    for i in range(count):
        bsn = draw(st.sampled_from(PUPILS))
        records.append(
            AanmeldstatusRecord(
                index=i,
                aanmelding_id=f"{bsn}-{draw(st.integers(1, 2))}",
                leerling=Leerling(bsn, None, date(2010, 5, 1)),
                instelling_brin="25LX",
                opleiding=OPLEIDING,
                status=draw(st.sampled_from(Status)),
                statusdatum=draw(statusdata),
                hoogste_diploma=None,
                latende_school_brin=None,
            )
        )
    return Parsed(
        AanmeldstatusBericht(
            bericht_id=f"s{n}",
            verzonden=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=n),
            records=tuple(records),
        )
    )


Case = tuple[list[Parsed], dict[LookupKey, LookupResult]]


@st.composite
def world(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 6))
    parsed = [draw(st.one_of(prognose(i), statussen(i))) for i in range(n)]
    keys = {k for p in parsed for k in lookups_needed_for_both(p, RULES, RULES)}
    # The peildatum checks look pupils up on the peildata (any date in the period).
    keys |= {(b, d) for b in PUPILS for d in (date(2027, 4, 1), date(2027, 10, 1))}
    for b in PUPILS:
        keys |= {(b, d) for d in draw(st.lists(statusdata, max_size=3))}
    return parsed, {k: draw(st.sampled_from(CODES)) for k in sorted(keys)}


def run(current: RuleSet, candidate: RuleSet, case: Case, *, period: bool = True) -> DryRunReport:
    parsed, found = case
    dry = DryRun(current, candidate, TABLE, NOW)
    for p in parsed:
        dry.add(p, found)
    if period:
        for day in dry.peildata(*PERIOD):
            lookups = dry.peildatum_lookups(day)
            dry.add_peildatum(day, {k: found.get(k) for k in lookups})
    return dry.report()


def off(*types: SignaleringType) -> RuleSet:
    return RULES.model_copy(
        update={"signaleringen": {**RULES.signaleringen, **dict.fromkeys(types, False)}}
    )


def aanmelddatum(maand: int, dag: int) -> RuleSet:
    return RULES.model_copy(
        update={"peildata": Peildata(aanmelddatum=DagInJaar(maand=maand, dag=dag))}
    )


VARIANTS = st.sampled_from(
    [
        RULES,
        off(SignaleringType.NIET_AANGEMELD),
        off(SignaleringType.GEEN_PLAATSING),
        off(SignaleringType.NIET_INGESCHREVEN),
        off(SignaleringType.VERHUISD, SignaleringType.OVERDRACHT),
        aanmelddatum(5, 1),
        aanmelddatum(3, 1),
        RULES.model_copy(update={"leeftijd": LeeftijdRule(jonger_dan=17)}),
    ]
)
DERIVED = {
    SignaleringType.NIET_AANGEMELD,
    SignaleringType.GEEN_PLAATSING,
    SignaleringType.NIET_INGESCHREVEN,
    SignaleringType.VERHUISD,
    SignaleringType.OVERDRACHT,
}


def by_type(report: DryRunReport) -> dict[tuple[SignaleringType, str], tuple[int, int]]:
    return {(c.type, c.gemeentecode): (len(c.added), len(c.withdrawn)) for c in report.changes}


class TestDerivedProperties:
    @derived_settings
    @given(world(), VARIANTS)
    def test_same_rules_change_nothing(self, case: Case, rules: RuleSet) -> None:
        """Any rule set against itself: no derived (or other) signalering added or withdrawn."""
        report = run(rules, rules, case)
        assert report.changes == ()
        assert report.current == report.candidate
        assert report.unchanged == report.current.signaleringen

    @derived_settings
    @given(world(), VARIANTS, VARIANTS)
    def test_swapping_swaps_added_and_withdrawn(self, case: Case, a: RuleSet, b: RuleSet) -> None:
        """What A→B adds, B→A withdraws, per gemeente and type, derived types included."""
        forward = run(a, b, case)
        backward = run(b, a, case)
        assert [(c.gemeentecode, c.type, c.added, c.withdrawn) for c in forward.changes] == [
            (c.gemeentecode, c.type, c.withdrawn, c.added) for c in backward.changes
        ]
        assert forward.current == backward.candidate

    @derived_settings
    @given(world(), st.sampled_from(sorted(DERIVED - {SignaleringType.OVERDRACHT})))
    def test_disabling_a_derived_type_withdraws_all_of_it(
        self, case: Case, soort: SignaleringType
    ) -> None:
        """Switching a derived type off withdraws every one of its signaleringen, adds none.

        Moves are noticed by peildatum checks too, so switching a check off may also change
        OVERDRACHT/VERHUISD; nothing else changes.
        """
        everything = run(RULES, off(*DERIVED), case)  # withdraws every derived signalering
        expected = {sid for c in everything.changes if c.type is soort for sid in c.withdrawn}
        report = run(RULES, off(soort), case)
        moves = {SignaleringType.VERHUISD, SignaleringType.OVERDRACHT}
        assert {c.type for c in report.changes} <= {soort} | moves
        assert not any(c.added for c in report.changes if c.type is soort)
        assert {sid for c in report.changes if c.type is soort for sid in c.withdrawn} == expected

    @derived_settings
    @given(world())
    def test_derived_types_are_in_the_report(self, case: Case) -> None:
        """Everything the full rules derive is withdrawn when all derived types are off."""
        report = run(RULES, off(*DERIVED), case)
        assert report.added == 0
        assert {c.type for c in report.changes} <= DERIVED


class TestDerivedExamples:
    def pupil_with_prognose(self) -> Case:
        parsed = [
            Parsed(
                PrognoseBericht(
                    bericht_id="p",
                    verzonden=datetime(2026, 11, 1, tzinfo=UTC),
                    school=School(brin="01AA", vestiging=None),
                    schooljaar=SCHOOLJAAR,
                    records=(
                        PrognoseRecord(
                            0, Leerling(BSN[0], None, date(2010, 5, 1)), "VMBO-GL", None
                        ),
                    ),
                )
            ),
            Parsed(
                AanmeldstatusBericht(
                    bericht_id="s",
                    verzonden=datetime(2027, 4, 20, tzinfo=UTC),
                    records=(
                        AanmeldstatusRecord(
                            0,
                            "a-1",
                            Leerling(BSN[0], None, date(2010, 5, 1)),
                            "25LX",
                            OPLEIDING,
                            Status.AANGEMELD,
                            date(2027, 4, 15),
                            None,
                            None,
                        ),
                        AanmeldstatusRecord(
                            1,
                            "a-1",
                            Leerling(BSN[0], None, date(2010, 5, 1)),
                            "25LX",
                            OPLEIDING,
                            Status.INGETROKKEN,
                            date(2027, 4, 18),
                            None,
                            None,
                        ),
                    ),
                )
            ),
        ]
        found: dict[LookupKey, LookupResult] = {
            (BSN[0], d): "0363"
            for d in (date(2026, 11, 1), date(2027, 4, 1), date(2027, 5, 1), date(2027, 10, 1))
        }
        found[(BSN[0], date(2027, 4, 15))] = "0363"
        found[(BSN[0], date(2027, 4, 18))] = "0363"
        return parsed, found

    def test_current_rules_derive_each_type(self) -> None:
        """Applied late (after 1 April), withdrawn: each derived type except the moves."""
        report = run(RULES, off(*DERIVED), self.pupil_with_prognose())
        assert by_type(report) == {
            (SignaleringType.GEEN_PLAATSING, "GM0363"): (0, 1),
            (SignaleringType.NIET_AANGEMELD, "GM0363"): (0, 1),
            (SignaleringType.NIET_INGESCHREVEN, "GM0363"): (0, 1),
        }

    def test_moving_the_aanmelddatum_past_the_aanmelding(self) -> None:
        """Aanmelddatum 1 May: the aanmelding of 15 April came in time; NIET_AANGEMELD withdrawn."""
        report = run(RULES, aanmelddatum(5, 1), self.pupil_with_prognose())
        assert by_type(report) == {(SignaleringType.NIET_AANGEMELD, "GM0363"): (0, 1)}

    def test_a_move_between_gemeenten(self) -> None:
        """Found in 0599 on the teldatum after 0363 before: OVERDRACHT and VERHUISD."""
        parsed, found = self.pupil_with_prognose()
        found[(BSN[0], date(2027, 10, 1))] = "0599"
        report = run(
            RULES, off(SignaleringType.VERHUISD, SignaleringType.OVERDRACHT), (parsed, found)
        )
        assert by_type(report) == {
            (SignaleringType.OVERDRACHT, "GM0599"): (0, 1),
            (SignaleringType.VERHUISD, "GM0363"): (0, 1),
        }

    def test_outside_the_period_no_peildatum_types(self) -> None:
        """Without peildata in the period only GEEN_PLAATSING (on receipt) is derived."""
        report = run(RULES, off(*DERIVED), self.pupil_with_prognose(), period=False)
        assert by_type(report) == {(SignaleringType.GEEN_PLAATSING, "GM0363"): (0, 1)}
