"""Cheap bulk INSERTs for the per-record rows of the receive path.

SQLAlchemy's executemany builds and processes bind parameters row by row in Python (a dict per
row, `construct_params`, one bind processor call per value through several layers): for the
~8,500 rows of a 1,000-record message that was a large part of the receive CPU. Here the SQL
text is built once per (table, columns, dialect, conflict clause, returning) and cached, each
column's bind processor is looked up once (`type.dialect_impl(dialect).bind_processor(dialect)`:
the same function SQLAlchemy applies, so UTCDateTime, JSON, dates, booleans and bytes are stored
exactly as before), and all rows go to the driver in one call:

- without RETURNING: the DBAPI's executemany (sqlite3's C loop in one aiosqlite hop; asyncpg's
  pipelined executemany). Rows are written one after the other in list order, so generated ids
  follow the input order and an upsert sees the rows in order, as with SQLAlchemy's executemany.
  On PostgreSQL a plain INSERT (no conflict clause) of POSTGRESQL_COPY_MIN_ROWS rows or more is
  a COPY instead, in the same order and transaction: the server plans and executes no
  statement per row (verwerkingenlog rows: 7-9 instead of 13-22 µs of server CPU each).
- with RETURNING on PostgreSQL: one `INSERT ... SELECT ... FROM unnest($1::type[], ...) WITH
  ORDINALITY ... ORDER BY ordinality`: one array per column, so no parameter limit applies.
- with RETURNING on SQLite (no unnest there): multi-row VALUES, chunked under SQLite's limit on
  host parameters.

The returned values are put back in input order here, so callers need not care how a backend
orders RETURNING rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import JSON, Date, LargeBinary, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koppelpunt.store._dialect import chunks
from koppelpunt.store.types import UTCDateTime

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER: 32766 since 3.32.0, 999 before.
SQLITE_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
# Plain INSERTs (no conflict clause, no RETURNING) of at least this many rows go to PostgreSQL
# as COPY: 2-4x less server CPU per row than executemany (bench/ROUNDS.md, seventh round); below
# it the extra round trip COPY takes to learn the column types is not worth it.
POSTGRESQL_COPY_MIN_ROWS = 64
# The ordinality column of the unnest form; a name no table of ours uses.
_ORDINAL = "bulk_ordinal_"


@dataclass(frozen=True, slots=True)
class DoNothing:
    """ON CONFLICT (keys) DO NOTHING: rows whose key exists are skipped."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DoUpdate:
    """ON CONFLICT (keys) DO UPDATE SET every other inserted column to the new row's value."""

    keys: tuple[str, ...]


OnConflict = DoNothing | DoUpdate | None
# Types whose bind processor is a pure function of an immutable value that equals only values
# with the same result (aware datetimes that are equal are the same instant, so the same UTC).
_MEMOISED = (UTCDateTime, Date)
_Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    columns: tuple[str, ...]
    # (position, bind processor, memoise) of the columns that have a processor
    processors: tuple[tuple[int, _Processor, bool], ...]
    # the executemany statement (one row of placeholders)
    many_sql: str
    # SQLite with RETURNING: multi-row VALUES are `insert_into VALUES row, row, ... tail`
    insert_into: str
    row: str
    tail: str
    # PostgreSQL with RETURNING: the unnest statement
    unnest_sql: str | None


# Per dialect instance (i.e. per engine: processors may depend on its settings, such as a
# json_serializer), then per statement shape.
_plans: WeakKeyDictionary[Dialect, dict[tuple[Any, ...], _Plan]] = WeakKeyDictionary()


