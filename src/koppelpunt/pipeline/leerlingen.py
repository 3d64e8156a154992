"""Pupil state, as pure values: per leerling the latest prognose per schooljaar and every
aanmelding with its full status history.

The current status of an aanmelding is the one with the latest statusdatum; on a tie the one
received last (`seq`, the receive order). A status that arrives late with an older statusdatum
joins the history but does not become current, so it cannot trigger a derived signalering.
A transition outside the legal flow (e.g. INGESCHREVEN → AANGEMELD) is accepted and flagged
(`buiten_flow`) for operators. Flags are computed over the history sorted by statusdatum, so
they do not depend on the order in which the statuses arrived.

The store (store/leerlingen.py) loads and saves these values; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime

from koppelpunt.model import (
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Opleiding,
    PrognoseBericht,
    School,
    Status,
)

OPEN = frozenset({Status.AANGEMELD, Status.ONDERWIJSOVEREENKOMST_AANGEBODEN, Status.INGESCHREVEN})
CLOSED = frozenset({Status.GEEN_INSCHRIJVING, Status.INGETROKKEN})

# The legal flow of an aanmelding (our choice; the public record names the statuses only).
# The same status again (a later statusdatum) is always legal; the first status may be any.
LEGAL_NEXT: dict[Status, frozenset[Status]] = {
    Status.AANGEMELD: frozenset(
        {
            Status.ONDERWIJSOVEREENKOMST_AANGEBODEN,
            Status.INGESCHREVEN,
            Status.GEEN_INSCHRIJVING,
            Status.INGETROKKEN,
        }
    ),
    Status.ONDERWIJSOVEREENKOMST_AANGEBODEN: frozenset(
        {Status.INGESCHREVEN, Status.GEEN_INSCHRIJVING, Status.INGETROKKEN}
    ),
    Status.INGESCHREVEN: frozenset(),
    Status.GEEN_INSCHRIJVING: frozenset(),
    Status.INGETROKKEN: frozenset(),
}


def legal(previous: Status | None, status: Status) -> bool:
    return previous is None or previous == status or status in LEGAL_NEXT[previous]


@dataclass(frozen=True, slots=True)
class StatusFact:
    """One received status of an aanmelding; `seq` orders receipt (the store's row id)."""

    status: Status
    statusdatum: date
    seq: int
    buiten_flow: bool = False

    @property
    def key(self) -> tuple[Status, date]:
        return (self.status, self.statusdatum)


@dataclass(frozen=True, slots=True)
class Aanmelding:
    """One aanmelding (key: instelling BRIN + aanmeldingId) with its history, oldest first."""

    instelling_brin: str
    aanmelding_id: str
    opleiding: Opleiding
    history: tuple[StatusFact, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.instelling_brin, self.aanmelding_id)

    @property
    def current(self) -> StatusFact:
        return self.history[-1]

    @property
    def eerste_statusdatum(self) -> date:
        return self.history[0].statusdatum

    @property
    def buiten_flow(self) -> bool:
        return any(f.buiten_flow for f in self.history)

    def status_on(self, day: date) -> Status | None:
        """The status as known for `day`: the latest with statusdatum on or before it."""
        found: Status | None = None
        for fact in self.history:
            if fact.statusdatum <= day:
                found = fact.status
        return found


@dataclass(frozen=True, slots=True)
class PrognoseFact:
    """The latest prognose of a leerling for one schooljaar."""

    schooljaar: str
    school: School
    onderwijssoort: str
    verzonden: datetime


@dataclass(frozen=True, slots=True)
class PupilState:
    """Everything known about one leerling (by BSN)."""

    bsn: str
    geboortedatum: date
    hoogste_diploma: str | None
    prognoses: tuple[PrognoseFact, ...] = ()
    aanmeldingen: tuple[Aanmelding, ...] = ()

    def prognose(self, schooljaar: str) -> PrognoseFact | None:
        return next((p for p in self.prognoses if p.schooljaar == schooljaar), None)

    def aanmelding(self, key: tuple[str, str]) -> Aanmelding | None:
        return next((a for a in self.aanmeldingen if a.key == key), None)


def sort_history(facts: Iterable[StatusFact]) -> tuple[StatusFact, ...]:
    """By statusdatum, ties by receipt; with each step's out-of-flow flag recomputed."""
    ordered = sorted(facts, key=lambda f: (f.statusdatum, f.seq))
    flagged: list[StatusFact] = []
    previous: Status | None = None
    for fact in ordered:
        flagged.append(replace(fact, buiten_flow=not legal(previous, fact.status)))
        previous = fact.status
    return tuple(flagged)


@dataclass(frozen=True, slots=True)
class StatusApplied:
    """What adding one status did: `new` False for a resend; `current` True if it became current."""

    bsn: str
    key: tuple[str, str]
    new: bool
    current: bool
    buiten_flow: bool


def add_status(
    state: PupilState | None, record: AanmeldstatusRecord, seq: int
) -> tuple[PupilState, StatusApplied]:
    """Add one status to a pupil's state (a new pupil when `state` is None)."""
    assert record.leerling.bsn is not None
    bsn = record.leerling.bsn
    if state is None:
        state = PupilState(bsn, record.leerling.geboortedatum, record.hoogste_diploma)
    key = (record.instelling_brin, record.aanmelding_id)
    existing = state.aanmelding(key)
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
    latest = max(
        (a.current.statusdatum for a in others), default=None
    )  # the newest record also carries the newest personal details
    newest = latest is None or record.statusdatum >= latest
    state = replace(
        state,
        aanmeldingen=(*others, aanmelding),
        geboortedatum=record.leerling.geboortedatum if newest else state.geboortedatum,
        hoogste_diploma=record.hoogste_diploma if newest else state.hoogste_diploma,
    )
    return state, StatusApplied(bsn, key, True, became_current, placed.buiten_flow)


def add_prognose(
    state: PupilState | None,
    bericht: PrognoseBericht,
    bsn: str,
    geboortedatum: date,
    onderwijssoort: str,
    hoogste_diploma: str | None,
) -> tuple[PupilState, bool]:
    """Keep the prognose if it is the latest for its schooljaar; True when it replaced one."""
    if state is None:
        state = PupilState(bsn, geboortedatum, hoogste_diploma)
    fact = PrognoseFact(bericht.schooljaar, bericht.school, onderwijssoort, bericht.verzonden)
    old = state.prognose(bericht.schooljaar)
    if old is not None and old.verzonden > fact.verzonden:
        return state, False
    others = tuple(p for p in state.prognoses if p.schooljaar != bericht.schooljaar)
    state = replace(state, prognoses=(*others, fact))
    if not state.aanmeldingen:  # aanmeldstatussen carry newer personal details
        state = replace(state, geboortedatum=geboortedatum, hoogste_diploma=hoogste_diploma)
    return state, True


def apply_aanmeldstatussen(
    states: dict[str, PupilState], bericht: AanmeldstatusBericht, first_seq: int
) -> list[StatusApplied]:
    """Add every status with a BSN, in record order, to `states` (updated in place)."""
    applied: list[StatusApplied] = []
    for n, record in enumerate(bericht.records):
        bsn = record.leerling.bsn
        if bsn is None:
            continue
        states[bsn], result = add_status(states.get(bsn), record, first_seq + n)
        applied.append(result)
    return applied


def apply_prognoses(states: dict[str, PupilState], bericht: PrognoseBericht) -> list[str]:
    """Keep every prognose with a BSN in `states`; returns the BSNs whose prognose changed."""
    changed: list[str] = []
    for record in bericht.records:
        bsn = record.leerling.bsn
        if bsn is None:
            continue
        states[bsn], replaced = add_prognose(
            states.get(bsn),
            bericht,
            bsn,
            record.leerling.geboortedatum,
            record.onderwijssoort,
            record.hoogste_diploma,
        )
        if replaced:
            changed.append(bsn)
    return changed
