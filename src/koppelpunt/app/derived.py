"""The adapter for pupil state and derived signaleringen: loads state, calls the pure
pipeline/derive.py, stores state + signaleringen + outbox rows.

    derive_group      the messages of one transaction (receive: one or a group; parked.py:
                      records decided later, apply_state=False): lock, read state, derive
                      state, moves, GEEN_PLAATSING; write_derived then writes the state
    run_peildatum     NIET_AANGEMELD / NIET_INGESCHREVEN (and moves) for one date, in batches
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.model import Signalering
from koppelpunt.off_loop import run_pure
from koppelpunt.pipeline import derive
from koppelpunt.pipeline.envelope import render_all
from koppelpunt.pipeline.leerlingen import PupilState
from koppelpunt.pipeline.run import (
    AMSTERDAM,
    LookupKey,
    LookupResult,
    LookupUnavailable,
    Verwerking,
)
from koppelpunt.runtime import Runtime
from koppelpunt.store import leerlingen, outbox

log = structlog.get_logger(__name__)

# Pupils per batch of a peildatum run: one state query, one lookup call, one transaction.
PEILDATUM_BATCH = 500


@dataclass(frozen=True, slots=True)
class DerivedGroup:
    """What derive_group found for decided messages, to be written by write_derived."""

    results: list[derive.Derived]  # per message, in arrival order
    # The pupil state rows; their bericht_pk is the message's index in the group until
    # write_derived puts in the pks (leerlingen.StateRows.with_bericht_pks).
    rows: leerlingen.StateRows
    changed: dict[str, derive.LastGemeente]


async def derive_group(
    session: AsyncSession,
    runtime: Runtime,
    group: Sequence[Verwerking],
    now: datetime,
    *,
    apply_state: bool = True,
) -> DerivedGroup:
    """Lock the pupils of decided messages, read their state and derive
    (pipeline/derive.on_receipt), in the caller's transaction: the messages in arrival order,
    a group commit or a single message (a group of one). Nothing is written yet (write_derived),
    so the signaleringen are known before the messages are stored: a receipt is written once,
    with its final count. With `apply_state=False` (parked records decided later: their state
    was stored at receipt) the state is read, not changed.

    The group's messages are about different pupils and aanmeldingen (receive._Claims), so
    each is derived on its pupils' state as stored, exactly as on its own; its changes become
    the rows it would write on its own (leerlingen.StateRows, in the same order), and the rows
    of all messages are written at once.
    """
    bsns = {r.leerling.bsn for v in group for r in v.bericht.records if r.leerling.bsn}
    await leerlingen.lock_pupils(session, bsns)
    states = await leerlingen.load_states(session, bsns)
    last = await leerlingen.load_last_gemeenten(session, bsns)
    records = sum(len(v.bericht.records) for v in group)
    # Pure: for a large message or group in a thread, so the loop keeps answering (off_loop.py).
    rows, changed, results = await run_pure(
        records, _derive_group, runtime, group, states, last, now, apply_state
    )
    for result in results:
        _warn_buiten_flow(result)
    return DerivedGroup(results, rows, changed)


async def write_derived(
    session: AsyncSession, derived: DerivedGroup, pks: Sequence[int], now: datetime
) -> None:
    """Write the pupil state and last gemeenten derive_group found; `pks` are the stored
    messages', in the group's order."""
    await leerlingen.write_state_rows(session, derived.rows.with_bericht_pks(pks))
    await leerlingen.save_last_gemeenten(session, derived.changed, now)


def _derive_group(
    runtime: Runtime,
    group: Sequence[Verwerking],
    states: dict[str, PupilState],
    last: dict[str, derive.LastGemeente],
    now: datetime,
    apply_state: bool,
) -> tuple[leerlingen.StateRows, dict[str, derive.LastGemeente], list[derive.Derived]]:
    """derive_group's derivation, message by message, on the loaded `states` and `last`
    (both updated): the state rows to write (bericht_pk: the message's index), the changed
    last gemeenten, a result each."""
    changed: dict[str, derive.LastGemeente] = {}
    rows = leerlingen.StateRows()
    results: list[derive.Derived] = []
    for index, verwerking in enumerate(group):
        mine = {r.leerling.bsn for r in verwerking.bericht.records if r.leerling.bsn}
        # In the order on_receipt would see them: loaded (sorted by BSN), then new pupils.
        before = {bsn: state for bsn, state in states.items() if bsn in mine}
        result = derive.on_receipt(
            states,
            verwerking,
            runtime.rules,
            runtime.gemeenten,
            last,
            now,
            leerlingen.max_seq(states) + 1,
            apply_state=apply_state,
        )
        if apply_state:
            after = {bsn: state for bsn, state in states.items() if bsn in mine}
            rows.add(leerlingen.state_rows(before, after, bericht_pk=index, now=now))
        last.update(result.last)
        changed.update(result.last)
        results.append(result)
    return rows, changed, results


def _warn_buiten_flow(result: derive.Derived) -> None:
    for applied in result.applied:
        if applied.new and applied.buiten_flow:
            # The aanmelding is named by its key, never by the pupil's BSN.
            log.warning(
                "aanmeldstatus_buiten_flow",
                instelling=applied.key[0],
                aanmeldingId=applied.key[1],
            )


@dataclass
class PeildatumResult:
    """What a peildatum run found: `new` are the signaleringen not stored before."""

    peildatum: date
    checks: list[tuple[str, str]]
    new: list[Signalering] = field(default_factory=list)
    already: int = 0
    unavailable: int = 0
    dry_run: bool = False

    def counts(self) -> dict[tuple[str, str], int]:
        return derive.count(self.new)


async def run_peildatum(runtime: Runtime, day: date, *, dry_run: bool = False) -> PeildatumResult:
    """Run the checks whose date is `day`; store and queue what is new (unless `dry_run`).

    Ids are deterministic, so a second run finds everything already stored and adds nothing.
    Pupils whose lookup is unavailable are counted and skipped; a later run picks them up.
    """
    rules = runtime.rules
    due = derive.checks_due(rules, day)
    result = PeildatumResult(day, [(s.value, j) for s, j in due], dry_run=dry_run)
    if not due:
        return result
    now = runtime.clock()
    today = now.astimezone(AMSTERDAM).date()
    bsns: set[str] = set()
    async with runtime.sessions() as session:
        for _, schooljaar in due:
            after, until = derive.window(rules, schooljaar)
            bsns.update(await leerlingen.bsns_for_transition(session, schooljaar, after, until))
    ordered = sorted(bsns)
    for start in range(0, len(ordered), PEILDATUM_BATCH):
        await _batch(runtime, ordered[start : start + PEILDATUM_BATCH], day, today, now, result)
    if not dry_run and result.unavailable == 0:
        # Recorded only when complete: with pupils skipped (lookup down) the scheduler runs the
        # date again on its next pass, and ids keep what was already stored from repeating.
        async with runtime.sessions.begin() as session:
            await leerlingen.record_peildatum_run(
                session,
                day,
                {f"{g}:{t}": n for (g, t), n in result.counts().items()},
                now,
            )
    if not dry_run and result.new:
        runtime.on_outbox()
    log.info(
        "peildatum_checked",
        peildatum=day.isoformat(),
        nieuw=len(result.new),
        bekend=result.already,
        onbeschikbaar=result.unavailable,
        dryRun=dry_run,
    )
    return result


async def _batch(
    runtime: Runtime,
    bsns: list[str],
    day: date,
    today: date,
    now: datetime,
    result: PeildatumResult,
) -> None:

    rules = runtime.rules
    async with runtime.sessions.begin() as session:
        if not result.dry_run:
            await leerlingen.lock_pupils(session, bsns)
        states = await leerlingen.load_states(session, bsns)
        found = derive.candidates(states.values(), rules, day)
        keys = sorted({(c.bsn, c.peildatum) for c in found})
        # The local register reads through this transaction (one connection, not two).
        shared = session if runtime.lookup.shares_session else None
        looked_up = await runtime.lookup.lookup(keys, shared)
        last = await leerlingen.load_last_gemeenten(session, {c.bsn for c in found})
        # Pure: from OFF_LOOP_RECORDS candidates in a thread (off_loop.py).
        made, changed, unavailable = await run_pure(
            len(found), _decide_peildatum, runtime, found, states, looked_up, last, now, today
        )
        result.unavailable += unavailable
        existing = await leerlingen.existing_signalering_ids(session, list(made))
        result.already += len(existing)
        new = [s for sid, s in made.items() if sid not in existing]
        result.new.extend(new)
        if result.dry_run:
            return  # read only: the transaction commits nothing
        rendered = await run_pure(len(new), render_all, runtime.settings.topic_prefix, new, None)
        inserted = await outbox.add_signaleringen(session, rendered)
        await leerlingen.save_last_gemeenten(session, changed, now)
    runtime.metrics.count_created(new, inserted)  # once committed


def _decide_peildatum(
    runtime: Runtime,
    found: Sequence[derive.Candidate],
    states: dict[str, PupilState],
    looked_up: Mapping[LookupKey, LookupResult],
    last: dict[str, derive.LastGemeente],
    now: datetime,
    today: date,
) -> tuple[dict[str, Signalering], dict[str, derive.LastGemeente], int]:
    """A peildatum batch's decisions: the signaleringen by id, the changed last gemeenten,
    and how many candidates were skipped because their lookup was unavailable."""
    made: dict[str, Signalering] = {}
    changed: dict[str, derive.LastGemeente] = {}
    unavailable = 0
    for c in found:
        code = looked_up.get((c.bsn, c.peildatum))
        if isinstance(code, LookupUnavailable):
            unavailable += 1
            continue
        signalled, new_last = derive.on_peildatum(
            c,
            states[c.bsn],
            code,
            changed.get(c.bsn) or last.get(c.bsn),
            runtime.gemeenten,
            runtime.rules,
            now,
            today,
        )
        if new_last is not None:
            changed[c.bsn] = new_last
        for item in signalled:
            made.setdefault(item.signalering_id, item)
    return made, changed, unavailable
