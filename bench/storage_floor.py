"""What SQLite alone costs to store a record's rows: the floor under targets (3) and (4).

    BENCH_KEEP=1 BENCH_SCALE=0.1 make bench        # prints: logs and data in /tmp/… (kept)
    python -m bench.storage_floor /tmp/koppelpunt-bench-…/koppelpunt.db [records-per-commit]

Why: with bench/kafka_floor.py this bounds what any implementation of the pipeline needs per
record on this machine, however fast its own code: the rows koppelpunt stores for a record
(its beslissing, the aanmelding and its status, the signalering and its outbox row, the
verwerkingenlog lines, …) written by SQLite itself, with no Python per row beyond the sqlite3
module's binding.

Takes the rows a benchmark run left in its database (the real shape and proportions, about
eight rows per record), creates the same schema (tables and indexes) in a fresh file next to
it, and inserts them again in transactions of `records-per-commit` records' worth of rows
(default 1,000, as a batch message), each committed with the service's settings (WAL,
synchronous=FULL: an fsync per commit). Prints this process's CPU per record (SQLite runs in
it) and the wall time. A lower bound: foreign keys off, no reads of pupil state, no updates
(the outbox row's publication), and the database only as large as the kept run's.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

# The tables the receipt and publication of records write (not the lookup cache, the register
# or the operators' tables), in the order the service writes them.
PER_RECORD = (
    "berichten",
    "beslissingen",
    "verwerkingenlog",
    "leerling_prognoses",
    "aanmeldingen",
    "aanmelding_statussen",
    "leerling_gemeenten",
    "signaleringen",
    "outbox",
)


def main(source: Path, per_commit: int) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    records = src.execute("SELECT count(*) FROM beslissingen").fetchone()[0]
    schema = [
        sql
        for (name, kind, sql) in src.execute(
            "SELECT name, type, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type DESC"
        )
        if kind in ("table", "index") and not name.startswith("sqlite_")
    ]
    rows = {t: src.execute(f"SELECT * FROM {t}").fetchall() for t in PER_RECORD}  # noqa: S608
    src.close()

    target = source.with_name("storage-floor.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(target, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    for sql in schema:
        db.execute(sql)

    chunks = max(1, records // per_commit)
    statements = {
        t: f"INSERT INTO {t} VALUES ({', '.join('?' * len(rows[t][0]))})"  # noqa: S608
        for t in PER_RECORD
        if rows[t]
    }
    written = sum(len(r) for r in rows.values())
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(chunks):
        db.execute("BEGIN")
        for table, sql in statements.items():
            part = rows[table]
            step = -(-len(part) // chunks)
            db.executemany(sql, part[i * step : (i + 1) * step])
        db.execute("COMMIT")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    db.close()
    print(
        f"storage floor (SQLite): {records:,} records, {written:,} rows "
        f"({written / records:.1f} per record), {chunks} commits of ~{per_commit:,} records"
    )
    print(
        f"  CPU {cpu * 1e6 / records:.1f} µs per record ({cpu * 1e6 / written:.1f} µs per row), "
        f"wall {wall * 1e6 / records:.1f} µs per record"
    )
    print(f"  20,000 records/s need {cpu / records * 20_000:.2f} cores for these inserts alone")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
