"""Repository for pupil state: prognoses, aanmeldingen with history, last gemeente, peildatum runs.

Loads and saves the pure values of pipeline/leerlingen.py; always inside the caller's
transaction, so pupil state changes together with the message that caused it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, bindparam, select, text, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from koppelpunt.model import Opleiding, School, Status
from koppelpunt.pipeline.derive import LastGemeente
from koppelpunt.pipeline.leerlingen import (
    Aanmelding,
    PrognoseFact,
    PupilState,
    StatusFact,
)
from koppelpunt.store._dialect import chunks, dialect_name
from koppelpunt.store.bulk import DoNothing, DoUpdate, insert_rows
from koppelpunt.store.tables import (
    aanmelding_statussen,
    aanmeldingen,
    leerling_gemeenten,
    leerling_prognoses,
    peildatum_runs,
)

BATCH = 500


async def _upsert(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    keys: tuple[str, ...],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column, rows applied in order."""
    await insert_rows(session, table, columns, rows, on_conflict=DoUpdate(keys))


async def lock_pupils(session: AsyncSession, bsns: Iterable[str]) -> None:
    """PostgreSQL: serialise concurrent transactions that change the same pupils.

    Transaction-scoped advisory locks, taken in BSN order (so two messages cannot deadlock on
    each other), held until commit: the second message reads the state the first one wrote.
    Covers pupils without rows yet, which row locks could not. SQLite has a single writer.
    """
    wanted = sorted(set(bsns))
    if not wanted or dialect_name(session) != "postgresql":
        return
    for chunk in chunks(wanted, 5000):
        await session.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(hashtext(b))) "
                "FROM (SELECT unnest(CAST(:bsns AS text[])) AS b ORDER BY 1) AS ordered"
            ),
            {"bsns": list(chunk)},
        )


_STATUS = {s.value: s for s in Status}


# The state queries, built once: constructing a statement costs more than executing it
# (bench/ROUNDS.md, seventh round). Only the columns the state needs (no timestamps of receipt,
# no bericht links), read as plain tuples: this runs for every pupil of every message.
_p, _a, _s = leerling_prognoses.c, aanmeldingen.c, aanmelding_statussen.c
_BSNS: BindParameter[Any] = bindparam("bsns", expanding=True)
_LOAD_PROGNOSES = select(
    _p.bsn,
    _p.schooljaar,
    _p.brin,
    _p.vestiging,
    _p.onderwijssoort,
    _p.verzonden,
    _p.geboortedatum,
    _p.hoogste_diploma,
).where(_p.bsn.in_(_BSNS))
_LOAD_AANMELDINGEN = select(
    _a.bsn,
    _a.instelling_brin,
    _a.aanmelding_id,
    _a.crebo,
    _a.niveau,
    _a.leerweg,
    _a.statusdatum,
    _a.geboortedatum,
    _a.hoogste_diploma,
).where(_a.bsn.in_(_BSNS))
_LOAD_STATUSSEN = (
    select(_s.instelling_brin, _s.aanmelding_id, _s.status, _s.statusdatum, _s.id, _s.buiten_flow)
    .join(
        aanmeldingen,
        (_a.instelling_brin == _s.instelling_brin) & (_a.aanmelding_id == _s.aanmelding_id),
    )
    .where(_a.bsn.in_(_BSNS))
)


