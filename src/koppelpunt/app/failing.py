"""Signaleringen that fail to publish: visible with their error, retried on request.

The relay keeps retrying them with exponential back-off on its own; `retry` makes them due
now, e.g. after the cause (a topic's max.message.bytes, an ACL) was fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from koppelpunt.app import audit
from koppelpunt.runtime import Runtime
from koppelpunt.store import failing, verwerkingenlog
from koppelpunt.store.failing import FailingSignalering

log = structlog.get_logger(__name__)


def as_json(item: FailingSignalering) -> dict[str, Any]:
    return {
        "signaleringId": item.signalering_id,
        "type": item.type,
        "gemeentecode": item.gemeentecode,
        "topic": item.topic,
        "aangemaakt": item.created_at.isoformat(),
        "pogingen": item.attempts,
        "laatsteFout": item.last_error,
        "volgendePoging": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
    }


async def list_failing(
    runtime: Runtime, *, gemeente: str | None = None, limit: int = 100, failing_only: bool = True
) -> list[FailingSignalering]:
    """Failing signaleringen (or, not `failing_only`, the whole unpublished backlog)."""
    async with runtime.sessions() as session:
        return await failing.list_failing(
            session,
            gemeentecode=gemeente.upper() if gemeente else None,
            limit=limit,
            failing_only=failing_only,
        )


async def retry_failing(
    runtime: Runtime, signalering_ids: Sequence[str] | None = None, *, requested_by: str
) -> int:
    """Make failing signaleringen (all, or these) due now and wake the in-process relay."""
    cipher = verwerkingenlog.LogCipher.from_settings(runtime.settings)
    async with runtime.sessions.begin() as session:
        count = await failing.retry_now(
            session, signalering_ids=signalering_ids, now=runtime.clock()
        )
        # References, not ids: a signalering id gives away its BSN (store/verwerkingenlog.py).
        refs = [cipher.signalering_ref(i) for i in list(signalering_ids or [])[:100]]
        await verwerkingenlog.log_operator_action(
            session,
            requested_by,
            audit.OUTBOX_RETRY,
            {"signaleringRefs": refs, "aantal": count},
        )
    runtime.on_outbox()
    log.info("failing_signaleringen_retried", count=count, requested_by=requested_by)
    return count
