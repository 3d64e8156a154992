"""A restarted local broker is usable when start() returns, even after a SCRAM deletion.

The flake this guards against: Kafka 4.1.1 came back from a restart without any SCRAM
credential in the broker's cache once a credential had been deleted (which `koppelpunt access
revoke` and its tests do), so every login failed with SaslAuthenticationFailed while the
broker answered ApiVersions, the old readiness check. LocalBroker.start() now waits for real
SCRAM logins and metadata, and writes the admin's and service's credentials again when the
broker refuses them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from koppelpunt.config import Settings
from koppelpunt.kafka import access
from koppelpunt.kafka.publisher import KafkaPublisher
from tests.kafka.test_publisher import message
from tests.kafka_fixtures import consume_all

pytestmark = pytest.mark.kafka


async def test_restart_after_a_deleted_credential_is_usable_at_once(
    stoppable_broker: Any, kafka_settings: Settings, unique_topic: str
) -> None:
    """A SCRAM user created and deleted, the broker restarted: when start() returns, the
    admin and the service log in, and a publisher delivers without waiting."""
    name = f"kp-gone-{uuid.uuid4().hex[:8]}"
    async with access.AccessAdmin(kafka_settings) as admin:
        await admin.set_password(name, uuid.uuid4().hex)
        assert await admin.delete_user(name)

    await asyncio.to_thread(stoppable_broker.stop)
    await asyncio.to_thread(stoppable_broker.start, 120)

    assert await asyncio.to_thread(stoppable_broker.not_usable_because) is None
    publisher = KafkaPublisher(kafka_settings, request_timeout=5.0)
    try:
        await publisher.start()  # no retry loop: usable means usable now
        results = await publisher.publish([message(unique_topic, 1)])
        assert [(r.ref, r.ok) for r in results] == [(1, True)]
    finally:
        await publisher.stop()
    records = await consume_all(kafka_settings.kafka_bootstrap, unique_topic, expect=1)
    assert [r.value for r in records] == [b"<s n='1'/>"]
