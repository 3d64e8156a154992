"""receive_lines (pure): the shape of the per-person log lines for any message and lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from koppelpunt.config import PROJECT_ROOT
from koppelpunt.model import Filtered, FilterReden, Forwarded, Parsed, PrognoseBericht
from koppelpunt.pipeline import run
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.rules import load_rules
from koppelpunt.store import verwerkingenlog as vlog
from tests.strategies import prognose_berichten

RULES = load_rules(PROJECT_ROOT / "routing_rules")
GEMEENTEN = GemeenteTable(
    GemeenteTable.load(PROJECT_ROOT / "data" / "rvig-tabel33-gemeenten.csv").gemeenten,
    RULES.woongemeente.geen_gemeente,
)
NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC)
ANSWERS = st.sampled_from([run.UNAVAILABLE, None, "0363", "1999"])


@given(bericht=prognose_berichten(max_records=6), data=st.data())
@settings(max_examples=60, deadline=None)
def test_one_receive_and_one_decision_per_person(
    bericht: PrognoseBericht, data: st.DataObject
) -> None:
    """Every record: ontvangen + beslissen; a lookup line exactly when it was looked up;
    parked ⇔ lookup ERROR; all lines in the given trace and linked to their ontvangen line."""
    parsed = Parsed(bericht)
    keys = run.lookups_needed(parsed, RULES)
    found = {key: data.draw(ANSWERS) for key in keys}
    verwerking = run.decide(parsed, RULES, GEMEENTEN, found, NOW)
    trace = vlog.new_trace_id()
    lines = vlog.receive_lines(
        verwerking,
        found,
        trace_id=trace,
        bericht_id=bericht.bericht_id,
        sender="vo",
        received_at=NOW - timedelta(seconds=2),
        lookup_started=NOW - timedelta(seconds=1),
        decided_at=NOW,
    )
    assert {line.trace_id for line in lines} <= {trace}
    for outcome in verwerking.outcomes:
        mine = [line for line in lines if line.attributes["record"] == outcome.index]
        names = [line.name for line in mine]
        # Only a record that passed the pre-lookup rules itself shows a lookup step (the same
        # BSN can occur twice in one message, once filtered on age).
        looked_up = outcome.parked or isinstance(outcome.decision, Forwarded)
        looked_up |= (
            isinstance(outcome.decision, Filtered)
            and outcome.decision.reden is FilterReden.GEEN_WOONGEMEENTE
        )
        assert names == (
            ["ontvangen", "woongemeente_opvragen", "beslissen"]
            if looked_up
            else ["ontvangen", "beslissen"]
        )
        assert all(line.bsn == outcome.bsn for line in mine)
        assert all(line.parent_operation_id == mine[0].operation_id for line in mine[1:])
        assert all(line.start_time <= line.end_time for line in mine)
        if looked_up:
            assert (mine[1].status_code == "ERROR") == outcome.parked
        uitkomst = mine[-1].attributes["uitkomst"]
        assert (uitkomst == "geparkeerd") == outcome.parked
        assert (uitkomst == "doorgestuurd") == (mine[-1].gemeentecode is not None)


@given(bericht=prognose_berichten(max_records=6), data=st.data())
@settings(max_examples=40, deadline=None)
def test_operation_ids_are_distinct_span_ids(bericht: PrognoseBericht, data: st.DataObject) -> None:
    """Every line has its own operation id: 16 lowercase hex digits (a W3C span id)."""
    parsed = Parsed(bericht)
    found = {key: data.draw(ANSWERS) for key in run.lookups_needed(parsed, RULES)}
    verwerking = run.decide(parsed, RULES, GEMEENTEN, found, NOW)
    lines = vlog.receive_lines(
        verwerking,
        found,
        trace_id=vlog.new_trace_id(),
        bericht_id=bericht.bericht_id,
        sender="vo",
        received_at=NOW,
        lookup_started=NOW,
        decided_at=NOW,
    )
    ids = [line.operation_id for line in lines]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and set(i) <= set("0123456789abcdef") for i in ids)
