"""The rules dry run, pure: re-decide messages under two rule sets and diff the signaleringen.

    stored messages ─▶ decide + derive(current rules)   ─▶ signaleringen A ─┐
     (receive order)└▶ decide + derive(candidate rules) ─▶ signaleringen B ─┴─▶ per gemeente
                                                                           and type: added
                                                                           (B−A), withdrawn (A−B)

Signalering ids are deterministic over the facts reported (type, gemeente, BSN, business key),
never over the rules, so the same signalering under both rule sets has the same id and the
diff is a set difference of ids.

Each rule set keeps its own replayed pupil state (pipeline/leerlingen.py) and last-signalled
gemeente, built by feeding the messages in receive order through the same pure functions the
service uses (pipeline/derive.py). So besides PROGNOSE and AANMELDSTATUS the diff holds:

- GEEN_PLAATSING and OVERDRACHT/VERHUISD, derived on receipt of each message of the period;
- NIET_AANGEMELD / NIET_INGESCHREVEN of every peildatum in the period on which either rule set
  has a check due (`peildata`, `peildatum_lookups`, `add_peildatum`), judged on the state
  after the last message replayed, with each aanmelding's status as known on the peildatum
  (as a peildatum run does), plus the moves such a run notices.

Messages received before the period are replayed with `count=False`: they build the state
(and the last gemeente) but their signaleringen are not part of the report. No I/O here: the
CLI reads the messages and supplies the woongemeenten.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from koppelpunt.model import FilterReden, Parsed, Signalering, SignaleringType
from koppelpunt.pipeline import derive
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.leerlingen import PupilState
from koppelpunt.pipeline.rules import RuleSet
from koppelpunt.pipeline.run import (
    AMSTERDAM,
    LookupKey,
    LookupResult,
    LookupUnavailable,
    decide,
    lookups_needed,
)

GroupKey = tuple[str, SignaleringType]  # (gemeentecode, type)


@dataclass(frozen=True, slots=True)
class Change:
    """The signaleringen of one gemeente and type that the candidate rules add or withdraw."""

    gemeentecode: str
    type: SignaleringType
    added: tuple[str, ...]  # signalering ids, sorted
    withdrawn: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcomes:
    """How the records came out under one rule set."""

    gefilterd: dict[str, int]
    geparkeerd: int
    signaleringen: int


@dataclass(frozen=True, slots=True)
class DryRunReport:
    berichten: int
    records: int
    current: Outcomes
    candidate: Outcomes
    changes: tuple[Change, ...]  # only groups with a change, sorted by gemeente and type
    unchanged: int  # signaleringen produced under both rule sets

    @property
    def added(self) -> int:
        return sum(len(c.added) for c in self.changes)

    @property
    def withdrawn(self) -> int:
        return sum(len(c.withdrawn) for c in self.changes)


def diff_signaleringen(
    current: Iterable[Signalering], candidate: Iterable[Signalering]
) -> tuple[tuple[Change, ...], int]:
    """Per (gemeente, type): ids only under candidate (added), only under current (withdrawn).

    Returns the changes (sorted, only non-empty groups) and the number of unchanged ids.
    """
    before = {s.signalering_id: (s.gemeentecode, s.type) for s in current}
    after = {s.signalering_id: (s.gemeentecode, s.type) for s in candidate}
    added: dict[GroupKey, list[str]] = defaultdict(list)
    withdrawn: dict[GroupKey, list[str]] = defaultdict(list)
    for sid, group in after.items():
        if sid not in before:
            added[group].append(sid)
    for sid, group in before.items():
        if sid not in after:
            withdrawn[group].append(sid)
    groups = sorted(set(added) | set(withdrawn), key=lambda g: (g[0], g[1].value))
    changes = tuple(
        Change(g[0], g[1], tuple(sorted(added.get(g, ()))), tuple(sorted(withdrawn.get(g, ()))))
        for g in groups
    )
    return changes, len(before.keys() & after.keys())


def lookups_needed_for_both(
    parsed: Parsed, current: RuleSet, candidate: RuleSet
) -> list[LookupKey]:
    """The (bsn, peildatum) pairs either rule set needs looked up, each once."""
    return list(
        dict.fromkeys([*lookups_needed(parsed, current), *lookups_needed(parsed, candidate)])
    )


def _table_for(gemeenten: GemeenteTable, rules: RuleSet) -> GemeenteTable:
    return GemeenteTable(gemeenten.gemeenten, rules.woongemeente.geen_gemeente)


@dataclass
class _Side:
    """One rule set's replay: its own pupil state, last gemeenten and results."""

    rules: RuleSet
    table: GemeenteTable
    states: dict[str, PupilState] = field(default_factory=dict)
    last: dict[str, derive.LastGemeente] = field(default_factory=dict)
    seq: int = 1
    signaleringen: dict[str, Signalering] = field(default_factory=dict)
    gefilterd: Counter[str] = field(default_factory=Counter)
    geparkeerd: int = 0

    def keep(self, items: Iterable[Signalering]) -> None:
        for s in items:
            self.signaleringen.setdefault(s.signalering_id, s)


