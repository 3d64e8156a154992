"""Retry of parked records: decide again what was parked because the lookup was unavailable.

    stored raw bericht ─▶ parse ─▶ parked records only ─▶ lookup ─▶ decide ─▶ ONE transaction:
    beslissing updated + signaleringen (record + derived) + outbox

The pupil state already holds these records (it is updated at receipt, lookup or not); only the
routing waited. Signalering ids are deterministic and a decision leaves "geparkeerd" once, so a
record is published once however often the retry runs (CLI and service side by side included).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import structlog

from koppelpunt.app.derived import derive_group, write_derived
from koppelpunt.model import Parsed, Soort
from koppelpunt.off_loop import records_in, run_pure
from koppelpunt.pipeline import run
from koppelpunt.pipeline.envelope import beslissing_rows, render_all
from koppelpunt.pipeline.parse import parse_message
from koppelpunt.runtime import Runtime
from koppelpunt.store import outbox
from koppelpunt.store import parked as store

log = structlog.get_logger(__name__)


@dataclass
class RetryResult:
    decided: int = 0
    still_parked: int = 0
    signaleringen: int = 0


async def retry_parked(runtime: Runtime, *, limit: int = 10_000) -> RetryResult:
    """Decide up to `limit` parked records again; those whose lookup still fails stay parked."""

    result = RetryResult()
    async with runtime.sessions() as session:
        rows = await store.list_parked(session, limit=limit)
    by_bericht: dict[int, list[store.ParkedRecord]] = defaultdict(list)
    for row in rows:
        by_bericht[row.bericht_pk].append(row)
    for pk, items in by_bericht.items():
        async with runtime.sessions() as session:
            raw = await store.raw_bericht(session, pk)
        # Pure steps of a large message in a thread, as at receipt (off_loop.py): a message
        # parked whole while the BRP was down can hold 10,000 records.
        parsed = await run_pure(
            records_in(raw), parse_message, raw, Soort(items[0].soort), runtime.schemas
        )
        if not isinstance(parsed, Parsed):  # stored messages were valid: a fault, not input
            log.error("parked_bericht_unreadable", berichtId=items[0].bericht_id)
            continue
        indices = {i.record_index for i in items}
        records = tuple(r for r in parsed.bericht.records if r.index in indices)
        sub = Parsed(replace(parsed.bericht, records=records))  # type: ignore[arg-type]
        found = await runtime.lookup.lookup(run.lookups_needed(sub, runtime.rules))
        now = runtime.clock()
        verwerking = await run_pure(
            len(records), run.decide, sub, runtime.rules, runtime.gemeenten, found, now
        )
        decided = tuple(o for o in verwerking.outcomes if not o.parked)
        result.still_parked += len(verwerking.outcomes) - len(decided)
        if not decided:
            continue
        done = replace(verwerking, outcomes=decided)
        async with runtime.sessions.begin() as session:
            resolved = {
                row.record_index
                for row in beslissing_rows(done, runtime.rules.version)
                if await store.resolve_parked(session, pk, row)
            }
            # A record another retry decided first yields the same signalering ids: the store
            # skips them, so nothing is published twice.
            group = await derive_group(session, runtime, [done], now, apply_state=False)
            await write_derived(session, group, [pk], now)
            made = (*done.signaleringen, *group.results[0].signaleringen)
            rendered = await run_pure(
                len(made), render_all, runtime.settings.topic_prefix, made, pk
            )
            inserted = await outbox.add_signaleringen(session, rendered)
        runtime.metrics.count_created(made, inserted)
        result.decided += len(resolved)
        result.signaleringen += len(inserted)
        log.info(
            "parked_decided",
            berichtId=items[0].bericht_id,
            besloten=len(resolved),
            signaleringen=len(inserted),
        )
    if result.signaleringen:
        runtime.on_outbox()
    return result