async def insert_rows(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict: OnConflict = None,
    returning: str | None = None,
) -> list[Any]:
    """INSERT `rows` (tuples of values in `columns` order) into `table` in one driver call.

    Values are converted by the columns' types as SQLAlchemy would. With `returning` (a column
    among `columns`), returns that column's value of each row actually inserted (not skipped by
    `on_conflict`), in input order; otherwise returns [].
    """
    if not rows:
        return []
    if returning is not None and returning not in columns:
        raise ValueError(f"returning={returning!r} must be one of the inserted columns")
    connection = await session.connection()
    dialect = connection.dialect
    plan = _plan(dialect, table, tuple(columns), on_conflict, returning)
    params = _convert(plan, rows)
    if returning is None:
        if (
            dialect.name == "postgresql"
            and on_conflict is None
            and len(params) >= POSTGRESQL_COPY_MIN_ROWS
            and await _copy(connection, table, plan.columns, params)
        ):
            return []
        await connection.exec_driver_sql(plan.many_sql, params)
        return []
    found: set[Any] = set()
    if plan.unnest_sql is not None:
        arrays = tuple(list(column) for column in zip(*params, strict=True))
        result = await connection.exec_driver_sql(plan.unnest_sql, arrays)
        found.update(result.scalars())
    else:
        width = len(plan.columns)
        per_statement = max(1, SQLITE_MAX_VARIABLES // width)
        for chunk in chunks(params, per_statement):
            sql = f"{plan.insert_into} VALUES {', '.join([plan.row] * len(chunk))}{plan.tail}"
            flat = tuple(chain.from_iterable(chunk))
            result = await connection.exec_driver_sql(sql, flat)
            found.update(result.scalars())
    position = plan.columns.index(returning)
    # The returned column holds processed values: compare with the processed input.
    ordered: list[Any] = []
    for row, converted in zip(rows, params, strict=True):
        key = converted[position]
        if key in found:
            found.discard(key)
            ordered.append(row[position])
    return ordered


async def _copy(
    connection: AsyncConnection, table: Table, columns: Sequence[str], params: list[tuple[Any, ...]]
) -> bool:
    """COPY the converted rows into `table` (PostgreSQL, asyncpg), in the caller's transaction.

    asyncpg's executemany still has the server plan and execute one INSERT per row; COPY
    writes them as one stream. The values are those the INSERT would bind, encoded with the
    same connection codecs (the JSON columns arrive as text, as SQLAlchemy serialises them).
    False, and nothing done, when there is no asyncpg connection or no transaction is open
    on it yet (COPY would then commit on its own): the caller inserts instead.
    """
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    is_in_transaction = getattr(driver, "is_in_transaction", None)
    copy = getattr(driver, "copy_records_to_table", None)
    if is_in_transaction is None or copy is None or not is_in_transaction():
        return False
    try:
        await copy(table.name, records=params, columns=list(columns), schema_name=table.schema)
    except Exception as exc:
        raise _as_dbapi_error(connection, raw.dbapi_connection, exc, table) from exc
    return True


def _as_dbapi_error(
    connection: AsyncConnection, adapted: Any, exc: Exception, table: Table
) -> Exception:
    """An error of the asyncpg connection as SQLAlchemy raises it for a statement
    (IntegrityError, OperationalError, …), so callers and the API's 503 handling see the same
    exceptions as from an INSERT."""
    dialect = connection.dialect
    dbapi: Any = dialect.loaded_dbapi
    try:
        adapted._handle_exception(exc)  # the adapter's translation: raises its DBAPI error
    except dbapi.Error as translated:
        wrapped: Exception = DBAPIError.instance(
            f"COPY {table.name}", None, translated, dbapi.Error, dialect=dialect
        )
        return wrapped
    except Exception as other:  # not a database error (e.g. a value asyncpg cannot encode)
        return other
    return exc


def _convert(plan: _Plan, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    width = len(plan.columns)
    # A message's rows share a few timestamps (`now`): each distinct one is converted once.
    processors: list[tuple[int, _Processor, dict[Any, Any] | None]] = [
        (index, process, {} if memoise else None) for index, process, memoise in plan.processors
    ]
    out: list[tuple[Any, ...]] = []
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row has {len(row)} values for {width} columns")
        if not processors:
            out.append(tuple(row))
            continue
        values = list(row)
        # SQLAlchemy calls processors for None too (e.g. JSON writes 'null' for it).
        for index, process, memo in processors:
            value = values[index]
            if memo is None:
                values[index] = process(value)
            elif value in memo:
                values[index] = memo[value]
            else:
                values[index] = memo[value] = process(value)
        out.append(tuple(values))
    return out


def _plan(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    on_conflict: OnConflict,
    returning: str | None,
) -> _Plan:
    plans = _plans.get(dialect)
    if plans is None:
        plans = _plans[dialect] = {}
    key = (table, columns, on_conflict, returning)
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = _build_plan(dialect, table, columns, on_conflict, returning)
    return plan


def _build_plan(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    on_conflict: OnConflict,
    returning: str | None,
) -> _Plan:
    if dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"bulk inserts on {dialect.name}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"duplicate columns in {columns}")
    quote = dialect.identifier_preparer.quote
    processors: list[tuple[int, _Processor, bool]] = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if dialect.name == "sqlite" and isinstance(column_type, LargeBinary):
            # Its processor only wraps the bytes in sqlite3.Binary (a memoryview): sqlite3
            # binds bytes as the same BLOB.
            process = None
        if process is not None:
            processors.append((index, process, isinstance(column_type, _MEMOISED)))
    names = ", ".join(quote(name) for name in columns)
    insert_into = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names})"
    tail = _conflict_sql(quote, columns, on_conflict)
    if returning is not None:
        tail += f" RETURNING {quote(returning)}"
    if dialect.name == "postgresql":
        row = "(" + ", ".join(f"${i + 1}" for i in range(len(columns))) + ")"
    else:
        row = "(" + ", ".join("?" * len(columns)) + ")"
    unnest_sql = None
    if dialect.name == "postgresql" and returning is not None:
        unnest_sql = _unnest_sql(dialect, table, columns, insert_into, tail)
    many_sql = f"{insert_into} VALUES {row}{tail}"
    return _Plan(columns, tuple(processors), many_sql, insert_into, row, tail, unnest_sql)


