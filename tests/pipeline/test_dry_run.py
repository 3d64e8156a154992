"""The rules dry run (pure): re-deciding under two rule sets and diffing the signaleringen."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koppelpunt.model import (
    Leerling,
    Parsed,
    PrognoseBericht,
    PrognoseRecord,
    School,
    SignaleringType,
)
from koppelpunt.pipeline.dry_run import DryRun, diff_signaleringen, lookups_needed_for_both
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rules import LeeftijdRule, RuleSet, StartkwalificatieRule, load_rules
from koppelpunt.pipeline.run import LookupKey, LookupResult, decide
from tests.strategies import aanmeldstatus_berichten, prognose_berichten

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "routing_rules")
TABLE = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
CODES = ["0363", "0599", "0003", "1999", None]  # active, active, dissolved, RNI, not found

LENIENT = RULES.model_copy(
    update={
        "leeftijd": LeeftijdRule(jonger_dan=120),
        "startkwalificatie": StartkwalificatieRule(diplomas=frozenset()),
    }
)

berichten = st.lists(
    st.one_of(prognose_berichten(max_records=3), aanmeldstatus_berichten(max_records=3)).map(
        Parsed
    ),
    max_size=3,
)
# Generating messages is the costly part on a busy machine; the properties need no more.
dry_run_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def woongemeenten(draw: st.DrawFn, parsed: list[Parsed]) -> dict[LookupKey, LookupResult]:
    # Every key any rule set could need: those of a rule set that filters on nothing but BSN.
    keys = {k for p in parsed for k in lookups_needed_for_both(p, LENIENT, LENIENT)}
    return {k: draw(st.sampled_from(CODES)) for k in sorted(keys)}


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Parsed], dict[LookupKey, LookupResult]]:
    parsed = draw(berichten)
    return parsed, draw(woongemeenten(parsed))


def run(
    current: RuleSet, candidate: RuleSet, parsed: list[Parsed], found: dict[LookupKey, LookupResult]
) -> DryRun:
    dry = DryRun(current, candidate, TABLE, NOW)
    for p in parsed:
        dry.add(p, found)
    return dry


def with_limit(limit: int) -> RuleSet:
    return RULES.model_copy(update={"leeftijd": LeeftijdRule(jonger_dan=limit)})


class TestDryRun:
    @dry_run_settings
    @given(scenario())
    def test_same_rules_change_nothing(
        self, case: tuple[list[Parsed], dict[LookupKey, LookupResult]]
    ) -> None:
        """Current rules against themselves: nothing added or withdrawn, outcomes equal."""
        report = run(RULES, RULES, *case).report()
        assert report.changes == ()
        assert report.current == report.candidate
        assert report.unchanged == report.current.signaleringen

    @dry_run_settings
    @given(scenario(), st.integers(18, 30), st.integers(18, 30))
    def test_swapping_swaps_added_and_withdrawn(
        self, case: tuple[list[Parsed], dict[LookupKey, LookupResult]], a: int, b: int
    ) -> None:
        """What A→B adds, B→A withdraws, per gemeente and type."""
        forward = run(with_limit(a), with_limit(b), *case).report()
        backward = run(with_limit(b), with_limit(a), *case).report()
        assert [(c.gemeentecode, c.type, c.added, c.withdrawn) for c in forward.changes] == [
            (c.gemeentecode, c.type, c.withdrawn, c.added) for c in backward.changes
        ]

    @dry_run_settings
    @given(scenario(), st.integers(18, 30), st.integers(0, 5))
    def test_raising_the_age_limit_never_withdraws(
        self, case: tuple[list[Parsed], dict[LookupKey, LookupResult]], limit: int, more: int
    ) -> None:
        """A higher age limit can only add signaleringen (moves aside: one more forwarded
        record in between can turn a move A→C into A→B→C, withdrawing the OVERDRACHT dated C)."""
        report = run(with_limit(limit), with_limit(limit + more), *case).report()
        moves = {SignaleringType.VERHUISD, SignaleringType.OVERDRACHT}
        assert not any(c.withdrawn for c in report.changes if c.type not in moves)

    @dry_run_settings
    @given(scenario(), st.sampled_from([SignaleringType.PROGNOSE, SignaleringType.AANMELDSTATUS]))
    def test_disabling_a_type_withdraws_exactly_that_type(
        self, case: tuple[list[Parsed], dict[LookupKey, LookupResult]], soort: SignaleringType
    ) -> None:
        """Switching a type off withdraws all its signaleringen and touches nothing else."""
        off = RULES.model_copy(update={"signaleringen": {**RULES.signaleringen, soort: False}})
        parsed, found = case
        report = run(RULES, off, parsed, found).report()
        expected = {
            s.signalering_id
            for p in parsed
            for s in decide(p, RULES, TABLE, found, NOW).signaleringen
            if s.type is soort
        }
        assert report.added == 0
        assert {c.type for c in report.changes} <= {soort}
        assert {sid for c in report.changes for sid in c.withdrawn} == expected

    @dry_run_settings
    @given(scenario())
    def test_counts_add_up(self, case: tuple[list[Parsed], dict[LookupKey, LookupResult]]) -> None:
        """|current| = unchanged + withdrawn and |candidate| = unchanged + added."""
        report = run(with_limit(20), with_limit(25), *case).report()
        assert report.current.signaleringen == report.unchanged + report.withdrawn
        assert report.candidate.signaleringen == report.unchanged + report.added


class TestDiffSignaleringen:
    @dry_run_settings
    @given(scenario())
    def test_diff_of_a_set_with_itself_is_empty(
        self, case: tuple[list[Parsed], dict[LookupKey, LookupResult]]
    ) -> None:
        """The same signaleringen on both sides: no change."""
        parsed, found = case
        items = [s for p in parsed for s in decide(p, RULES, TABLE, found, NOW).signaleringen]
        changes, unchanged = diff_signaleringen(items, items)
        assert changes == ()
        assert unchanged == len({s.signalering_id for s in items})

    def test_groups_by_gemeente_and_type(self) -> None:
        """Only candidate: added; only current: withdrawn; grouped and sorted."""
        parsed = [Parsed(p) for p in [_prognose()]]
        found: dict[LookupKey, LookupResult] = {
            k: "0363" for p in parsed for k in lookups_needed_for_both(p, RULES, RULES)
        }
        items = [s for p in parsed for s in decide(p, RULES, TABLE, found, NOW).signaleringen]
        changes, unchanged = diff_signaleringen([], items)
        assert unchanged == 0
        assert [(c.gemeentecode, c.type, len(c.added), c.withdrawn) for c in changes] == [
            ("GM0363", SignaleringType.PROGNOSE, len(items), ())
        ]


def _prognose() -> PrognoseBericht:
    return PrognoseBericht(
        bericht_id="p1",
        verzonden=NOW,
        school=School("25LX"),
        schooljaar="2026-2027",
        records=(
            PrognoseRecord(0, Leerling("999990007", None, date(2010, 5, 13)), "vmbo-tl", None),
            PrognoseRecord(1, Leerling("999990019", None, date(2010, 5, 13)), "vmbo-tl", None),
        ),
    )
