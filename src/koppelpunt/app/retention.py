"""Retention (bewaartermijnen): delete what is past its term, in batches, logging counts only.

The purge follows a registry of rules (store/retention.py), one per kind of stored data holding
personal data: which table, which timestamp column, which setting holds the term in days (raw
messages, pupil state, signaleringen, verwerkingenlog). A term of 0 days keeps forever.

Each batch selects the keys past their term (locked, on PostgreSQL), clears or deletes the rows
depending on them, then deletes by key *and* term again, so a composite key (bsn, schooljaar)
never takes a newer row sharing part of it. Every run writes a `beheer.purge` line (counts
only) in the verwerkingenlog. The rules and their queries are store/retention.py.

Nothing unpublished is purged: a signalering still in the outbox waits for Kafka however old
it is (nothing is dropped silently).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from koppelpunt.app.audit import SYSTEM_ACTOR, log_action
from koppelpunt.runtime import Runtime
from koppelpunt.store.retention import RULES, count_past_term, delete_batch, keys_past_term

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PurgePlan:
    name: str
    cutoff: datetime
    count: int


async def plan_purge(runtime: Runtime) -> list[PurgePlan]:
    """What a purge would delete now, per rule (terms of 0 days are skipped)."""
    now = runtime.clock()
    plans: list[PurgePlan] = []
    async with runtime.sessions() as session:
        for rule in RULES:
            days = int(getattr(runtime.settings, rule.setting))
            if days <= 0:
                continue
            cutoff = now - timedelta(days=days)
            count = await count_past_term(session, rule, cutoff)
            plans.append(PurgePlan(rule.name, cutoff, count))
    return plans


async def purge(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
    actor: str = SYSTEM_ACTOR,
) -> dict[str, int]:
    """Delete everything past its term; returns the count per rule (dry run: would delete).

    The purge is logged in the verwerkingenlog as `beheer.purge` by `actor` (the daily run:
    the service itself), with the counts per kind only.

    Each batch of `retention_batch_size` rows is its own transaction, so a purge never holds
    long locks and an interrupted purge simply continues next time. `on_progress(name, done,
    total)` follows each batch.
    """
    now = runtime.clock()
    plans = await plan_purge(runtime)
    deleted: dict[str, int] = {}
    by_name = {r.name: r for r in RULES}
    for plan in plans:
        if dry_run or plan.count == 0:
            deleted[plan.name] = plan.count
            if on_progress is not None:
                on_progress(plan.name, plan.count if not dry_run else 0, plan.count)
            continue
        rule = by_name[plan.name]
        done = 0
        while True:
            async with runtime.sessions.begin() as session:
                keys = await keys_past_term(
                    session, rule, plan.cutoff, runtime.settings.retention_batch_size
                )
                if not keys:
                    break
                removed = await delete_batch(session, rule, keys, plan.cutoff)
            if removed <= 0:  # only rows refreshed meanwhile: they are no longer past term
                break
            done += removed
            if on_progress is not None:
                on_progress(plan.name, done, max(plan.count, done))
        deleted[plan.name] = done
    log.info(
        "retention_purge_dry_run" if dry_run else "retention_purged",
        **{name: count for name, count in deleted.items()},
    )
    await log_action(
        runtime,
        actor,
        "purge",
        {"dryRun": dry_run, "aantallen": deleted, "peilmoment": now.isoformat()},
    )
    return deleted


# Wait this long after start before the first purge, so a service restarted often still purges
# while a short-lived process (tests, a quick restart loop) does not.
FIRST_PURGE_DELAY_SECONDS = 600.0


async def purge_periodically(runtime: Runtime, interval_hours: float) -> None:
    """The service's daily purge (a background task of `serve`); a failure is logged and
    retried at the next interval."""
    delay = min(FIRST_PURGE_DELAY_SECONDS, interval_hours * 3600)
    while True:
        await asyncio.sleep(delay)
        delay = interval_hours * 3600
        try:
            await purge(runtime)
        except Exception:
            log.exception("retention_purge_failed")
