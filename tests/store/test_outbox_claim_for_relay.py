"""The claim reads everything the relay needs: Kafka headers once, and the verwerkingenlog's
`publiceren` fields, so log_published reads nothing again (the same lines as the re-read did)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.config import Settings
from koppelpunt.store import verwerkingenlog as vlog
from koppelpunt.store.outbox import add_signaleringen, claim_pending
from koppelpunt.store.tables import berichten, outbox, signaleringen, verwerkingenlog
from koppelpunt.store.verwerkingenlog import LogCipher

from .helpers import T0, add_test_bericht, signalering

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _mixed_outbox(session: AsyncSession) -> None:
    """Signaleringen of a message with a trace, of one without, and without a message."""
    traced = await add_test_bericht(session, "B-traced")
    await session.execute(berichten.update().where(berichten.c.id == traced).values(trace_id=TRACE))
    untraced = await add_test_bericht(session, "B-untraced")
    items = []
    for i in range(12):
        pk = (traced, untraced, None)[i % 3]
        base = signalering(f"s-{i:02d}", bericht_pk=pk, minutes=i)
        code = ("GM0363", "GM0599", "GM1680")[i % 4 % 3]
        items.append(
            replace(
                base,
                type=("AANMELDSTATUS", "PROGNOSE")[i % 2],
                gemeentecode=code,
                bsn=f"99999{i:04d}",
                topic=f"vva.signalering.{code.lower()}",
                headers=[*base.headers, ("ce_time", "2024-03-01T12:00:00.000Z"), ("ë", "ü€")],
            )
        )
    await add_signaleringen(session, items)
    await session.commit()


async def _reread(session: AsyncSession, ids: list[int]) -> list[dict[str, Any]]:
    """What log_published read per outbox id before the claim carried it (the old query)."""
    rows = await session.execute(
        select(
            outbox.c.id,
            signaleringen.c.signalering_id,
            signaleringen.c.type,
            signaleringen.c.gemeentecode,
            signaleringen.c.bsn,
            signaleringen.c.topic,
            berichten.c.trace_id,
            berichten.c.bericht_id,
        )
        .join(outbox, outbox.c.signalering_id == signaleringen.c.signalering_id)
        .outerjoin(berichten, berichten.c.id == signaleringen.c.bericht_pk)
        .where(outbox.c.id.in_(ids))
        .order_by(outbox.c.id)
    )
    return [dict(row._mapping) for row in rows]


class TestClaimForRelay:
    async def test_claim_carries_the_log_fields_of_the_old_reread(
        self, session: AsyncSession
    ) -> None:
        """type, gemeente, BSN, topic, trace and bericht id per item equal the old query's."""
        await _mixed_outbox(session)
        items = await claim_pending(session, limit=100, now=T0 + timedelta(hours=1))
        assert [i.signalering_id for i in items] == [f"s-{i:02d}" for i in range(12)]
        expected = await _reread(session, [i.id for i in items])
        assert [
            {
                "id": i.id,
                "signalering_id": i.signalering_id,
                "type": i.type,
                "gemeentecode": i.gemeentecode,
                "bsn": i.key,
                "topic": i.topic,
                "trace_id": i.trace_id,
                "bericht_id": i.bericht_id,
            }
            for i in items
        ] == expected
        assert {i.trace_id for i in items} == {TRACE, None}
        assert {i.bericht_id for i in items} == {"B-traced", "B-untraced", None}

    async def test_kafka_headers_are_the_stored_headers_utf8(self, session: AsyncSession) -> None:
        """kafka_headers is the stored (name, value) list, values UTF-8 encoded, in order."""
        await _mixed_outbox(session)
        (item, *_) = await claim_pending(session, limit=100, now=T0 + timedelta(hours=1))
        stored = [
            ("type", "AANMELDSTATUS"),
            ("signaleringId", "s-00"),
            ("ce_time", "2024-03-01T12:00:00.000Z"),
            ("ë", "ü€"),
        ]
        assert item.kafka_headers == tuple((n, v.encode("utf-8")) for n, v in stored)
        assert item.headers == stored

    async def test_log_published_writes_the_lines_the_reread_wrote(
        self, session: AsyncSession
    ) -> None:
        """One `publiceren` line per item, in claim order, with the fields the re-read gave."""
        await _mixed_outbox(session)
        settings = Settings()
        items = await claim_pending(session, limit=100, now=T0 + timedelta(hours=1))
        published = items[1:]  # e.g. the first one was refused by the broker
        expected = await _reread(session, [i.id for i in published])
        ended = T0 + timedelta(seconds=2)
        await vlog.log_published(session, settings, published, started=T0, ended=ended)
        await session.commit()
        rows = (await session.execute(select(verwerkingenlog).order_by(verwerkingenlog.c.id))).all()
        cipher = LogCipher.from_settings(settings)
        assert len(rows) == len(expected)
        for row, old in zip(rows, expected, strict=True):
            if old["trace_id"] is None:
                assert len(row.trace_id) == 32 and row.trace_id != TRACE  # a new trace
            else:
                assert row.trace_id == old["trace_id"]
            assert (row.name, row.status_code, row.verwerkingsactiviteit) == (
                vlog.OP_PUBLICEREN,
                "OK",
                vlog.ACTIVITY_SIGNALEREN,
            )
            assert (row.start_time, row.end_time) == (T0, ended)
            assert row.gemeentecode == old["gemeentecode"]
            assert cipher.decrypt(row.bsn_encrypted, row.key_id) == old["bsn"]
            assert row.bsn_index == cipher.blind_index(old["bsn"])
            assert row.attributes == {
                "signaleringRef": cipher.signalering_ref(old["signalering_id"]),
                "type": old["type"],
                "topic": old["topic"],
                **({"berichtId": old["bericht_id"]} if old["bericht_id"] else {}),
            }

    async def test_log_published_of_nothing_writes_nothing(self, session: AsyncSession) -> None:
        """No acknowledged item, no line."""
        await vlog.log_published(session, Settings(), [], started=T0, ended=T0)
        assert (await session.execute(select(verwerkingenlog))).first() is None
