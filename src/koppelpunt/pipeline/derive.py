"""Derived signaleringen: what a gemeente should act on, decided from pupil state. Pure.

- GEEN_PLAATSING on receipt: an aanmelding becomes GEEN_INSCHRIJVING or INGETROKKEN (as its
  current status) while no other aanmelding of the same transition is open.
- NIET_AANGEMELD on the aanmeld-peildatum: a prognose, no aanmelding by that date.
- NIET_INGESCHREVEN on the teldatum: a prognose or aanmelding, no INGESCHREVEN by that date.
- VERHUISD / OVERDRACHT: the woongemeente differs from the one that received the previous
  signalering; the old gemeente learns only that the pupil left, the new one gets the state.

A transition ("schooljaar" S = Y1-Y2, the VO year the prognose names) covers the aanmeldingen
whose first statusdatum lies after the teldatum in Y1 and on or before the teldatum in Y2
(our choice: aanmeldstatussen carry no schooljaar).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from koppelpunt.model import (
    AanmeldingDetails,
    AanmeldstatusRecord,
    Filtered,
    Forwarded,
    PrognoseBericht,
    PrognoseDetails,
    Record,
    Signalering,
    SignaleringType,
    Status,
)
from koppelpunt.pipeline.gemeenten import GemeenteTable, cbs_code, normalise_code
from koppelpunt.pipeline.leerlingen import (
    CLOSED,
    OPEN,
    Aanmelding,
    PupilState,
    StatusApplied,
    add_prognose,
    add_status,
)
from koppelpunt.pipeline.rules import Facts, RuleSet, evaluate, evaluate_pre_lookup
from koppelpunt.pipeline.run import AMSTERDAM, Verwerking, route
from koppelpunt.pipeline.signalering import derived_id, signalering_id


def schooljaar_of(rules: RuleSet, day: date) -> str:
    """The transition a date belongs to: S = Y1-Y2 when teldatum(Y1) < day <= teldatum(Y2)."""
    if day <= rules.peildata.teldatum.in_jaar(day.year):
        return f"{day.year - 1}-{day.year}"
    return f"{day.year}-{day.year + 1}"


def window(rules: RuleSet, schooljaar: str) -> tuple[date, date]:
    """(after, until): an aanmelding first seen in after < day <= until belongs to `schooljaar`."""
    y1, y2 = int(schooljaar[0:4]), int(schooljaar[5:9])
    return rules.peildata.teldatum.in_jaar(y1), rules.peildata.teldatum.in_jaar(y2)


def aanmeldingen_in(state: PupilState, rules: RuleSet, schooljaar: str) -> list[Aanmelding]:
    return sorted(
        (a for a in state.aanmeldingen if schooljaar_of(rules, a.eerste_statusdatum) == schooljaar),
        key=lambda a: a.key,
    )


def _details(a: Aanmelding, on: date | None = None) -> AanmeldingDetails | None:
    if on is None:
        fact = a.current
    else:
        known = [f for f in a.history if f.statusdatum <= on]
        if not known:
            return None
        fact = known[-1]
    return AanmeldingDetails(
        aanmelding_id=a.aanmelding_id,
        instelling_brin=a.instelling_brin,
        opleiding=a.opleiding,
        status=fact.status,
        statusdatum=fact.statusdatum,
    )


def _prognose(state: PupilState, schooljaar: str) -> PrognoseDetails | None:
    p = state.prognose(schooljaar)
    if p is None:
        return None
    return PrognoseDetails(
        school=p.school, schooljaar=p.schooljaar, onderwijssoort=p.onderwijssoort
    )


def _build(
    soort: SignaleringType,
    state: PupilState,
    rules: RuleSet,
    gemeentecode: str,
    schooljaar: str,
    peildatum: date,
    now: datetime,
    *,
    as_of: date | None = None,
) -> Signalering:
    """A derived signalering carrying the prognose and the aanmeldingen of the transition.

    `as_of`: show each aanmelding's status as known on that date (peildatum checks), else the
    current one.
    """
    aanmeldingen = tuple(
        d for a in aanmeldingen_in(state, rules, schooljaar) if (d := _details(a, as_of))
    )
    return Signalering(
        signalering_id=derived_id(soort, gemeentecode, state.bsn, schooljaar, peildatum),
        type=soort,
        gemeentecode=gemeentecode,
        aangemaakt=now,
        bsn=state.bsn,
        geboortedatum=state.geboortedatum,
        prognose=_prognose(state, schooljaar),
        aanmeldingen=aanmeldingen,
        peildatum=peildatum,
        schooljaar=schooljaar,
    )


# --- on receipt ------------------------------------------------------------------------------


def geen_plaatsing(
    state: PupilState, applied: StatusApplied, rules: RuleSet, gemeentecode: str, now: datetime
) -> Signalering | None:
    """GEEN_PLAATSING when this status closed its aanmelding and nothing else is open.

    Only a new status that became current counts: a resend or a late older status does not.
    """
    if not (applied.new and applied.current):
        return None
    return geen_plaatsing_now(state, applied.key, rules, gemeentecode, now)


def geen_plaatsing_now(
    state: PupilState, key: tuple[str, str], rules: RuleSet, gemeentecode: str, now: datetime
) -> Signalering | None:
    """GEEN_PLAATSING judged on the state as it is now (also used for a parked record)."""
    if not rules.enabled(SignaleringType.GEEN_PLAATSING):
        return None
    aanmelding = state.aanmelding(key)
    if aanmelding is None or aanmelding.current.status not in CLOSED:
        return None
    schooljaar = schooljaar_of(rules, aanmelding.eerste_statusdatum)
    for other in aanmeldingen_in(state, rules, schooljaar):
        if other.key != key and other.current.status in OPEN:
            return None
    return _build(
        SignaleringType.GEEN_PLAATSING,
        state,
        rules,
        gemeentecode,
        schooljaar,
        aanmelding.current.statusdatum,
        now,
    )


# --- moves -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastGemeente:
    """The gemeente (CBS code) that received a pupil's latest signalering, and its fact date."""

    gemeentecode: str
    peildatum: date


