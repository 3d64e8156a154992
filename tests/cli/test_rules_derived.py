"""`koppelpunt rules dry-run` with derived types, on a real database and broker.

A prognose for two pupils in 0363; one of them applied on 1 March and withdrew (GEEN_PLAATSING on
receipt), the other never applied (NIET_AANGEMELD on 1 April 2027). The candidate rules switch
types off or move the aanmelddatum; the dry run shows the derived counts change, and the
database and the topics stay as they were.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from koppelpunt.config import Settings
from koppelpunt.store.register import upsert_woonregister
from tests.cli.test_rules import RULES_DIR, XML, candidate, edit, invoke, snapshot
from tests.conftest import Running, auth
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml

__all__ = ["candidate"]  # the fixture, shared with test_rules.py

CASES = {
    "types-off": (
        [
            ("NIET_AANGEMELD: true", "NIET_AANGEMELD: false"),
            ("GEEN_PLAATSING: true", "GEEN_PLAATSING: false"),
        ],
        [["GM0363", "GEEN_PLAATSING", "+0", "-1"], ["GM0363", "NIET_AANGEMELD", "+0", "-1"]],
        "peildata checked: 2027-04-01",
    ),
    "aanmelddatum-1-feb": (
        [("aanmelddatum: {maand: 4, dag: 1}", "aanmelddatum: {maand: 2, dag: 1}")],
        [["GM0363", "NIET_AANGEMELD", "+2", "-1"]],
        "peildata checked: 2027-02-01, 2027-04-01",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_derived_counts_change_and_nothing_is_written(
    case: str,
    client: httpx.AsyncClient,
    running: Running,
    settings: Settings,
    candidate: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edits, expected, peildata = CASES[case]
    async with running.runtime.sessions.begin() as session:
        await upsert_woonregister(session, [(BSN[0], "0363", None), (BSN[1], "0363", None)])
    headers_vo = {**XML, **auth("koppelpunt-vo")}
    headers_mbo = {**XML, **auth("koppelpunt-mbo")}
    r = await client.post(
        "/v1/prognoses",
        content=prognose_xml("der-1", [L(bsn=BSN[0]), L(bsn=BSN[1])]),
        headers=headers_vo,
    )
    assert r.status_code == 202
    for n, (status, day) in enumerate([("AANGEMELD", "2027-03-01"), ("INGETROKKEN", "2027-03-10")]):
        r = await client.post(
            "/v1/aanmeldstatussen",
            content=aanmeldstatus_xml(
                f"der-{n + 2}", [A(bsn=BSN[1], status=status, statusdatum=day)]
            ),
            headers=headers_mbo,
        )
        assert r.status_code == 202
    await running.relay.drain()
    before = await snapshot(running, settings)

    for old, new in edits:
        edit(candidate / "signaleringen.yaml", old, new)
    monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOPPELPUNT_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("KOPPELPUNT_TOPIC_PREFIX", settings.topic_prefix)
    since = date.today().isoformat()
    args = ["rules", "dry-run", str(candidate), "--since", since, "--until", "2027-06-01"]
    code, out, err = await asyncio.to_thread(invoke, *args)
    assert code == 0, err
    assert f"berichten since {since}: 3 (4 records)" in out
    assert peildata in out
    rows = [line.split() for line in out.splitlines() if line.startswith("GM")]
    assert rows == expected
    # Unchanged but for each dry run's own line in the verwerkingenlog (an operator action).
    assert await snapshot(running, settings) == logged(before, 1)

    # The current rules against themselves: the derived types are counted on both sides.
    code, out, err = await asyncio.to_thread(
        invoke, "rules", "dry-run", str(RULES_DIR), "--since", since, "--until", "2027-06-01"
    )
    assert code == 0, err
    # PROGNOSE 2, AANMELDSTATUS 2, GEEN_PLAATSING 1, NIET_AANGEMELD 1
    assert "signaleringen (current → candidate): 6 → 6" in out
    assert "no signalering would be added or withdrawn" in out
    assert await snapshot(running, settings) == logged(before, 2)


def logged(snapshot_: tuple[dict[str, int], Any], lines: int) -> tuple[dict[str, int], Any]:
    """A snapshot plus `lines` verwerkingenlog lines and nothing else."""
    counts, topics = snapshot_
    return {**counts, "verwerkingenlog": counts["verwerkingenlog"] + lines}, topics
