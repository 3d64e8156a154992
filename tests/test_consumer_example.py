"""examples/consumer.py end to end: HTTP in -> service -> Kafka -> the vendor's consumer.

The consumer runs as a separate process with nothing but the JSON config `koppelpunt access
grant` wrote, on the real broker with SASL and ACLs on.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from typer.testing import CliRunner

from koppelpunt.cli.main import app
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.kafka.publisher import KafkaPublisher, OutboundMessage, cloudevent_headers
from tests.conftest import Running
from tests.kafka_fixtures import admin_kwargs
from tests.test_end_to_end import BSN, post_both, records_on, register

ROOT = Path(__file__).resolve().parents[1]
CONSUMER = ROOT / "examples" / "consumer.py"

pytestmark = pytest.mark.kafka


def consumer_process(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CONSUMER), str(config), "--state", str(state), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_consumer(config: Path, state: Path, lines: list[str] | None = None) -> str:
    """The consumer's summary line; its per-record lines are appended to `lines`."""
    result = consumer_process(config, state)
    assert result.returncode == 0, result.stdout + result.stderr
    *records, summary = result.stdout.strip().splitlines()
    if lines is not None:
        lines.extend(records)
    return summary


def interrupt_consumer(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """Run the consumer without --once until it has joined its group, then send SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, str(CONSUMER), str(config), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def rows(state: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(state) as db:
        return db.execute(sql).fetchall()


async def committed_offset(settings: Settings, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(**admin_kwargs(settings.kafka_bootstrap))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return int(offsets[TopicPartition(topic, 0)].offset)


class TestExampleConsumer:
    async def test_reads_validates_deduplicates_and_commits(
        self,
        client: httpx.AsyncClient,
        running: Running,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        """Own gemeente only, each signalering once, invalid ones set aside, offsets committed."""
        await register(running, [(BSN[0], "0363", None), (BSN[1], "0599", None)])
        p, s = await post_both(client)
        assert (p.status_code, s.status_code) == (202, 202)
        topic = topic_for(settings.topic_prefix, "GM0363")
        published = await records_on(settings.kafka_bootstrap, topic, 2)
        assert len(published) == 2

        name = f"leerplicht-{uuid.uuid4().hex[:6]}"
        config = tmp_path / "verbinding.json"
        granted = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["access", "grant", name, "--gemeente", "GM0363", "--output", str(config)],
            env={
                "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert granted.exit_code == 0, granted.output
        state = tmp_path / "state.sqlite"

        lines: list[str] = []
        summary = await asyncio.to_thread(run_consumer, config, state, lines)
        assert summary == "handled 2, duplicates 0, refused 0"
        # One line per record: what became of it, its type, gemeente and id.
        ids = [dict(r.headers)["ce_id"].decode() for r in published]
        assert lines == [
            f"handled   PROGNOSE GM0363 {ids[0]}",
            f"handled   AANMELDSTATUS GM0363 {ids[1]}",
        ]
        handled = rows(state, 'SELECT type, gemeentecode FROM signalering ORDER BY "offset"')
        assert handled == [("PROGNOSE", "GM0363"), ("AANMELDSTATUS", "GM0363")]
        assert await committed_offset(settings, f"{name}.leerplicht", topic) == 2

        # A redelivered signalering (same ce_id) and a record that is not valid XML arrive.
        first = published[0]
        publisher = KafkaPublisher(settings, request_timeout=10)
        await publisher.start()
        try:
            results = await publisher.publish(
                [
                    OutboundMessage(topic, first.key or b"", first.value or b"", first.headers, 1),
                    OutboundMessage(
                        topic,
                        b"999990019",
                        b"<signalering>kapot",
                        cloudevent_headers(
                            ce_id="x",
                            ce_type="nl.vva.signalering.PROGNOSE",
                            ce_source="urn:test",
                            ce_time=running.runtime.clock(),
                        ),
                        2,
                    ),
                ]
            )
            assert all(r.ok for r in results), results
        finally:
            await publisher.stop()

        lines = []
        summary = await asyncio.to_thread(run_consumer, config, state, lines)
        assert summary == "handled 0, duplicates 1, refused 1"
        assert lines[0] == f"duplicate {ids[0]}"
        assert lines[1].startswith(f"refused   {topic}[0]@3: ")
        assert len(rows(state, "SELECT ce_id FROM signalering")) == 2
        assert rows(state, 'SELECT "offset" FROM geweigerd') == [(3,)]
        assert await committed_offset(settings, f"{name}.leerplicht", topic) == 4

        # Nothing new: a third run handles nothing (the committed offsets hold).
        summary = await asyncio.to_thread(run_consumer, config, state)
        assert summary == "handled 0, duplicates 0, refused 0"

        # Ctrl-C (SIGINT) while it waits for records: the summary, exit code 130, no traceback.
        interrupted = await asyncio.to_thread(interrupt_consumer, config, state)
        assert interrupted.returncode == 130, interrupted.stdout + interrupted.stderr
        assert interrupted.stdout.strip() == "handled 0, duplicates 0, refused 0"
        assert "Traceback" not in interrupted.stderr

        # After `access revoke` the consumer says so in one line and exits 1, no traceback.
        revoked = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["access", "revoke", name],
            env={
                "KOPPELPUNT_TOPIC_PREFIX": settings.topic_prefix,
                "KOPPELPUNT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "KOPPELPUNT_DATABASE_URL": settings.database_url,
            },
        )
        assert revoked.exit_code == 0, revoked.output
        result = await asyncio.to_thread(consumer_process, config, state)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        (error,) = result.stderr.strip().splitlines()
        assert error.startswith(f"consumer: Kafka refused or unreachable as {name}: ")
        assert "SaslAuthenticationFailed" in error  # the broker's own reason, not a symptom
        assert result.stdout.strip() == "handled 0, duplicates 0, refused 0"
