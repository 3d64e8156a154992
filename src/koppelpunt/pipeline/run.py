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
from koppelpunt.pipeline.rules import RuleSet, compile_pre_lookup, decide_woongemeente

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


def _peildata(bericht: Bericht) -> list[date]:
    """`peildatum_of(bericht, record)` for every record, the prognose day computed once."""
    verzonden_dag: date | None = None
    peildata: list[date] = []
    for record in bericht.records:
        if isinstance(record, AanmeldstatusRecord):
            peildata.append(record.statusdatum)
        else:
            if verzonden_dag is None:
                verzonden_dag = bericht.verzonden.astimezone(AMSTERDAM).date()
            peildata.append(verzonden_dag)
    return peildata


def lookups_needed(parsed: Parsed, rules: RuleSet) -> list[LookupKey]:
    """(bsn, peildatum) pairs to look up: only records that pass the rules before the lookup."""
    check = compile_pre_lookup(rules)
    wanted: dict[LookupKey, None] = {}
    records: tuple[Record, ...] = parsed.bericht.records
    for record, peildatum in zip(records, _peildata(parsed.bericht), strict=True):
        leerling = record.leerling
        bsn = leerling.bsn
        if (
            check(peildatum, leerling.geboortedatum, record.hoogste_diploma, bsn) is None
            and bsn is not None
        ):
            wanted[(bsn, peildatum)] = None
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
    # The rules, once per message: evaluate_pre_lookup as a closure, then evaluate's last rule
    # on the routed gemeente. The same decision as `evaluate(rules, Facts(...))` (tested),
    # without building Facts per record.
    check = compile_pre_lookup(rules)
    # (BRP code, routing day) -> decision: route() is the same for every pupil of a gemeente.
    routed: dict[tuple[str | None, date], Decision] = {}
    outcomes: list[RecordOutcome] = []
    signaleringen: dict[str, Signalering] = {}
    records: tuple[Record, ...] = bericht.records
    for record, peildatum in zip(records, _peildata(bericht), strict=True):
        leerling = record.leerling
        bsn = leerling.bsn
        decision: Decision | None = check(
            peildatum, leerling.geboortedatum, record.hoogste_diploma, bsn
        )
        if decision is None:
            assert bsn is not None
            found = woongemeenten.get((bsn, peildatum), UNAVAILABLE)
            if isinstance(found, LookupUnavailable):
                outcomes.append(RecordOutcome(record.index, bsn, peildatum, None, parked=True))
                continue
            key = (found, max(peildatum, today))
            cached = routed.get(key)
            if cached is None:
                cached = routed[key] = decide_woongemeente(
                    route(gemeenten, found, peildatum, today)
                )
            decision = cached
        outcomes.append(RecordOutcome(record.index, bsn, peildatum, decision))
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
