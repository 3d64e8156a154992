"""run.lookups_needed / run.decide, the compiled pre-lookup rules and signalering ids: the fast
paths return exactly what the former implementations did.

The former `lookups_needed` and `decide` (a Facts per rule evaluation, as of 01c78c3) are kept
below verbatim as the reference, and `uuid.uuid5` is the reference for signalering ids.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench import generate as gen
from koppelpunt.model import (
    AanmeldstatusBericht,
    AanmeldstatusRecord,
    Bericht,
    Decision,
    Filtered,
    FilterReden,
    Forwarded,
    Invalid,
    Leerling,
    Opleiding,
    Parsed,
    PrognoseBericht,
    Record,
    Signalering,
    SignaleringType,
    Soort,
    Status,
)
from koppelpunt.pipeline import run
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.parse import SchemaRegistry, parse_message
from koppelpunt.pipeline.rules import (
    Facts,
    LeeftijdRule,
    RuleSet,
    StartkwalificatieRule,
    compile_pre_lookup,
    evaluate,
    evaluate_pre_lookup,
    load_rules,
)
from koppelpunt.pipeline.run import (
    UNAVAILABLE,
    LookupKey,
    LookupResult,
    LookupUnavailable,
    RecordOutcome,
    Verwerking,
    _forward,
    peildatum_of,
    route,
)
from koppelpunt.pipeline.signalering import NAMESPACE, signalering_id
from tests.strategies import DIPLOMAS, aanmeldstatus_berichten, prognose_berichten

ROOT = Path(__file__).resolve().parents[2]
AMSTERDAM = run.AMSTERDAM

# --- the former implementation, verbatim (reference) ------------------------------------------


def _facts(bericht: Bericht, record: Record, woongemeente: str | None) -> Facts:
    return Facts(
        peildatum=peildatum_of(bericht, record),
        geboortedatum=record.leerling.geboortedatum,
        hoogste_diploma=record.hoogste_diploma,
        bsn=record.leerling.bsn,
        woongemeente=woongemeente,
    )


def reference_lookups_needed(parsed: Parsed, rules: RuleSet) -> list[LookupKey]:
    wanted: dict[LookupKey, None] = {}
    for record in parsed.bericht.records:
        facts = _facts(parsed.bericht, record, None)
        if evaluate_pre_lookup(rules, facts) is None and facts.bsn is not None:
            wanted[(facts.bsn, facts.peildatum)] = None
    return list(wanted)


def reference_decide(
    parsed: Parsed,
    rules: RuleSet,
    gemeenten: GemeenteTable,
    woongemeenten: Mapping[LookupKey, LookupResult],
    now: datetime,
) -> Verwerking:
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


def reference_signalering_id(soort: SignaleringType, gemeentecode: str, *parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join((soort.value, gemeentecode, *parts))))


# --- strategies --------------------------------------------------------------------------------

GEMEENTEN = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
RULES = load_rules(ROOT / "routing_rules")
# Every kind of lookup answer: active and dissolved gemeenten, onbekend, RNI, unknown codes.
# Dissolved by a herindeling after 2019: the routing day decides whether they still count.
DISSOLVED = sorted(
    code for code, g in GEMEENTEN.gemeenten.items() if g.einde and g.einde.year >= 2019
)
ACTIVE = sorted(code for code, g in GEMEENTEN.gemeenten.items() if g.einde is None)
lookup_answers: st.SearchStrategy[LookupResult | None] = st.one_of(
    st.sampled_from(ACTIVE[:20]),
    st.sampled_from(DISSOLVED),
    st.sampled_from(("0000", "1999", "9998", "363")),
    st.just(None),
    st.just(UNAVAILABLE),
)
# Leap days, so 29 February birthdays and peildata turn up often.
leap_days = st.integers(1992, 2032).filter(lambda y: y % 4 == 0).map(lambda y: date(y, 2, 29))
days = st.one_of(st.dates(min_value=date(1950, 1, 1), max_value=date(2060, 12, 31)), leap_days)


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    enabled = {
        t: draw(st.booleans()) for t in (SignaleringType.PROGNOSE, SignaleringType.AANMELDSTATUS)
    }
    return RULES.model_copy(
        update={
            "leeftijd": LeeftijdRule(jonger_dan=draw(st.integers(1, 40))),
            "startkwalificatie": StartkwalificatieRule(
                diplomas=frozenset(draw(st.sets(st.sampled_from(DIPLOMAS))))
            ),
            "signaleringen": {**RULES.signaleringen, **enabled},
        }
    )


@st.composite
def berichten(draw: st.DrawFn) -> Bericht:
    """A prognose or aanmeldstatus bericht where pupils, and whole records, may recur."""
    bericht: Bericht = draw(
        st.one_of(prognose_berichten(max_records=10), aanmeldstatus_berichten(max_records=10))
    )
    records: list[Record] = list(bericht.records)
    for i in range(1, len(records)):
        choice = draw(st.integers(0, 3))
        if choice == 1:  # the same pupil again
            records[i] = dataclasses.replace(records[i], leerling=records[0].leerling)
        elif choice == 2:  # the same record again (same signalering id)
            records[i] = dataclasses.replace(records[0], index=i)
    return dataclasses.replace(bericht, records=tuple(records))  # type: ignore[arg-type]


@st.composite
def lookups(draw: st.DrawFn, parsed: Parsed) -> dict[LookupKey, LookupResult]:
    """Answers for the keys the reference asks for (and some it does not); some left out."""
    keys = reference_lookups_needed(parsed, RULES)
    records: tuple[Record, ...] = parsed.bericht.records
    keys += [(r.leerling.bsn, peildatum_of(parsed.bericht, r)) for r in records if r.leerling.bsn]
    found: dict[LookupKey, LookupResult] = {}
    for key in keys:
        answer = draw(lookup_answers)
        if answer is not None or draw(st.booleans()):
            found[key] = answer
    return found


nows = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
)


# --- the properties ----------------------------------------------------------------------------


class TestCompilePreLookup:
    @given(
        jonger_dan=st.integers(1, 120),
        peildatum=days,
        geboortedatum=days,
        hoogste_diploma=st.none() | st.sampled_from(DIPLOMAS),
        bsn=st.sampled_from((None, "", "999993653")),
        diplomas=st.sets(st.sampled_from(DIPLOMAS)),
    )
    def test_equals_evaluate_pre_lookup(
        self,
        jonger_dan: int,
        peildatum: date,
        geboortedatum: date,
        hoogste_diploma: str | None,
        bsn: str | None,
        diplomas: set[str],
    ) -> None:
        """Same Filtered (reason and details, age included) or None, for any rule values."""
        rules = RULES.model_copy(
            update={
                "leeftijd": LeeftijdRule(jonger_dan=jonger_dan),
                "startkwalificatie": StartkwalificatieRule(diplomas=frozenset(diplomas)),
            }
        )
        facts = Facts(peildatum, geboortedatum, hoogste_diploma, bsn, None)
        check = compile_pre_lookup(rules)
        assert check(peildatum, geboortedatum, hoogste_diploma, bsn) == evaluate_pre_lookup(
            rules, facts
        )

    @pytest.mark.parametrize(
        ("peildatum", "leeftijd"),
        [(date(2027, 2, 28), 22), (date(2027, 3, 1), 23), (date(2028, 2, 28), 23)],
    )
    def test_leap_day_birthday_boundary(self, peildatum: date, leeftijd: int) -> None:
        """Born 29 February 2004: 23 from 1 March 2027, and still 23 on 28 February 2028."""
        rules = RULES.model_copy(update={"leeftijd": LeeftijdRule(jonger_dan=23)})
        result = compile_pre_lookup(rules)(peildatum, date(2004, 2, 29), None, "999993653")
        facts = Facts(peildatum, date(2004, 2, 29), None, "999993653", None)
        assert result == evaluate_pre_lookup(rules, facts)
        assert (result is None) == (leeftijd < 23)


class TestDecide:
    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), bericht=berichten(), rules=rule_sets(), now=nows)
    def test_equals_the_former_decide(
        self, data: st.DataObject, bericht: Bericht, rules: RuleSet, now: datetime
    ) -> None:
        """Same lookups, outcomes (parked, every filter reason, forwarded) and signaleringen."""
        parsed = Parsed(bericht)
        assert run.lookups_needed(parsed, rules) == reference_lookups_needed(parsed, rules)
        found = data.draw(lookups(parsed))
        expected = reference_decide(parsed, rules, GEMEENTEN, found, now)
        assert run.decide(parsed, rules, GEMEENTEN, found, now) == expected

    def test_every_outcome_is_covered(self) -> None:
        """A realistic message (bench/generate.py) decided both ways: equal, and it has parked,
        forwarded and every filter reason, so the property is not vacuous there."""
        schemas = SchemaRegistry.load(ROOT / "schemas")
        people = gen.pupils(3000)
        register = {p.bsn: p.gemeentecode for p in people}
        body = gen.aanmeldstatus_body("eq", gen.statuses(people, 2000))
        parsed = parse_message(body, Soort.AANMELDSTATUS, schemas)
        assert not isinstance(parsed, Invalid)
        keys = run.lookups_needed(parsed, RULES)
        assert keys == reference_lookups_needed(parsed, RULES)
        # One pupil in twenty: the lookup is down; the others get the register's answer.
        found: dict[LookupKey, LookupResult] = {
            key: UNAVAILABLE if i % 20 == 0 else register.get(key[0]) for i, key in enumerate(keys)
        }
        now = datetime(2027, 7, 1, 8, 0, tzinfo=UTC)
        verwerking = run.decide(parsed, RULES, GEMEENTEN, found, now)
        assert verwerking == reference_decide(parsed, RULES, GEMEENTEN, found, now)
        assert verwerking.geparkeerd > 0 and verwerking.signaleringen
        reasons = {
            o.decision.reden for o in verwerking.outcomes if isinstance(o.decision, Filtered)
        }
        assert reasons == set(FilterReden) - {FilterReden.GEEN_BSN}
        # geenBsn needs onderwijsnummers, which the generator does not send: the property does.

    def test_a_dissolved_gemeente_routes_by_the_later_of_peildatum_and_today(self) -> None:
        """Weesp (0457, into Amsterdam on 24 March 2022): the same lookup answer routes to
        Weesp for a record dated before that day and to Amsterdam for one dated after it."""
        leerling = Leerling("999993653", None, date(2006, 5, 13))
        record = AanmeldstatusRecord(
            index=0,
            aanmelding_id="A1",
            leerling=leerling,
            instelling_brin="25LX",
            opleiding=Opleiding("25000", 2, "BOL"),
            status=Status.AANGEMELD,
            statusdatum=date(2022, 2, 1),
            hoogste_diploma=None,
            latende_school_brin=None,
        )
        later = dataclasses.replace(
            record, index=1, status=Status.INGESCHREVEN, statusdatum=date(2022, 4, 1)
        )
        verzonden = datetime(2022, 4, 2, tzinfo=UTC)
        parsed = Parsed(AanmeldstatusBericht("b", verzonden, (record, later)))
        found: dict[LookupKey, LookupResult] = dict.fromkeys(
            reference_lookups_needed(parsed, RULES), "0457"
        )
        now = datetime(2022, 1, 10, 9, 0, tzinfo=UTC)
        verwerking = run.decide(parsed, RULES, GEMEENTEN, found, now)
        assert verwerking == reference_decide(parsed, RULES, GEMEENTEN, found, now)
        assert [o.decision for o in verwerking.outcomes] == [
            Forwarded("GM0457"),
            Forwarded("GM0363"),
        ]

    def test_prognose_peildatum_is_the_dutch_day_it_was_sent(self) -> None:
        """23:30 UTC on 31 December is already 1 January in Amsterdam, for every record."""
        people = gen.pupils(50)
        schemas = SchemaRegistry.load(ROOT / "schemas")
        body = gen.prognose_body("p", people, "25LX").replace(
            b"2027-01-15T10:00:00+01:00", b"2026-12-31T23:30:00Z"
        )
        parsed = parse_message(body, Soort.PROGNOSE, schemas)
        assert isinstance(parsed, Parsed) and isinstance(parsed.bericht, PrognoseBericht)
        keys = run.lookups_needed(parsed, RULES)
        assert keys == reference_lookups_needed(parsed, RULES)
        assert {peildatum for _, peildatum in keys} == {date(2027, 1, 1)}


class TestSignaleringId:
    @given(
        soort=st.sampled_from(SignaleringType),
        gemeentecode=st.text(max_size=8),
        parts=st.lists(st.text(), max_size=6),
    )
    def test_equals_uuid5(
        self, soort: SignaleringType, gemeentecode: str, parts: list[str]
    ) -> None:
        """The same string as str(uuid.uuid5(NAMESPACE, ...)) for any text, non-ASCII too."""
        assert signalering_id(soort, gemeentecode, *parts) == reference_signalering_id(
            soort, gemeentecode, *parts
        )

    def test_known_id_is_stable(self) -> None:
        """An id published before this change is still the same (ids must never change)."""
        parts = ("999993653", "25LX", "A00000001", "AANGEMELD", "2027-03-01")
        sid = signalering_id(SignaleringType.AANMELDSTATUS, "GM0363", *parts)
        assert sid == reference_signalering_id(SignaleringType.AANMELDSTATUS, "GM0363", *parts)
        assert sid == "af7dc7de-08eb-52ea-82e7-5ca889fc0bbb"  # as published by 01c78c3
        assert uuid.UUID(sid).version == 5

    @given(bericht=aanmeldstatus_berichten(max_records=3))
    def test_aanmeldstatus_id_uses_the_status_value(self, bericht: AanmeldstatusBericht) -> None:
        """from_aanmeldstatus joins the status as its value, as `status.value` did."""
        record = bericht.records[0]
        assume(record.leerling.bsn is not None)
        assert record.leerling.bsn is not None
        made = _forward(bericht, record, "GM0363", RULES, datetime(2027, 7, 1, tzinfo=UTC))
        assert made is not None
        assert made.signalering_id == reference_signalering_id(
            SignaleringType.AANMELDSTATUS,
            "GM0363",
            record.leerling.bsn,
            record.instelling_brin,
            record.aanmelding_id,
            record.status.value,
            record.statusdatum.isoformat(),
        )
