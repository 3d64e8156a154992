"""Group commit: small messages arriving together share one transaction, and it changes nothing.

The reference is the same messages received one after the other (each its own transaction).
Random scenarios mix prognoses and aanmeldstatussen for a few pupils (moves between gemeenten,
statuses in and out of the flow, GEEN_PLAATSING), identical resends and conflicting berichtIds;
received concurrently (one group) they must give the same answers and leave the same rows as
received one by one: berichten, beslissingen, afwijzingen, pupil state (with the message each
row came from), signaleringen with their outbox order, and the verwerkingenlog.
On the real database (SQLite, or PostgreSQL with KOPPELPUNT_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, event, select

from koppelpunt.app.receive import receive
from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError
from koppelpunt.model import Soort
from koppelpunt.runtime import Runtime
from koppelpunt.store import verwerkingenlog as vlog
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import (
    aanmelding_statussen,
    aanmeldingen,
    afwijzingen,
    berichten,
    beslissingen,
    leerling_gemeenten,
    leerling_prognoses,
    outbox,
    signaleringen,
    verwerkingenlog,
    woonregister,
)
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml

NOW = datetime(2027, 6, 1, 10, 0, tzinfo=UTC)
PUPILS = BSN[:4]
STATUSES = [
    "AANGEMELD",
    "ONDERWIJSOVEREENKOMST_AANGEBODEN",
    "GEEN_INSCHRIJVING",
    "INGETROKKEN",
    "INGESCHREVEN",
]
DATES = ["2027-02-01", "2027-03-01", "2027-03-20", "2027-04-15", "2027-05-01"]


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(settings)
    rt.clock = lambda: NOW
    try:
        yield rt
    finally:
        await rt.close()


Message = tuple[bytes, Soort, str]


def scenario(seed: int) -> list[Message]:
    """Up to 14 small messages; some resend or reuse an earlier berichtId."""
    rng = random.Random(seed)
    messages: list[Message] = []
    for n in range(rng.randint(4, 14)):
        roll = rng.random()
        if messages and roll < 0.1:
            messages.append(rng.choice(messages))  # identical resend
            continue
        if messages and roll < 0.15:
            body, _, sender = rng.choice(messages)
            reused = body.split(b"<berichtId>")[1].split(b"</berichtId>")[0].decode()
            messages.append((prognose_xml(reused, [L(bsn=PUPILS[0])]), Soort.PROGNOSE, sender))
            continue
        if roll < 0.35:
            pupils = rng.sample(PUPILS, rng.randint(1, 3))
            body = prognose_xml(
                f"p-{seed}-{n}",
                [L(bsn=b, geboortedatum=rng.choice(["2010-05-13", "2000-01-01"])) for b in pupils],
                schooljaar=rng.choice(["2026-2027", "2027-2028"]),
                verzonden=f"2027-0{rng.randint(1, 5)}-15T10:00:00+01:00",
            )
            messages.append((body, Soort.PROGNOSE, "koppelpunt-vo"))
            continue
        records = [
            A(
                aanmelding_id=rng.choice(["A-1", "A-2"]),
                bsn=rng.choice([*PUPILS, "999990008"]),  # the last fails the elfproef
                status=rng.choice(STATUSES),
                statusdatum=rng.choice(DATES),
            )
            for _ in range(rng.randint(1, 3))
        ]
        messages.append((aanmeldstatus_xml(f"a-{seed}-{n}", records), Soort.AANMELDSTATUS, "mbo"))
    return [(b, s, "koppelpunt-mbo" if x == "mbo" else x) for b, s, x in messages]


async def reset(runtime: Runtime) -> None:
    async with runtime.sessions.begin() as session:
        for table in (
            verwerkingenlog,
            outbox,
            signaleringen,
            aanmelding_statussen,
            aanmeldingen,
            leerling_prognoses,
            leerling_gemeenten,
            beslissingen,
            afwijzingen,
            berichten,
            woonregister,
        ):
            await session.execute(delete(table))
        await upsert_woonregister(
            session,
            [
                (PUPILS[0], "0363", None),
                (PUPILS[0], "0599", date(2027, 3, 15)),  # moves: a new gemeente is told
                (PUPILS[1], "0599", None),
                (PUPILS[2], "1999", None),  # RNI: no woongemeente
            ],
        )


async def answer(runtime: Runtime, message: Message) -> tuple[Any, ...]:
    body, soort, sender = message
    try:
        received = await receive(runtime, body, soort, sender)
    except KoppelpuntError as exc:
        return (exc.status, exc.detail)
    return (received.status_code, received.receipt)


async def dump(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the messages wrote, without generated ids, timestamps or random trace ids;
    a link to a message is its berichtId."""
    cipher = vlog.LogCipher.from_settings(runtime.settings)
    async with runtime.sessions() as session:
        ids = dict((await session.execute(select(berichten.c.id, berichten.c.bericht_id))).all())

        async def rows(query: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in (await session.execute(query)).all()]

        b, s = berichten.c, signaleringen.c
        out = {
            "berichten": await rows(
                select(b.bericht_id, b.soort, b.sender, b.sha256, b.receipt).order_by(b.id)
            ),
            "beslissingen": [
                (ids[r[0]], *r[1:])
                for r in await rows(
                    select(
                        beslissingen.c.bericht_pk,
                        beslissingen.c.record_index,
                        beslissingen.c.uitkomst,
                        beslissingen.c.reden,
                        beslissingen.c.details,
                        beslissingen.c.gemeentecode,
                        beslissingen.c.bsn,
                    ).order_by(beslissingen.c.id)
                )
            ],
            "afwijzingen": await rows(
                select(
                    afwijzingen.c.bericht_id, afwijzingen.c.status_code, afwijzingen.c.reasons
                ).order_by(afwijzingen.c.id)
            ),
            "prognoses": [
                (*r[:-1], ids.get(r[-1]))
                for r in await rows(
                    select(
                        *[
                            c
                            for c in leerling_prognoses.c
                            if c.name not in ("bericht_pk", "received_at", "updated_at")
                        ],
                        leerling_prognoses.c.bericht_pk,
                    ).order_by(leerling_prognoses.c.bsn, leerling_prognoses.c.schooljaar)
                )
            ],
            "aanmeldingen": await rows(
                select(
                    *[c for c in aanmeldingen.c if c.name not in ("updated_at", "received_at")]
                ).order_by(aanmeldingen.c.instelling_brin, aanmeldingen.c.aanmelding_id)
            ),
            "statussen": [
                (*r[:-1], ids.get(r[-1]))
                for r in await rows(
                    select(
                        aanmelding_statussen.c.instelling_brin,
                        aanmelding_statussen.c.aanmelding_id,
                        aanmelding_statussen.c.status,
                        aanmelding_statussen.c.statusdatum,
                        aanmelding_statussen.c.buiten_flow,
                        aanmelding_statussen.c.bericht_pk,
                    ).order_by(aanmelding_statussen.c.id)
                )
            ],
            "leerling_gemeenten": await rows(
                select(
                    leerling_gemeenten.c.bsn,
                    leerling_gemeenten.c.gemeentecode,
                    leerling_gemeenten.c.peildatum,
                ).order_by(leerling_gemeenten.c.bsn)
            ),
            "signaleringen": [
                (*r[:-1], ids.get(r[-1]))
                for r in await rows(
                    select(
                        s.signalering_id,
                        s.type,
                        s.gemeentecode,
                        s.bsn,
                        s.topic,
                        s.payload,
                        s.headers,
                        s.bericht_pk,
                    )
                    .join(outbox, outbox.c.signalering_id == s.signalering_id)
                    .order_by(outbox.c.id)
                )
            ],
        }
        lines = await rows(
            select(
                verwerkingenlog.c.name,
                verwerkingenlog.c.status_code,
                verwerkingenlog.c.verwerkingsactiviteit,
                verwerkingenlog.c.actor,
                verwerkingenlog.c.gemeentecode,
                verwerkingenlog.c.attributes,
                verwerkingenlog.c.bsn_encrypted,
                verwerkingenlog.c.key_id,
            ).order_by(verwerkingenlog.c.id)
        )
    out["verwerkingenlog"] = [
        (*r[:6], cipher.decrypt(r[6], r[7]) if r[6] is not None else None) for r in lines
    ]
    return out


