"""The concentrator's own event log (its management logical device), read on demand and stored once each.

``read_concentrator_events(registry, dc_id, start=..., end=...)`` is an order of the one order
runner (``hes.runner``) on the DC itself: its management logical device, with its own security
and invocation counters, through its session budget. It reads the event log 0.0.99.98.0.255 for
[start, end] by clock range (the one profile reader), names each entry from the event table's
``concentrator`` log, stores it in ``concentrator_events`` (identity: DC, log, code, time) and
queues the MQTT messages of those at or above the threshold, in the order's transaction. The order
is audited with its user; the DC's reachability and, when due, its clock are recorded like at any
contact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hes.errors import HesError
from hes.events.catalog import Criticality, EventDefinition, load_catalog
from hes.events.models import ConcentratorEvent
from hes.events.outbox import event_message, min_criticality, queue
from hes.profiles import read_profile
from hes.registry import Registry
from hes.runner import Finish, Job, Observations, OrderRunner
from hes.session import MeterSession, Timeouts
from protocols.cosem.profile import ColumnRole
from protocols.errors import ProtocolError
from protocols.obis import ObisCode

__all__ = [
    "DC_EVENT_LOG",
    "ConcentratorEventsError",
    "ConcentratorEventsResult",
    "DcEventValue",
    "events_job",
    "read_concentrator_events",
]

logger = logging.getLogger(__name__)


class ConcentratorEventsError(HesError):
    """The read was asked for wrongly (an empty range): fix the call."""


DC_EVENT_LOG = ObisCode(0, 0, 99, 98, 0, 255)
_TABLE = cast(Table, ConcentratorEvent.__table__)
_COUNTERS = 24
_DEFAULT_SPAN = timedelta(days=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DcEventValue:
    """One entry of the DC's log as read: time (UTC), code, name, criticality."""

    time: datetime
    code: int
    name: str
    criticality: Criticality

    def to_json(self) -> dict[str, Any]:
        return {"time": _iso(self.time), "code": self.code, "name": self.name, "criticality": self.criticality.label}


@dataclass(frozen=True, slots=True)
class ConcentratorEventsResult:
    """The order that read the entries of [start, end]: its number and result, the entries, how many were new."""

    concentrator: str
    start: datetime
    end: datetime
    events: tuple[DcEventValue, ...]
    stored: int
    order_number: str = ""
    state: str = "EXE"
    reason: str | None = None
    observations: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state != "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {"concentrator": self.concentrator, "order": self.order_number, "state": self.state,
                "reason": self.reason, "observations": list(self.observations), "from": _iso(self.start),
                "to": _iso(self.end), "stored": self.stored, "events": [e.to_json() for e in self.events]}


def _store(connection: Any, ident: str, rows: list[tuple[DcEventValue, EventDefinition]], now: datetime) -> int:
    if not rows:
        return 0
    values = [{"concentrator_id": ident, "log_obis": str(DC_EVENT_LOG), "event_code": e.code, "event_time": e.time,
               "name": e.name, "collected_at": now} for e, _ in rows]
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(_TABLE).values(values).on_conflict_do_nothing().returning(_TABLE.c.event_code)
    return len(connection.execute(statement).all())


def events_job(ident: str, start: datetime, end: datetime) -> Job[list[tuple[DcEventValue, EventDefinition]]]:
    """The order that reads the DC's log of [start, end] and stores it (see the module docstring)."""
    catalog = load_catalog()

    async def body(session: MeterSession, observations: Observations) -> list[tuple[DcEventValue, EventDefinition]]:
        read = await read_profile(session, DC_EVENT_LOG, start, end, exclusive_start=False, scalers=False)
        codes = [i for i, c in enumerate(read.shape.columns) if c.role is ColumnRole.VALUE]
        if not codes:
            raise ProtocolError(f"concentrator {ident}: its event log captures no event code")
        found: list[tuple[DcEventValue, EventDefinition]] = []
        for row in read.rows:
            code = row.values[codes[0]]
            if row.time is None or not isinstance(code, int) or isinstance(code, bool):
                observations.append("partial data: an event without time or code skipped")
                continue
            definition = catalog.lookup("concentrator", code)
            found.append((DcEventValue(row.time.astimezone(UTC), code, definition.name, definition.criticality),
                          definition))
        return found

    def store(db: Session, finish: Finish, found: list[tuple[DcEventValue, EventDefinition]]) -> tuple[int, str]:
        connection = db.connection()
        stored = _store(connection, ident, found, finish.now)
        threshold = min_criticality()
        queue(connection, [event_message(d, ident, ident, str(DC_EVENT_LOG), e.time, source="read",
                                         device="concentrator") for e, d in found if d.criticality >= threshold])
        return stored, f"{len(found)} events, {stored} new"

    return Job(ident, "concentrator events", body, _COUNTERS, concentrator=True,
               parameters={"from": _iso(start), "to": _iso(end),
                           "described": f"concentrator events {ident} {_iso(start)}..{_iso(end)}"},
               store=store, check_dc_clock=True)


async def read_concentrator_events(
    registry: Registry,
    ident: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    requested_by: str,
    timeouts: Timeouts | None = None,
    runner: OrderRunner | None = None,
) -> ConcentratorEventsResult:
    """Read, store and return the DC's own events of [start, end] (default: the last day up to the runner's clock).

    An order of the one order runner (its number in the result, EXE/WARN/FAIL with the reason);
    ``ConcentratorEventsError`` for an empty range.
    """
    runner = runner or OrderRunner(registry, requested_by=requested_by, timeouts=timeouts)
    end = (end or runner.clock()).astimezone(UTC)
    start = (start or end - _DEFAULT_SPAN).astimezone(UTC)
    if start >= end:
        raise ConcentratorEventsError(f"the range is empty: from {_iso(start)} is not before to {_iso(end)}")
    result = await runner.run(events_job(ident, start, end), requested_by=requested_by)
    found = result.result or []
    return ConcentratorEventsResult(ident, start, end, tuple(e for e, _ in found), result.stored, result.order_number,
                                    result.state, result.reason, result.observations)