def latest_schooljaar(state: PupilState, rules: RuleSet) -> str | None:
    years = [p.schooljaar for p in state.prognoses] + [
        schooljaar_of(rules, a.eerste_statusdatum) for a in state.aanmeldingen
    ]
    return max(years, default=None)


def moves(
    state: PupilState | None,
    bsn: str,
    geboortedatum: date,
    last: LastGemeente | None,
    gemeentecode: str,
    peildatum: date,
    gemeenten: GemeenteTable,
    rules: RuleSet,
    now: datetime,
    today: date,
) -> tuple[list[Signalering], LastGemeente | None]:
    """OVERDRACHT/VERHUISD when a pupil's gemeente changed; and the new LastGemeente (or None
    when it stays as it is).

    A fact older than the last one known says nothing about where the pupil lives now (a late
    status), so it never signals a move. A code dissolved by a herindeling into the new one is
    not a move.
    """
    if last is not None and (
        peildatum < last.peildatum
        or (peildatum == last.peildatum and gemeentecode == last.gemeentecode)
    ):
        return [], None  # a late fact, or the very same one: nothing changes
    new_last = LastGemeente(gemeentecode, peildatum)
    if last is None or last.gemeentecode == gemeentecode:
        return [], (new_last if last != new_last else None)
    code4 = normalise_code(last.gemeentecode)
    old4 = gemeenten.resolve(code4, max(peildatum, today)) if code4 else None
    old = cbs_code(old4) if old4 else None
    if old == gemeentecode:
        return [], new_last
    found: list[Signalering] = []
    day = peildatum.isoformat()
    if rules.enabled(SignaleringType.OVERDRACHT):
        schooljaar = latest_schooljaar(state, rules) if state is not None else None
        aanmeldingen: tuple[AanmeldingDetails, ...] = ()
        prognose = None
        if state is not None and schooljaar is not None:
            aanmeldingen = tuple(
                d for a in aanmeldingen_in(state, rules, schooljaar) if (d := _details(a))
            )
            prognose = _prognose(state, schooljaar)
        found.append(
            Signalering(
                signalering_id=signalering_id(SignaleringType.OVERDRACHT, gemeentecode, bsn, day),
                type=SignaleringType.OVERDRACHT,
                gemeentecode=gemeentecode,
                aangemaakt=now,
                bsn=bsn,
                geboortedatum=geboortedatum,
                prognose=prognose,
                aanmeldingen=aanmeldingen,
                peildatum=peildatum,
                schooljaar=schooljaar,
            )
        )
    if old is not None and rules.enabled(SignaleringType.VERHUISD):
        # Nothing about the new gemeente, not even in the id's inputs (privacy).
        found.append(
            Signalering(
                signalering_id=signalering_id(SignaleringType.VERHUISD, old, bsn, day),
                type=SignaleringType.VERHUISD,
                gemeentecode=old,
                aangemaakt=now,
                bsn=bsn,
                geboortedatum=geboortedatum,
                peildatum=peildatum,
            )
        )
    return found, new_last


