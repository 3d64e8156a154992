"""Retention rules and their queries: which rows are past their bewaartermijn, and deleting them.

The purge itself (batches, transactions, progress, the audit line) is app/retention.py. Each
rule names one table holding personal data, its timestamp column and the setting holding the
term in days. Adding a table is one `register(RetentionRule(...))` line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Table, delete, exists, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

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


def past_term(rule: RetentionRule, cutoff: datetime) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = rule.table.c[rule.timestamp] < cutoff
    if rule.only_if is not None:
        condition = condition & rule.only_if()
    return condition


async def count_past_term(session: AsyncSession, rule: RetentionRule, cutoff: datetime) -> int:
    """How many rows of the rule are past `cutoff` (and meet its `only_if`)."""
    count = await session.scalar(
        select(func.count()).select_from(rule.table).where(past_term(rule, cutoff))
    )
    return int(count or 0)


async def keys_past_term(
    session: AsyncSession, rule: RetentionRule, cutoff: datetime, limit: int
) -> list[tuple[object, ...]]:
    """The keys of the next batch past its term, in key order.

    Locked (PostgreSQL) so the pipeline cannot refresh a row between the dependents' delete
    and its own; delete_batch re-checks the term anyway.
    """
    columns = rule.key_columns
    return [
        tuple(row)
        for row in await session.execute(
            select(*columns)
            .where(past_term(rule, cutoff))
            .order_by(*columns)
            .limit(limit)
            .with_for_update()
        )
    ]


async def delete_batch(
    session: AsyncSession, rule: RetentionRule, keys: list[tuple[object, ...]], cutoff: datetime
) -> int:
    """Delete the rows of `keys` still past the term, their dependents first; returns how many.

    The term again, not `only_if`: the dependents may have been what it checked. So a
    composite key never takes a newer row sharing part of it.
    """
    chosen = rule.key_in(keys)
    if rule.before_delete is not None:
        await rule.before_delete(session, chosen & past_term(rule, cutoff))
    result = await session.execute(
        delete(rule.table).where(chosen & (rule.table.c[rule.timestamp] < cutoff))
    )
    return int(getattr(result, "rowcount", len(keys)))
