"""A broker that refuses the service's login is an outage, not a failure of the signalering.

After a broker restart the service may meet `SaslAuthenticationFailed` for a while (a broker
that is not fully loaded yet, credentials being rotated). The service must then behave as when
the broker is down: receipts still succeed, /readyz says 503, the outbox rows keep their
attempts, and once the login works again everything is delivered without a restart.

On the real broker, without stopping it: each test uses its own SCRAM principal with the
service's ACLs, whose credential is absent (or wrong) at first and set by the admin later.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from koppelpunt.config import Settings
from koppelpunt.errors import ServiceUnavailableError
from koppelpunt.kafka import access
from koppelpunt.kafka.admin import topic_for
from koppelpunt.kafka.publisher import KafkaPublisher
from koppelpunt.store.tables import outbox as outbox_table
from tests.conftest import Running, auth
from tests.kafka.test_publisher import message
from tests.messages import BSN, A, aanmeldstatus_xml
from tests.test_end_to_end import XML, records_on, register

pytestmark = pytest.mark.kafka


@dataclass
class Principal:
    """A SCRAM user with the service's ACLs; `enable()` creates its credential."""

    name: str
    password: str
    admin_settings: Settings

    async def enable(self) -> None:
        async with access.AccessAdmin(self.admin_settings) as admin:
            await admin.set_password(self.name, self.password)

    def settings_for(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"kafka_username": self.name, "kafka_password": self.password}
        )


@pytest.fixture
async def principal(kafka_settings: Settings) -> AsyncIterator[Principal]:
    """A principal that may write `vva.signalering.*` but cannot log in yet."""
    name = f"kp-auth-{uuid.uuid4().hex[:10]}"
    bindings = [
        access.AclBinding(
            access.RESOURCE_TOPIC, "vva.signalering.", access.PATTERN_PREFIXED, name, op
        )
        for op in (access.OP_WRITE, access.OP_DESCRIBE, access.OP_CREATE)
    ]
    async with access.AccessAdmin(kafka_settings) as admin:
        await admin.create_acls(bindings)
    yield Principal(name, uuid.uuid4().hex, kafka_settings)
    async with access.AccessAdmin(kafka_settings) as admin:
        await admin.delete_user(name)
        await admin.delete_acls(
            [
                access.AclFilter(
                    access.RESOURCE_TOPIC, "vva.signalering.", access.PATTERN_PREFIXED, name
                )
            ]
        )


async def wait_for_ping(publisher: KafkaPublisher, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not await publisher.ping(timeout=3):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.3)
    return True


class TestPublisher:
    async def test_refused_login_is_unavailable_then_recovers(
        self, principal: Principal, kafka_settings: Settings, unique_topic: str
    ) -> None:
        """Login refused: start() is ServiceUnavailable, publish() fails every message in
        bounded time, ping is False. Credential set: the same publisher delivers."""
        publisher = KafkaPublisher(principal.settings_for(kafka_settings), request_timeout=3.0)
        try:
            with pytest.raises(ServiceUnavailableError, match="SaslAuthenticationFailed"):
                await publisher.start()
            started = time.monotonic()
            results = await publisher.publish([message(unique_topic, n) for n in (1, 2)])
            assert [(r.ref, r.ok) for r in results] == [(1, False), (2, False)]
            assert all("authentication" in (r.error or "").lower() for r in results)
            assert time.monotonic() - started < 10
            assert not await publisher.ping(timeout=3)

            await principal.enable()
            # The credential reaches the broker's cache through the metadata log: moments.
            assert await wait_for_ping(publisher, 30)
            results = await publisher.publish([message(unique_topic, n) for n in (1, 2)])
            assert [(r.ref, r.ok) for r in results] == [(1, True), (2, True)]
        finally:
            await publisher.stop()


class TestService:
    @pytest.fixture
    def settings(self, settings: Settings, principal: Principal) -> Settings:
        """The app of this test logs in as the principal that cannot log in yet."""
        return principal.settings_for(settings)

    async def test_receipts_succeed_and_outbox_drains_after_login_works(
        self,
        client: httpx.AsyncClient,
        running: Running,
        settings: Settings,
        principal: Principal,
    ) -> None:
        """Login refused: 202 receipts, /readyz 503, rows untouched (attempts 0). Login
        accepted again: the running relay delivers them on its own, /readyz 200."""
        await register(running, [(BSN[0], "0363", None)])
        topic = topic_for(settings.topic_prefix, "GM0363")
        receipts = []
        for n in range(3):
            r = await client.post(
                "/v1/aanmeldstatussen",
                content=aanmeldstatus_xml(f"auth-{n}", [A(bsn=BSN[0], aanmelding_id=f"Y-{n}")]),
                headers={**XML, **auth("koppelpunt-mbo")},
            )
            receipts.append(r.status_code)
        assert receipts == [202, 202, 202]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["kafka"] is False
        assert ready.headers["Retry-After"]
        # Let the relay try (and fail) at least once, then look at the rows.
        await running.relay.drain()
        assert running.relay.last_error is not None
        assert "authentication" in running.relay.last_error.lower()
        async with running.runtime.sessions() as session:
            rows = (await session.execute(select(outbox_table.c.attempts))).scalars().all()
        assert len(rows) == 3
        assert set(rows) == {0}  # an outage is not the signalering's fault

        await principal.enable()
        records = await records_on(settings.kafka_bootstrap, topic, 3, timeout=60)
        assert len(records) == 3
        deadline = time.monotonic() + 30
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "readyz stayed 503 after the login works"
            await asyncio.sleep(0.3)
