"""The concentrator's own event log (its management logical device), read on demand and stored once each.

``read_concentrator_events(registry, dc_id, start=..., end=...)`` associates with the DC itself
(its wPort and client SAP, its own security and invocation counters), reads the event log
0.0.99.98.0.255 for [start, end] by clock range, names each entry from the event table's
``concentrator`` log, stores it in ``concentrator_events`` (identity: DC, log, code, time) and
queues the MQTT messages of those at or above the threshold in the same transaction. The read is
audited with its user; the DC's reachability is recorded like any contact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from hes.db.counters import record_received, reserve_counters
from hes.db.engine import session_factory, storage_errors
from hes.db.models import Concentrator, utcnow
from hes.db.orders import record_audit
from hes.events.catalog import Criticality, EventDefinition, load_catalog
from hes.events.models import ConcentratorEvent
from hes.events.outbox import event_message, min_criticality, queue
from hes.keys import secret_aad
from hes.model import CounterReservation, DirectRoute, MeterSecurity, MeterTarget
from hes.registry import Registry, UnknownConcentrator
from hes.session import Timeouts, open_session
from protocols.axdr import Data, DataTag
from protocols.cosem import CaptureObjectDefinition, ProfileColumn, parse_profile_buffer
from protocols.cosem.profile import ColumnRole
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, DlmsError, ProtocolError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import RangeDescriptor

__all__ = [
    "DC_EVENT_LOG",
    "ConcentratorEventsError",
    "ConcentratorEventsResult",
    "DcEventValue",
    "read_concentrator_events",
]

logger = logging.getLogger(__name__)


class ConcentratorEventsError(DlmsError):
    """The read was asked for wrongly (an empty range): fix the call."""

DC_EVENT_LOG = ObisCode(0, 0, 99, 98, 0, 255)
_CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
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
    """The entries read from [start, end] and how many were new to the database."""

    concentrator: str
    start: datetime
    end: datetime
    events: tuple[DcEventValue, ...]
    stored: int

    def to_json(self) -> dict[str, Any]:
        return {"concentrator": self.concentrator, "from": _iso(self.start), "to": _iso(self.end),
                "stored": self.stored, "events": [e.to_json() for e in self.events]}


def _target(registry: Registry, ident: str) -> tuple[MeterTarget, str]:
    key = registry.master_key
    with storage_errors(registry.engine), session_factory(registry.engine)() as session:
        row = session.get(Concentrator, ident)
        if row is None:
            raise UnknownConcentrator(ident)
        security = MeterSecurity(
            policy=cast(Any, row.security_policy),
            password=key.decrypt_optional(row.password_enc, secret_aad("concentrator", ident, "password")),
            system_title=row.system_title,
            ek=key.decrypt_optional(row.ek_enc, secret_aad("concentrator", ident, "ek")),
            ak=key.decrypt_optional(row.ak_enc, secret_aad("concentrator", ident, "ak")),
        )
        route = DirectRoute(host=row.host, port=row.port, interface="wrapper", client_sap=row.client_sap,
                            server_sap=row.wport)
        return MeterTarget(serial=ident, route=route, security=security, client_sap=row.client_sap), \
            row.security_policy


def _range_value(moment: datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(moment.astimezone(UTC), deviation=0).encode())


def _store(connection: Any, ident: str, rows: list[tuple[DcEventValue, EventDefinition]]) -> int:
    if not rows:
        return 0
    now = utcnow()
    values = [{"concentrator_id": ident, "log_obis": str(DC_EVENT_LOG), "event_code": e.code, "event_time": e.time,
               "name": e.name, "collected_at": now} for e, _ in rows]
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(_TABLE).values(values).on_conflict_do_nothing().returning(_TABLE.c.event_code)
    return len(connection.execute(statement).all())


async def read_concentrator_events(
    registry: Registry,
    ident: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    requested_by: str,
    timeouts: Timeouts | None = None,
) -> ConcentratorEventsResult:
    """Read, store and return the DC's own events of [start, end] (default: the last day); typed errors."""
    end = (end or utcnow()).astimezone(UTC)
    start = (start or end - _DEFAULT_SPAN).astimezone(UTC)
    if start >= end:
        raise ConcentratorEventsError(f"the range is empty: from {_iso(start)} is not before to {_iso(end)}")
    target, policy = _target(registry, ident)
    reservation = (reserve_counters(registry.engine, ident, target.client_sap, _COUNTERS) if policy == "hls-gmac"
                   else CounterReservation(start=1, limit=2**32))
    catalog = load_catalog()
    what = f"concentrator events {ident} {_iso(start)}..{_iso(end)}"
    received: int | None = None
    try:
        async with open_session(target, reservation, timeouts=timeouts) as session:
            try:
                capture = await session.get(7, DC_EVENT_LOG, 3)
                if capture.tag != DataTag.ARRAY or not isinstance(capture.value, list | tuple):
                    raise DecodeError(f"{DC_EVENT_LOG} capture objects: expected an array")
                definitions = [CaptureObjectDefinition.from_data(item) for item in capture.value]
                clocks = [d for d in definitions if d.class_id == 8 and d.attribute_index == 2]
                if not clocks:
                    raise ProtocolError(f"concentrator {ident}: its event log captures no clock")
                raw = await session.get_raw(7, DC_EVENT_LOG, 2,
                                            RangeDescriptor(clocks[0], _range_value(start), _range_value(end)))
            finally:
                received = session.last_received
    except DlmsError as exc:
        registry.set_concentrator_contact(ident, False)
        with storage_errors(registry.engine), session_factory(registry.engine)() as s, s.begin():
            record_audit(s, requested_by, what, f"FAIL: {exc}")
        raise
    finally:
        if received is not None and policy == "hls-gmac":
            record_received(registry.engine, ident, target.client_sap, received)
    registry.set_concentrator_contact(ident, True)
    columns = [replace(ProfileColumn.of(d), scaler_unit=None) for d in definitions]
    codes = [i for i, c in enumerate(columns) if c.role is ColumnRole.VALUE]
    if not codes:
        raise ProtocolError(f"concentrator {ident}: its event log captures no event code")
    found: list[tuple[DcEventValue, EventDefinition]] = []
    for row in parse_profile_buffer(raw, columns, None):
        code = row.values[codes[0]]
        if row.time is None or not isinstance(code, int) or isinstance(code, bool):
            continue
        definition = catalog.lookup("concentrator", code)
        found.append((DcEventValue(row.time.astimezone(UTC), code, definition.name, definition.criticality),
                      definition))
    threshold = min_criticality()
    with storage_errors(registry.engine), session_factory(registry.engine)() as s, s.begin():
        connection = s.connection()
        stored = _store(connection, ident, found)
        queue(connection, [event_message(d, ident, ident, str(DC_EVENT_LOG), e.time, source="read",
                                         device="concentrator") for e, d in found if d.criticality >= threshold])
        record_audit(s, requested_by, what, f"EXE: {len(found)} events, {stored} new")
    return ConcentratorEventsResult(ident, start, end, tuple(e for e, _ in found), stored)
