"""The whole flow in one place: parse/validate → normalise → decide (rules) → signalering.

    body ──parse_message──▶ Parsed ──lookups_needed──▶ (adapter looks up woongemeenten)
                                   ──decide──────────▶ Verwerking (decisions + signaleringen)
                                                        ──(adapter stores + outbox)──▶ relay

Every function here is pure: the adapters in api/ and cli/ do the I/O between the steps (the
woongemeente lookup, storing, publishing). Parsing lives in parse.py; this module chains the
decision steps and builds the receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from koppelpunt.model import (
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Bericht,
    Decision,
    Filtered,
    FilterReden,
    Forwarded,
    Parsed,
    PrognoseBericht,
    Record,
    RecordRejection,
    Signalering,
    SignaleringType,
)
from koppelpunt.pipeline import signalering as build
from koppelpunt.pipeline.gemeenten import GemeenteTable, cbs_code
from koppelpunt.pipeline.rules import Facts, RuleSet, evaluate, evaluate_pre_lookup

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

LookupKey = tuple[str, date]  # (bsn, peildatum)


class LookupUnavailable:
    """Marker in the lookup results: the lookup could not answer now (the record is parked)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE = LookupUnavailable()
# The BRP gemeentecode (4 digits) found for a pupil on a date; None when the person is not
# found or has no Dutch gemeente van inschrijving; UNAVAILABLE when the lookup failed.
LookupResult = str | None | LookupUnavailable


def peildatum_of(bericht: Bericht, record: Record) -> date:
    """The date the filters are measured on (our choice, see domain.md).

    Aanmeldstatus: its statusdatum. Prognose: the date it was sent, in Dutch local time.
    """
    if isinstance(record, AanmeldstatusRecord):
        return record.statusdatum
    return bericht.verzonden.astimezone(AMSTERDAM).date()


def _facts(bericht: Bericht, record: Record, woongemeente: str | None) -> Facts:
    return Facts(
        peildatum=peildatum_of(bericht, record),
        geboortedatum=record.leerling.geboortedatum,
        hoogste_diploma=record.hoogste_diploma,
        bsn=record.leerling.bsn,
        woongemeente=woongemeente,
    )


def lookups_needed(parsed: Parsed, rules: RuleSet) -> list[LookupKey]:
    """(bsn, peildatum) pairs to look up: only records that pass the rules before the lookup."""
    wanted: dict[LookupKey, None] = {}
    for record in parsed.bericht.records:
        facts = _facts(parsed.bericht, record, None)
        if evaluate_pre_lookup(rules, facts) is None and facts.bsn is not None:
            wanted[(facts.bsn, facts.peildatum)] = None
    return list(wanted)


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What happened to one record: a decision, or parked because the lookup was down."""

    index: int
    bsn: str | None
    peildatum: date
    decision: Decision | None
    parked: bool = False


@dataclass(frozen=True, slots=True)
class Verwerking:
    """The result of deciding one message: per record outcome, and the signaleringen."""

    bericht: Bericht
    outcomes: tuple[RecordOutcome, ...]
    afgewezen: tuple[RecordRejection, ...]
    signaleringen: tuple[Signalering, ...]

    def gefilterd(self) -> dict[str, int]:
        counts = {reden.value: 0 for reden in FilterReden}
        for outcome in self.outcomes:
            if isinstance(outcome.decision, Filtered):
                counts[outcome.decision.reden.value] += 1
        return counts

    @property
    def geparkeerd(self) -> int:
        return sum(1 for o in self.outcomes if o.parked)


def route(
    gemeenten: GemeenteTable, brp_code: str | None, peildatum: date, today: date
) -> str | None:
    """The CBS code of the gemeente to route to, or None.

    A code dissolved by a herindeling is replaced by its successor. We resolve on the later of
    the peildatum and today, so a dissolved gemeente's topic never receives anything new.
    """
    if brp_code is None:
        return None
    code4 = gemeenten.resolve(brp_code, max(peildatum, today))
    return cbs_code(code4) if code4 else None


def decide(
    parsed: Parsed,
    rules: RuleSet,
    gemeenten: GemeenteTable,
    woongemeenten: Mapping[LookupKey, LookupResult],
    now: datetime,
) -> Verwerking:
    """Decide every record and build the signaleringen of the forwarded ones."""
    bericht = parsed.bericht
    today = now.astimezone(AMSTERDAM).date()
    outcomes: list[RecordOutcome] = []
    signaleringen: dict[str, Signalering] = {}
    for record in bericht.records:
        facts = _facts(bericht, record, None)
        decision: Decision | None = evaluate_pre_lookup(rules, facts)
        if decision is None:
            assert facts.bsn is not None
            found = woongemeenten.get((facts.bsn, facts.peildatum), UNAVAILABLE)
            if isinstance(found, LookupUnavailable):
                outcomes.append(
                    RecordOutcome(record.index, facts.bsn, facts.peildatum, None, parked=True)
                )
                continue
            gemeente = route(gemeenten, found, facts.peildatum, today)
            decision = evaluate(rules, _facts(bericht, record, gemeente))
        outcomes.append(RecordOutcome(record.index, facts.bsn, facts.peildatum, decision))
        if isinstance(decision, Forwarded):
            signalering = _forward(bericht, record, decision.gemeentecode, rules, now)
            if signalering is not None:
                signaleringen.setdefault(signalering.signalering_id, signalering)
    return Verwerking(bericht, tuple(outcomes), parsed.afgewezen, tuple(signaleringen.values()))


def _forward(
    bericht: Bericht, record: Record, gemeentecode: str, rules: RuleSet, now: datetime
) -> Signalering | None:
    if isinstance(bericht, PrognoseBericht) and not isinstance(record, AanmeldstatusRecord):
        if rules.enabled(SignaleringType.PROGNOSE):
            return build.from_prognose(bericht, record, gemeentecode, now)
        return None
    if isinstance(bericht, AanmeldstatusBericht) and isinstance(record, AanmeldstatusRecord):
        if rules.enabled(SignaleringType.AANMELDSTATUS):
            return build.from_aanmeldstatus(bericht, record, gemeentecode, now)
        return None
    raise TypeError(f"record {type(record).__name__} does not belong to {type(bericht).__name__}")


def receipt(verwerking: Verwerking, aantal_signaleringen: int) -> dict[str, Any]:
    """The receipt JSON returned with 202 (and again, unchanged, for an identical resend)."""
    bericht = verwerking.bericht
    return {
        "berichtId": bericht.bericht_id,
        "soort": bericht.soort.value,
        "aantalRecords": len(bericht.records) + len(verwerking.afgewezen),
        "aantalSignaleringen": aantal_signaleringen,
        "gefilterd": verwerking.gefilterd(),
        "geparkeerd": verwerking.geparkeerd,
        "afgewezen": [
            {"index": r.index, "reden": r.reden, **({"locatie": r.path} if r.path else {})}
            for r in verwerking.afgewezen
        ],
    }
