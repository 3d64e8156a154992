"""Bulk inserts (store/bulk.py) on a real database: same stored bytes as SQLAlchemy, conflicts,
RETURNING in input order, id order, chunking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koppelpunt.store import bulk
from koppelpunt.store._dialect import dialect_name
from koppelpunt.store.bulk import DoNothing, DoUpdate, insert_rows
from koppelpunt.store.db import session_factory
from koppelpunt.store.tables import (
    aanmelding_statussen,
    aanmeldingen,
    beslissingen,
    leerling_gemeenten,
    leerling_prognoses,
    signaleringen,
    verwerkingenlog,
)

from .helpers import T0, add_test_bericht

AMSTERDAM_WINTER = timezone(timedelta(hours=1))
KIRITIMATI = timezone(timedelta(hours=14))


async def _raw(session: AsyncSession, table: Table) -> list[tuple[Any, ...]]:
    """Every stored value as the database renders it (SQLite quote(), PostgreSQL ::text),
    without generated ids, in insertion order: the bytes on disk, not decoded Python values."""
    names = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
    if dialect_name(session) == "postgresql":
        cols = ", ".join(f'"{n}"::text' for n in names)
        order = "id" if "id" in table.c else "ctid"
    else:
        cols = ", ".join(f'quote("{n}")' for n in names)
        order = "rowid"
    result = await session.connection()
    rows = await result.exec_driver_sql(f"SELECT {cols} FROM {table.name} ORDER BY {order}")
    return [tuple(row) for row in rows]


async def _both_ways(
    engine: AsyncEngine,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    in_transaction: bool = False,
    **options: Any,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The raw rows after SQLAlchemy's executemany, and after insert_rows with `options`
    (on_conflict, returning: the other code paths), each rolled back. `in_transaction`: a
    statement runs first, as on the receive path (PostgreSQL's COPY needs it)."""
    sessions = session_factory(engine)
    async with sessions() as session:
        await session.execute(insert(table), [dict(row) for row in rows])
        expected = await _raw(session, table)
        await session.rollback()
    columns = list(rows[0])
    async with sessions() as session:
        if in_transaction:
            await session.execute(select(1))
        values = [tuple(row[c] for c in columns) for row in rows]
        await insert_rows(session, table, columns, values, **options)
        got = await _raw(session, table)
        await session.rollback()
    return expected, got


def _log_row(i: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": f"{i:032x}",
        "operation_id": f"{i:016x}",
        "parent_operation_id": None,
        "name": "ontvangen",
        "status_code": "OK",
        "start_time": T0 + timedelta(microseconds=i),
        "end_time": T0 + timedelta(seconds=i, microseconds=7),
        "verwerkingsactiviteit": "vva-signaleren-gemeenten",
        "actor": None,
        "gemeentecode": "GM0363",
        "bsn_encrypted": bytes([i % 256]) * 40,
        "bsn_index": "ab" * 32,
        "key_id": "0a1b2c3d4e5f",
        "attributes": {"berichtId": f"B-{i}", "n": i},
    }
    row.update(changes)
    return row


def _text(size: int) -> st.SearchStrategy[str]:
    """Text a text column can hold: PostgreSQL text cannot hold NUL, and neither database a
    lone surrogate (not UTF-8; SQLAlchemy's own insert fails on it too)."""
    return st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=size)


def _json_text(size: int) -> st.SearchStrategy[str]:
    """Text inside a JSON value: lone surrogates included (the encoder escapes them)."""
    return st.text(st.characters(blacklist_characters="\x00"), max_size=size)


