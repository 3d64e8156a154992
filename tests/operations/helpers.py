"""Builders shared by the operations tests: stored signaleringen, published by the real relay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import structlog
from aiokafka.structs import ConsumerRecord
from click.testing import Result
from typer.testing import CliRunner

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, cloudevent_headers
from koppelpunt.kafka.relay import OutboxRelay
from koppelpunt.runtime import Runtime
from koppelpunt.store.outbox import NewSignalering, add_signaleringen

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def new_signalering(
    settings: Settings, n: int, *, gemeente: str = "GM0363", type_: str = "AANMELDSTATUS"
) -> NewSignalering:
    """Signalering number `n`, created n minutes after T0, with CloudEvents headers."""
    created = T0 + timedelta(minutes=n)
    sid = f"sig-{gemeente}-{n:04d}"
    headers = cloudevent_headers(
        ce_id=sid, ce_type=f"nl.vva.signalering.{type_}", ce_source="urn:test", ce_time=created
    )
    return NewSignalering(
        signalering_id=sid,
        type=type_,
        gemeentecode=gemeente,
        bsn="999993653",
        topic=topic_for(settings.topic_prefix, gemeente),
        payload=f"<signalering n='{n}'/>".encode(),
        headers=[(k, v.decode()) for k, v in headers],
        created_at=created,
        bericht_pk=None,
    )


async def store(runtime: Runtime, items: list[NewSignalering]) -> None:
    async with runtime.sessions.begin() as session:
        await add_signaleringen(session, items)


async def relay_all(runtime: Runtime) -> int:
    """Publish everything due through the real relay and broker."""
    relay = OutboxRelay(
        runtime.settings, runtime.sessions, KafkaPublisher(runtime.settings), runtime.clock
    )
    try:
        return await relay.drain()
    finally:
        await relay.stop()


@asynccontextmanager
async def built(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings)
    try:
        yield runtime
    finally:
        await runtime.close()


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode()
    return None


async def invoke_cli(args: list[str]) -> Result:
    """Run `koppelpunt ARGS`: the CLI runs its own event loop, so in a thread beside ours."""
    from koppelpunt.cli.main import app

    # Some commands configure logging onto CliRunner's streams, which close afterwards: put
    # the test session's logging set-up back.
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return await asyncio.to_thread(CliRunner().invoke, app, args)
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
