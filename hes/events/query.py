"""Stored events as operators look at them: newest first, named and graded by the event table, filtered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from hes.db.engine import storage_errors
from hes.db.models import EventRecord, Meter
from hes.events.catalog import Catalog, Criticality, load_catalog
from hes.events.models import ConcentratorEvent

__all__ = ["StoredEvent", "list_events"]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event: the device (meter serial or DC id), its DC, log, code, time, name and criticality."""

    device: str
    concentrator: str | None
    kind: str  # meter or concentrator
    log: str
    log_obis: str
    code: int
    time: datetime
    name: str
    criticality: Criticality
    collected_at: datetime

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime) -> str:
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

        return {"device": self.device, "concentrator": self.concentrator, "kind": self.kind, "log": self.log,
                "log_obis": self.log_obis, "code": self.code, "time": iso(self.time), "name": self.name,
                "criticality": self.criticality.label, "collected_at": iso(self.collected_at)}


def list_events(engine: Engine, *, serial: str | None = None, concentrator: str | None = None,
                since: datetime | None = None, min_criticality: Criticality = Criticality.INFO, limit: int = 100,
                catalog: Catalog | None = None) -> list[StoredEvent]:
    """Up to ``limit`` events, newest first: a meter's (``serial``), a DC's and its meters' (``concentrator``), or all.

    The criticality filter applies after the query (criticality lives in the event table, not in
    the rows), so the database is asked for more rows than ``limit`` when a filter is set.
    """
    catalog = catalog or load_catalog()
    fetch = limit if min_criticality is Criticality.INFO else limit * 20
    found: list[StoredEvent] = []
    with storage_errors(engine), engine.connect() as connection:
        query = (select(Meter.serial, Meter.concentrator_id, EventRecord.log_obis, EventRecord.event_code,
                        EventRecord.event_time, EventRecord.name, EventRecord.collected_at)
                 .join(Meter, Meter.id == EventRecord.meter_id)
                 .order_by(EventRecord.event_time.desc()).limit(fetch))
        if serial is not None:
            query = query.where(Meter.serial == serial)
        if concentrator is not None:
            query = query.where(Meter.concentrator_id == concentrator)
        if since is not None:
            query = query.where(EventRecord.event_time >= since)
        for device, dc, log_obis, code, when, name, collected in connection.execute(query):
            definition = catalog.lookup_obis(log_obis, code)
            found.append(StoredEvent(device, dc, "meter", definition.log, log_obis, code, when,
                                     name or definition.name, definition.criticality, collected))
        if serial is None:
            dc_query = (select(ConcentratorEvent).order_by(ConcentratorEvent.event_time.desc()).limit(fetch))
            if concentrator is not None:
                dc_query = dc_query.where(ConcentratorEvent.concentrator_id == concentrator)
            if since is not None:
                dc_query = dc_query.where(ConcentratorEvent.event_time >= since)
            for row in connection.execute(dc_query).mappings():
                definition = catalog.lookup("concentrator", row["event_code"])
                found.append(StoredEvent(row["concentrator_id"], row["concentrator_id"], "concentrator", "concentrator",
                                         row["log_obis"], row["event_code"], row["event_time"],
                                         row["name"] or definition.name, definition.criticality, row["collected_at"]))
    found = [e for e in found if e.criticality >= min_criticality]
    found.sort(key=lambda e: (e.time, e.device, e.code), reverse=True)
    return found[:limit]