def _conflict_sql(
    quote: Callable[[str], str], columns: tuple[str, ...], on_conflict: OnConflict
) -> str:
    if on_conflict is None:
        return ""
    target = ", ".join(quote(key) for key in on_conflict.keys)
    if isinstance(on_conflict, DoNothing):
        return f" ON CONFLICT ({target}) DO NOTHING"
    updated = [name for name in columns if name not in on_conflict.keys]
    if not updated:
        raise ValueError("DoUpdate needs a column besides the conflict keys")
    sets = ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in updated)
    return f" ON CONFLICT ({target}) DO UPDATE SET {sets}"


def _unnest_sql(
    dialect: Dialect, table: Table, columns: tuple[str, ...], insert_into: str, tail: str
) -> str:
    """INSERT ... SELECT over one array per column, in array order (WITH ORDINALITY)."""
    quote = dialect.identifier_preparer.quote
    arrays: list[str] = []
    selected: list[str] = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            # The bind processor made JSON text: pass text[] and cast, stored text unchanged.
            arrays.append(f"${index + 1}::TEXT[]")
            selected.append(f"u.{quote(name)}::JSON")
        else:
            type_sql = column_type.dialect_impl(dialect).compile(dialect=dialect)
            arrays.append(f"${index + 1}::{type_sql}[]")
            selected.append(f"u.{quote(name)}")
    aliases = ", ".join([*(quote(name) for name in columns), _ORDINAL])
    # S608: only quoted names from the Table metadata go into the text; values are bound.
    return (
        f"{insert_into} SELECT {', '.join(selected)} "  # noqa: S608
        f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({aliases}) "
        f"ORDER BY u.{_ORDINAL}{tail}"
    )
