"""The verwerkingenlog keeps no value from which a BSN can be computed without the key.

A signalering id is an unkeyed UUIDv5 over the BSN and public facts: stored beside the
encrypted BSN it gave the BSN away to a search over the BSN space. The log keeps a keyed
reference instead; inzage still tells which signalering a line is about, also after a key
rotation, and after the signalering's purge still shows type, topic and time.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import delete, select

from koppelpunt.app.failing import retry_failing
from koppelpunt.app.inzage import run_inzage, to_json, to_text
from koppelpunt.app.replay import ReplayRequest, prepare_replay, run_replay
from koppelpunt.config import Settings
from koppelpunt.kafka.admin import replay_topic_for
from koppelpunt.kafka.publisher import KafkaPublisher
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import outbox, signaleringen, verwerkingenlog
from koppelpunt.store.verwerkingenlog import LogCipher
from tests.beheer.helpers import all_published
from tests.conftest import Running, auth
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml

XML = {"Content-Type": "application/xml"}
# A UUIDv5 as ids are written (canonical form); the bare hex form of the ids is checked apart.
UUID5 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I)


def _strings(value: Any) -> Iterator[str]:
    """Every text in a column value, JSON included (keys too), and bytes as hex and latin-1."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.hex()
        yield value.decode("latin-1")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif value is not None:
        yield str(value)


async def _disclose(client: httpx.AsyncClient, running: Running) -> list[str]:
    """A prognose and an aanmeldstatus for BSN[0] (GM0363) published, an outbox retry and a
    replay of them: every kind of line that names a signalering. Returns their ids."""
    runtime = running.runtime
    async with runtime.sessions.begin() as s:
        await upsert_woonregister(s, [(BSN[0], "0363", None)])
    p = await client.post(
        "/v1/prognoses",
        content=prognose_xml("ref-1", [L(bsn=BSN[0])]),
        headers={**XML, **auth("koppelpunt-vo")},
    )
    a = await client.post(
        "/v1/aanmeldstatussen",
        content=aanmeldstatus_xml("ref-2", [A(bsn=BSN[0])]),
        headers={**XML, **auth("koppelpunt-mbo")},
    )
    assert (p.status_code, a.status_code) == (202, 202)
    await all_published(running)
    async with runtime.sessions() as s:
        ids = list(await s.scalars(select(signaleringen.c.signalering_id)))
    assert len(ids) == 2
    await retry_failing(runtime, ids, requested_by="t")
    replay_id = await prepare_replay(
        runtime,
        ReplayRequest(
            gemeente="GM0363", to_topic=replay_topic_for(runtime.settings.topic_prefix, "GM0363")
        ),
    )
    publisher = KafkaPublisher(runtime.settings)
    await publisher.start()
    try:
        assert (await run_replay(runtime, replay_id, publisher)).status == "done"
    finally:
        await publisher.stop()
    return ids


class TestNoIdInTheLog:
    async def test_no_stored_value_is_a_signalering_id_or_any_uuidv5(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Across every column of every line (receive, publish, replay, outbox retry):
        no signalering id, no UUIDv5 at all, no BSN; the references are keyed HMACs."""
        ids = await _disclose(client, running)
        async with running.runtime.sessions() as s:
            rows = (await s.execute(select(verwerkingenlog))).all()
        names = [row.name for row in rows]
        assert names.count("publiceren") == 4 and "beheer.outbox_retry" in names
        texts = [t for row in rows for t in _strings(tuple(row))]
        for sid in ids:
            bare = sid.replace("-", "")
            assert not [t for t in texts if sid in t or bare in t.lower()], sid
        assert not [t for t in texts if UUID5.search(t)]
        assert not [t for t in texts if BSN[0] in t]
        cipher = LogCipher.from_settings(running.runtime.settings)
        refs = {row.attributes.get("signaleringRef") for row in rows} - {None}
        assert refs == {cipher.signalering_ref(sid) for sid in ids}
        (retry,) = [row for row in rows if row.name == "beheer.outbox_retry"]
        assert sorted(retry.attributes["signaleringRefs"]) == sorted(refs)


class TestInzageStillNamesTheSignalering:
    async def test_after_a_key_rotation_old_lines_are_found_and_resolved(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Lines written under the old key: with the new key and the old one listed,
        inzage finds them and names their signalering; nothing shows as purged."""
        ids = await _disclose(client, running)
        rotated = settings.model_copy(
            update={
                "log_encryption_key": SecretStr(base64.b64encode(os.urandom(32)).decode()),
                "log_encryption_old_keys": [settings.log_encryption_key],
            }
        )
        body = to_json(await run_inzage(running.runtime.sessions, rotated, BSN[0], "t"))
        published = [v for v in body["verwerkingen"] if v["naam"] == "publiceren"]
        assert len(published) == 4
        assert sorted(v["signaleringId"] for v in published) == sorted(ids * 2)
        assert sorted(v["signaleringId"] for v in body["verstrekkingen"]) == sorted(ids * 2)
        assert [v["replayId"] is None for v in body["verstrekkingen"]].count(True) == 2

    async def test_after_the_purge_type_topic_and_time_remain(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Signaleringen purged (bewaartermijn), the log kept: every disclosure is still
        listed with gemeente, type, topic and time; which signalering is no longer known."""
        await _disclose(client, running)
        async with running.runtime.sessions.begin() as s:
            await s.execute(delete(outbox))
            await s.execute(delete(signaleringen))
        inzage = await run_inzage(running.runtime.sessions, running.runtime.settings, BSN[0], "t")
        body = to_json(inzage)
        assert body["signaleringen"] == []
        disclosures = body["verstrekkingen"]
        assert len(disclosures) == 4
        assert {(v["gemeentecode"], v["signaleringId"]) for v in disclosures} == {("GM0363", None)}
        assert sorted(v["type"] for v in disclosures) == sorted(["PROGNOSE", "AANMELDSTATUS"] * 2)
        assert all(v["topic"] and v["verstrektOp"] for v in disclosures)
        assert "signalering verwijderd (bewaartermijn)" in to_text(inzage)
