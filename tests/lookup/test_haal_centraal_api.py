"""Through the HTTP API with KOPPELPUNT_BRP_LOOKUP=haal-centraal against the local BRP server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.lookup.haal_centraal import HaalCentraalLookup
from koppelpunt.store.berichten import find_bericht, list_beslissingen
from koppelpunt.store.tables import outbox, signaleringen
from tests.conftest import Running, auth
from tests.lookup.brp_server import API_KEY, FakeBrp, serve
from tests.messages import BSN, L, prognose_xml
from tests.test_end_to_end import records_on, topics_with_prefix

XML = {"Content-Type": "application/xml"}


@pytest.fixture
def brp() -> Iterator[FakeBrp]:
    yield from serve()


@pytest.fixture
def settings(settings: Settings, brp: FakeBrp) -> Settings:
    return settings.model_copy(
        update={
            "brp_lookup": "haal-centraal",
            "brp_base_url": brp.url,
            "brp_api_key": SecretStr(API_KEY),
            "brp_retries": 1,
            "brp_retry_backoff_seconds": 0.0,
            "brp_timeout_seconds": 2.0,
        }
    )


class TestThroughTheApi:
    async def test_runtime_uses_haal_centraal(self, running: Running) -> None:
        """KOPPELPUNT_BRP_LOOKUP=haal-centraal selects the Haal Centraal adapter."""
        assert isinstance(running.runtime.lookup, HaalCentraalLookup)

    async def test_brp_down_parks_and_publishes_nothing(
        self, client: httpx.AsyncClient, running: Running, settings: Settings, brp: FakeBrp
    ) -> None:
        """BRP answering 503: the receipt shows geparkeerd, no signalering, nothing on Kafka."""
        brp.down = 503
        brp.add(BSN[0], "0363")
        r = await client.post(
            "/v1/prognoses",
            content=prognose_xml("hc-down-1", [L(bsn=BSN[0])]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        assert r.status_code == 202
        assert r.json()["geparkeerd"] == 1
        assert r.json()["aantalSignaleringen"] == 0
        assert r.json()["gefilterd"]["geenWoongemeente"] == 0
        async with running.runtime.sessions() as session:
            stored = await find_bericht(session, "hc-down-1")
            assert stored is not None
            rows = await list_beslissingen(session, stored.pk)
            assert [row.uitkomst for row in rows] == ["geparkeerd"]
            assert await session.scalar(select(func.count()).select_from(outbox)) == 0
            assert await session.scalar(select(func.count()).select_from(signaleringen)) == 0
        assert await running.relay.drain() == 0
        assert await topics_with_prefix(settings.kafka_bootstrap, settings.topic_prefix) == set()

    async def test_brp_up_routes_to_its_answer(
        self, client: httpx.AsyncClient, settings: Settings, brp: FakeBrp
    ) -> None:
        """BRP answering: forwarded to the gemeente van inschrijving; RNI is geenWoongemeente."""
        brp.add(BSN[0], "0363", "Amsterdam")
        brp.add(BSN[1], "1999", "RNI")
        r = await client.post(
            "/v1/prognoses",
            content=prognose_xml("hc-up-1", [L(bsn=BSN[0]), L(bsn=BSN[1]), L(bsn=BSN[2])]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        assert r.status_code == 202
        body = r.json()
        assert body["aantalSignaleringen"] == 1
        assert body["gefilterd"]["geenWoongemeente"] == 2  # RNI and not found
        assert body["geparkeerd"] == 0
        topic = topic_for(settings.topic_prefix, "GM0363")
        found = await records_on(settings.kafka_bootstrap, topic, 1)
        assert [m.key for m in found] == [BSN[0].encode()]
