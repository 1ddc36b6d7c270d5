"""Idempotent storage of interval values, register readings and events: a row stored twice is stored once.

Each kind is keyed by its identity (DESIGN.md): an interval value by (meter, OBIS, attribute,
interval end), a register reading by (meter, OBIS, capture time), an event by (meter, log,
code, time). Rows go in with ``INSERT ... ON CONFLICT DO NOTHING`` in one driver call per batch
(an executemany on SQLite, one array insert on PostgreSQL), and the count of new rows comes back.
A day of 96 intervals x 2 channels costs about 0.1-0.3 ms of database work per meter in a batch.

When listeners are registered (``hes.db.stored``: the CIM outbox, the event bus), the insert says
which rows were new (``RETURNING`` their keys) and the listeners are told about exactly those, on
the same connection, inside the caller's transaction; without listeners the plain insert runs.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.orm import Session

from hes.db import stored
from hes.db.models import EventRecord, IntervalValue, Meter, RegisterReading
from hes.db.sql import driver_errors

__all__ = [
    "EventRow",
    "IntervalRow",
    "MissingInterval",
    "RegisterRow",
    "meter_ids",
    "store_events",
    "store_intervals",
    "store_many",
    "store_registers",
]

Bind = Connection | Session


class IntervalRow(NamedTuple):
    """One captured value of one interval (value as read, before the scaler).

    A named tuple, not a dataclass: a collection pass makes hundreds of thousands of these, and a
    frozen dataclass costs about three times as much to build.
    """

    meter_id: int
    obis: str
    attribute: int
    interval_end: datetime
    value: float
    scaler: int = 0
    unit: int | None = None
    status: int | None = None
    quality: int = 0


@dataclass(frozen=True, slots=True)
class MissingInterval:
    """One channel of one interval the head-end knows to be missing: it will not come (no row is stored)."""

    meter_id: int
    obis: str
    attribute: int
    interval_end: datetime


class RegisterRow(NamedTuple):
    """A register value at its capture time; ``deviation_minutes`` is the meter's own UTC offset, kept."""

    meter_id: int
    obis: str
    capture_time: datetime
    value: float
    scaler: int = 0
    unit: int | None = None
    deviation_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    meter_id: int
    log_obis: str
    event_code: int
    event_time: datetime
    name: str | None = None


def _connection(bind: Bind) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


#: Driver values of aware times, per kind (SQLite text or not): see ``_time_converter``.
_CONVERTED_TIMES: dict[bool, dict[datetime, Any]] = {}
_CONVERTED_TIMES_MAX = 65536


def _time_converter(dialect: str) -> Callable[[datetime], Any]:
    """Aware datetime -> what the driver stores, as ``UtcDateTime`` would store it (same key either way).

    SQLite keeps SQLAlchemy's DATETIME text of the UTC instant (``YYYY-MM-DD HH:MM:SS.ffffff``);
    PostgreSQL takes the aware value into ``timestamptz``. Memoised for the process (bounded):
    channels, and every meter of a fleet, share their interval times.
    """
    memo = _CONVERTED_TIMES.setdefault(dialect == "sqlite", {})
    if len(memo) > _CONVERTED_TIMES_MAX:
        memo.clear()

    def convert(value: datetime) -> Any:
        done = memo.get(value)
        if done is not None:
            return done
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: readings need an explicit time zone")
        utc = value.astimezone(UTC)
        done = utc.replace(tzinfo=None).isoformat(" ", "microseconds") if dialect == "sqlite" else utc
        memo[value] = done
        return done

    return convert


