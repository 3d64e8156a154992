"""Retention (bewaartermijnen): delete what is past its term, in batches, logging counts only.

The purge is a registry of rules, one per kind of stored data holding personal data: which
table, which timestamp column, which setting holds the term in days (raw messages, pupil state,
signaleringen, verwerkingenlog). Adding a table is one `register(RetentionRule(...))` line. A
term of 0 days keeps forever.

Each batch selects the keys past their term (locked, on PostgreSQL), clears or deletes the rows
depending on them, then deletes by key *and* term again, so a composite key (bsn, schooljaar)
never takes a newer row sharing part of it. Every run writes a `beheer.purge` line (counts only)
in the verwerkingenlog.

Nothing unpublished is purged: a signalering still in the outbox waits for Kafka however old
it is (nothing is dropped silently).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, Table, delete, exists, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.app.audit import SYSTEM_ACTOR, log_action
from koppelpunt.runtime import Runtime
from koppelpunt.store.tables import (
    aanmelding_statussen,
    aanmeldingen,
    afwijzingen,
    berichten,
    beslissingen,
    leerling_gemeenten,
    leerling_prognoses,
    outbox,
    signaleringen,
    verwerkingenlog,
)

log = structlog.get_logger(__name__)

# Runs in the batch's transaction before the batch is deleted, for dependent rows. `doomed`
# is the WHERE clause on the rule's table selecting exactly the rows about to be deleted
# (this batch's keys AND still past the term), for use in a subquery.
BeforeDelete = Callable[[AsyncSession, ColumnElement[bool]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Rows of `table` whose `timestamp` column is older than `settings.<setting>` days."""

    name: str
    table: Table
    timestamp: str
    setting: str
    # The primary key column(s); a composite key is deleted by the whole tuple.
    key: str | tuple[str, ...] = "id"
    # Extra condition a row must meet to be purged (e.g. "published").
    only_if: Callable[[], ColumnElement[bool]] | None = None
    before_delete: BeforeDelete | None = field(default=None)

    @property
    def key_columns(self) -> list[ColumnElement[object]]:
        names = (self.key,) if isinstance(self.key, str) else self.key
        return [self.table.c[n] for n in names]

    def key_in(self, keys: list[tuple[object, ...]]) -> ColumnElement[bool]:
        columns = self.key_columns
        if len(columns) == 1:
            return columns[0].in_([k[0] for k in keys])
        return tuple_(*columns).in_(keys)


async def _berichten_dependents(session: AsyncSession, doomed: ColumnElement[bool]) -> None:
    # The per-record decisions go with their message; signaleringen and the pupil state (own
    # terms) keep living without the link to a message that no longer exists (PostgreSQL
    # enforces the foreign keys, so the links are cleared first).
    pks = select(berichten.c.id).where(doomed).scalar_subquery()
    await session.execute(delete(beslissingen).where(beslissingen.c.bericht_pk.in_(pks)))
    for table in (signaleringen, leerling_prognoses, aanmelding_statussen):
        await session.execute(
            update(table).where(table.c.bericht_pk.in_(pks)).values(bericht_pk=None)
        )


async def _signaleringen_dependents(session: AsyncSession, doomed: ColumnElement[bool]) -> None:
    ids = select(signaleringen.c.signalering_id).where(doomed).scalar_subquery()
    await session.execute(delete(outbox).where(outbox.c.signalering_id.in_(ids)))


async def _aanmeldingen_dependents(session: AsyncSession, doomed: ColumnElement[bool]) -> None:
    # An aanmelding goes with its whole status history.
    keys = select(aanmeldingen.c.instelling_brin, aanmeldingen.c.aanmelding_id).where(doomed)
    await session.execute(
        delete(aanmelding_statussen).where(
            tuple_(
                aanmelding_statussen.c.instelling_brin, aanmelding_statussen.c.aanmelding_id
            ).in_(keys)
        )
    )


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
    # Pupil state (issue 3): a prognose per schooljaar, an aanmelding with its status history
    # (its updated_at moves with every new status), the last gemeente signalled per leerling.
    RetentionRule(
        "leerling_prognoses",
        leerling_prognoses,
        "verzonden",
        "retention_leerlingstatus_days",
        key=("bsn", "schooljaar"),
    ),
    RetentionRule(
        "aanmeldingen",
        aanmeldingen,
        "updated_at",
        "retention_leerlingstatus_days",
        key=("instelling_brin", "aanmelding_id"),
        before_delete=_aanmeldingen_dependents,
    ),
    RetentionRule(
        "leerling_gemeenten",
        leerling_gemeenten,
        "updated_at",
        "retention_leerlingstatus_days",
        key="bsn",
    ),
    # The verwerkingenlog's only delete path (it is append-only otherwise).
    RetentionRule("verwerkingenlog", verwerkingenlog, "end_time", "retention_verwerkingenlog_days"),
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
        columns = rule.key_columns
        done = 0
        while True:
            async with runtime.sessions.begin() as session:
                # Locked (PostgreSQL) so the pipeline cannot refresh a row between the
                # dependents' delete and its own; the delete re-checks the term anyway, so a
                # composite key never takes a newer row sharing part of it.
                keys = [
                    tuple(row)
                    for row in await session.execute(
                        select(*columns)
                        .where(_condition(rule, plan.cutoff))
                        .order_by(*columns)
                        .limit(runtime.settings.retention_batch_size)
                        .with_for_update()
                    )
                ]
                if not keys:
                    break
                chosen = rule.key_in(keys)
                if rule.before_delete is not None:
                    await rule.before_delete(session, chosen & _condition(rule, plan.cutoff))
                # The term again, not `only_if`: the dependents may have been what it checked.
                result = await session.execute(
                    delete(rule.table).where(chosen & (rule.table.c[rule.timestamp] < plan.cutoff))
                )
            removed = int(getattr(result, "rowcount", len(keys)))
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
