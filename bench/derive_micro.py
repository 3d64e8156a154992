"""Micro-benchmark of the pure pupil-state step of the receive path (no I/O).

    python -m bench.derive_micro [records] [per-message] [repeats]

Parses and decides realistic aanmeldstatus messages (bench/generate.py: multi-step histories,
in time order) once, then times `derive.on_receipt` (state + derived signaleringen) and
`leerlingen.apply_aanmeldstatussen` (state only) over all of them, starting from empty state
and carrying the state from message to message as the service does. Prints the best of
`repeats` runs in µs per record.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import generate as gen
from koppelpunt.model import AanmeldstatusBericht, Invalid, Soort
from koppelpunt.pipeline import derive, run
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.leerlingen import PupilState, apply_aanmeldstatussen
from koppelpunt.pipeline.parse import SchemaRegistry, parse_message
from koppelpunt.pipeline.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2027, 7, 1, 8, 0, tzinfo=UTC)


def main(total: int, per_message: int, repeats: int) -> None:
    schemas = SchemaRegistry.load(ROOT / "schemas")
    rules = load_rules(ROOT / "routing_rules")
    gemeenten = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
    people = gen.pupils(max(2000, total // 4))
    register = {p.bsn: p.gemeentecode for p in people}
    statuses = gen.statuses(people, total)
    verwerkingen: list[run.Verwerking] = []
    for i in range(0, len(statuses), per_message):
        body = gen.aanmeldstatus_body(f"micro-{i}", statuses[i : i + per_message])
        parsed = parse_message(body, Soort.AANMELDSTATUS, schemas)
        assert not isinstance(parsed, Invalid), parsed
        found = {key: register.get(key[0]) for key in run.lookups_needed(parsed, rules)}
        verwerkingen.append(run.decide(parsed, rules, gemeenten, found, NOW))
    records = sum(len(v.bericht.records) for v in verwerkingen)

    def derive_all() -> int:
        states: dict[str, PupilState] = {}
        last: dict[str, derive.LastGemeente] = {}
        seq, found = 1, 0
        for v in verwerkingen:
            d = derive.on_receipt(states, v, rules, gemeenten, last, NOW, seq)
            last.update(d.last)
            seq += len(v.bericht.records)
            found += len(d.signaleringen)
        return found

    def apply_all() -> int:
        states: dict[str, PupilState] = {}
        seq = 1
        for v in verwerkingen:
            assert isinstance(v.bericht, AanmeldstatusBericht)
            apply_aanmeldstatussen(states, v.bericht, seq)
            seq += len(v.bericht.records)
        return len(states)

    for name, step in (("derive.on_receipt", derive_all), ("apply_aanmeldstatussen", apply_all)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = step()
            best = min(best, time.perf_counter() - t0)
        print(f"{name}: {1e6 * best / records:.2f} µs per record ({records} records, {result})")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    main(*(args + [10_000, 1000, 5][len(args) :]))