@dataclass
class DryRun:
    """Accumulates decisions of many messages under both rule sets; `report()` diffs them.

    Feed the messages in receive order (pupil state depends on it): first those before the
    period with `count=False`, then those of the period; then the peildata of the period.
    """

    current: RuleSet
    candidate: RuleSet
    gemeenten: GemeenteTable
    now: datetime
    berichten: int = 0
    records: int = 0
    peildata_checked: list[date] = field(default_factory=list)
    _sides: tuple[_Side, _Side] = field(init=False)

    def __post_init__(self) -> None:
        self._sides = (
            _Side(self.current, _table_for(self.gemeenten, self.current)),
            _Side(self.candidate, _table_for(self.gemeenten, self.candidate)),
        )

    def add(
        self,
        parsed: Parsed,
        woongemeenten: Mapping[LookupKey, LookupResult],
        *,
        count: bool = True,
    ) -> None:
        """Decide one message under both rule sets with the same woongemeenten, and derive.

        `count=False`: a message before the period; it only builds the pupil state.
        """
        if count:
            self.berichten += 1
            self.records += len(parsed.bericht.records)
        for side in self._sides:
            verwerking = decide(parsed, side.rules, side.table, woongemeenten, self.now)
            derived = derive.on_receipt(
                side.states, verwerking, side.rules, side.table, side.last, self.now, side.seq
            )
            side.seq += len(parsed.bericht.records)
            side.last.update(derived.last)
            if not count:
                continue
            side.gefilterd.update(verwerking.gefilterd())
            side.geparkeerd += verwerking.geparkeerd
            side.keep((*verwerking.signaleringen, *derived.signaleringen))

    def add_signaleringen(
        self, current: Iterable[Signalering], candidate: Iterable[Signalering]
    ) -> None:
        """Add signaleringen derived elsewhere under each rule set."""
        for side, items in zip(self._sides, (current, candidate), strict=True):
            side.keep(items)

    # --- peildatum checks ---------------------------------------------------------------------

    def peildata(self, first: date, last: date) -> list[date]:
        """The days in [first, last] on which either rule set has an enabled check due."""
        days: list[date] = []
        day = first
        while day <= last:
            if any(derive.checks_due(side.rules, day) for side in self._sides):
                days.append(day)
            day += timedelta(days=1)
        return days

    def peildatum_lookups(self, day: date) -> list[LookupKey]:
        """The (bsn, peildatum) pairs the checks of `day` need looked up, under either set."""
        keys: dict[LookupKey, None] = {}
        for side in self._sides:
            for c in derive.candidates(side.states.values(), side.rules, day):
                keys[(c.bsn, c.peildatum)] = None
        return list(keys)

    def add_peildatum(self, day: date, woongemeenten: Mapping[LookupKey, LookupResult]) -> None:
        """Run the checks due on `day` under each rule set, as `koppelpunt peildatum` would.

        A candidate whose woongemeente is missing or unavailable counts as geparkeerd.
        Call in date order: the moves a check notices update the last gemeente.
        """
        self.peildata_checked.append(day)
        today = self.now.astimezone(AMSTERDAM).date()
        for side in self._sides:
            for c in derive.candidates(side.states.values(), side.rules, day):
                code = woongemeenten.get((c.bsn, c.peildatum))
                if (c.bsn, c.peildatum) not in woongemeenten or isinstance(code, LookupUnavailable):
                    side.geparkeerd += 1
                    continue
                assert not isinstance(code, LookupUnavailable)
                signalled, new_last = derive.on_peildatum(
                    c,
                    side.states[c.bsn],
                    code,
                    side.last.get(c.bsn),
                    side.table,
                    side.rules,
                    self.now,
                    today,
                )
                if new_last is not None:
                    side.last[c.bsn] = new_last
                side.keep(signalled)

    # --- the report ---------------------------------------------------------------------------

    def report(self) -> DryRunReport:
        changes, unchanged = diff_signaleringen(
            self._sides[0].signaleringen.values(), self._sides[1].signaleringen.values()
        )
        return DryRunReport(
            berichten=self.berichten,
            records=self.records,
            current=self._outcomes(self._sides[0]),
            candidate=self._outcomes(self._sides[1]),
            changes=changes,
            unchanged=unchanged,
        )

    @staticmethod
    def _outcomes(side: _Side) -> Outcomes:
        counts = {reden.value: side.gefilterd.get(reden.value, 0) for reden in FilterReden}
        return Outcomes(counts, side.geparkeerd, len(side.signaleringen))
