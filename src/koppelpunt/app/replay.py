"""Replay: re-publish the stored signaleringen of one gemeente, in order, with their ids.

Used when a vendor lost data that is no longer in the topic (retention) or never arrived.
Each signalering goes out with its original value, key (BSN) and headers (so the same
`ce_id`: consumers de-duplicate on it) plus a header `koppelpunt_replay: <replay id>`.
Progress (the outbox id of the last acknowledged signalering) is stored after every batch,
so an interrupted replay resumes where it stopped; a resumed batch may repeat a few
signaleringen, which the ce_id makes harmless.

A replay discloses a gemeente's pupils again, so it goes only where that gemeente's vendors
read: the gemeente's own topic (the default), or its replay topic `{topic}.replay`
(kafka/admin.replay_topic_for), which `koppelpunt access grant` lets exactly the vendors of
that gemeente read. Any other `toTopic` is refused here, for the API, the CLI and the /beheer
form alike (ReplayTopicNotAllowedError, 422). Every signalering a replay re-publishes gets a
`publiceren` line in the verwerkingenlog with the topic it went to and the replay id, in the
replay's trace, so a person's inzage shows the replay as a disclosure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.app import audit
from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError, NotFoundError
from koppelpunt.kafka.admin import replay_topic_for, topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage, Publisher
from koppelpunt.runtime import Runtime
from koppelpunt.store import replays, verwerkingenlog
from koppelpunt.store.replays import ReplayFilter, StoredReplay

log = structlog.get_logger(__name__)

REPLAY_HEADER = "koppelpunt_replay"

PublisherFactory = Callable[[Runtime], Publisher]


class ReplayTopicNotAllowedError(KoppelpuntError, ValueError):
    """A replay's toTopic is neither the gemeente's own topic nor its replay topic."""

    status = 422
    code = "replay-topic-not-allowed"
    title = "Replay-topic niet toegestaan"


class UnknownGemeenteError(KoppelpuntError, ValueError):
    """A replay names a gemeentecode that the gemeente table in use does not know."""

    status = 422
    code = "unknown-gemeente"
    title = "Onbekende gemeente"


def check_gemeente(runtime: Runtime, gemeentecode: str) -> None:
    """The gemeente must be in the table in use (an ended one is fine: its signaleringen may
    still be replayed); a typo such as GM9999 is refused before anything is counted."""
    if runtime.gemeenten.get(gemeentecode) is None:
        raise UnknownGemeenteError(
            f"unknown gemeentecode {gemeentecode}: not in the gemeente table in use "
            "(koppelpunt gemeenten list --all)"
        )


def allowed_topics(settings: Settings, gemeentecode: str) -> tuple[str, str]:
    """The topics a replay of this gemeente may publish to: its own and its replay topic."""
    prefix = settings.topic_prefix
    return topic_for(prefix, gemeentecode), replay_topic_for(prefix, gemeentecode)


def check_to_topic(settings: Settings, gemeentecode: str, to_topic: str | None) -> str | None:
    """`to_topic` when a replay of `gemeentecode` may go there (None: the gemeente topic);
    ReplayTopicNotAllowedError otherwise. Exact names: Kafka topic names are case-sensitive."""
    if to_topic is None or not to_topic.strip():
        return None
    own, replay = allowed_topics(settings, gemeentecode)
    if to_topic.strip() not in (own, replay):
        raise ReplayTopicNotAllowedError(
            f"een replay van {gemeentecode} mag alleen naar het eigen topic van die gemeente "
            f"({own}) of naar haar replay-topic ({replay}): andere topics lezen leveranciers "
            "van andere gemeenten (AVG)",
            toegestaneTopics=[own, replay],
        )
    return to_topic.strip()


def _kafka_publisher(runtime: Runtime) -> Publisher:
    return KafkaPublisher(runtime.settings)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What to replay. `gemeente` is a CBS code (GM0363); `until` is exclusive."""

    gemeente: str
    since: datetime | None = None
    until: datetime | None = None
    type: str | None = None
    to_topic: str | None = None
    dry_run: bool = False
    requested_by: str = "operator"

    @property
    def filter(self) -> ReplayFilter:
        code = self.gemeente.strip().upper()
        topic_for("x", code)  # ValueError unless GM + 4 digits
        return ReplayFilter(
            gemeentecode=code,
            since=self.since,
            until=self.until,
            type=self.type.strip().upper() if self.type else None,
        )