def _insert_new(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> int:
    """Insert ``rows`` (driver values in table column order), skipping conflicts; how many were new.

    Driver-level statements, because compiling a 2000-parameter statement per batch costs more
    than the database work: SQLite gets one ``executemany`` (``rowcount`` sums it), PostgreSQL a
    binary COPY into a staging table (``_insert_staged``) or, for a few rows, one
    ``INSERT ... SELECT FROM unnest(arrays)`` (one parameter per column); both give an exact ``rowcount``.
    """
    if not rows:
        return 0
    dialect = connection.dialect
    columns = list(table.columns)
    names = ", ".join(column.name for column in columns)
    key = ", ".join(column.name for column in table.primary_key.columns)
    if dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING"
        return connection.exec_driver_sql(sql, rows).rowcount
    if dialect.name == "postgresql":
        staged = _insert_staged(connection, table, rows, returning=False)
        if staged is not None:
            return staged[0]
        arrays = tuple(list(values) for values in zip(*rows))
        casts = ", ".join(f"%s::{column.type.compile(dialect)}[]" for column in columns)
        sql = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({casts}) ON CONFLICT ({key}) DO NOTHING"
        return connection.exec_driver_sql(sql, arrays).rowcount
    raise ValueError(f"idempotent storage is not implemented for {dialect.name}")  # pragma: no cover


#: PostgreSQL type names for a binary COPY, by SQLAlchemy's compiled type (the columns of the readings tables).
_COPY_TYPES = {"INTEGER": "int4", "SMALLINT": "int2", "BIGINT": "int8", "FLOAT": "float8", "DOUBLE PRECISION": "float8",
               "TIMESTAMP WITH TIME ZONE": "timestamptz", "TEXT": "text", "BOOLEAN": "bool"}
#: Below this many rows the staging round trips cost more than the array insert saves.
_COPY_MIN_ROWS = 64


def _copy_types(connection: Connection, table: Table) -> list[str] | None:
    out = []
    for column in table.columns:
        compiled = column.type.compile(connection.dialect)
        name = "varchar" if compiled.startswith("VARCHAR") else _COPY_TYPES.get(compiled)
        if name is None:
            return None
        out.append(name)
    return out


def _copy_in(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> str | None:
    """PostgreSQL: ``rows`` copied (binary COPY) into this session's staging table for ``table``; its name.

    The staging table is temporary (``ON COMMIT DELETE ROWS``, made when missing) and the
    caller empties it after its ``INSERT ... SELECT``. Several times cheaper in the head-end
    process than arrays for ``unnest`` (psycopg dumps array elements one by one in Python; a
    binary COPY row goes through its C dumpers). None: too few rows, or a column type without a
    binary name here (the caller takes the array way).
    """
    if len(rows) < _COPY_MIN_ROWS:
        return None
    types = _copy_types(connection, table)
    if types is None:
        return None
    staged = f"hes_stage_{table.name}"
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    names = ", ".join(column.name for column in table.columns)
    statement = f"COPY {staged} ({names}) FROM STDIN (FORMAT BINARY)"
    with driver_errors(connection, statement):
        # Every time: a temporary table made in a transaction that was rolled back is gone again.
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} (LIKE {table.name}) ON COMMIT DELETE ROWS")
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)
    return staged


def _insert_staged(connection: Connection, table: Table, rows: list[tuple[Any, ...]], *,
                   returning: bool) -> tuple[int, list[tuple[Any, ...]]] | None:
    """PostgreSQL: ``rows`` copied into the staging table, then inserted skipping conflicts; (new rows, their
    keys when ``returning``). None when ``_copy_in`` declines (the caller takes the array way)."""
    staged = _copy_in(connection, table, rows)
    if staged is None:
        return None
    names = ", ".join(column.name for column in table.columns)
    key = ", ".join(column.name for column in table.primary_key.columns)
    statement = (f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staged} ON CONFLICT ({key}) DO NOTHING"
                 + (f" RETURNING {key}" if returning else ""))
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with driver_errors(connection, statement):
        cursor.execute(statement)
        count = int(cursor.rowcount)
        keys = [tuple(row) for row in cursor.fetchall()] if returning else []
        cursor.execute(f"DELETE FROM {staged}")
    return count, keys


#: SQLite's limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER, 32766 since 3.32).
_SQLITE_MAX_PARAMETERS = 32766


