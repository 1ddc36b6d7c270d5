"""Invocation counters persisted before use: a reservation is committed before any counter of it is sent.

``reserve_counters`` moves the device's ``next`` forward by ``count`` in one transaction and
hands out the range it skipped over, so a process killed after reserving loses the unused
counters (the meter only requires them to increase) and can never send one twice. The move is
one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement, which takes the row lock on
PostgreSQL (the same lock ``SELECT ... FOR UPDATE`` would, without a second round trip) and
runs under SQLite's database write lock, so concurrent reservers get disjoint ranges.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hes.db.engine import storage_errors
from hes.db.models import InvocationCounter, utcnow
from hes.model import CounterReservation
from protocols.errors import SecurityError

__all__ = ["COUNTER_LIMIT", "CounterExhausted", "counter_state", "record_received", "reserve_counters"]

#: Invocation counters are 32-bit; the last usable one is 2**32 - 1.
COUNTER_LIMIT = 2**32

_TABLE = cast(Table, InvocationCounter.__table__)


class CounterExhausted(SecurityError):
    """The device's invocation counters are used up: new keys are needed, a retry cannot help."""


def _reserve(connection: Connection | Session, device: str, client_sap: int, count: int, minimum: int) -> tuple[
    int, int | None
]:
    table = _TABLE
    dialect = (connection.get_bind() if isinstance(connection, Session) else connection).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: Any = insert(table).values(
        device=device, client_sap=client_sap, next_counter=minimum + count, updated_at=utcnow()
    )
    current = table.c.next_counter
    # The stored next counter, or ``minimum`` when the caller knows the device is further on.
    start = case((current >= minimum, current), else_=minimum)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.device, table.c.client_sap],
        set_={"next_counter": start + count, "updated_at": statement.excluded.updated_at},
    ).returning(table.c.next_counter, table.c.last_received)
    limit, last = connection.execute(statement).one()
    return int(limit), None if last is None else int(last)


def reserve_counters(
    bind: Engine | Session, device: str, client_sap: int, count: int, *, minimum: int = 1
) -> CounterReservation:
    """Reserve ``count`` invocation counters for (device, client SAP), committed before this returns.

    ``device`` is a meter serial or a concentrator id. ``minimum`` skips forward when the caller
    learned the device is further on (e.g. from its security setup object). With a ``Session``,
    the session is committed: the reservation must be durable before its first counter is used.
    """
    if count < 1:
        raise ValueError(f"cannot reserve {count} counters")
    if isinstance(bind, Session):
        with storage_errors():
            limit, last = _reserve(bind, device, client_sap, count, minimum)
            bind.commit()
    else:
        with storage_errors(bind), bind.begin() as connection:
            limit, last = _reserve(connection, device, client_sap, count, minimum)
    if limit > COUNTER_LIMIT:
        raise CounterExhausted(f"invocation counters of {device} (client SAP {client_sap}) are used up: rekey it")
    return CounterReservation(start=limit - count, limit=limit, last_received=last)


def record_received(bind: Engine | Session, device: str, client_sap: int, counter: int) -> bool:
    """Record the counter of a frame accepted from the device; False when it is not above the last one."""
    table = _TABLE

    def run(connection: Connection | Session) -> bool:
        dialect = (connection.get_bind() if isinstance(connection, Session) else connection).dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement: Any = insert(table).values(
            device=device, client_sap=client_sap, next_counter=1, last_received=counter, updated_at=utcnow()
        )
        last = table.c.last_received
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.device, table.c.client_sap],
            set_={"last_received": counter, "updated_at": statement.excluded.updated_at},
            where=(last.is_(None)) | (last < counter),
        ).returning(table.c.last_received)
        return connection.execute(statement).first() is not None

    if isinstance(bind, Session):
        with storage_errors():
            accepted = run(bind)
            bind.commit()
        return accepted
    with storage_errors(bind), bind.begin() as connection:
        return run(connection)


def counter_state(bind: Engine | Session, device: str, client_sap: int) -> tuple[int, int | None] | None:
    """(next counter, last received) as stored, or None when the device has no row yet."""
    table = _TABLE
    query = select(table.c.next_counter, table.c.last_received).where(
        table.c.device == device, table.c.client_sap == client_sap
    )
    if isinstance(bind, Session):
        row = bind.execute(query).first()
    else:
        with storage_errors(bind), bind.connect() as connection:
            row = connection.execute(query).first()
    return None if row is None else (int(row[0]), None if row[1] is None else int(row[1]))
