"""The verwerkingenlog: encrypted BSN and blind index, append-only, hooks in receive and relay."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.store import verwerkingenlog as vlog
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import berichten, verwerkingenlog
from koppelpunt.store.verwerkingenlog import LogCipher, LogLine
from tests.beheer.helpers import all_published
from tests.conftest import Running, auth
from tests.messages import BSN, L, prognose_xml

XML = {"Content-Type": "application/xml"}
T0 = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)


def key() -> bytes:
    return os.urandom(32)


class TestLogCipher:
    def test_round_trip_and_random_nonce(self) -> None:
        """A BSN decrypts back; two encryptions of it differ (fresh nonce each time)."""
        cipher = LogCipher(key())
        a, b = cipher.encrypt(BSN[0]), cipher.encrypt(BSN[0])
        assert a != b
        assert BSN[0].encode() not in a
        assert cipher.decrypt(a, cipher.key_id) == BSN[0]

    def test_blind_index_is_keyed(self) -> None:
        """The same BSN has the same index under one key and a different one under another."""
        k = key()
        assert LogCipher(k).blind_index(BSN[0]) == LogCipher(k).blind_index(BSN[0])
        assert LogCipher(k).blind_index(BSN[0]) != LogCipher(key()).blind_index(BSN[0])
        assert LogCipher(k).blind_index(BSN[0]) != LogCipher(k).blind_index(BSN[1])

    def test_old_key_still_decrypts_after_rotation(self) -> None:
        """After a rotation the old key, listed as old, decrypts and finds old lines."""
        old, new = key(), key()
        blob = LogCipher(old).encrypt(BSN[0])
        rotated = LogCipher(new, [old])
        assert rotated.decrypt(blob, LogCipher(old).key_id) == BSN[0]
        assert LogCipher(old).blind_index(BSN[0]) in rotated.blind_indexes(BSN[0])
        with pytest.raises(ConfigurationError):
            LogCipher(new).decrypt(blob, LogCipher(old).key_id)

    def test_bad_key_setting_is_refused(self) -> None:
        """A key that is not base64 of 32 bytes stops the service with a clear message."""
        with pytest.raises(ConfigurationError, match="32 bytes"):
            LogCipher.from_settings(
                Settings(log_encryption_key=base64.b64encode(b"short").decode())  # type: ignore[arg-type]
            )


def line(bsn: str | None, end: datetime, name: str = vlog.OP_BESLISSEN) -> LogLine:
    return LogLine(
        trace_id=vlog.new_trace_id(),
        name=name,
        start_time=end,
        end_time=end,
        verwerkingsactiviteit=vlog.ACTIVITY_SIGNALEREN,
        bsn=bsn,
    )


class TestRepository:
    async def test_bsn_is_stored_encrypted_and_found_by_index(self, session: AsyncSession) -> None:
        """No column holds the BSN in clear; find_by_bsn returns exactly that person's lines."""
        cipher = LogCipher(key())
        await vlog.append(session, cipher, [line(BSN[0], T0), line(BSN[1], T0), line(BSN[0], T0)])
        await session.commit()
        rows = (await session.execute(select(verwerkingenlog))).all()
        assert len(rows) == 3
        for row in rows:
            assert BSN[0] not in repr(tuple(row)) and BSN[1] not in repr(tuple(row))
            assert cipher.decrypt(row.bsn_encrypted, row.key_id) in (BSN[0], BSN[1])
        found = await vlog.find_by_bsn(session, cipher, BSN[0])
        assert len(found) == 2
        assert await vlog.find_by_bsn(session, cipher, BSN[2]) == []

    async def test_purge_deletes_only_lines_past_the_cutoff(self, session: AsyncSession) -> None:
        """Retention, in batches: old lines go, recent ones stay."""
        cipher = LogCipher(key())
        old = [line(BSN[0], T0 - timedelta(days=400 + i)) for i in range(5)]
        await vlog.append(session, cipher, [*old, line(BSN[0], T0)])
        await session.commit()
        deleted = []
        while n := await vlog.purge_before(session, T0 - timedelta(days=365), batch_size=2):
            deleted.append(n)
            await session.commit()
        assert deleted == [2, 2, 1]
        assert [x.end_time for x in await vlog.find_by_bsn(session, cipher, BSN[0])] == [T0]

    async def test_operator_action_records_who(
        self, session: AsyncSession, settings: Settings
    ) -> None:
        """log_operator_action keeps actor, action and details; without a BSN, no key is used."""
        trace = await vlog.log_operator_action(
            session, "beheer", "replay", {"gemeente": "GM0363", "aantal": 12}
        )
        await session.commit()
        [stored] = await vlog.list_lines(session, name_prefix="beheer.")
        assert stored.name == "beheer.replay" and stored.actor == "beheer"
        assert stored.trace_id == trace and len(trace) == 32
        assert stored.verwerkingsactiviteit == vlog.ACTIVITY_BEHEER
        assert stored.attributes == {"gemeente": "GM0363", "aantal": 12}
        with pytest.raises(ValueError, match="settings"):
            await vlog.log_operator_action(session, "beheer", "inzage", {}, bsn=BSN[0])