def _all_new_sqlite(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> bool:
    """SQLite: insert ``rows`` with one executemany, kept only if every row was new (then True).

    The usual case of a collection (it asks only for what comes after its watermark), and several
    times cheaper than the ``RETURNING`` statement, which must be parsed with every row's values
    and hands each key back. When a row was already there the insert is undone (a savepoint
    inside the caller's transaction) and False says to take the exact, ``RETURNING`` way.
    """
    columns = list(table.columns)
    names = ", ".join(column.name for column in columns)
    key = ", ".join(column.name for column in table.primary_key.columns)
    marks = ", ".join("?" for _ in columns)
    if not connection.in_transaction():
        connection.begin()  # what executing a statement would do (autobegin): the caller commits it
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    if not raw.in_transaction:
        # A savepoint outside a transaction would be one, committed on release: open the caller's first.
        cursor.execute("BEGIN")
    statement = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING"
    with driver_errors(connection, statement):
        cursor.execute("SAVEPOINT hes_insert_new")
        try:
            cursor.executemany(statement, rows)
            if cursor.rowcount == len(rows):
                return True
            cursor.execute("ROLLBACK TO SAVEPOINT hes_insert_new")
            return False
        except BaseException:
            cursor.execute("ROLLBACK TO SAVEPOINT hes_insert_new")
            raise
        finally:
            cursor.execute("RELEASE SAVEPOINT hes_insert_new")


def _insert_returning(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> list[int]:
    """As ``_insert_new``, but say which rows were new: the indexes in ``rows`` of those inserted.

    Used only when a listener wants the new rows (``hes.db.stored``). ``RETURNING`` gives the keys
    of the rows actually inserted (conflicts return nothing); they are matched back to ``rows`` by
    their key values as the driver hands them back (the SQLite DATETIME text we sent; an aware
    ``timestamptz`` on PostgreSQL, equal to the UTC instant we sent).
    """
    if not rows:
        return []
    dialect = connection.dialect
    columns = list(table.columns)
    names = ", ".join(column.name for column in columns)
    key_columns = [column.name for column in table.primary_key.columns]
    positions = [columns.index(table.c[name]) for name in key_columns]
    key = ", ".join(key_columns)
    returned: list[tuple[Any, ...]] = []
    if dialect.name == "sqlite":
        if _all_new_sqlite(connection, table, rows):
            return list(range(len(rows)))
        # One multi-row VALUES statement per chunk (executemany cannot return rows).
        per_chunk = max(1, _SQLITE_MAX_PARAMETERS // len(columns))
        row_marks = "(" + ", ".join("?" for _ in columns) + ")"
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            sql = (f"INSERT INTO {table.name} ({names}) VALUES {', '.join(row_marks for _ in chunk)} "
                   f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}")
            flat = tuple(itertools.chain.from_iterable(chunk))
            returned.extend(map(tuple, connection.exec_driver_sql(sql, flat).fetchall()))
    elif dialect.name == "postgresql" and (staged := _insert_staged(connection, table, rows,
                                                                    returning=True)) is not None:
        returned.extend(staged[1])
    elif dialect.name == "postgresql":
        arrays = tuple(list(values) for values in zip(*rows))
        casts = ", ".join(f"%s::{column.type.compile(dialect)}[]" for column in columns)
        sql = (f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({casts}) ON CONFLICT ({key}) DO NOTHING "
               f"RETURNING {key}")
        returned.extend(map(tuple, connection.exec_driver_sql(sql, arrays).fetchall()))
    else:  # pragma: no cover
        raise ValueError(f"idempotent storage is not implemented for {dialect.name}")
    if len(returned) == len(rows):
        return list(range(len(rows)))  # every row new: the common case, nothing to match
    new = set(returned)
    identity = operator.itemgetter(*positions)
    # A batch may repeat a key: only its first occurrence was inserted.
    out: list[int] = []
    for index, row in enumerate(rows):
        key_values = identity(row)
        if key_values in new:
            new.discard(key_values)
            out.append(index)
    return out


def _store(connection: Connection, table: Table, data: list[tuple[Any, ...]], originals: Sequence[Any],
           field: Literal["intervals", "registers", "events"]) -> int:
    """Insert ``data`` (driver values of ``originals``); tell the listeners which ``originals`` were new."""
    if not stored.listeners():
        return _insert_new(connection, table, data)  # the fast path: no one needs to know which
    new = _insert_returning(connection, table, data)
    if new:
        added = [originals[i] for i in new]
        correlation_id = stored.current_correlation()
        if field == "intervals":
            batch = stored.StoredBatch(intervals=added, correlation_id=correlation_id)
        elif field == "registers":
            batch = stored.StoredBatch(registers=added, correlation_id=correlation_id)
        else:
            batch = stored.StoredBatch(events=added, correlation_id=correlation_id)
        stored.notify(connection, batch)
    return len(new)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


_INTERVALS = _table(IntervalValue)
_REGISTERS = _table(RegisterReading)
_EVENTS = _table(EventRecord)


def _interval_data(rows: Sequence[IntervalRow], at: Callable[[datetime], Any], now: Any) -> list[tuple[Any, ...]]:
    """``rows`` as driver values in table column order (``now``: their stored_at, converted).

    Each distinct interval end is converted once: a batch's rows share a few hundred ends (every
    channel, every meter of a pass), and a conversion is a call where a dict lookup is not.
    """
    ends = {end: at(end) for end in {row[3] for row in rows}}
    return [(meter, obis, attribute, ends[end], float(value), scaler, unit, status, quality, now)
            for meter, obis, attribute, end, value, scaler, unit, status, quality in rows]


def store_intervals(bind: Bind, rows: Iterable[IntervalRow]) -> int:
    """Store interval values, skipping those already stored; returns how many were new. Commit is the caller's."""
    connection = _connection(bind)
    at = _time_converter(connection.dialect.name)
    now = at(datetime.now(UTC))
    originals = list(rows)
    return _store(connection, _INTERVALS, _interval_data(originals, at, now), originals, "intervals")


def store_registers(bind: Bind, rows: Iterable[RegisterRow]) -> int:
    """Store register readings, skipping those already stored; returns how many were new."""
    connection = _connection(bind)
    at = _time_converter(connection.dialect.name)
    now = at(datetime.now(UTC))
    originals = list(rows)
    data = [
        (r.meter_id, r.obis, at(r.capture_time), float(r.value), r.scaler, r.unit, r.deviation_minutes, now)
        for r in originals
    ]
    return _store(connection, _REGISTERS, data, originals, "registers")


def store_events(bind: Bind, rows: Iterable[EventRow]) -> int:
    """Store event log entries, skipping those already stored; returns how many were new."""
    connection = _connection(bind)
    at = _time_converter(connection.dialect.name)
    now = at(datetime.now(UTC))
    originals = list(rows)
    data = [(r.meter_id, r.log_obis, r.event_code, at(r.event_time), r.name, now) for r in originals]
    return _store(connection, _EVENTS, data, originals, "events")


def store_many(bind: Bind, groups: Sequence[tuple[Sequence[IntervalRow], Sequence[RegisterRow]]]) -> list[int]:
    """Store several groups of rows (e.g. one per meter of a collection batch) at once; new rows per group.

    As ``store_intervals`` and ``store_registers`` on all the groups' rows, with the listeners told
    once, about every new row of every group (one ``StoredBatch``: the CIM outbox then builds its
    messages for the whole batch in one call). Without listeners each group is one executemany per
    table (the driver's row count is per call); with them one insert per table for all groups.
    """
    connection = _connection(bind)
    at = _time_converter(connection.dialect.name)
    now = at(datetime.now(UTC))
    owners_i: list[int] = []
    owners_r: list[int] = []
    intervals: list[IntervalRow] = []
    registers: list[RegisterRow] = []
    for number, (group_intervals, group_registers) in enumerate(groups):
        intervals.extend(group_intervals)
        owners_i.extend(itertools.repeat(number, len(group_intervals)))
        registers.extend(group_registers)
        owners_r.extend(itertools.repeat(number, len(group_registers)))
    interval_data = _interval_data(intervals, at, now)
    register_data = [
        (r.meter_id, r.obis, at(r.capture_time), float(r.value), r.scaler, r.unit, r.deviation_minutes, now)
        for r in registers
    ]
    counts = [0] * len(groups)
    if not stored.listeners():
        start_i = start_r = 0
        for number, (group_intervals, group_registers) in enumerate(groups):
            end_i, end_r = start_i + len(group_intervals), start_r + len(group_registers)
            counts[number] = (_insert_new(connection, _INTERVALS, interval_data[start_i:end_i])
                              + _insert_new(connection, _REGISTERS, register_data[start_r:end_r]))
            start_i, start_r = end_i, end_r
        return counts
    new_i = _insert_returning(connection, _INTERVALS, interval_data)
    new_r = _insert_returning(connection, _REGISTERS, register_data)
    for index in new_i:
        counts[owners_i[index]] += 1
    for index in new_r:
        counts[owners_r[index]] += 1
    if new_i or new_r:
        added_i = intervals if len(new_i) == len(intervals) else [intervals[i] for i in new_i]
        added_r = registers if len(new_r) == len(registers) else [registers[i] for i in new_r]
        stored.notify(connection, stored.StoredBatch(intervals=added_i, registers=added_r,
                                                     correlation_id=stored.current_correlation()))
    return counts


def meter_ids(bind: Bind, serials: Sequence[str]) -> dict[str, int]:
    """The database ids of the given serials (unknown serials are absent from the result)."""
    if not serials:
        return {}
    rows = bind.execute(select(Meter.serial, Meter.id).where(Meter.serial.in_(list(serials))))
    return {serial: ident for serial, ident in rows}
