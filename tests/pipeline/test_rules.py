"""The filter rules: pure, property-tested at their boundaries."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koppelpunt.errors import ConfigurationError
from koppelpunt.model import Filtered, FilterReden, Forwarded
from koppelpunt.pipeline.rules import Facts, RuleSet, age_on, birthday_in, evaluate, load_rules

RULES_DIR = Path(__file__).resolve().parents[2] / "routing_rules"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(RULES_DIR)


def facts(**overrides: object) -> Facts:
    base: dict[str, object] = {
        "peildatum": date(2027, 3, 1),
        "geboortedatum": date(2010, 5, 13),
        "hoogste_diploma": None,
        "bsn": "999993653",
        "woongemeente": "GM0363",
    }
    base.update(overrides)
    return Facts(**base)  # type: ignore[arg-type]


dates = st.dates(min_value=date(1950, 1, 1), max_value=date(2060, 12, 31))


class TestAge:
    @given(born=dates, years=st.integers(min_value=0, max_value=60))
    def test_age_is_exact_on_the_birthday(self, born: date, years: int) -> None:
        """On the (possibly shifted) birthday a pupil is exactly that many years old."""
        day = birthday_in(born, born.year + years)
        assert age_on(born, day) == years

    @given(born=dates, years=st.integers(min_value=1, max_value=60))
    def test_age_is_one_less_the_day_before(self, born: date, years: int) -> None:
        """The day before the birthday the pupil is still a year younger."""
        day = birthday_in(born, born.year + years) - timedelta(days=1)
        assert age_on(born, day) == years - 1

    def test_leap_day_birthday_is_first_of_march_in_common_years(self) -> None:
        """Born 29 February: the birthday falls on 1 March in a non-leap year."""
        born = date(2004, 2, 29)
        assert not calendar.isleap(2027)
        assert age_on(born, date(2027, 2, 28)) == 22
        assert age_on(born, date(2027, 3, 1)) == 23
        assert age_on(born, date(2028, 2, 29)) == 24


class TestEvaluate:
    def test_forwarded_when_all_rules_hold(self, rules: RuleSet) -> None:
        """A young pupil without startkwalificatie, with BSN and woongemeente, is forwarded."""
        assert evaluate(rules, facts()) == Forwarded("GM0363")

    def test_turning_23_on_the_peildatum_is_not_under_23(self, rules: RuleSet) -> None:
        """Someone who turns 23 on the peildatum is filtered on leeftijd."""
        decision = evaluate(rules, facts(geboortedatum=date(2004, 3, 1)))
        assert isinstance(decision, Filtered)
        assert decision.reden is FilterReden.LEEFTIJD

    def test_a_day_before_turning_23_is_under_23(self, rules: RuleSet) -> None:
        """The day before the 23rd birthday the pupil still passes the age rule."""
        assert evaluate(rules, facts(geboortedatum=date(2004, 3, 2))) == Forwarded("GM0363")

    @pytest.mark.parametrize("diploma", ["havo", "vwo", "mbo-2", "mbo-3", "mbo-4"])
    def test_startkwalificatie_filters(self, rules: RuleSet, diploma: str) -> None:
        """Havo, vwo and mbo 2-4 are a startkwalificatie: filtered."""
        decision = evaluate(rules, facts(hoogste_diploma=diploma))
        assert decision == Filtered(FilterReden.STARTKWALIFICATIE, f"hoogsteDiploma {diploma}")

    @pytest.mark.parametrize(
        "diploma", [None, "geen", "vmbo-bb", "vmbo-kb", "vmbo-gl", "vmbo-tl", "mbo-1", "pro"]
    )
    def test_no_startkwalificatie_passes(self, rules: RuleSet, diploma: str | None) -> None:
        """Vmbo, mbo-1 (Entree), pro and an absent diploma are no startkwalificatie."""
        assert evaluate(rules, facts(hoogste_diploma=diploma)) == Forwarded("GM0363")

    def test_onderwijsnummer_only_is_geen_bsn(self, rules: RuleSet) -> None:
        """A pupil without BSN cannot be looked up: filtered as geenBsn."""
        decision = evaluate(rules, facts(bsn=None))
        assert isinstance(decision, Filtered)
        assert decision.reden is FilterReden.GEEN_BSN

    def test_no_woongemeente(self, rules: RuleSet) -> None:
        """No Dutch woongemeente found: filtered as geenWoongemeente."""
        decision = evaluate(rules, facts(woongemeente=None))
        assert isinstance(decision, Filtered)
        assert decision.reden is FilterReden.GEEN_WOONGEMEENTE

    def test_first_failing_rule_is_the_reason(self, rules: RuleSet) -> None:
        """Age is checked before the diploma, the diploma before the BSN."""
        decision = evaluate(
            rules, facts(geboortedatum=date(1990, 1, 1), hoogste_diploma="havo", bsn=None)
        )
        assert isinstance(decision, Filtered)
        assert decision.reden is FilterReden.LEEFTIJD

    @given(
        born=dates,
        peildatum=dates,
        diploma=st.sampled_from(
            [None, "geen", "vmbo-tl", "havo", "vwo", "mbo-1", "mbo-2", "mbo-3", "mbo-4", "pro"]
        ),
        has_bsn=st.booleans(),
        gemeente=st.sampled_from([None, "GM0363", "GM0599"]),
    )
    def test_forwarded_iff_every_rule_holds(
        self,
        born: date,
        peildatum: date,
        diploma: str | None,
        has_bsn: bool,
        gemeente: str | None,
    ) -> None:
        """Forwarded exactly when under 23, no startkwalificatie, a BSN and a woongemeente."""
        rules = load_rules(RULES_DIR)
        f = facts(
            geboortedatum=born,
            peildatum=peildatum,
            hoogste_diploma=diploma,
            bsn="999993653" if has_bsn else None,
            woongemeente=gemeente,
        )
        expected = (
            age_on(born, peildatum) < 23
            and diploma not in {"havo", "vwo", "mbo-2", "mbo-3", "mbo-4"}
            and has_bsn
            and gemeente is not None
        )
        assert isinstance(evaluate(rules, f), Forwarded) == expected


class TestLoadRules:
    def test_bundled_rules_load(self, rules: RuleSet) -> None:
        """The rules in routing_rules/ load and carry a version."""
        assert rules.version
        assert rules.leeftijd.jonger_dan == 23

    def test_unknown_key_is_refused(self, tmp_path: Path) -> None:
        """A typo in a rules file stops start-up with a clear message."""
        (tmp_path / "a.yaml").write_text(
            "version: x\nleeftijd: {jonger_dan: 23, jongerdan: 27}\n"
            "startkwalificatie: {diplomas: [havo]}\n"
        )
        with pytest.raises(ConfigurationError, match="jongerdan"):
            load_rules(tmp_path)

    def test_key_in_two_files_is_refused(self, tmp_path: Path) -> None:
        """A setting defined twice is an error, never silently overridden."""
        (tmp_path / "a.yaml").write_text(
            "version: x\nleeftijd: {jonger_dan: 23}\nstartkwalificatie: {diplomas: [havo]}\n"
        )
        (tmp_path / "b.yaml").write_text("leeftijd: {jonger_dan: 27}\n")
        with pytest.raises(ConfigurationError, match="already defined"):
            load_rules(tmp_path)

    def test_missing_directory_is_refused(self, tmp_path: Path) -> None:
        """A rules directory that does not exist is a configuration error."""
        with pytest.raises(ConfigurationError):
            load_rules(tmp_path / "nope")

    def test_age_limit_is_data(self, tmp_path: Path) -> None:
        """Raising the limit to 27 in the file changes the decision, no code change."""
        (tmp_path / "a.yaml").write_text(
            "version: x\nleeftijd: {jonger_dan: 27}\nstartkwalificatie: {diplomas: [havo]}\n"
        )
        rules27 = load_rules(tmp_path)
        assert evaluate(rules27, facts(geboortedatum=date(2002, 1, 1))) == Forwarded("GM0363")