async def run_both(
    runtime: Runtime,
    messages: list[Message],
    concurrently: Callable[[list[Message]], Awaitable[list[tuple[Any, ...]]]],
) -> tuple[Any, Any]:
    await reset(runtime)
    one_by_one = [await answer(runtime, m) for m in messages]
    expected = (one_by_one, await dump(runtime))
    await reset(runtime)
    together = await concurrently(messages)
    return expected, (together, await dump(runtime))


async def gathered_counting_commits(
    runtime: Runtime, bodies: list[bytes]
) -> tuple[list[tuple[Any, ...]], int]:
    """Receive aanmeldstatus `bodies` concurrently; their answers and the commits it took."""
    commits = 0

    def on_commit(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(runtime.engine.sync_engine, "commit", on_commit)
    try:
        answers = await asyncio.gather(
            *(answer(runtime, (b, Soort.AANMELDSTATUS, "koppelpunt-mbo")) for b in bodies)
        )
    finally:
        event.remove(runtime.engine.sync_engine, "commit", on_commit)
    return list(answers), commits


class TestSameAsOneByOne:
    @pytest.mark.parametrize("seeds", [range(0, 8), range(8, 16)])
    async def test_random_scenarios(self, runtime: Runtime, seeds: range) -> None:
        async def gathered(messages: list[Message]) -> list[tuple[Any, ...]]:
            return list(await asyncio.gather(*(answer(runtime, m) for m in messages)))

        grouped = 0
        for seed in seeds:
            messages = scenario(seed)
            expected, actual = await run_both(runtime, messages, gathered)
            assert actual[0] == expected[0], f"answers differ (seed {seed})"
            for table, rows in expected[1].items():
                assert actual[1][table] == rows, f"{table} differs (seed {seed})"
            grouped += len(messages)
        assert grouped > 0

    async def test_a_group_is_one_transaction(self, runtime: Runtime) -> None:
        """Messages received together are stored by one commit, in arrival order."""
        await reset(runtime)
        # Ten pupils and aanmeldingen: a group takes messages about different ones only.
        bodies = [
            aanmeldstatus_xml(f"burst-{n}", [A(aanmelding_id=f"B-{n}", bsn=BSN[n])])
            for n in range(10)
        ]
        answers, commits = await gathered_counting_commits(runtime, bodies)
        assert [a[0] for a in answers] == [202] * 10
        # All ten were queued before the worker ran: one transaction (asyncio runs the gathered
        # tasks in order before the worker wakes). At most two if the first were taken alone.
        assert commits <= 2
        # The metric shows how many messages each commit carried.
        registry = runtime.metrics.registry
        assert registry.get_sample_value("koppelpunt_group_commit_messages_sum") == 10
        assert registry.get_sample_value("koppelpunt_group_commit_messages_count") == commits
        async with runtime.sessions() as session:
            stored = [
                r.bericht_id
                for r in await session.execute(select(berichten.c.bericht_id).order_by("id"))
            ]
        assert stored == [f"burst-{n}" for n in range(10)]

    async def test_one_pupil_at_a_time(self, runtime: Runtime) -> None:
        """Messages about one pupil received together are not grouped: each one is derived on
        the state the one before it stored (here: a move to another gemeente is signalled)."""
        await reset(runtime)
        bodies = [
            aanmeldstatus_xml("mv-1", [A(bsn=PUPILS[0], statusdatum="2027-03-01")]),
            aanmeldstatus_xml(
                "mv-2",
                [
                    A(
                        bsn=PUPILS[0],
                        status="ONDERWIJSOVEREENKOMST_AANGEBODEN",
                        statusdatum="2027-04-15",
                    )
                ],
            ),
        ]
        answers, commits = await gathered_counting_commits(runtime, bodies)
        assert [a[0] for a in answers] == [202, 202]
        assert commits == 2
        async with runtime.sessions() as session:
            types = [
                (r.type, r.gemeentecode)
                for r in await session.execute(
                    select(signaleringen.c.type, signaleringen.c.gemeentecode)
                    .join(outbox, outbox.c.signalering_id == signaleringen.c.signalering_id)
                    .order_by(outbox.c.id)
                )
            ]
        # The second message, after the move, also tells both gemeenten of the move.
        assert len(types) > 2
        assert {g for _, g in types} == {"GM0363", "GM0599"}


class TestFaults:
    async def test_a_failing_group_is_retried_one_by_one(self, runtime: Runtime) -> None:
        """A berichtId stored by someone else between the group's check and its insert makes
        the group's INSERT fail; each message is then stored alone: the others still 202."""
        await reset(runtime)
        bodies = [aanmeldstatus_xml(f"f-{n}", [A(bsn=PUPILS[0])]) for n in range(4)]
        inner = runtime.lookup
        sneaked = False

        class SneakIn:
            shares_session = True

            async def lookup(self, keys: Any, session: Any = None) -> Any:
                nonlocal sneaked
                if not sneaked:
                    sneaked = True
                    # Another process stores f-2 now, with other bytes.
                    async with runtime.sessions.begin() as other:
                        await other.execute(
                            berichten.insert().values(
                                bericht_id="f-2",
                                soort="aanmeldstatus",
                                sender="koppelpunt-mbo",
                                sha256="0" * 64,
                                raw=b"x",
                                received_at=NOW,
                                receipt={},
                            )
                        )
                return await inner.lookup(keys, session)

        first = await answer(runtime, (bodies[0], Soort.AANMELDSTATUS, "koppelpunt-mbo"))
        assert first[0] == 202
        sneaked = False
        runtime.lookup = SneakIn()
        try:
            answers = await asyncio.gather(
                *(answer(runtime, (b, Soort.AANMELDSTATUS, "koppelpunt-mbo")) for b in bodies[1:])
            )
        finally:
            runtime.lookup = inner
        assert [a[0] for a in answers] == [202, 409, 202]
        async with runtime.sessions() as session:
            stored = sorted(
                r.bericht_id for r in await session.execute(select(berichten.c.bericht_id))
            )
        assert stored == ["f-0", "f-1", "f-2", "f-3"]

    async def test_group_size_one_is_a_transaction_per_message(self, settings: Settings) -> None:
        settings = settings.model_copy(update={"receive_group_size": 1})
        rt = await Runtime.start(settings)
        try:
            await reset(rt)
            answers = await asyncio.gather(
                *(
                    answer(
                        rt,
                        (
                            aanmeldstatus_xml(f"s-{n}", [A(bsn=PUPILS[1])]),
                            Soort.AANMELDSTATUS,
                            "koppelpunt-mbo",
                        ),
                    )
                    for n in range(3)
                )
            )
            assert [a[0] for a in answers] == [202] * 3
            assert rt.group_commit is None
        finally:
            await rt.close()
