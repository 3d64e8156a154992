"""Shared fixtures: a real Kafka broker per session, a real database per test, the app.

The broker is started from the Maven Central jars (dev/localkafka) unless
KOPPELPUNT_KAFKA_BOOTSTRAP points at one; the database is SQLite unless
KOPPELPUNT_DATABASE_URL points at PostgreSQL. Each test gets its own topic prefix, so tests
never read each other's signaleringen.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from koppelpunt.api.app import create_app
from koppelpunt.config import Settings
from koppelpunt.kafka.relay import OutboxRelay
from koppelpunt.runtime import Runtime
from tests.db_fixtures import *  # noqa: F403
from tests.kafka_fixtures import *  # noqa: F403

# The suite runs on the public development log key, which the service refuses without the
# development switch: set for every Settings() a test builds, every CLI run and every
# `koppelpunt serve` subprocess (they inherit the environment). tests/api/test_dev_key.py
# removes it to see the refusal.
os.environ.setdefault("KOPPELPUNT_DEVELOPMENT_MODE", "true")

KEYS = {
    "koppelpunt-vo": ("vo", "test-vo-key"),
    "koppelpunt-mbo": ("mbo", "test-mbo-key"),
    "beheer": ("operator", "test-operator-key"),
    "ander-vo": ("vo", "test-ander-vo-key"),
}


def auth(sender: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[sender][1]}"}


@pytest.fixture
def senders_file(tmp_path: Path) -> Path:
    path = tmp_path / "senders.yaml"
    lines = ["senders:"]
    for name, (role, key) in KEYS.items():
        digest = hashlib.sha256(key.encode()).hexdigest()
        lines.append(f"  - {{name: {name}, role: {role}, key_sha256: {digest}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str, senders_file: Path) -> Settings:
    """Settings for one test: its own database and its own topic prefix on the shared broker."""
    return Settings(
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        senders_file=senders_file,
        # Under `vva.signalering.`: the only topics the service principal may create/write.
        topic_prefix=f"vva.signalering.t{uuid.uuid4().hex[:8]}",
        topic_partitions=1,
        relay_poll_seconds=0.2,
        relay_backoff_base_seconds=0.2,
        relay_backoff_max_seconds=2.0,
        # The public development log key is refused without it (tests/api/test_dev_key.py).
        development_mode=True,
    )


@dataclass
class Running:
    """A started app: `asgi` serves requests with the lifespan state, `state` is that state."""

    asgi: Any
    state: dict[str, Any]

    @property
    def runtime(self) -> Runtime:
        return cast(Runtime, self.state["runtime"])

    @property
    def relay(self) -> OutboxRelay:
        relay = self.state["relay"]
        assert relay is not None
        return cast(OutboxRelay, relay)


@pytest_asyncio.fixture(loop_scope="session")
async def running(settings: Settings) -> AsyncIterator[Running]:
    """The app with its lifespan run (runtime, publisher, in-process relay)."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30) as manager:
        yield Running(manager.app, manager._state)


@pytest_asyncio.fixture(loop_scope="session")
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=running.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://koppelpunt.test") as c:
        yield c