class TestHooks:
    async def test_every_step_per_person_is_logged(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Receive, lookup and decision per person in the sender's trace; then publication."""
        async with running.runtime.sessions.begin() as s:
            await upsert_woonregister(s, [(BSN[0], "0363", None), (BSN[1], "1999", None)])
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        body = prognose_xml(
            "vlog-1", [L(bsn=BSN[0]), L(bsn=BSN[1]), L(bsn=BSN[2], hoogste_diploma="havo")]
        )
        r = await client.post(
            "/v1/prognoses",
            content=body,
            headers={
                **XML,
                **auth("koppelpunt-vo"),
                "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
            },
        )
        assert r.status_code == 202 and r.json()["aantalSignaleringen"] == 1
        await all_published(running)
        cipher = LogCipher.from_settings(settings)
        async with running.runtime.sessions() as s:
            amsterdam = await vlog.find_by_bsn(s, cipher, BSN[0])
            abroad = await vlog.find_by_bsn(s, cipher, BSN[1])
            havo = await vlog.find_by_bsn(s, cipher, BSN[2])
        assert [x.name for x in amsterdam] == [
            "ontvangen",
            "woongemeente_opvragen",
            "beslissen",
            "publiceren",
        ]
        assert {x.trace_id for x in amsterdam} == {trace}
        received = amsterdam[0]
        assert received.actor == "koppelpunt-vo"
        assert all(x.parent_operation_id == received.operation_id for x in amsterdam[1:3])
        assert amsterdam[2].attributes["uitkomst"] == "doorgestuurd"
        assert amsterdam[2].gemeentecode == "GM0363"
        published = amsterdam[3]
        assert published.gemeentecode == "GM0363" and published.status_code == "OK"
        assert published.attributes["topic"].endswith(".gm0363")
        assert published.start_time <= published.end_time
        # Found but abroad (RNI): looked up, filtered, never published.
        assert [x.name for x in abroad] == ["ontvangen", "woongemeente_opvragen", "beslissen"]
        assert abroad[2].attributes == {
            "berichtId": "vlog-1",
            "record": 1,
            "uitkomst": "gefilterd",
            "reden": "geenWoongemeente",
            # The request's FSC transaction id (issue 24), as the response returned it.
            "transactionId": r.headers["fsc-transaction-id"],
        }
        # Filtered before any lookup: no lookup line.
        assert [x.name for x in havo] == ["ontvangen", "beslissen"]
        assert havo[1].attributes["reden"] == "startkwalificatie"

    async def test_a_message_without_traceparent_gets_a_trace_id(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """Without traceparent a trace id is generated, stored with the bericht and its lines."""
        r = await client.post(
            "/v1/prognoses",
            content=prognose_xml("vlog-2", [L(bsn=BSN[4])]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        assert r.status_code == 202
        async with running.runtime.sessions() as s:
            stored_trace = await s.scalar(
                select(berichten.c.trace_id).where(berichten.c.bericht_id == "vlog-2")
            )
            lines = await vlog.find_by_bsn(s, LogCipher.from_settings(settings), BSN[4])
        assert stored_trace is not None and len(stored_trace) == 32
        assert lines and {x.trace_id for x in lines} == {stored_trace}