# --- one received message ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Derived:
    """What deciding a message (or a parked part of it) derived beyond the records themselves."""

    signaleringen: tuple[Signalering, ...]
    applied: tuple[StatusApplied, ...]
    # Pupils whose last-signalled gemeente changed, with the new value.
    last: dict[str, LastGemeente]


def on_receipt(
    states: dict[str, PupilState],
    verwerking: Verwerking,
    rules: RuleSet,
    gemeenten: GemeenteTable,
    last: Mapping[str, LastGemeente],
    now: datetime,
    first_seq: int,
    *,
    apply_state: bool = True,
) -> Derived:
    """Apply the message's records to `states` (in place, in record order) and derive.

    Each forwarded record may signal a move (its gemeente differs from the last one) and an
    aanmeldstatus may signal GEEN_PLAATSING, judged on the state right after that record.
    `apply_state=False` is for parked records decided later: their facts are already in the
    state, so GEEN_PLAATSING is judged on the state as it is now.
    """
    bericht = verwerking.bericht
    outcomes = {o.index: o for o in verwerking.outcomes}
    today = now.astimezone(AMSTERDAM).date()
    lasts = dict(last)
    changed: dict[str, LastGemeente] = {}
    applied: list[StatusApplied] = []
    found: dict[str, Signalering] = {}
    records: tuple[Record, ...] = bericht.records
    for n, record in enumerate(records):
        bsn = record.leerling.bsn
        if bsn is None:
            continue
        result: StatusApplied | None = None
        if apply_state:
            if isinstance(record, AanmeldstatusRecord):
                states[bsn], result = add_status(states.get(bsn), record, first_seq + n)
                applied.append(result)
            else:
                assert isinstance(bericht, PrognoseBericht)
                states[bsn], _ = add_prognose(
                    states.get(bsn),
                    bericht,
                    bsn,
                    record.leerling.geboortedatum,
                    record.onderwijssoort,
                    record.hoogste_diploma,
                )
        outcome = outcomes.get(record.index)
        if outcome is None or not isinstance(outcome.decision, Forwarded):
            continue
        gemeentecode = outcome.decision.gemeentecode
        moved, new_last = moves(
            states.get(bsn),
            bsn,
            record.leerling.geboortedatum,
            lasts.get(bsn),
            gemeentecode,
            outcome.peildatum,
            gemeenten,
            rules,
            now,
            today,
        )
        if new_last is not None:
            lasts[bsn] = changed[bsn] = new_last
        for s in moved:
            found.setdefault(s.signalering_id, s)
        if isinstance(record, AanmeldstatusRecord) and bsn in states:
            if result is None:
                gp = _if_current(states[bsn], record, rules, gemeentecode, now)
            elif record.status in CLOSED:  # else, current or not, it closed nothing
                gp = geen_plaatsing(states[bsn], result, rules, gemeentecode, now)
            else:
                gp = None
            if gp is not None:
                found.setdefault(gp.signalering_id, gp)
    return Derived(tuple(found.values()), tuple(applied), changed)


def _if_current(
    state: PupilState,
    record: AanmeldstatusRecord,
    rules: RuleSet,
    gemeentecode: str,
    now: datetime,
) -> Signalering | None:
    """For a parked record: GEEN_PLAATSING only if its status is still the current one."""
    aanmelding = state.aanmelding((record.instelling_brin, record.aanmelding_id))
    if aanmelding is None or aanmelding.current.key != (record.status, record.statusdatum):
        return None
    return geen_plaatsing_now(state, aanmelding.key, rules, gemeentecode, now)


# --- peildatum checks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pupil who may get a peildatum signalering, if the woongemeente lookup agrees."""

    soort: SignaleringType
    bsn: str
    schooljaar: str
    peildatum: date