class TestSameBytesAsSqlAlchemy:
    async def test_verwerkingenlog(self, engine: AsyncEngine) -> None:
        """Datetimes in other zones, bytes, NULLs and JSON (incl. unicode, nesting, JSON null)
        are stored exactly as SQLAlchemy stores them."""
        rows = [
            _log_row(0),
            _log_row(1, start_time=datetime(2027, 1, 1, 0, 30, tzinfo=AMSTERDAM_WINTER)),
            _log_row(2, end_time=datetime(2027, 6, 30, 23, 59, 59, 999999, tzinfo=KIRITIMATI)),
            _log_row(3, bsn_encrypted=None, bsn_index=None, key_id=None, actor="beheerder"),
            _log_row(4, attributes={"naam": "Zoë “quotes” \\ /", "l": [1, 2.5, None, True]}),
            _log_row(5, attributes={}, parent_operation_id="f" * 16, gemeentecode=None),
            _log_row(6, attributes=None),
            # the instant of row 0's start_time in another zone (converted once, memoised)
            _log_row(7, start_time=T0.astimezone(KIRITIMATI), end_time=T0),
        ]
        expected, got = await _both_ways(engine, verwerkingenlog, rows)
        assert got == expected
        assert len(got) == len(rows)
        expected, got = await _both_ways(engine, verwerkingenlog, rows, returning="trace_id")
        assert got == expected

    async def test_signaleringen(self, engine: AsyncEngine) -> None:
        """Payload bytes, header tuples as JSON arrays, nullable foreign key."""
        async with session_factory(engine).begin() as session:
            pk = await add_test_bericht(session, "B-bulk")
        rows = [
            {
                "signalering_id": f"s-{i}",
                "type": "AANMELDSTATUS",
                "gemeentecode": "GM0363",
                "bsn": "999993653",
                "topic": "vva.signalering.gm0363",
                "payload": f"<s id='{i}'>é</s>".encode(),
                "headers": [("type", "AANMELDSTATUS"), ("signaleringId", f"s-{i}")],
                "created_at": T0 + timedelta(minutes=i),
                "bericht_pk": pk if i % 2 else None,
            }
            for i in range(5)
        ]
        expected, got = await _both_ways(engine, signaleringen, rows)
        assert got == expected
        expected, got = await _both_ways(
            engine,
            signaleringen,
            rows,
            on_conflict=DoNothing(("signalering_id",)),
            returning="signalering_id",
        )
        assert got == expected

    async def test_pupil_state_tables(self, engine: AsyncEngine) -> None:
        """Dates, booleans and integers of the pupil state tables."""
        aanmelding = {
            "instelling_brin": "30RT",
            "aanmelding_id": "A-1",
            "bsn": "999990007",
            "geboortedatum": date(2010, 5, 13),
            "hoogste_diploma": None,
            "crebo": "25180",
            "niveau": 2,
            "leerweg": "BOL",
            "status": "AANGEMELD",
            "statusdatum": date(2027, 2, 1),
            "eerste_statusdatum": date(2027, 2, 1),
            "buiten_flow": True,
            "updated_at": T0,
        }
        expected, got = await _both_ways(
            engine,
            aanmeldingen,
            [aanmelding, {**aanmelding, "aanmelding_id": "A-2", "buiten_flow": False}],
        )
        assert got == expected
        status = {
            "instelling_brin": "30RT",
            "aanmelding_id": "A-1",
            "status": "AANGEMELD",
            "statusdatum": date(2027, 2, 1),
            "buiten_flow": False,
            "received_at": T0,
            "bericht_pk": None,
        }
        expected, got = await _both_ways(
            engine, aanmelding_statussen, [status, {**status, "status": "X", "buiten_flow": True}]
        )
        assert got == expected
        prognose = {
            "bsn": "999990007",
            "schooljaar": "2026-2027",
            "geboortedatum": date(2010, 5, 13),
            "hoogste_diploma": "vmbo-tl",
            "brin": "12AB",
            "vestiging": None,
            "onderwijssoort": "vmbo-tl",
            "verzonden": T0,
            "bericht_pk": None,
        }
        expected, got = await _both_ways(engine, leerling_prognoses, [prognose])
        assert got == expected
        gemeente = {
            "bsn": "999990007",
            "gemeentecode": "GM0363",
            "peildatum": date(2027, 3, 1),
            "updated_at": T0,
        }
        expected, got = await _both_ways(engine, leerling_gemeenten, [gemeente])
        assert got == expected

    async def test_beslissingen(self, engine: AsyncEngine) -> None:
        """Integers, text and NULLs of the decisions."""
        async with session_factory(engine).begin() as session:
            pk = await add_test_bericht(session, "B-besl")
        rows = [
            {
                "bericht_pk": pk,
                "record_index": i,
                "uitkomst": "gefilterd" if i % 3 else "doorgestuurd",
                "reden": None if i % 3 == 0 else "startkwalificatie",
                "details": None if i % 2 else "regel 'x'\nmet\ttabs",
                "gemeentecode": None if i == 4 else "GM0363",
                "rules_version": "v1",
                "bsn": None if i == 5 else f"99999{i:04d}",
            }
            for i in range(6)
        ]
        expected, got = await _both_ways(engine, beslissingen, rows)
        assert got == expected

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        rows=st.lists(
            st.fixed_dictionaries(
                {
                    "start_time": st.datetimes(
                        min_value=datetime(1970, 1, 2),
                        max_value=datetime(2200, 1, 1),
                        timezones=st.sampled_from([UTC, AMSTERDAM_WINTER, KIRITIMATI]),
                    ),
                    "actor": st.none() | _text(20),
                    "bsn_encrypted": st.none() | st.binary(max_size=60),
                    "attributes": st.dictionaries(
                        _json_text(8),
                        st.none() | st.booleans() | st.integers() | _json_text(10),
                        max_size=4,
                    ),
                }
            ),
            min_size=1,
            max_size=20,
        )
    )
    async def test_random_log_lines(self, engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
        """Any mix of zones, text, bytes and JSON is stored byte for byte as SQLAlchemy does."""
        full = [_log_row(i, **row) for i, row in enumerate(rows)]
        expected, got = await _both_ways(engine, verwerkingenlog, full)
        assert got == expected
        expected, got = await _both_ways(engine, verwerkingenlog, full, returning="trace_id")
        assert got == expected


class TestInsertRows:
    async def test_empty_input(self, session: AsyncSession) -> None:
        """No rows: no statement, nothing returned."""
        assert await insert_rows(session, verwerkingenlog, ["trace_id"], []) == []
        assert await _raw(session, verwerkingenlog) == []

    async def test_ids_follow_input_order(self, session: AsyncSession) -> None:
        """Generated ids follow the order of the rows (the relay publishes in id order)."""
        rows = [_log_row(i) for i in (7, 3, 9, 1, 5)]
        columns = list(rows[0])
        await insert_rows(session, verwerkingenlog, columns, [tuple(r.values()) for r in rows])
        stored = await session.scalars(
            select(verwerkingenlog.c.trace_id).order_by(verwerkingenlog.c.id)
        )
        assert list(stored) == [r["trace_id"] for r in rows]

    async def test_do_nothing_returns_inserted_in_input_order(self, session: AsyncSession) -> None:
        """Existing keys and repeats in one call are skipped; the rest come back in input order."""
        columns = ["bsn", "gemeentecode", "peildatum", "updated_at"]

        def row(bsn: str, code: str) -> tuple[Any, ...]:
            return (bsn, code, date(2027, 3, 1), T0)

        conflict = DoNothing(("bsn",))
        first = await insert_rows(
            session,
            leerling_gemeenten,
            columns,
            [row("b2", "GM0001"), row("b4", "GM0001")],
            on_conflict=conflict,
            returning="bsn",
        )
        assert first == ["b2", "b4"]
        got = await insert_rows(
            session,
            leerling_gemeenten,
            columns,
            [row(b, "GM0002") for b in ["b5", "b2", "b3", "b4", "b1", "b3"]],
            on_conflict=conflict,
            returning="bsn",
        )
        assert got == ["b5", "b3", "b1"]
        stored = await session.execute(
            select(leerling_gemeenten.c.bsn, leerling_gemeenten.c.gemeentecode).order_by(
                leerling_gemeenten.c.bsn
            )
        )
        assert [tuple(r) for r in stored] == [
            ("b1", "GM0002"),
            ("b2", "GM0001"),
            ("b3", "GM0002"),
            ("b4", "GM0001"),
            ("b5", "GM0002"),
        ]

    async def test_do_nothing_without_returning(self, session: AsyncSession) -> None:
        """Without RETURNING (executemany) conflicting rows are skipped too."""
        columns = ["bsn", "gemeentecode", "peildatum", "updated_at"]
        rows = [(b, "GM0001", date(2027, 3, 1), T0) for b in ["b1", "b2", "b1"]]
        conflict = DoNothing(("bsn",))
        assert (
            await insert_rows(session, leerling_gemeenten, columns, rows, on_conflict=conflict)
            == []
        )
        assert len(await _raw(session, leerling_gemeenten)) == 2

    async def test_do_update(self, session: AsyncSession) -> None:
        """Upsert: every non-key column takes the new value; rows apply in order."""
        columns = ["bsn", "gemeentecode", "peildatum", "updated_at"]
        conflict = DoUpdate(("bsn",))
        await insert_rows(
            session,
            leerling_gemeenten,
            columns,
            [("b1", "GM0001", date(2027, 3, 1), T0), ("b2", "GM0001", date(2027, 3, 1), T0)],
            on_conflict=conflict,
        )
        later = T0 + timedelta(days=1)
        await insert_rows(
            session,
            leerling_gemeenten,
            columns,
            [("b1", "GM0002", date(2028, 3, 1), later), ("b3", "GM0003", date(2028, 3, 1), later)],
            on_conflict=conflict,
        )
        stored = await session.execute(
            select(leerling_gemeenten).order_by(leerling_gemeenten.c.bsn)
        )
        assert [tuple(r) for r in stored] == [
            ("b1", "GM0002", date(2028, 3, 1), later),
            ("b2", "GM0001", date(2027, 3, 1), T0),
            ("b3", "GM0003", date(2028, 3, 1), later),
        ]

    async def test_returning_in_chunks(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """More rows than one statement may bind (SQLite) still all come back in order."""
        monkeypatch.setattr(bulk, "SQLITE_MAX_VARIABLES", 10)  # 2 rows of 4 columns per chunk
        columns = ["bsn", "gemeentecode", "peildatum", "updated_at"]
        bsns = [f"b{i:03d}" for i in range(25, 0, -1)]
        rows = [(b, "GM0001", date(2027, 3, 1), T0) for b in bsns]
        got = await insert_rows(
            session,
            leerling_gemeenten,
            columns,
            rows,
            on_conflict=DoNothing(("bsn",)),
            returning="bsn",
        )
        assert got == bsns

    async def test_returning_must_be_inserted(self, session: AsyncSession) -> None:
        """RETURNING names a column among the inserted ones (to map rows back to the input)."""
        with pytest.raises(ValueError, match="returning"):
            await insert_rows(
                session, verwerkingenlog, ["trace_id"], [("x",)], returning="operation_id"
            )

    async def test_row_width_checked(self, session: AsyncSession) -> None:
        """A row with a value too many or too few is refused before anything is sent."""
        with pytest.raises(ValueError, match="values for"):
            await insert_rows(session, leerling_gemeenten, ["bsn", "gemeentecode"], [("b1",)])


class TestCopyOnPostgresql:
    """Plain inserts of POSTGRESQL_COPY_MIN_ROWS rows or more go to PostgreSQL as COPY; on
    SQLite these run as executemany and check the same behaviour."""

    @pytest.fixture
    def copies(self, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
        """Whether each bulk insert was written by COPY."""
        done: list[bool] = []
        original = bulk._copy

        async def spy(*args: Any, **kwargs: Any) -> bool:
            done.append(await original(*args, **kwargs))
            return done[-1]

        monkeypatch.setattr(bulk, "_copy", spy)
        return done

    @staticmethod
    def _many(n: int) -> list[dict[str, Any]]:
        zones = (UTC, AMSTERDAM_WINTER, KIRITIMATI)
        return [
            _log_row(
                i,
                start_time=(T0 + timedelta(seconds=i)).astimezone(zones[i % 3]),
                bsn_encrypted=None if i % 5 == 0 else bytes([i % 256, 0, 255]) * 9,
                attributes=None if i % 7 == 0 else {"i": i, "naam": "Zoë “q” \\", "l": [None]},
            )
            for i in range(n)
        ]

    async def test_same_bytes_as_sqlalchemy(self, engine: AsyncEngine, copies: list[bool]) -> None:
        rows = self._many(bulk.POSTGRESQL_COPY_MIN_ROWS * 2 + 1)
        expected, got = await _both_ways(engine, verwerkingenlog, rows, in_transaction=True)
        assert got == expected
        assert len(got) == len(rows)
        async with session_factory(engine)() as session:
            assert copies == ([True] if dialect_name(session) == "postgresql" else [])

    async def test_ids_follow_input_order(self, session: AsyncSession, copies: list[bool]) -> None:
        rows = self._many(bulk.POSTGRESQL_COPY_MIN_ROWS + 10)[::-1]
        await add_test_bericht(session, "B-copy-order")  # a transaction is open
        columns = list(rows[0])
        await insert_rows(session, verwerkingenlog, columns, [tuple(r.values()) for r in rows])
        stored = await session.scalars(
            select(verwerkingenlog.c.trace_id).order_by(verwerkingenlog.c.id)
        )
        assert list(stored) == [r["trace_id"] for r in rows]
        assert copies == ([True] if dialect_name(session) == "postgresql" else [])

    async def test_a_violation_is_sqlalchemys_integrity_error(self, session: AsyncSession) -> None:
        """The receive path and the API's error handling see the same exceptions as from an
        INSERT (a foreign key to a message that does not exist)."""
        pk = await add_test_bericht(session, "B-copy-fk")
        columns = ["bericht_pk", "record_index", "uitkomst", "reden", "details"]
        columns += ["gemeentecode", "rules_version", "bsn"]
        rows = [(pk + 1000, i, "gefilterd", "leeftijd", None, None, "v1", None) for i in range(80)]
        with pytest.raises(IntegrityError):
            await insert_rows(session, beslissingen, columns, rows)

    async def test_no_copy_before_the_transaction_begins(
        self, engine: AsyncEngine, copies: list[bool]
    ) -> None:
        """COPY as a session's first statement would commit on its own: the rows go by INSERT,
        in the session's transaction, and leave with its rollback."""
        rows = self._many(bulk.POSTGRESQL_COPY_MIN_ROWS)
        values = [tuple(r.values()) for r in rows]
        async with session_factory(engine)() as session:
            await insert_rows(session, verwerkingenlog, list(rows[0]), values)
            assert len(await _raw(session, verwerkingenlog)) == len(rows)
            await session.rollback()
            assert await _raw(session, verwerkingenlog) == []
            assert copies == ([False] if dialect_name(session) == "postgresql" else [])