async def prepare_replay(runtime: Runtime, request: ReplayRequest, *, resume: bool = True) -> str:
    """Create a replay (counting what it will send) or, with `resume`, find the unfinished
    replay with exactly these parameters and continue it. Returns the replay id.

    A dry run is complete once created: its `total` is the count, nothing is sent.
    """
    f = request.filter
    check_gemeente(runtime, f.gemeentecode)
    to_topic = check_to_topic(runtime.settings, f.gemeentecode, request.to_topic)
    now = runtime.clock()
    async with runtime.sessions.begin() as session:
        if resume and not request.dry_run:
            found = await replays.find_unfinished(session, f, to_topic)
            if found is not None:
                log.info("replay_resumed", replay_id=found.replay_id, gemeentecode=f.gemeentecode)
                await _log_replay(
                    session, request, to_topic, found.replay_id, found.total, resumed=True
                )
                return found.replay_id
        replay_id = str(uuid.uuid4())
        total = await replays.count_matching(session, f)
        await replays.add_replay(
            session,
            replay_id=replay_id,
            f=f,
            to_topic=to_topic,
            dry_run=request.dry_run,
            total=total,
            requested_by=request.requested_by,
            now=now,
        )
        if request.dry_run:
            await replays.set_status(session, replay_id, replays.DONE, now=now)
        await _log_replay(session, request, to_topic, replay_id, total, resumed=False)
    log.info(
        "replay_created",
        replay_id=replay_id,
        gemeentecode=f.gemeentecode,
        total=total,
        dry_run=request.dry_run,
        requested_by=request.requested_by,
    )
    return replay_id


async def count_replay(runtime: Runtime, request: ReplayRequest) -> int:
    """How many signaleringen a replay with these parameters would send. Stores no replay
    (the CLI's --dry-run); the count itself is an operator action on personal data, so it is
    logged in the verwerkingenlog like every other."""
    f = request.filter
    check_gemeente(runtime, f.gemeentecode)
    to_topic = check_to_topic(runtime.settings, f.gemeentecode, request.to_topic)
    async with runtime.sessions.begin() as session:
        total = await replays.count_matching(session, f)
        await _log_replay(session, request, to_topic, None, total, resumed=False)
    return total


async def _log_replay(
    session: AsyncSession,
    request: ReplayRequest,
    to_topic: str | None,
    replay_id: str | None,
    total: int,
    *,
    resumed: bool,
) -> None:
    """The operator action in the verwerkingenlog, in the transaction that creates the replay,
    in the replay's trace (its disclosures are logged in the same one); a count that stores
    no replay (`replay_id` None) has no trace of its own."""
    f = request.filter
    await verwerkingenlog.log_operator_action(
        session,
        request.requested_by,
        audit.REPLAY,
        {
            "replayId": replay_id,
            "gemeentecode": f.gemeentecode,
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None,
            "type": f.type,
            "toTopic": to_topic,
            "dryRun": request.dry_run,
            "totaal": total,
            "hervat": resumed,
        },
        trace_id=verwerkingenlog.replay_trace_id(replay_id) if replay_id else None,
    )


async def get_replay(runtime: Runtime, replay_id: str) -> StoredReplay:
    async with runtime.sessions() as session:
        found = await replays.get_replay(session, replay_id)
    if found is None:
        raise NotFoundError(f"no replay with id {replay_id}")
    return found


async def list_replays(runtime: Runtime, *, limit: int = 50) -> list[StoredReplay]:
    """The newest replays first (for the /beheer page and GET /v1/beheer/replays)."""
    async with runtime.sessions() as session:
        return await replays.list_replays(session, limit=limit)


