"""Rules are data: routing_rules/*.yaml loads once into frozen models; evaluate() is pure.

Everything a policy maker could change (age limit, startkwalificatie diplomas, peildata,
enabled signalering types) lives in the YAML files, so changing policy is a reviewed data
change, not a code change. The loader reads files only; evaluation does no I/O.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from koppelpunt.errors import ConfigurationError
from koppelpunt.model import Decision, Filtered, FilterReden, Forwarded, SignaleringType

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class LeeftijdRule(BaseModel):
    model_config = _FROZEN
    jonger_dan: int = Field(ge=1, le=120)


class StartkwalificatieRule(BaseModel):
    model_config = _FROZEN
    diplomas: frozenset[str]


class WoongemeenteRule(BaseModel):
    model_config = _FROZEN
    geen_gemeente: frozenset[str] = frozenset({"0000", "1999"})

    @field_validator("geen_gemeente")
    @classmethod
    def _four_digits(cls, codes: frozenset[str]) -> frozenset[str]:
        for code in codes:
            if len(code) != 4 or not code.isdigit():
                raise ValueError(f"gemeentecode {code!r} is niet 4 cijfers")
        return codes


class DagInJaar(BaseModel):
    model_config = _FROZEN
    maand: int = Field(ge=1, le=12)
    dag: int = Field(ge=1, le=31)

    def in_jaar(self, jaar: int) -> date:
        return date(jaar, self.maand, self.dag)


class Peildata(BaseModel):
    model_config = _FROZEN
    aanmelddatum: DagInJaar = DagInJaar(maand=4, dag=1)
    teldatum: DagInJaar = DagInJaar(maand=10, dag=1)


class RuleSet(BaseModel):
    """The whole rule set, as loaded from one routing_rules directory."""

    model_config = _FROZEN
    version: str = Field(min_length=1)
    leeftijd: LeeftijdRule
    startkwalificatie: StartkwalificatieRule
    woongemeente: WoongemeenteRule = WoongemeenteRule()
    signaleringen: dict[SignaleringType, bool] = Field(
        default_factory=lambda: {t: True for t in SignaleringType}
    )
    peildata: Peildata = Peildata()

    def enabled(self, soort: SignaleringType) -> bool:
        return self.signaleringen.get(soort, False)

    def aanmeld_peildatum(self, schooljaar: str) -> date:
        """1 April (by default) of the schooljaar's second calendar year."""
        return self.peildata.aanmelddatum.in_jaar(int(schooljaar[5:9]))

    def teldatum(self, schooljaar: str) -> date:
        """1 October (by default) after the schooljaar, i.e. in its second calendar year."""
        return self.peildata.teldatum.in_jaar(int(schooljaar[5:9]))


def load_rules(directory: Path) -> RuleSet:
    """Read every *.yaml in `directory` into one RuleSet; a bad file raises ConfigurationError.

    Top-level keys are merged across files; a key defined twice is an error, so there is never
    doubt about which value applies.
    """
    if not directory.is_dir():
        raise ConfigurationError(f"routing rules directory {directory} does not exist")
    merged: dict[str, Any] = {}
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigurationError(f"no *.yaml rule files in {directory}")
    for path in files:
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(content, dict):
            raise ConfigurationError(f"{path}: expected a mapping at the top level")
        for key, value in content.items():
            if key in merged:
                raise ConfigurationError(f"{path}: key {key!r} is already defined in another file")
            merged[key] = value
    try:
        return RuleSet.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid routing rules in {directory}: {problems}") from exc


# --- evaluation (pure) -----------------------------------------------------------------------


def birthday_in(geboortedatum: date, jaar: int) -> date:
    """The birthday in `jaar`; 29 February falls on 1 March in non-leap years (Dutch practice)."""
    if geboortedatum.month == 2 and geboortedatum.day == 29 and not calendar.isleap(jaar):
        return date(jaar, 3, 1)
    return date(jaar, geboortedatum.month, geboortedatum.day)


def age_on(geboortedatum: date, peildatum: date) -> int:
    """Age in whole years on `peildatum` (negative if born after it)."""
    years = peildatum.year - geboortedatum.year
    if peildatum < birthday_in(geboortedatum, peildatum.year):
        years -= 1
    return years


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules look at for one record; built by the pipeline from a record + lookup."""

    peildatum: date
    geboortedatum: date
    hoogste_diploma: str | None
    bsn: str | None
    # The CBS code (GM + 4 digits) of the gemeente to route to, already resolved through
    # herindelingen; None when no Dutch woongemeente was found.
    woongemeente: str | None


def evaluate_pre_lookup(rules: RuleSet, facts: Facts) -> Filtered | None:
    """The rules that need no lookup; None when all of them hold.

    Split out so the woongemeente is only looked up (a disclosure by the BRP) for records that
    could be forwarded at all: data minimisation.
    """
    check = compile_pre_lookup(rules)
    return check(facts.peildatum, facts.geboortedatum, facts.hoogste_diploma, facts.bsn)


PreLookup = Callable[[date, date, str | None, str | None], Filtered | None]


def compile_pre_lookup(rules: RuleSet) -> PreLookup:
    """The rules that need no lookup as one closure over the rule values: the only
    implementation of them (evaluate_pre_lookup calls it).

    Called as `check(peildatum, geboortedatum, hoogste_diploma, bsn)`: no Facts to build and
    no model attributes to walk per record, so the hot path (run.decide) compiles it once per
    message. The age is age_on's (tested for every filter reason, 29 February included).
    """
    jonger_dan = rules.leeftijd.jonger_dan
    diplomas = rules.startkwalificatie.diplomas
    # age_on without building a birthday date: comparing (month, day) pairs is the same test,
    # also for a 29 February birthday (1 March in a non-leap year: there, (m, d) < (2, 29)
    # means on or before 28 February, i.e. before 1 March).

    def check(
        peildatum: date, geboortedatum: date, hoogste_diploma: str | None, bsn: str | None
    ) -> Filtered | None:
        age = peildatum.year - geboortedatum.year
        if (peildatum.month, peildatum.day) < (geboortedatum.month, geboortedatum.day):
            age -= 1
        if age >= jonger_dan:
            return Filtered(
                FilterReden.LEEFTIJD,
                f"{age} jaar op {peildatum.isoformat()}, grens {jonger_dan}",
            )
        if hoogste_diploma is not None and hoogste_diploma in diplomas:
            return Filtered(FilterReden.STARTKWALIFICATIE, f"hoogsteDiploma {hoogste_diploma}")
        if not bsn:
            return Filtered(FilterReden.GEEN_BSN, "alleen een onderwijsnummer, geen BSN")
        return None

    return check


def evaluate(rules: RuleSet, facts: Facts) -> Decision:
    """Decide one record: Forwarded(gemeentecode) or Filtered(first failing rule)."""
    pre = evaluate_pre_lookup(rules, facts)
    if pre is not None:
        return pre
    return decide_woongemeente(facts.woongemeente)


def decide_woongemeente(woongemeente: str | None) -> Decision:
    """The last rule, for a record that passed the others: forward to its gemeente, if any."""
    if woongemeente is None:
        return Filtered(FilterReden.GEEN_WOONGEMEENTE, "geen Nederlandse woongemeente gevonden")
    return Forwarded(woongemeente)
