"""Driver-level SQL for the hot paths: one string per statement, run on the DBAPI cursor in the caller's transaction.

A collection pass runs about ten statements per meter; building and compiling SQLAlchemy statements
for each cost more than the database work (``hes.db.readings`` measured it). The statements that
run per meter are therefore plain strings with ``?`` placeholders (``%s`` on PostgreSQL), kept in
the modules of ``hes/db/`` that own them, one string per statement. Times go in as ``UtcDateTime``
stores them (``to_db``) and come back aware UTC (``from_db``); driver errors come out as
SQLAlchemy's, so ``storage_errors`` gives them one line like every other database error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

__all__ = ["from_db", "from_db_date", "run", "run_many", "to_db"]

_PLACEHOLDERS: dict[tuple[str, str], str] = {}


def _statement(connection: Connection, statement: str) -> str:
    dialect = connection.dialect.name
    key = (dialect, statement)
    known = _PLACEHOLDERS.get(key)
    if known is None:
        known = _PLACEHOLDERS[key] = statement.replace("?", "%s") if dialect == "postgresql" else statement
    return known


@contextlib.contextmanager
def _driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def run(connection: Connection, statement: str, parameters: Sequence[Any] = ()) -> Any:
    """Run ``statement`` inside the connection's transaction; the DBAPI cursor, to fetch from."""
    sql = _statement(connection, statement)
    cursor = connection.connection.cursor()
    with _driver_errors(connection, sql):
        cursor.execute(sql, tuple(parameters))
    return cursor


def run_many(connection: Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """``run`` for many parameter rows: one executemany."""
    if not rows:
        return
    sql = _statement(connection, statement)
    with _driver_errors(connection, sql):
        connection.connection.cursor().executemany(sql, [tuple(row) for row in rows])


def to_db(connection: Connection, moment: datetime | None) -> Any:
    """An aware instant as ``UtcDateTime`` stores it: SQLite's DATETIME text of the UTC instant, else as is."""
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} given for a UTC column")
    utc = moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(" ", "microseconds") if connection.dialect.name == "sqlite" else utc


def from_db(value: Any) -> datetime | None:
    """A stored instant, aware UTC (SQLite hands back text)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def from_db_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
