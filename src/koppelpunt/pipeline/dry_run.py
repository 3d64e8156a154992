"""The rules dry run, pure: re-decide messages under two rule sets and diff the signaleringen.

    stored messages ─▶ decide(current rules)   ─▶ signaleringen A ─┐
                   └─▶ decide(candidate rules) ─▶ signaleringen B ─┴─▶ per gemeente and type:
                                                                     added (B−A), withdrawn (A−B)

Signalering ids are deterministic over the facts reported (type, gemeente, BSN, business key),
never over the rules, so the same signalering under both rule sets has the same id and the
diff is a set difference of ids. The accumulator takes any Signalering, so derived types (e.g.
NIET_AANGEMELD from a peildatum run under each rule set) can be fed in with
`add_signaleringen` and appear in the same report. No I/O here: the CLI reads the messages and
supplies the woongemeenten.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from koppelpunt.model import FilterReden, Parsed, Signalering, SignaleringType
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rules import RuleSet
from koppelpunt.pipeline.run import LookupKey, LookupResult, decide, lookups_needed

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
class DryRun:
    """Accumulates decisions of many messages under both rule sets; `report()` diffs them."""

    current: RuleSet
    candidate: RuleSet
    gemeenten: GemeenteTable
    now: datetime
    berichten: int = 0
    records: int = 0
    _signaleringen: tuple[dict[str, Signalering], dict[str, Signalering]] = field(
        default_factory=lambda: ({}, {})
    )
    _gefilterd: tuple[Counter[str], Counter[str]] = field(
        default_factory=lambda: (Counter(), Counter())
    )
    _geparkeerd: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, parsed: Parsed, woongemeenten: Mapping[LookupKey, LookupResult]) -> None:
        """Decide one message under both rule sets with the same woongemeenten."""
        self.berichten += 1
        self.records += len(parsed.bericht.records)
        for side, rules in enumerate((self.current, self.candidate)):
            verwerking = decide(
                parsed, rules, _table_for(self.gemeenten, rules), woongemeenten, self.now
            )
            self._gefilterd[side].update(verwerking.gefilterd())
            self._geparkeerd[side] += verwerking.geparkeerd
            for s in verwerking.signaleringen:
                self._signaleringen[side].setdefault(s.signalering_id, s)

    def add_signaleringen(
        self, current: Iterable[Signalering], candidate: Iterable[Signalering]
    ) -> None:
        """Add signaleringen derived elsewhere (e.g. a peildatum run) under each rule set."""
        for side, items in enumerate((current, candidate)):
            for s in items:
                self._signaleringen[side].setdefault(s.signalering_id, s)

    def report(self) -> DryRunReport:
        changes, unchanged = diff_signaleringen(
            self._signaleringen[0].values(), self._signaleringen[1].values()
        )
        return DryRunReport(
            berichten=self.berichten,
            records=self.records,
            current=self._outcomes(0),
            candidate=self._outcomes(1),
            changes=changes,
            unchanged=unchanged,
        )

    def _outcomes(self, side: int) -> Outcomes:
        counts = {reden.value: self._gefilterd[side].get(reden.value, 0) for reden in FilterReden}
        return Outcomes(counts, self._geparkeerd[side], len(self._signaleringen[side]))
