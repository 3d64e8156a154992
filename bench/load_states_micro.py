"""Micro-benchmark of loading pupil state (store.leerlingen.load_states) from a filled database.

    python -m bench.load_states_micro [records] [repeats]

Fills a migrated database (SQLite in a temp dir, or a new database on the PostgreSQL server of
KOPPELPUNT_DATABASE_URL, dropped afterwards) with realistic aanmeldstatus messages of 1,000
records (bench/generate.py: multi-step histories), applied as the service does, then times
`load_states` for each message's pupils. Prints the best of `repeats` passes in process CPU
(the event loop and aiosqlite's thread; not the PostgreSQL server).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import generate as gen
from bench.run import make_database
from koppelpunt.model import Invalid, Soort
from koppelpunt.pipeline import derive, run
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.parse import SchemaRegistry, parse_message
from koppelpunt.pipeline.rules import load_rules
from koppelpunt.store import leerlingen
from koppelpunt.store.db import create_engine, session_factory

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2027, 7, 1, 8, 0, tzinfo=UTC)


async def main(total: int, repeats: int) -> None:
    schemas = SchemaRegistry.load(ROOT / "schemas")
    rules = load_rules(ROOT / "routing_rules")
    gemeenten = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
    people = gen.pupils(max(2000, total // 4))
    register = {p.bsn: p.gemeentecode for p in people}
    statuses = gen.statuses(people, total)
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = await make_database(Path(tmp))
        engine = create_engine(url)
        sessions = session_factory(engine)
        batches: list[set[str]] = []
        for i in range(0, len(statuses), 1000):
            body = gen.aanmeldstatus_body(f"load-{i}", statuses[i : i + 1000])
            parsed = parse_message(body, Soort.AANMELDSTATUS, schemas)
            assert not isinstance(parsed, Invalid), parsed
            found = {k: register.get(k[0]) for k in run.lookups_needed(parsed, rules)}
            verwerking = run.decide(parsed, rules, gemeenten, found, NOW)
            bsns = {r.leerling.bsn for r in verwerking.bericht.records if r.leerling.bsn}
            batches.append(bsns)
            async with sessions.begin() as session:
                states = await leerlingen.load_states(session, bsns)
                before = dict(states)
                first = leerlingen.max_seq(states) + 1
                derive.on_receipt(states, verwerking, rules, gemeenten, {}, NOW, first)
                await leerlingen.save_states(session, before, states, bericht_pk=None, now=NOW)
        best, loaded = float("inf"), 0
        for _ in range(repeats):
            cpu0 = time.process_time()
            loaded = 0
            for bsns in batches:
                async with sessions() as session:
                    loaded += len(await leerlingen.load_states(session, bsns))
            best = min(best, time.process_time() - cpu0)
        await engine.dispose()
        if drop is not None:
            await drop()
    print(
        f"load_states: {1e3 * best / len(batches):.1f} ms CPU per 1000-record message, "
        f"{1e6 * best / loaded:.1f} µs per pupil ({loaded // len(batches)} pupils per message)"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [20_000, 5][len(args) :])))
