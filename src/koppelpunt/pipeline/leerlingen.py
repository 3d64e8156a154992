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
        for p in self.prognoses:
            if p.schooljaar == schooljaar:
                return p
        return None

    def aanmelding(self, key: tuple[str, str]) -> Aanmelding | None:
        brin, aanmelding_id = key
        for a in self.aanmeldingen:
            if a.aanmelding_id == aanmelding_id and a.instelling_brin == brin:
                return a
        return None


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
    """Add one status to a pupil's state (a new pupil when `state` is None).

    `seq` must be above every seq in the state (the store numbers new statuses after the
    loaded ones). The common case, a status that sorts after the aanmelding's current one,
    appends it with only its own flag computed; anything else (a late status, or a history
    not as `sort_history` leaves it) rebuilds the history with `sort_history`. Both give the
    same values (tests/pipeline/test_leerlingen.py checks this against the full rebuild).
    """
    leerling = record.leerling
    bsn = leerling.bsn
    assert bsn is not None
    brin, aanmelding_id = record.instelling_brin, record.aanmelding_id
    key = (brin, aanmelding_id)
    if state is None:
        state = PupilState(bsn, leerling.geboortedatum, record.hoogste_diploma)
    # One pass: the aanmelding (the first with this key), the others in their order, and the
    # newest current statusdatum among the others.
    existing: Aanmelding | None = None
    others: list[Aanmelding] = []
    latest: date | None = None
    for a in state.aanmeldingen:
        if a.aanmelding_id == aanmelding_id and a.instelling_brin == brin:
            if existing is None:
                existing = a
            continue
        others.append(a)
        day = a.history[-1].statusdatum
        if latest is None or day > latest:
            latest = day
    status, statusdatum = record.status, record.statusdatum
    if existing is None:
        history: tuple[StatusFact, ...] = (StatusFact(status, statusdatum, seq),)
        placed = history[0]
        opleiding = record.opleiding
    else:
        appended = _append(existing.history, status, statusdatum, seq)
        if appended is None:  # a resend
            return state, StatusApplied(bsn, key, new=False, current=False, buiten_flow=False)
        if appended:
            history = appended
            placed = history[-1]
        else:
            history = sort_history((*existing.history, StatusFact(status, statusdatum, seq)))
            placed = next(f for f in history if f.seq == seq)
        opleiding = record.opleiding if history[-1].seq == seq else existing.opleiding
    became_current = history[-1].seq == seq
    others.append(Aanmelding(brin, aanmelding_id, opleiding, history))
    # The newest record also carries the newest personal details.
    newest = latest is None or statusdatum >= latest
    state = PupilState(
        state.bsn,
        leerling.geboortedatum if newest else state.geboortedatum,
        record.hoogste_diploma if newest else state.hoogste_diploma,
        state.prognoses,
        tuple(others),
    )
    return state, StatusApplied(bsn, key, True, became_current, placed.buiten_flow)


def _append(
    history: tuple[StatusFact, ...], status: Status, statusdatum: date, seq: int
) -> tuple[StatusFact, ...] | None:
    """`history` plus the new fact when that is what `sort_history` would give: the history is
    sorted and flagged as `sort_history` leaves it and the new fact sorts last; () when the
    full rebuild is needed; None when the fact is a resend (already in the history)."""
    fast = True
    previous: StatusFact | None = None
    for f in history:
        if f.status == status and f.statusdatum == statusdatum:
            return None
        if fast and (
            f.seq == seq
            or f.buiten_flow == legal(previous.status if previous else None, f.status)
            or (
                previous is not None
                and (f.statusdatum, f.seq) < (previous.statusdatum, previous.seq)
            )
        ):
            fast = False
        previous = f
    if not fast or previous is None or (statusdatum, seq) < (previous.statusdatum, previous.seq):
        return ()
    flag = not legal(previous.status, status)
    return (*history, StatusFact(status, statusdatum, seq, flag))


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
    schooljaar = bericht.schooljaar
    old: PrognoseFact | None = None
    others: list[PrognoseFact] = []
    for p in state.prognoses:
        if p.schooljaar != schooljaar:
            others.append(p)
        elif old is None:
            old = p
    if old is not None and old.verzonden > bericht.verzonden:
        return state, False
    others.append(PrognoseFact(schooljaar, bericht.school, onderwijssoort, bericht.verzonden))
    if state.aanmeldingen:  # aanmeldstatussen carry newer personal details
        geboortedatum, hoogste_diploma = state.geboortedatum, state.hoogste_diploma
    return PupilState(
        state.bsn, geboortedatum, hoogste_diploma, tuple(others), state.aanmeldingen
    ), True


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