async def load_states(session: AsyncSession, bsns: Iterable[str]) -> dict[str, PupilState]:
    """The state of each pupil in `bsns` that has any (unknown pupils are absent)."""
    wanted = sorted(set(bsns))
    prognoses: dict[str, list[Any]] = defaultdict(list)
    current: dict[str, list[Any]] = defaultdict(list)
    history: dict[tuple[str, str], list[StatusFact]] = defaultdict(list)
    for chunk in chunks(wanted, BATCH):
        for p_row in await session.execute(_LOAD_PROGNOSES, {"bsns": chunk}):
            prognoses[p_row[0]].append(p_row)
        with_aanmeldingen = False
        for a_row in await session.execute(_LOAD_AANMELDINGEN, {"bsns": chunk}):
            current[a_row[0]].append(a_row)
            with_aanmeldingen = True
        if not with_aanmeldingen:
            continue  # no history to read: a round trip saved for pupils seen the first time
        for brin, aanmelding_id, status, statusdatum, seq, buiten_flow in await session.execute(
            _LOAD_STATUSSEN, {"bsns": chunk}
        ):
            history[(brin, aanmelding_id)].append(
                StatusFact(_STATUS[status], statusdatum, seq, buiten_flow)
            )
    states: dict[str, PupilState] = {}
    for bsn in wanted:
        p_rows, a_rows = prognoses.get(bsn), current.get(bsn)
        if not p_rows and not a_rows:
            continue
        facts: tuple[PrognoseFact, ...] = ()
        if p_rows:
            by_schooljaar = sorted(p_rows, key=itemgetter(1)) if len(p_rows) > 1 else p_rows
            facts = tuple(PrognoseFact(r[1], School(r[2], r[3]), r[4], r[5]) for r in by_schooljaar)
        if a_rows:
            ams = []
            for r in a_rows:
                facts_of = history.get((r[1], r[2]), [])
                if len(facts_of) > 1:
                    facts_of.sort(key=_history_order)
                ams.append(Aanmelding(r[1], r[2], Opleiding(r[3], r[4], r[5]), tuple(facts_of)))
            # Personal details from the newest fact: the newest aanmelding, else the newest
            # prognose (the first of equals, in the order the database returned them).
            newest = max(a_rows, key=itemgetter(6))
            states[bsn] = PupilState(bsn, newest[7], newest[8], facts, tuple(ams))
        else:
            assert p_rows
            newest = max(p_rows, key=itemgetter(5))
            states[bsn] = PupilState(bsn, newest[6], newest[7], facts)
    return states


def _history_order(fact: StatusFact) -> tuple[date, int]:
    return (fact.statusdatum, fact.seq)


def max_seq(states: Mapping[str, PupilState]) -> int:
    """Above every loaded status' seq: new statuses are numbered after it (receipt order)."""
    return max(
        (f.seq for s in states.values() for a in s.aanmeldingen for f in a.history), default=0
    )


_PROGNOSE_COLUMNS = (
    "bsn",
    "schooljaar",
    "geboortedatum",
    "hoogste_diploma",
    "brin",
    "vestiging",
    "onderwijssoort",
    "verzonden",
    "bericht_pk",
)
_AANMELDING_COLUMNS = (
    "instelling_brin",
    "aanmelding_id",
    "bsn",
    "geboortedatum",
    "hoogste_diploma",
    "crebo",
    "niveau",
    "leerweg",
    "status",
    "statusdatum",
    "eerste_statusdatum",
    "buiten_flow",
    "updated_at",
)
_STATUS_COLUMNS = (
    "instelling_brin",
    "aanmelding_id",
    "status",
    "statusdatum",
    "buiten_flow",
    "received_at",
    "bericht_pk",
)
# StateRows.with_bericht_pks replaces the last value of these rows.
assert _PROGNOSE_COLUMNS[-1] == _STATUS_COLUMNS[-1] == "bericht_pk"


@dataclass
class StateRows:
    """The rows that write a change of pupil state (state_rows), collected before writing.

    Rows of several messages can be added one message after the other (a group commit) and
    written at once: upserts apply in order, as they would message by message.
    """

    prognoses: list[tuple[Any, ...]] = field(default_factory=list)
    aanmeldingen: list[tuple[Any, ...]] = field(default_factory=list)
    # (seq, row) of new history rows; seq orders them (receipt order)
    new_facts: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    # (seq, buiten_flow) of stored history rows whose flag changed; seq is their row id
    flag_changes: list[tuple[int, bool]] = field(default_factory=list)

    def add(self, other: StateRows) -> None:
        """Append the rows of another message's change. Only for changes of different pupils
        and aanmeldingen (a group commit takes no others): a flag change here always names a
        stored row, never one that is still to be inserted."""
        self.prognoses += other.prognoses
        self.aanmeldingen += other.aanmeldingen
        self.new_facts += other.new_facts
        self.flag_changes += other.flag_changes

    def with_bericht_pks(self, pks: Sequence[int]) -> StateRows:
        """These rows with the pk of the message each came from, for rows made before the
        messages were stored (state_rows with `bericht_pk` = the message's index in `pks`):
        the messages of a receipt are stored once their receipts are final, after their
        pupils' state is derived."""
        return StateRows(
            [(*row[:-1], pks[row[-1]]) for row in self.prognoses],
            self.aanmeldingen,
            [(seq, (*row[:-1], pks[row[-1]])) for seq, row in self.new_facts],
            self.flag_changes,
        )


