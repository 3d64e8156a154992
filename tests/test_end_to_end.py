"""End to end on the real broker: HTTP in → filters → one topic per gemeente → a real consumer."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from lxml import etree

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import topic_for
from koppelpunt.store.register import upsert_woonregister
from tests.conftest import Running, auth
from tests.kafka_fixtures import admin_kwargs, consume_all
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml

ROOT = Path(__file__).resolve().parents[1]
SIGNALERING_XSD = etree.XMLSchema(etree.parse(str(ROOT / "schemas" / "signalering.xsd")))
NS = {"s": "urn:vva:signalering:1"}
XML = {"Content-Type": "application/xml"}

Records = list[ConsumerRecord[bytes, bytes]]


async def records_on(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> Records:  # noqa: ASYNC109
    """Wait until `topic` exists and holds at least `expect` records; return all of them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await consume_all(bootstrap, topic, expect=expect, timeout=5)
        except LookupError:
            found = []
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


async def topics_with_prefix(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(**admin_kwargs(bootstrap))
    await admin.start()
    try:
        return {t for t in await admin.list_topics() if t.startswith(prefix + ".")}
    finally:
        await admin.close()


def parse(record: ConsumerRecord[bytes, bytes]) -> tuple[etree._Element, dict[str, str]]:
    """The value as XML (validated against the XSD) and the headers as text."""
    assert record.value is not None
    doc = etree.fromstring(record.value)
    SIGNALERING_XSD.assertValid(doc)
    return doc, {k: v.decode() for k, v in record.headers}


def text(doc: etree._Element, path: str) -> str:
    value = doc.findtext(path, namespaces=NS)
    assert value is not None, path
    return value


async def register(running: Running, rows: list[tuple[str, str, date | None]]) -> None:
    async with running.runtime.sessions.begin() as session:
        await upsert_woonregister(session, rows)


async def post_both(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
    prognose = prognose_xml(
        "e2e-prognose-1",
        [
            L(bsn=BSN[0]),  # → GM0363
            L(bsn=BSN[1], onderwijssoort="vmbo-bb"),  # → GM0599
            L(bsn=BSN[2]),  # RNI: no woongemeente
            L(bsn=BSN[3], hoogste_diploma="havo"),  # startkwalificatie
        ],
    )
    status = aanmeldstatus_xml(
        "e2e-status-1",
        [
            A(aanmelding_id="A-1", bsn=BSN[0], status="AANGEMELD", statusdatum="2027-03-01"),
            A(aanmelding_id="B-7", bsn=BSN[1], status="INGESCHREVEN", statusdatum="2027-08-20"),
            A(aanmelding_id="C-3", bsn=BSN[2], status="AANGEMELD"),  # RNI
        ],
    )
    p = await client.post(
        "/v1/prognoses", content=prognose, headers={**XML, **auth("koppelpunt-vo")}
    )
    s = await client.post(
        "/v1/aanmeldstatussen", content=status, headers={**XML, **auth("koppelpunt-mbo")}
    )
    return p, s


class TestEndToEnd:
    async def test_signaleringen_reach_exactly_their_own_gemeente(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Each forwarded record arrives once, XSD-valid, keyed by BSN, on its gemeente's topic."""
        await register(
            running, [(BSN[0], "0363", None), (BSN[1], "0599", None), (BSN[2], "1999", None)]
        )
        p, s = await post_both(client)
        assert p.status_code == 202 and p.json()["aantalSignaleringen"] == 2
        assert s.status_code == 202 and s.json()["aantalSignaleringen"] == 2

        bootstrap = settings.kafka_bootstrap
        amsterdam = await records_on(bootstrap, topic_for(settings.topic_prefix, "GM0363"), 2)
        rotterdam = await records_on(bootstrap, topic_for(settings.topic_prefix, "GM0599"), 2)
        assert len(amsterdam) == 2 and len(rotterdam) == 2

        for records, gemeente, bsn in (
            (amsterdam, "GM0363", BSN[0]),
            (rotterdam, "GM0599", BSN[1]),
        ):
            types = []
            for record in records:
                doc, headers = parse(record)
                assert record.key == bsn.encode()
                assert text(doc, "s:gemeentecode") == gemeente
                assert text(doc, "s:leerling/s:bsn") == bsn
                assert headers["ce_specversion"] == "1.0"
                assert headers["ce_id"] == text(doc, "s:signaleringId")
                assert headers["ce_type"] == "nl.vva.signalering." + text(doc, "s:type")
                assert headers["ce_source"]
                assert headers["ce_time"]
                assert headers["content-type"] == "application/xml"
                types.append(text(doc, "s:type"))
            assert types == ["PROGNOSE", "AANMELDSTATUS"]

        doc, _ = parse(amsterdam[0])
        assert text(doc, "s:prognose/s:school/s:brin") == "25LX"
        assert text(doc, "s:prognose/s:schooljaar") == "2026-2027"
        assert text(doc, "s:bron/s:berichtId") == "e2e-prognose-1"
        doc, _ = parse(rotterdam[1])
        assert text(doc, "s:aanmeldstatus/s:status") == "INGESCHREVEN"
        assert text(doc, "s:aanmeldstatus/s:aanmeldingId") == "B-7"
        assert text(doc, "s:aanmeldstatus/s:statusdatum") == "2027-08-20"

        # Nobody else got anything: the only topics under this test's prefix are these two.
        assert await topics_with_prefix(bootstrap, settings.topic_prefix) == {
            topic_for(settings.topic_prefix, "GM0363"),
            topic_for(settings.topic_prefix, "GM0599"),
        }

        # Resending both messages changes nothing on Kafka.
        p2, s2 = await post_both(client)
        assert (p2.status_code, s2.status_code) == (200, 200)
        assert p2.json() == p.json()
        await running.relay.drain()
        assert len(await consume_all(bootstrap, topic_for(settings.topic_prefix, "GM0363"))) == 2
        assert len(await consume_all(bootstrap, topic_for(settings.topic_prefix, "GM0599"))) == 2

    async def test_same_record_in_a_new_message_is_not_signalled_twice(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """A status re-sent under a new berichtId has the same signaleringId: stored once."""
        await register(running, [(BSN[0], "0363", None)])
        body = aanmeldstatus_xml("dup-1", [A(bsn=BSN[0])])
        first = await client.post(
            "/v1/aanmeldstatussen", content=body, headers={**XML, **auth("koppelpunt-mbo")}
        )
        again = await client.post(
            "/v1/aanmeldstatussen",
            content=body.replace(b"dup-1", b"dup-2"),
            headers={**XML, **auth("koppelpunt-mbo")},
        )
        assert first.json()["aantalSignaleringen"] == 1
        assert again.status_code == 202
        assert again.json()["aantalSignaleringen"] == 0
        topic = topic_for(settings.topic_prefix, "GM0363")
        assert len(await records_on(settings.kafka_bootstrap, topic, 1)) == 1

    async def test_nothing_is_lost_while_kafka_is_down(
        self,
        client: httpx.AsyncClient,
        running: Running,
        settings: Settings,
        stoppable_broker: Any,
    ) -> None:
        """Broker stopped: receipts still succeed; started again: the outbox drains, no loss."""
        await register(running, [(BSN[0], "0363", None)])
        topic = topic_for(settings.topic_prefix, "GM0363")
        first = await client.post(
            "/v1/aanmeldstatussen",
            content=aanmeldstatus_xml("down-0", [A(bsn=BSN[0], aanmelding_id="X-0")]),
            headers={**XML, **auth("koppelpunt-mbo")},
        )
        assert first.status_code == 202
        assert len(await records_on(settings.kafka_bootstrap, topic, 1)) == 1

        await asyncio.to_thread(stoppable_broker.stop)
        receipts = []
        for n in range(1, 4):
            r = await client.post(
                "/v1/aanmeldstatussen",
                content=aanmeldstatus_xml(f"down-{n}", [A(bsn=BSN[0], aanmelding_id=f"X-{n}")]),
                headers={**XML, **auth("koppelpunt-mbo")},
            )
            receipts.append(r.status_code)
        assert receipts == [202, 202, 202]
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["kafka"] is False

        await asyncio.to_thread(stoppable_broker.start, 120)
        records = await records_on(settings.kafka_bootstrap, topic, 4, timeout=60)
        ids = [parse(r)[1]["ce_id"] for r in records]
        assert len(set(ids)) == 4
        aanmeldingen = sorted(text(parse(r)[0], "s:aanmeldstatus/s:aanmeldingId") for r in records)
        assert aanmeldingen == ["X-0", "X-1", "X-2", "X-3"]
