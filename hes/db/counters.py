"""Invocation counters persisted before use: a reservation is committed before any counter of it is sent.

``reserve`` moves the device's ``next`` forward by ``count`` and hands out the range it skipped
over, so a process killed after reserving loses the unused counters (the meter only requires them
to increase) and can never send one twice. The move is one ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` statement, which takes the row lock on PostgreSQL (the same lock ``SELECT ... FOR
UPDATE`` would, without a second round trip) and runs under SQLite's database write lock, so
concurrent reservers get disjoint ranges. ``record_received`` keeps the highest counter accepted
from the device (its replay floor), never lowering it.

Whose counters a session uses is ``concentrator.keys``'s rule (``CounterKeys``): ``reserve_for``
reserves on the sequence sent and reads the replay floor of the device received from. Every
path (on-demand reads, commands, N2PLoad, a DC's own orders, the field tool's key export) reserves
through the one statement here, in its own transaction (``reserve_counters``) or in the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from concentrator.keys import CounterKeys
from hes.db.engine import storage_errors
from hes.db.models import utcnow
from hes.db.sql import run, run_many, to_db
from hes.errors import HesError
from hes.model import CounterReservation

__all__ = [
    "COUNTER_LIMIT",
    "CounterExhausted",
    "counter_state",
    "record_received",
    "record_received_many",
    "reserve",
    "reserve_counters",
    "reserve_for",
]

#: Invocation counters are 32-bit; the last usable one is 2**32 - 1.
COUNTER_LIMIT = 2**32

_RESERVE_SQL = (
    "INSERT INTO invocation_counters (device, client_sap, next_counter, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (device, client_sap) DO UPDATE SET next_counter = CASE WHEN invocation_counters.next_counter >= ? "
    "THEN invocation_counters.next_counter ELSE ? END + ?, updated_at = excluded.updated_at "
    "RETURNING next_counter, last_received"
)
# The range goes back when it would pass the limit: the caller's transaction may be shared and commit.
_UNRESERVE_SQL = "UPDATE invocation_counters SET next_counter = next_counter - ? WHERE device = ? AND client_sap = ?"
_RECEIVED_SQL = (
    "INSERT INTO invocation_counters (device, client_sap, next_counter, last_received, updated_at) "
    "VALUES (?, ?, 1, ?, ?) ON CONFLICT (device, client_sap) DO UPDATE SET last_received = excluded.last_received, "
    "updated_at = excluded.updated_at WHERE invocation_counters.last_received IS NULL "
    "OR invocation_counters.last_received < excluded.last_received"
)
_STATE_SQL = "SELECT next_counter, last_received FROM invocation_counters WHERE device = ? AND client_sap = ?"
# A DC's logical device: the DC's sequence moved and the logical device's replay floor read, in one statement.
_RESERVE_SHARED_SQL = _RESERVE_SQL.replace(
    "RETURNING next_counter, last_received",
    "RETURNING next_counter, (SELECT floor.last_received FROM invocation_counters AS floor "
    "WHERE floor.device = ? AND floor.client_sap = ?)")


class CounterExhausted(HesError):
    """The device's invocation counters are used up: new keys are needed, a retry cannot help."""


def reserve(connection: Connection, device: str, client_sap: int, count: int, at: datetime, *,
            minimum: int = 1, floor_of: str | None = None) -> CounterReservation:
    """Reserve ``count`` counters of (device, client SAP) in the caller's transaction (it must commit before use).

    ``minimum`` skips forward when the caller learned the device is further on (e.g. from its
    security setup object). ``last_received`` is that device's replay floor, or ``floor_of``'s
    (the device answering on this sequence, e.g. a DC's logical device) when given.
    """
    if count < 1:
        raise ValueError(f"cannot reserve {count} counters")
    values: tuple[Any, ...] = (device, client_sap, minimum + count, to_db(connection, at), minimum, minimum, count)
    if floor_of is None:
        limit, last = run(connection, _RESERVE_SQL, values).fetchone()
    else:
        limit, last = run(connection, _RESERVE_SHARED_SQL, (*values, floor_of, client_sap)).fetchone()
    if int(limit) > COUNTER_LIMIT:
        run(connection, _UNRESERVE_SQL, (count, device, client_sap))
        raise CounterExhausted(f"invocation counters of {device} (client SAP {client_sap}) are used up: rekey it")
    return CounterReservation(start=int(limit) - count, limit=int(limit),
                              last_received=None if last is None else int(last))


def reserve_for(connection: Connection, keys: CounterKeys, count: int, at: datetime) -> CounterReservation:
    """Counters for a session by its ``CounterKeys``: from the sequence sent, with the replay floor of the device
    received from (a DC's logical device keeps its own)."""
    return reserve(connection, keys.sent_device, keys.client_sap, count, at,
                   floor_of=keys.received_device if keys.shared_sequence else None)


def _connection(bind: Session) -> Connection:
    return bind.connection()


def reserve_counters(bind: Engine | Session, device: str, client_sap: int, count: int, *,
                     minimum: int = 1) -> CounterReservation:
    """``reserve`` in a transaction of its own, committed before this returns (with a ``Session``: it is committed)."""
    if count < 1:
        raise ValueError(f"cannot reserve {count} counters")
    if isinstance(bind, Session):
        with storage_errors():
            reservation = reserve(_connection(bind), device, client_sap, count, utcnow(), minimum=minimum)
            bind.commit()
        return reservation
    with storage_errors(bind), bind.begin() as connection:
        return reserve(connection, device, client_sap, count, utcnow(), minimum=minimum)


def record_received_many(connection: Connection, rows: Sequence[tuple[str, int, int, datetime]]) -> None:
    """Keep (device, client SAP, counter, when) as each device's replay floor, in the caller's transaction."""
    run_many(connection, _RECEIVED_SQL, [(device, sap, counter, to_db(connection, at))
                                         for device, sap, counter, at in rows])


def record_received(bind: Engine | Session | Connection, device: str, client_sap: int, counter: int) -> bool:
    """Record the counter of a frame accepted from the device; False when it is not above the last one."""

    def one(connection: Connection) -> bool:
        cursor = run(connection, _RECEIVED_SQL, (device, client_sap, counter, to_db(connection, utcnow())))
        return bool(cursor.rowcount)

    if isinstance(bind, Connection):
        return one(bind)
    if isinstance(bind, Session):
        with storage_errors():
            accepted = one(_connection(bind))
            bind.commit()
        return accepted
    with storage_errors(bind), bind.begin() as connection:
        return one(connection)


def counter_state(bind: Engine | Session | Connection, device: str, client_sap: int) -> tuple[int, int | None] | None:
    """(next counter, last received) as stored, or None when the device has no row yet."""

    def read(connection: Connection) -> Any:
        return run(connection, _STATE_SQL, (device, client_sap)).fetchone()

    if isinstance(bind, Connection):
        row = read(bind)
    elif isinstance(bind, Session):
        row = read(_connection(bind))
    else:
        with storage_errors(bind), bind.connect() as connection:
            row = read(connection)
    return None if row is None else (int(row[0]), None if row[1] is None else int(row[1]))
