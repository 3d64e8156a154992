"""Micro-benchmark of the pure steps of the receive path: parse, then decide (no I/O).

    python -m bench.pure_micro [records] [per-message] [repeats]
    python -m bench.pure_micro 20000 2000 5 profile     (cProfile of each step as well)

Generates realistic messages with bench/generate.py (aanmeldstatussen with multi-step
histories, and prognoses), then times, separately:

- parse: `parse_message` (hardened lxml parse, XSD validation, normalisation);
- decide: `run.lookups_needed` + `run.decide` with the lookup answers a realistic register
  gives (1% of the pupils not in it);
- render: `render_signalering` of every signalering decide made (per signalering);
- verwerkingenlog rows: the log lines of each message as table rows, BSNs encrypted.

Prints the best of `repeats` runs in µs per record (render: per signalering), per soort.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import generate as gen
from koppelpunt.model import Invalid, Parsed, Signalering, Soort
from koppelpunt.pipeline import run
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.parse import SchemaRegistry, parse_message
from koppelpunt.pipeline.render import render_signalering
from koppelpunt.pipeline.rules import load_rules
from koppelpunt.store import verwerkingenlog

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2027, 7, 1, 8, 0, tzinfo=UTC)
TRACE = "0" * 32
CIPHER = verwerkingenlog.LogCipher(bytes(32))


def _best(step: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


def main(total: int, per_message: int, repeats: int, profile: bool) -> None:
    schemas = SchemaRegistry.load(ROOT / "schemas")
    rules = load_rules(ROOT / "routing_rules")
    gemeenten = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
    people = gen.pupils(max(2000, total // 4))
    register = {p.bsn: p.gemeentecode for p in people}
    statuses = gen.statuses(people, total)
    bodies: dict[Soort, list[bytes]] = {
        Soort.AANMELDSTATUS: [
            gen.aanmeldstatus_body(f"micro-{i}", statuses[i : i + per_message])
            for i in range(0, len(statuses), per_message)
        ],
        Soort.PROGNOSE: [
            gen.prognose_body(f"micro-p{i}", people[i : i + per_message], "00AA")
            for i in range(0, min(total, len(people)), per_message)
        ],
    }
    for soort, messages in bodies.items():
        parsed_all: list[Parsed] = []
        for body in messages:
            outcome = parse_message(body, soort, schemas)
            assert not isinstance(outcome, Invalid), outcome
            parsed_all.append(outcome)
        records = sum(len(p.bericht.records) + len(p.afgewezen) for p in parsed_all)
        lookups: list[dict[run.LookupKey, run.LookupResult]] = [
            {key: register.get(key[0]) for key in run.lookups_needed(p, rules)} for p in parsed_all
        ]

        def parse_all(soort: Soort = soort, messages: list[bytes] = messages) -> None:
            for body in messages:
                parse_message(body, soort, schemas)

        def decide_all(
            parsed_all: list[Parsed] = parsed_all,
            lookups: list[dict[run.LookupKey, run.LookupResult]] = lookups,
        ) -> int:
            n = 0
            for parsed, found in zip(parsed_all, lookups, strict=True):
                run.lookups_needed(parsed, rules)
                n += len(run.decide(parsed, rules, gemeenten, found, NOW).signaleringen)
            return n

        signaleringen = [
            s
            for parsed, found in zip(parsed_all, lookups, strict=True)
            for s in run.decide(parsed, rules, gemeenten, found, NOW).signaleringen
        ]

        def render_all(signaleringen: list[Signalering] = signaleringen) -> None:
            for s in signaleringen:
                render_signalering(s)

        verwerkingen = [
            run.decide(parsed, rules, gemeenten, found, NOW)
            for parsed, found in zip(parsed_all, lookups, strict=True)
        ]

        def log_all(
            verwerkingen: list[run.Verwerking] = verwerkingen,
            lookups: list[dict[run.LookupKey, run.LookupResult]] = lookups,
        ) -> None:
            for verwerking, found in zip(verwerkingen, lookups, strict=True):
                lines = verwerkingenlog.receive_lines(
                    verwerking,
                    found,
                    trace_id=TRACE,
                    bericht_id=verwerking.bericht.bericht_id,
                    sender="vo",
                    received_at=NOW,
                    lookup_started=NOW,
                    decided_at=NOW,
                )
                verwerkingenlog.line_rows(CIPHER, lines)

        steps = (
            ("parse", parse_all, records, "record"),
            ("lookups_needed+decide", decide_all, records, "record"),
            ("render", render_all, len(signaleringen), "signalering"),
            ("verwerkingenlog rows", log_all, records, "record"),
        )
        for name, step, n, unit in steps:
            best = _best(step, repeats)
            print(f"{soort.value:13} {name:22}: {1e6 * best / n:6.2f} µs/{unit} ({n})")
            if profile:
                prof = cProfile.Profile()
                prof.runcall(step)
                pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    total, per_message, repeats = args + [20_000, 2000, 5][len(args) :]
    main(total, per_message, repeats, profile="profile" in sys.argv[4:])
