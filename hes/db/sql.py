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

__all__ = ["driver_errors", "from_db", "from_db_date", "run", "run_many", "to_db"]

_PLACEHOLDERS: dict[tuple[str, str], str] = {}


def _statement(connection: Connection, statement: str) -> str:
    dialect = connection.dialect.name
    key = (dialect, statement)
    known = _PLACEHOLDERS.get(key)
    if known is None:
        known = _PLACEHOLDERS[key] = statement.replace("?", "%s") if dialect == "postgresql" else statement
    return known


@contextlib.contextmanager
def driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Driver errors of raw-cursor work as SQLAlchemy's (so ``storage_errors`` gives its one line, as for the rest)."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


def run(connection: Connection, statement: str, parameters: Sequence[Any] = ()) -> Any:
    """Run ``statement`` inside the connection's transaction; the DBAPI cursor, to fetch from."""
    sql = _statement(connection, statement)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, tuple(parameters))
    except connection.dialect.loaded_dbapi.Error as exc:  # driver_errors, inlined
        raise DBAPIError.instance(sql, None, exc, connection.dialect.loaded_dbapi.Error) from exc
    return cursor


def run_many(connection: Connection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """``run`` for many parameter rows: one executemany."""
    if not rows:
        return
    sql = _statement(connection, statement)
    with driver_errors(connection, sql):
        connection.connection.cursor().executemany(sql, [tuple(row) for row in rows])


#: SQLite's text of recent instants: a batch stores the same few instants (its "now", interval ends) many times.
_SQLITE_TEXT: dict[datetime, str] = {}
_SQLITE_TEXT_KEPT = 8192


def to_db(connection: Connection, moment: datetime | None) -> Any:
    """An aware instant as ``UtcDateTime`` stores it: SQLite's DATETIME text of the UTC instant, else as is."""
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} given for a UTC column")
    if connection.dialect.name != "sqlite":
        return moment.astimezone(UTC)
    text = _SQLITE_TEXT.get(moment)  # equal instants hash equal whatever their zone
    if text is None:
        if len(_SQLITE_TEXT) >= _SQLITE_TEXT_KEPT:
            _SQLITE_TEXT.clear()
        text = _SQLITE_TEXT[moment] = moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return text


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