async def run_replay(
    runtime: Runtime,
    replay_id: str,
    publisher: Publisher,
    *,
    rate: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> StoredReplay:
    """Publish what is left of a replay; returns its final state (done or failed).

    `rate` caps messages per second (None: the configured KOPPELPUNT_REPLAY_RATE; 0:
    unlimited). `on_progress(published, total)` is called after every acknowledged batch.
    A failed publication stops the replay with status `failed` and its error; the position
    stays at the last acknowledged signalering, so running it again resumes from there.
    Cancellation (Ctrl-C) marks it `interrupted`, resumable the same way.
    """
    replay = await get_replay(runtime, replay_id)
    if replay.dry_run or replay.status == replays.DONE:
        return replay
    settings = runtime.settings
    try:
        # Again here: a replay stored before the rule, resumed now, must not go elsewhere.
        check_to_topic(settings, replay.gemeentecode, replay.to_topic)
    except ReplayTopicNotAllowedError as exc:
        async with runtime.sessions.begin() as session:
            await replays.set_status(
                session, replay_id, replays.FAILED, now=runtime.clock(), error=exc.detail
            )
        log.warning("replay_refused", replay_id=replay_id, gemeentecode=replay.gemeentecode)
        return await get_replay(runtime, replay_id)
    limit = settings.replay_rate if rate is None else rate
    batch_size = settings.replay_batch_size
    if limit > 0:
        batch_size = max(1, min(batch_size, int(limit)))
    f = replay.filter
    position = replay.last_outbox_id
    published = replay.published
    started = time.monotonic()
    sent_this_run = 0
    async with runtime.sessions.begin() as session:
        # The total as it is now: signaleringen may have been added since the replay began.
        total = published + await replays.count_matching(session, f, after_outbox_id=position)
        await replays.set_status(
            session, replay_id, replays.RUNNING, now=runtime.clock(), total=total
        )
    if on_progress is not None:
        on_progress(published, total)
    try:
        while True:
            async with runtime.sessions() as session:
                batch = await replays.next_batch(
                    session, f, after_outbox_id=position, limit=batch_size
                )
            if not batch:
                break
            messages = [
                OutboundMessage(
                    topic=replay.to_topic or item.topic,
                    key=item.key.encode("utf-8"),
                    value=item.payload,
                    headers=(
                        *((k, v.encode("utf-8")) for k, v in item.headers if k != REPLAY_HEADER),
                        (REPLAY_HEADER, replay_id.encode("utf-8")),
                    ),
                    ref=item.outbox_id,
                )
                for item in batch
            ]
            sent_at = runtime.clock()
            results = await publisher.publish(messages)
            acknowledged = 0
            for result in results:  # in order: the position moves over the acknowledged prefix
                if not result.ok:
                    break
                acknowledged += 1
            if acknowledged:
                position = batch[acknowledged - 1].outbox_id
                published += acknowledged
                sent_this_run += acknowledged
                async with runtime.sessions.begin() as session:
                    await replays.record_progress(
                        session,
                        replay_id,
                        last_outbox_id=position,
                        published=published,
                        now=runtime.clock(),
                    )
                    # The disclosures, with the progress: each is logged once it is on Kafka.
                    await verwerkingenlog.log_replayed(
                        session,
                        settings,
                        [
                            verwerkingenlog.Replayed(
                                item.signalering_id, item.key, item.type, message.topic
                            )
                            for item, message in zip(
                                batch[:acknowledged], messages[:acknowledged], strict=True
                            )
                        ],
                        replay_id=replay_id,
                        gemeentecode=f.gemeentecode,
                        actor=replay.requested_by,
                        started=sent_at,
                        ended=runtime.clock(),
                    )
                if on_progress is not None:
                    on_progress(published, total)
            if acknowledged < len(batch):
                failed = next((r for r in results if not r.ok), None)
                error = (failed.error if failed else None) or "not acknowledged by Kafka"
                async with runtime.sessions.begin() as session:
                    await replays.set_status(
                        session, replay_id, replays.FAILED, now=runtime.clock(), error=error
                    )
                log.warning("replay_failed", replay_id=replay_id, published=published, error=error)
                return await get_replay(runtime, replay_id)
            if limit > 0:
                ahead = sent_this_run / limit - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            async with runtime.sessions.begin() as session:
                await replays.set_status(
                    session, replay_id, replays.INTERRUPTED, now=runtime.clock()
                )
        log.warning("replay_interrupted", replay_id=replay_id, published=published)
        raise
    async with runtime.sessions.begin() as session:
        await replays.set_status(session, replay_id, replays.DONE, now=runtime.clock())
    log.info("replay_done", replay_id=replay_id, published=published)
    return await get_replay(runtime, replay_id)


# --- in the background (HTTP endpoint, /beheer page) -------------------------------------------

_tasks: dict[str, asyncio.Task[StoredReplay]] = {}


async def start_replay(
    runtime: Runtime,
    request: ReplayRequest,
    *,
    rate: float | None = None,
    publisher_factory: PublisherFactory = _kafka_publisher,
) -> str:
    """Create a replay and run it in the background of this process; returns its id at once.

    A dry run only counts (GET its state for `total`). Follow a replay with get_replay().
    """
    replay_id = await prepare_replay(runtime, request, resume=False)
    if not request.dry_run:
        task = asyncio.create_task(
            _run_in_background(runtime, replay_id, publisher_factory(runtime), rate),
            name=f"replay-{replay_id}",
        )
        _tasks[replay_id] = task
        task.add_done_callback(lambda _: _tasks.pop(replay_id, None))
    return replay_id


async def _run_in_background(
    runtime: Runtime, replay_id: str, publisher: Publisher, rate: float | None
) -> StoredReplay:
    try:
        await publisher.start()
        return await run_replay(runtime, replay_id, publisher, rate=rate)
    except Exception as exc:
        log.exception("replay_crashed", replay_id=replay_id)
        async with runtime.sessions.begin() as session:
            await replays.set_status(
                session,
                replay_id,
                replays.FAILED,
                now=runtime.clock(),
                error=f"{type(exc).__name__}: {exc}",
            )
        return await get_replay(runtime, replay_id)
    finally:
        with contextlib.suppress(Exception):
            await publisher.stop()


async def wait_for_replay(replay_id: str) -> None:
    """Wait until a background replay of this process has ended (no-op when none runs)."""
    task = _tasks.get(replay_id)
    if task is not None:
        await asyncio.wait({task})


async def cancel_background_replays() -> None:
    """At shutdown: stop background replays; they are marked interrupted and can be resumed."""
    tasks = list(_tasks.values())
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
