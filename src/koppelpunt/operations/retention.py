"""Retention (bewaartermijnen): delete what is past its term, in batches, logging counts only.

The purge is a registry of rules, one per kind of stored data: which table, which timestamp
column, which setting holds the term in days. Adding a table (pupil state, verwerkingenlog)
is one `register(RetentionRule(...))` line next to that table's repository. A term of 0 days
keeps forever.

Nothing unpublished is purged: a signalering still in the outbox waits for Kafka however old
it is (nothing is dropped silently).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Table, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.runtime import Runtime
from koppelpunt.store.tables import afwijzingen, berichten, beslissingen, outbox, signaleringen

log = structlog.get_logger(__name__)

BeforeDelete = Callable[[AsyncSession, Sequence[Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Rows of `table` whose `timestamp` column is older than `settings.<setting>` days."""

    name: str
    table: Table
    timestamp: str
    setting: str
    key: str = "id"
    # Extra condition a row must meet to be purged (e.g. "published").
    only_if: Callable[[], ColumnElement[bool]] | None = None
    # Runs in the same transaction before a batch is deleted: dependent rows.
    before_delete: BeforeDelete | None = field(default=None)


async def _berichten_dependents(session: AsyncSession, pks: Sequence[Any]) -> None:
    # The per-record decisions go with their message; signaleringen (own term) keep living
    # without the link to a message that no longer exists.
    await session.execute(delete(beslissingen).where(beslissingen.c.bericht_pk.in_(pks)))
    await session.execute(
        update(signaleringen).where(signaleringen.c.bericht_pk.in_(pks)).values(bericht_pk=None)
    )


async def _signaleringen_dependents(session: AsyncSession, ids: Sequence[Any]) -> None:
    await session.execute(delete(outbox).where(outbox.c.signalering_id.in_(ids)))


def _published() -> ColumnElement[bool]:
    return exists().where(
        outbox.c.signalering_id == signaleringen.c.signalering_id,
        outbox.c.published_at.is_not(None),
    )


RULES: list[RetentionRule] = [
    # Signaleringen first: they may point at berichten purged next.
    RetentionRule(
        "signaleringen",
        signaleringen,
        "created_at",
        "retention_signaleringen_days",
        key="signalering_id",
        only_if=_published,
        before_delete=_signaleringen_dependents,
    ),
    RetentionRule(
        "berichten",
        berichten,
        "received_at",
        "retention_berichten_days",
        before_delete=_berichten_dependents,
    ),
    RetentionRule("afwijzingen", afwijzingen, "received_at", "retention_berichten_days"),
    # Pupil state (issue 3) and the verwerkingenlog (issue 5b) add one line each, e.g.
    # RetentionRule("verwerkingenlog", verwerkingenlog, "eind", "retention_verwerkingenlog_days")
]


def register(rule: RetentionRule) -> None:
    """Add a table to the purge (idempotent by name)."""
    if all(r.name != rule.name for r in RULES):
        RULES.append(rule)


def _condition(rule: RetentionRule, cutoff: datetime) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = rule.table.c[rule.timestamp] < cutoff
    if rule.only_if is not None:
        condition = condition & rule.only_if()
    return condition


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
            count = await session.scalar(
                select(func.count()).select_from(rule.table).where(_condition(rule, cutoff))
            )
            plans.append(PurgePlan(rule.name, cutoff, int(count or 0)))
    return plans


async def purge(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Delete everything past its term; returns the count per rule (dry run: would delete).

    Each batch of `retention_batch_size` rows is its own transaction, so a purge never holds
    long locks and an interrupted purge simply continues next time. `on_progress(name, done,
    total)` follows each batch.
    """
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
        key = rule.table.c[rule.key]
        done = 0
        while True:
            async with runtime.sessions.begin() as session:
                keys = list(
                    await session.scalars(
                        select(key)
                        .where(_condition(rule, plan.cutoff))
                        .order_by(key)
                        .limit(runtime.settings.retention_batch_size)
                    )
                )
                if not keys:
                    break
                if rule.before_delete is not None:
                    await rule.before_delete(session, keys)
                await session.execute(delete(rule.table).where(key.in_(keys)))
            done += len(keys)
            if on_progress is not None:
                on_progress(plan.name, done, max(plan.count, done))
        deleted[plan.name] = done
    log.info(
        "retention_purge_dry_run" if dry_run else "retention_purged",
        **{name: count for name, count in deleted.items()},
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
