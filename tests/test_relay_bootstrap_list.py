"""The service with a bootstrap list whose first address is down (a closed port on 127.0.0.1).

The whole app runs on that list: receipts, the in-process relay's create-before-publish and
its publishing reach the real broker listed second.
"""

from __future__ import annotations

import httpx
import pytest

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from tests.conftest import Running
from tests.kafka_fixtures import free_port
from tests.messages import BSN
from tests.test_end_to_end import post_both, records_on, register

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """conftest's settings, with a closed port listed before the test broker."""
    listed = f"127.0.0.1:{free_port()},{settings.kafka_bootstrap}"
    return settings.model_copy(update={"kafka_bootstrap": listed})


async def test_relay_publishes_with_the_first_bootstrap_down(
    client: httpx.AsyncClient, running: Running, settings: Settings
) -> None:
    """Every signalering arrives on its gemeente's topic, created by the relay."""
    assert settings.kafka_bootstrap.count(",") == 1
    await register(running, [(BSN[0], "0363", None), (BSN[1], "0599", None)])
    p, s = await post_both(client)
    assert (p.status_code, s.status_code) == (202, 202)
    await running.relay.drain()
    real = settings.kafka_bootstrap.split(",")[1]
    assert len(await records_on(real, topic_for(settings.topic_prefix, "GM0363"), 2)) == 2
    assert len(await records_on(real, topic_for(settings.topic_prefix, "GM0599"), 2)) == 2