def state_rows(
    before: Mapping[str, PupilState],
    after: Mapping[str, PupilState],
    *,
    bericht_pk: int | None,
    now: datetime,
) -> StateRows:
    """The rows for what changed between `before` and `after` (no I/O)."""
    prognose_rows: list[tuple[Any, ...]] = []
    aanmelding_rows: list[tuple[Any, ...]] = []
    new_facts: list[tuple[int, tuple[Any, ...]]] = []
    flag_changes: list[tuple[int, bool]] = []
    for bsn, state in after.items():
        old = before.get(bsn)
        old_prognoses = set(old.prognoses) if old else set()
        for p in state.prognoses:
            if p not in old_prognoses:
                prognose_rows.append(
                    (
                        bsn,
                        p.schooljaar,
                        state.geboortedatum,
                        state.hoogste_diploma,
                        p.school.brin,
                        p.school.vestiging,
                        p.onderwijssoort,
                        p.verzonden,
                        bericht_pk,
                    )
                )
        for a in state.aanmeldingen:
            previous = old.aanmelding(a.key) if old else None
            if previous == a:
                continue
            old_flags = {f.seq: f.buiten_flow for f in previous.history} if previous else {}
            for f in a.history:
                if f.seq not in old_flags:
                    new_facts.append(
                        (
                            f.seq,
                            (
                                a.instelling_brin,
                                a.aanmelding_id,
                                f.status.value,
                                f.statusdatum,
                                f.buiten_flow,
                                now,
                                bericht_pk,
                            ),
                        )
                    )
                elif old_flags[f.seq] != f.buiten_flow:
                    flag_changes.append((f.seq, f.buiten_flow))
            aanmelding_rows.append(
                (
                    a.instelling_brin,
                    a.aanmelding_id,
                    bsn,
                    state.geboortedatum,
                    state.hoogste_diploma,
                    a.opleiding.crebo,
                    a.opleiding.niveau,
                    a.opleiding.leerweg,
                    a.current.status.value,
                    a.current.statusdatum,
                    a.eerste_statusdatum,
                    a.buiten_flow,
                    now,
                )
            )
    return StateRows(prognose_rows, aanmelding_rows, new_facts, flag_changes)


async def save_states(
    session: AsyncSession,
    before: Mapping[str, PupilState],
    after: Mapping[str, PupilState],
    *,
    bericht_pk: int | None,
    now: datetime,
) -> None:
    """Write what changed between `before` and `after` (new history rows in receipt order)."""
    await write_state_rows(session, state_rows(before, after, bericht_pk=bericht_pk, now=now))


async def write_state_rows(session: AsyncSession, rows: StateRows) -> None:
    """Write collected state rows: upserts in order, new history rows in seq order."""
    prognose_rows, aanmelding_rows = rows.prognoses, rows.aanmeldingen
    new_facts, flag_changes = list(rows.new_facts), rows.flag_changes
    await _upsert(
        session, leerling_prognoses, _PROGNOSE_COLUMNS, prognose_rows, ("bsn", "schooljaar")
    )
    await _upsert(
        session,
        aanmeldingen,
        _AANMELDING_COLUMNS,
        aanmelding_rows,
        ("instelling_brin", "aanmelding_id"),
    )
    if new_facts:
        # executemany runs in list order, so row ids follow the receipt order (seq).
        new_facts.sort(key=lambda item: item[0])
        # ON CONFLICT DO NOTHING: the same status may arrive in two messages at the same time.
        await insert_rows(
            session,
            aanmelding_statussen,
            _STATUS_COLUMNS,
            [row for _, row in new_facts],
            on_conflict=DoNothing(("instelling_brin", "aanmelding_id", "status", "statusdatum")),
        )
    for seq, flag in flag_changes:
        await session.execute(
            update(aanmelding_statussen)
            .where(aanmelding_statussen.c.id == seq)
            .values(buiten_flow=flag)
        )


# --- last gemeente per pupil -----------------------------------------------------------------


_LOAD_LAST_GEMEENTEN = select(leerling_gemeenten).where(
    leerling_gemeenten.c.bsn.in_(bindparam("bsns", expanding=True))
)


