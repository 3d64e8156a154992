"""The outbox relay: publishes stored signaleringen to Kafka, at least once, in order.

It claims a batch of unpublished outbox rows (on PostgreSQL with FOR UPDATE SKIP LOCKED, so
several relays can run side by side without publishing a row twice at the same time), sends
them pipelined with the idempotent producer, and marks each row published only after Kafka
acknowledged it (acks=all). A crash between the acknowledgement and the commit re-sends the
same signalering with the same ce_id: a duplicate consumers can detect, never a loss.

Two kinds of failure are kept apart. When the broker is unreachable the whole batch is left
as it was and the relay waits (short, capped back-off) until Kafka is back: an outage is not
the signalering's fault and must not push its retry minutes away. A single message the broker
refuses gets attempts+1 and an exponential back-off, visible to operators (last_error).

A third: Kafka acknowledged a batch but the database would not record it (locked, full, read
only, connection lost). Publishing it again on every pass would put a copy on Kafka each
time. The relay keeps such a batch in memory as "held", claims nothing new, and after a
back-off (relay_backoff_base_seconds doubling up to relay_backoff_max_seconds) tries only to
record it: it is not published again. A held batch is lost with the process; its rows are
then still unpublished and go out once more after the restart (at least once, same ce_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppelpunt.config import Settings
from koppelpunt.kafka.publisher import OutboundMessage, Publisher
from koppelpunt.metrics import Metrics
from koppelpunt.store import outbox, verwerkingenlog

log = structlog.get_logger(__name__)

OUTAGE_BACKOFF_MAX = 5.0


class OutboxRelay:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._wake = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._stopping = False
        self._started = False
        self.last_error: str | None = None
        self.last_published_at: datetime | None = None
        # Acknowledged by Kafka, not yet recorded as published (the database refused): see
        # the module docstring. With when they were published, failed attempts, next try.
        self._held: list[outbox.OutboxItem] = []
        self._held_since: datetime | None = None
        self._held_failures = 0
        self._held_retry_at = 0.0  # time.monotonic()

    def wake(self) -> None:
        """Called after a commit that added outbox rows: publish now instead of at the poll."""
        self._wake.set()

    async def _ensure_started(self) -> bool:
        if self._started:
            return True
        try:
            await self._publisher.start()
        except Exception as exc:  # any connect failure: retry later
            self.last_error = f"kafka start: {type(exc).__name__}: {exc}"
            log.warning("relay_kafka_unavailable", error=self.last_error)
            return False
        self._started = True
        return True

    def _shard_count(self) -> int | None:
        """PostgreSQL: the number of shards, each published only under its advisory lock.
        SQLite: None, the whole outbox at once (a single relay)."""
        count = self._settings.relay_shards
        if count <= 1 or not self._settings.uses_postgresql:
            return None
        return count

    async def drain_once(self) -> tuple[int, bool]:
        """Publish one batch (over every shard this relay can lock). Returns (published count,
        broker reachable).

        Serialised per relay: an operator's or a test's drain() next to the running loop must
        not claim the same rows twice (SQLite has no SKIP LOCKED to keep them apart).
        """
        async with self._drain_lock:
            return await self._drain_shards()

    async def _drain_shards(self) -> tuple[int, bool]:
        recorded = 0
        if self._held:
            held = await self._record_held()
            if held is None:
                return 0, False  # still held: nothing new is claimed meanwhile
            recorded = held  # then on to what became due meanwhile
        if not await self._ensure_started():
            return recorded, False
        total, reachable = await self._drain_shards_once(self._shard_count())
        total += recorded
        if not reachable:
            return total, False
        if total == 0:
            async with self._sessions() as session:
                self._metrics.outbox_backlog.set(await outbox.backlog(session))
        return total, True

    async def _drain_shards_once(self, count: int | None) -> tuple[int, bool]:
        """One claim, publish and commit over every shard this relay can lock now (all of
        them unless another relay is publishing some): the locks are held until the commit,
        so each pupil's signaleringen leave one relay at a time, oldest first."""
        now = self._clock()
        acknowledged: list[outbox.OutboxItem] = []
        try:
            return await self._claim_publish_record(count, now, acknowledged)
        except Exception as exc:
            if not acknowledged:
                raise  # nothing went out: the next pass claims the same rows again
            self._hold(acknowledged, now, exc)
            return 0, False

    async def _claim_publish_record(
        self, count: int | None, now: datetime, acknowledged: list[outbox.OutboxItem]
    ) -> tuple[int, bool]:
        """The pass itself; fills `acknowledged` as soon as Kafka acknowledged items, so that
        a database failure after the publish can hold them instead of re-sending them."""
        async with self._sessions.begin() as session:
            shard: outbox.ShardSet | None = None
            if count is not None:
                shard = await outbox.lock_free_shards(session, count)
                if not shard.indexes:
                    return 0, True  # other relays are publishing every shard right now
            items = await outbox.claim_pending(
                session, limit=self._settings.relay_batch_size, now=now, shard=shard
            )
            if not items:
                return 0, True
            messages = [
                OutboundMessage(
                    topic=item.topic,
                    key=item.key.encode("utf-8"),
                    value=item.payload,
                    headers=item.kafka_headers,
                    ref=item.id,
                )
                for item in items
            ]
            results = await self._publisher.publish(messages)
            ok = [r.ref for r in results if r.ok]
            failed = [r for r in results if not r.ok]
            by_id = {item.id: item for item in items}
            acknowledged.extend(by_id[ref] for ref in ok)
            if ok:
                await outbox.mark_published(session, ok, self._clock())
                await verwerkingenlog.log_published(
                    session, self._settings, acknowledged, started=now, ended=self._clock()
                )
            if failed and not ok and not await self._publisher.ping(timeout=2.0):
                # Broker outage: leave the rows untouched (no attempts counted); roll back.
                self.last_error = failed[0].error
                await session.rollback()
                return 0, False
            for r in failed:
                await outbox.mark_failed(
                    session,
                    [r.ref],
                    error=r.error or "unknown",
                    now=self._clock(),
                    base_seconds=self._settings.relay_backoff_base_seconds,
                    max_seconds=self._settings.relay_backoff_max_seconds,
                )
        if failed:
            self._metrics.publish_failures.inc(len(failed))
            self.last_error = failed[0].error
            log.warning("signalering_publish_failed", count=len(failed), error=self.last_error)
        if ok:
            self._metrics.signaleringen_published.inc(len(ok))
            self.last_published_at = self._clock()
            self.last_error = None
            log.info("signaleringen_published", count=len(ok))
        return len(ok), True

    def _hold(
        self, items: Sequence[outbox.OutboxItem], published: datetime, exc: Exception
    ) -> None:
        """Kafka has `items`, the database refused to record it: keep them, back off."""
        if not self._held:
            self._held, self._held_since = list(items), published
        self._held_failures += 1
        delay = outbox.backoff_seconds(
            self._held_failures - 1,
            base_seconds=self._settings.relay_backoff_base_seconds,
            max_seconds=self._settings.relay_backoff_max_seconds,
        )
        self._held_retry_at = time.monotonic() + delay
        self.last_error = f"database: {type(exc).__name__}"
        log.warning(
            "relay_record_failed",
            held=len(self._held),
            attempts=self._held_failures,
            retry_in=delay,
            error=type(exc).__name__,
        )

    def held_wait(self) -> float | None:
        """Seconds until the held batch is tried again (0: now); None when nothing is held."""
        if not self._held:
            return None
        return max(0.0, self._held_retry_at - time.monotonic())

    async def _record_held(self) -> int | None:
        """Try to record the held batch as published (with its log lines), not before its
        back-off has passed. Returns how many were recorded (0: all had been marked by another
        relay meanwhile), or None while it is still held."""
        if time.monotonic() < self._held_retry_at:
            return None
        held, since = self._held, self._held_since or self._clock()
        by_id = {item.id: item for item in held}
        try:
            async with self._sessions.begin() as session:
                marked = await outbox.mark_published_if_pending(session, list(by_id), self._clock())
                await verwerkingenlog.log_published(
                    session,
                    self._settings,
                    [by_id[i] for i in marked],
                    started=since,
                    ended=self._clock(),
                )
        except Exception as exc:
            self._hold(held, since, exc)
            return None
        self._held, self._held_since, self._held_failures = [], None, 0
        self.last_error = None
        if marked:
            self._metrics.signaleringen_published.inc(len(marked))
            self.last_published_at = self._clock()
        log.info("held_signaleringen_recorded", count=len(marked), held=len(held))
        return len(marked)

    async def drain(self) -> int:
        """Publish until nothing is due (used by tests and `koppelpunt relay --once`)."""
        total = 0
        while True:
            n, reachable = await self.drain_once()
            total += n
            if n == 0 or not reachable:
                return total

    async def run(self) -> None:
        """Loop until stop(): drain, then sleep until woken or the poll interval passes.

        Wake-ups are coalesced: the wake flag is cleared *before* a pass (a commit during the
        pass wakes the next one, none is lost), a pass that found less than a full batch goes
        straight to sleep instead of claiming again to find nothing, and after a wake-up the
        relay waits `relay_coalesce_seconds` so that the commits of many concurrent messages
        are published by one claim, one produce round and one commit instead of one each.
        """
        outage_delay = 0.5
        while not self._stopping:
            self._wake.clear()
            try:
                n, reachable = await self.drain_once()
            except Exception as exc:  # a fault (e.g. database down): log and keep going
                log.exception("relay_pass_failed", error=type(exc).__name__)
                n, reachable = 0, False
            held = self.held_wait()
            if held is not None:
                # Kafka has a batch the database has not recorded: wait out its back-off
                # (wake-ups do not shorten it: nothing new is claimed before it is recorded).
                await self._pause(held)
                continue
            if not reachable:
                await self._sleep(outage_delay)
                outage_delay = min(outage_delay * 2, OUTAGE_BACKOFF_MAX)
                continue
            outage_delay = 0.5
            if n < self._settings.relay_batch_size:
                # Everything due at the claim was taken; later commits have set the flag.
                woken = await self._sleep(self._settings.relay_poll_seconds)
                if woken and self._settings.relay_coalesce_seconds > 0 and not self._stopping:
                    await asyncio.sleep(self._settings.relay_coalesce_seconds)

    async def _sleep(self, seconds: float) -> bool:
        """Wait until woken (True) or `seconds` passed (False); a wake-up set earlier counts."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
            return True
        return False

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds` unless stop() is called meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            await self._sleep(left)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._started:
            with contextlib.suppress(Exception):
                await self._publisher.stop()
            self._started = False