def checks_due(rules: RuleSet, day: date) -> list[tuple[SignaleringType, str]]:
    """The (type, schooljaar) checks whose date is `day` and whose type is enabled."""
    schooljaar = f"{day.year - 1}-{day.year}"
    due: list[tuple[SignaleringType, str]] = []
    if rules.enabled(SignaleringType.NIET_AANGEMELD) and rules.aanmeld_peildatum(schooljaar) == day:
        due.append((SignaleringType.NIET_AANGEMELD, schooljaar))
    if rules.enabled(SignaleringType.NIET_INGESCHREVEN) and rules.teldatum(schooljaar) == day:
        due.append((SignaleringType.NIET_INGESCHREVEN, schooljaar))
    return due


def _passes_pre_lookup(state: PupilState, rules: RuleSet, day: date) -> bool:
    facts = Facts(day, state.geboortedatum, state.hoogste_diploma, state.bsn, None)
    return evaluate_pre_lookup(rules, facts) is None


def candidates(states: Iterable[PupilState], rules: RuleSet, day: date) -> list[Candidate]:
    """Pupils a check due on `day` applies to, passing the filters that need no lookup."""
    due = checks_due(rules, day)
    found: list[Candidate] = []
    for state in states:
        for soort, schooljaar in due:
            if soort is SignaleringType.NIET_AANGEMELD:
                hit = state.prognose(schooljaar) is not None and not any(
                    a.eerste_statusdatum <= day for a in aanmeldingen_in(state, rules, schooljaar)
                )
            else:
                mine = aanmeldingen_in(state, rules, schooljaar)
                hit = (state.prognose(schooljaar) is not None or bool(mine)) and not any(
                    a.status_on(day) is Status.INGESCHREVEN for a in mine
                )
            if hit and _passes_pre_lookup(state, rules, day):
                found.append(Candidate(soort, state.bsn, schooljaar, day))
    return found


def peildatum_signalering(
    candidate: Candidate,
    state: PupilState,
    woongemeente: str | None,
    rules: RuleSet,
    now: datetime,
) -> Signalering | None:
    """The signalering for a candidate once its (routed) woongemeente is known; None if filtered."""
    facts = Facts(
        candidate.peildatum, state.geboortedatum, state.hoogste_diploma, state.bsn, woongemeente
    )
    decision = evaluate(rules, facts)
    if isinstance(decision, Filtered):
        return None
    assert isinstance(decision, Forwarded)
    return _build(
        candidate.soort,
        state,
        rules,
        decision.gemeentecode,
        candidate.schooljaar,
        candidate.peildatum,
        now,
        as_of=candidate.peildatum,
    )


def on_peildatum(
    candidate: Candidate,
    state: PupilState,
    brp_code: str | None,
    last: LastGemeente | None,
    gemeenten: GemeenteTable,
    rules: RuleSet,
    now: datetime,
    today: date,
) -> tuple[list[Signalering], LastGemeente | None]:
    """One candidate of a check whose woongemeente lookup answered: its signalering (none if
    filtered), preceded by the OVERDRACHT/VERHUISD of a move it reveals, and the new last
    gemeente (None when unchanged). Shared by the peildatum run and the rules dry run."""
    gemeente = route(gemeenten, brp_code, candidate.peildatum, today)
    s = peildatum_signalering(candidate, state, gemeente, rules, now)
    if s is None:
        return [], None
    moved, new_last = moves(
        state,
        candidate.bsn,
        state.geboortedatum,
        last,
        s.gemeentecode,
        candidate.peildatum,
        gemeenten,
        rules,
        now,
        today,
    )
    return [*moved, s], new_last


def count(signaleringen: Sequence[Signalering]) -> dict[tuple[str, str], int]:
    """Counts per (gemeente, type), for the CLI and logs."""
    counts: dict[tuple[str, str], int] = {}
    for s in signaleringen:
        k = (s.gemeentecode, s.type.value)
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items()))


__all__ = [
    "Candidate",
    "LastGemeente",
    "candidates",
    "checks_due",
    "count",
    "geen_plaatsing",
    "geen_plaatsing_now",
    "moves",
    "peildatum_signalering",
    "schooljaar_of",
]