async def load_last_gemeenten(
    session: AsyncSession, bsns: Iterable[str]
) -> dict[str, LastGemeente]:
    found: dict[str, LastGemeente] = {}
    for chunk in chunks(sorted(set(bsns)), BATCH):
        for row in await session.execute(_LOAD_LAST_GEMEENTEN, {"bsns": chunk}):
            found[row.bsn] = LastGemeente(row.gemeentecode, row.peildatum)
    return found


async def save_last_gemeenten(
    session: AsyncSession, changed: Mapping[str, LastGemeente], now: datetime
) -> None:
    rows = [(bsn, g.gemeentecode, g.peildatum, now) for bsn, g in sorted(changed.items())]
    await _upsert(
        session,
        leerling_gemeenten,
        ("bsn", "gemeentecode", "peildatum", "updated_at"),
        rows,
        ("bsn",),
    )


# --- peildatum checks ------------------------------------------------------------------------


async def bsns_for_transition(
    session: AsyncSession, schooljaar: str, first_after: date, first_until: date
) -> list[str]:
    """Pupils with a prognose for `schooljaar` or an aanmelding first seen in its window."""
    query = union(
        select(leerling_prognoses.c.bsn).where(leerling_prognoses.c.schooljaar == schooljaar),
        select(aanmeldingen.c.bsn).where(
            aanmeldingen.c.eerste_statusdatum > first_after,
            aanmeldingen.c.eerste_statusdatum <= first_until,
        ),
    )
    return sorted({row[0] for row in await session.execute(query)})


async def peildatum_ran(session: AsyncSession, day: date) -> bool:
    found = await session.scalar(
        select(peildatum_runs.c.peildatum).where(peildatum_runs.c.peildatum == day)
    )
    return found is not None


async def record_peildatum_run(
    session: AsyncSession, day: date, counts: Mapping[str, int], now: datetime
) -> None:
    """Record the first complete run of a date (a rerun keeps the first record)."""
    insert_ = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    await session.execute(
        insert_(peildatum_runs)
        .values(peildatum=day, ran_at=now, counts=dict(counts))
        .on_conflict_do_nothing(index_elements=[peildatum_runs.c.peildatum])
    )


# --- operator views --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuitenFlow:
    """An aanmelding with a status transition outside the legal flow (no BSN: for logs/CLI)."""

    instelling_brin: str
    aanmelding_id: str
    status: str
    statusdatum: date
    updated_at: datetime


async def list_buiten_flow(session: AsyncSession, *, limit: int = 100) -> list[BuitenFlow]:
    """Aanmeldingen flagged for operators, most recently changed first."""
    result = await session.execute(
        select(
            aanmeldingen.c.instelling_brin,
            aanmeldingen.c.aanmelding_id,
            aanmeldingen.c.status,
            aanmeldingen.c.statusdatum,
            aanmeldingen.c.updated_at,
        )
        .where(aanmeldingen.c.buiten_flow.is_(True))
        .order_by(aanmeldingen.c.updated_at.desc(), aanmeldingen.c.aanmelding_id)
        .limit(limit)
    )
    return [BuitenFlow(**row._mapping) for row in result]


# The driver's SQL as is, per dialect: every receipt runs it, and through SQLAlchemy (an
# expanding IN list rendered per execution) it cost the event loop twice as much (~150 against
# ~75 µs on SQLite; bench/ROUNDS.md, receipt written once).
_EXISTING_IDS_POSTGRESQL = (
    "SELECT signalering_id FROM signaleringen WHERE signalering_id = ANY($1::VARCHAR[])"
)
_EXISTING_IDS_SQLITE = "SELECT signalering_id FROM signaleringen WHERE signalering_id IN ({})"


async def existing_signalering_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    """Which of these signalering ids are already stored (a receipt and a peildatum run count
    only the new ones)."""
    found: set[str] = set()
    wanted = sorted(set(ids))
    if not wanted:
        return found
    connection = await session.connection()
    postgresql = connection.dialect.name == "postgresql"
    for chunk in chunks(wanted, BATCH):
        if postgresql:
            result = await connection.exec_driver_sql(_EXISTING_IDS_POSTGRESQL, (list(chunk),))
        else:
            sql = _EXISTING_IDS_SQLITE.format(", ".join("?" * len(chunk)))
            result = await connection.exec_driver_sql(sql, tuple(chunk))
        found.update(result.scalars())
    return found
