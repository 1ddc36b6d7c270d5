"""What was just stored, told to listeners inside the storing transaction (the CIM outbox is one).

``hes.db.readings`` calls ``notify`` with the rows that were new in a store call, on the same
connection and so in the same transaction: a listener that writes (an outbox row) commits or rolls
back with the data it describes. ``hes/`` cannot import the packages built on it, so they register
themselves here (``add_listener``) when they are set up.

The correlation of stored data (the order or the plan run that produced it, CIM's CorrelationID)
is carried in a context variable: ``with correlation("run:42"): ...`` around the work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

if TYPE_CHECKING:
    from hes.db.readings import EventRow, IntervalRow, MissingInterval, RegisterRow

__all__ = [
    "StoredBatch",
    "StoreListener",
    "add_listener",
    "correlation",
    "current_correlation",
    "listeners",
    "notify",
    "remove_listener",
]


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """Rows that one store call added (never rows that were stored already), or intervals known to be missing.

    ``missing`` are the head-end's observation that intervals will never come (N2PLoad declared
    their gap lost): they have no row in ``interval_values``; CIM sends them without a value, with
    ReadingQuality 2.5.259.
    """

    intervals: Sequence[IntervalRow] = ()
    registers: Sequence[RegisterRow] = ()
    events: Sequence[EventRow] = ()
    #: The order number or plan run that produced them (None: not known, e.g. a maintenance script).
    correlation_id: str | None = None
    missing: Sequence[MissingInterval] = ()

    def __bool__(self) -> bool:
        return bool(self.intervals or self.registers or self.events or self.missing)


StoreListener = Callable[[Connection, StoredBatch], None]

_listeners: list[StoreListener] = []
_correlation: ContextVar[str | None] = ContextVar("hes_stored_correlation", default=None)


def add_listener(listener: StoreListener) -> None:
    """Call ``listener`` for every store that adds rows (idempotent: a listener is kept once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: StoreListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def listeners() -> tuple[StoreListener, ...]:
    return tuple(_listeners)


def current_correlation() -> str | None:
    return _correlation.get()


@contextlib.contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    """Stores made inside carry ``correlation_id``."""
    token = _correlation.set(correlation_id)
    try:
        yield
    finally:
        _correlation.reset(token)


def notify(connection: Connection, batch: StoredBatch) -> None:
    """Tell every listener about ``batch`` on ``connection`` (a listener's error aborts the transaction)."""
    if not batch:
        return
    for listener in _listeners:
        listener(connection, batch)
