"""The in-service scheduler: peildatum checks when their date has passed, and parked retries.

A background task in the API process, beside the outbox relay (api/app.py). Our choice: a
peildatum check runs once its date has *passed* in Dutch time (from the next day on), so
statuses dated on the peildatum itself, which arrive during that day, are counted. Each run is
recorded (peildatum_runs), so a restart does not run it again; a date missed while the service
was down is caught up within KOPPELPUNT_PEILDATUM_CATCH_UP_DAYS. Re-running would be harmless
anyway: signalering ids are deterministic. `koppelpunt peildatum --datum` runs a check on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, timedelta

import structlog

from koppelpunt.app import audit
from koppelpunt.app.derived import run_peildatum
from koppelpunt.app.parked import retry_parked
from koppelpunt.pipeline.derive import checks_due
from koppelpunt.pipeline.run import AMSTERDAM
from koppelpunt.runtime import Runtime
from koppelpunt.store import leerlingen
from koppelpunt.store import parked as parked_store

log = structlog.get_logger(__name__)


def dates_to_check(runtime: Runtime, today: date) -> list[date]:
    """Past dates within the catch-up window on which some enabled check is due."""
    days = runtime.settings.peildatum_catch_up_days
    candidates = (today - timedelta(days=n) for n in range(days, 0, -1))
    return [d for d in candidates if checks_due(runtime.rules, d)]


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stopping = asyncio.Event()
        self._since_retry = float("inf")

    async def tick(self) -> None:
        """One pass: due peildatum checks not yet run, then (when due) the parked retry."""
        rt = self._runtime
        today = rt.clock().astimezone(AMSTERDAM).date()
        for day in dates_to_check(rt, today):
            async with rt.sessions() as session:
                if await leerlingen.peildatum_ran(session, day):
                    continue
            result = await run_peildatum(rt, day)
            await audit.log_action(
                rt, audit.SYSTEM_ACTOR, audit.PEILDATUM, audit.peildatum_details(result)
            )
        if self._since_retry >= rt.settings.parked_retry_seconds:
            self._since_retry = 0.0
            async with rt.sessions() as session:
                waiting = await parked_store.count_parked(session)
            if waiting:
                retried = await retry_parked(rt)
                await audit.log_action(
                    rt,
                    audit.SYSTEM_ACTOR,
                    audit.PARKED_RETRY,
                    audit.parked_retry_details(retried, limit=10_000),
                )
                log.info(
                    "parked_retried",
                    besloten=retried.decided,
                    geparkeerd=retried.still_parked,
                    signaleringen=retried.signaleringen,
                )

    async def run(self) -> None:
        poll = self._runtime.settings.scheduler_poll_seconds
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:  # a fault (database, lookup): log and keep going
                log.exception("scheduler_pass_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=poll)
            self._since_retry += poll

    def stop(self) -> None:
        self._stopping.set()
