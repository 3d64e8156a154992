"""Publishing signaleringen: a small Publisher protocol and its aiokafka adapter.

The outbox relay hands over a batch of rows and gets one result per row back; it never has to
catch a per-message failure, and it retries failed rows with back-off. Delivery is therefore
at-least-once: a row reported failed may still have reached the broker, which is why every
signalering carries a stable CloudEvents id that consumers de-duplicate on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError, ServiceUnavailableError
from koppelpunt.kafka.admin import client_kwargs, describe_unavailable, ensure_topics
from koppelpunt.pipeline.envelope import NO_EXTRA, cloudevent_attributes


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One record for Kafka; `ref` is the outbox row id, echoed in its PublishResult."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    ref: int


@dataclass(frozen=True, slots=True)
class PublishResult:
    ref: int
    ok: bool
    error: str | None = None


class Publisher(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[PublishResult]:
        """One result per message, in order; a failed message is a result, not an exception."""
        ...

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 - the protocol's contract
        """Whether the broker answers now (for /readyz)."""
        ...


# --- CloudEvents ---------------------------------------------------------------------------


def cloudevent_headers(
    *,
    ce_id: str,
    ce_type: str,
    ce_source: str,
    ce_time: datetime,
    content_type: str = "application/xml",
    extra: Mapping[str, str] = NO_EXTRA,
) -> tuple[tuple[str, bytes], ...]:
    """Headers of the CloudEvents 1.0 Kafka protocol binding, binary content mode.

    Binary mode keeps the value the plain payload (XML), so a consumer that knows nothing of
    CloudEvents still reads it, while the event attributes travel as `ce_*` headers.
    `extra` holds further attributes, named with or without the `ce_` prefix (e.g.
    {"dataschema": "https://…"} or {"ce_gemeentecode": "GM0363"}).
    """
    attributes = cloudevent_attributes(
        ce_id=ce_id,
        ce_type=ce_type,
        ce_source=ce_source,
        ce_time=ce_time,
        content_type=content_type,
        extra=extra,
    )
    return tuple((name, value.encode("utf-8")) for name, value in attributes)


# --- the aiokafka adapter --------------------------------------------------------------------


class KafkaPublisher:
    """Idempotent producer (acks=all): the producer's own retries never write a duplicate.

    After any failed result the producer is discarded with its unsent queue and a fresh one
    is created by the next publish(): the idempotent aiokafka producer would otherwise retry
    the failed messages forever (delivering them after the relay has re-sent them) and may
    keep sequence state that a restarted broker rejects. One caller at a time (the relay).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        linger_ms: int = 5,
        compression_type: str | None = None,
        request_timeout: float = 10.0,
        publish_timeout: float | None = None,
    ) -> None:
        self._settings = settings
        self._request_timeout = request_timeout
        # Hard bound on one publish() call, so the relay never hangs on a dead broker.
        self._publish_timeout = publish_timeout or request_timeout * 1.5 + 1
        self.producer_config: dict[str, Any] = {
            **client_kwargs(settings),
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": linger_ms,  # a few ms so a relay batch leaves in few requests
            "compression_type": compression_type,
            "request_timeout_ms": int(request_timeout * 1000),
            "client_id": "koppelpunt-publisher",
        }
        self._producer: AIOKafkaProducer | None = None
        self._known_topics: set[str] = set()

    async def start(self) -> None:
        """Connect; raises ServiceUnavailableError in bounded time if Kafka is unreachable."""
        if self._producer is None:
            self._producer = await self._new_producer()

    async def stop(self) -> None:
        """Deliver what is queued (within the request timeout), then close."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(self._request_timeout):
                await producer.stop()
        except (KafkaError, OSError, TimeoutError):
            await _abandon(producer, self._request_timeout)

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[PublishResult]:
        """Send all, pipelined and in order; one result per message within publish_timeout."""
        results: list[PublishResult | None] = [None] * len(messages)
        if not messages:
            return []
        try:
            async with asyncio.timeout(self._publish_timeout):
                await self._send_all(messages, results)
        except (KafkaError, OSError, TimeoutError, KoppelpuntError) as exc:
            # The batch as a whole failed (broker gone, metadata timeout, topic refused):
            # report every unsent message and start afresh next time.
            error = (
                f"no acknowledgement from Kafka within {self._publish_timeout:.0f}s"
                if isinstance(exc, TimeoutError)
                else _describe(exc)
            )
            for i, message in enumerate(messages):
                if results[i] is None:
                    results[i] = PublishResult(message.ref, ok=False, error=error)
        if any(r is not None and not r.ok for r in results):
            await self._discard()
        return [r for r in results if r is not None]

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 - the protocol's contract
        """Ask the broker for cluster metadata; reuses the producer's connection when up."""
        try:
            async with asyncio.timeout(timeout):
                if self._producer is not None:
                    await self._producer.client.fetch_all_metadata()
                    return True
                client = AIOKafkaClient(
                    **client_kwargs(self._settings), request_timeout_ms=int(timeout * 1000)
                )
                try:
                    await client.bootstrap()
                finally:
                    await client.close()
                return True
        except (KafkaError, OSError, TimeoutError):
            return False

    # --- internals ------------------------------------------------------------------------
    async def _send_all(
        self, messages: Sequence[OutboundMessage], results: list[PublishResult | None]
    ) -> None:
        """Queue every message in order (pipelined), then wait for all acknowledgements.

        The messages of one partition go in order into batches built here (`create_batch`,
        `send_batch`) instead of one `send()` each: the same records in the same produce
        batches, without a future, a metadata wait and an accumulator lookup per message.
        Each keeps the partition `send(key=...)` would give it (the producer's partitioner:
        murmur2 of the key, as Java's), a batch is closed where the producer's own would be
        (max_batch_size), and a refused batch fails its messages, as it failed them before.
        """
        if self._producer is None:
            self._producer = await self._new_producer()
        producer = self._producer
        await self._ensure_topics({m.topic for m in messages})
        partitions: dict[str, int | None] = {}  # the only partition of a topic, or None
        runs: dict[tuple[str, int], list[int]] = {}  # (topic, partition) -> message indexes
        headers = [list(m.headers) for m in messages]  # the record builder takes lists only
        for i, message in enumerate(messages):
            topic = message.topic
            if topic not in partitions:
                await producer.client._wait_on_metadata(topic)
                own = producer.client.cluster.partitions_for_topic(topic)
                partitions[topic] = next(iter(own)) if len(own) == 1 else None
            try:  # send()'s own size check; this message only, the rest can go
                producer._serialize(message.key, message.value, headers[i])
            except MessageSizeTooLargeError as exc:
                results[i] = PublishResult(message.ref, ok=False, error=_describe(exc))
                continue
            partition = partitions[topic]
            if partition is None:
                key = message.key
                partition = producer._partition(topic, None, key, message.value, key, message.value)
            runs.setdefault((topic, partition), []).append(i)
        pending: list[tuple[list[int], asyncio.Future[Any]]] = []
        for (topic, partition), indexes in runs.items():
            batch = producer.create_batch()
            in_batch: list[int] = []
            for i in indexes:
                m = messages[i]
                if (
                    batch.append(timestamp=None, key=m.key, value=m.value, headers=headers[i])
                    is None
                ):
                    # Full: send it; the first record always fits a new batch.
                    sent = await producer.send_batch(batch, topic, partition=partition)
                    pending.append((in_batch, sent))
                    batch, in_batch = producer.create_batch(), []
                    batch.append(timestamp=None, key=m.key, value=m.value, headers=headers[i])
                in_batch.append(i)
            pending.append((in_batch, await producer.send_batch(batch, topic, partition=partition)))
        outcomes = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (indexes, _), outcome in zip(pending, outcomes, strict=True):
            for i in indexes:
                ref = messages[i].ref
                if isinstance(outcome, BaseException):
                    results[i] = PublishResult(ref, ok=False, error=_describe(outcome))
                else:
                    results[i] = PublishResult(ref, ok=True)

    async def _ensure_topics(self, topics: set[str]) -> None:
        unknown = sorted(topics - self._known_topics)
        if unknown:
            await ensure_topics(
                self._settings,
                unknown,
                self._settings.topic_partitions,
                timeout=self._request_timeout,
            )
            self._known_topics.update(unknown)

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self.producer_config)
        try:
            async with asyncio.timeout(self._request_timeout):
                await producer.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await _abandon(producer, self._request_timeout)
            # A refused login (e.g. a restarted broker that does not know the service's
            # credential yet) is an outage like an absent broker: the caller retries later
            # with a fresh producer. The message names the refusal so operators can tell.
            raise ServiceUnavailableError(await describe_unavailable(self._settings, exc)) from exc
        return producer

    async def _discard(self) -> None:
        """Drop the producer and everything it still holds, after a failed batch.

        The idempotent aiokafka producer retries an unacknowledged batch forever. Those
        messages were reported failed and the relay sends them again, so the old producer
        must not deliver them too once the broker is back.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            await _abandon(producer, self._request_timeout)


async def _abandon(producer: AIOKafkaProducer, grace: float) -> None:
    """Stop a producer without delivering its queue (aiokafka has no public abort).

    stop() would wait for the queued batches, i.e. for the broker to come back. Cancelling
    the sender task ends the retries (its in-flight request finishes one attempt); closing
    the client ends the connections and the metadata refresh.
    """
    producer._closed = True  # stop() becomes a no-op and __del__ does not warn
    task = producer._sender.sender_task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=grace)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(grace):
            await producer.client.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
