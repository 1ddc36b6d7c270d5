"""``hes import BUNDLE``: verify a field bundle and store its readings like any other read, exactly once.

The bundle's MAC is checked with the bundle key of the key file export it names (kept by the
head-end, encrypted with the master key); a modified bundle, one from a key file this head-end did
not issue, or one holding data of a meter its key file was not made for is refused whole, before
anything is stored. The readings go through the idempotent ``hes.db.readings`` stores (so their
identities, and the listeners such as the CIM outbox, are those of every other read) inside
``hes.db.stored.correlation("import:<bundle id>")``, in one transaction with the record of the
import (``field_imports``), a "data received" lifecycle event per meter and an audit row. A
concentrator's own event log goes where its on-demand read puts it (``concentrator_events``, with
the MQTT messages of ``hes.events``); its meter table is kept in the import's record.
Importing the same bundle again finds its record and changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from hes.db.counters import record_received
from hes.db.engine import StorageError, session_factory, storage_errors
from hes.db.models import utcnow
from hes.db.orders import record_asset_event, record_audit
from hes.db.readings import (
    EventRow,
    IntervalRow,
    RegisterRow,
    meter_ids,
    store_events,
    store_intervals,
    store_registers,
)
from hes.db.stored import correlation
from hes.events.catalog import load_catalog
from hes.events.models import ConcentratorEvent
from hes.events.outbox import event_message, min_criticality, queue
from hes.probe.bundle import BundleError, LoadedBundle, load_bundle
from hes.probe.keys import bundle_key_aad
from hes.probe.models import FieldImport, FieldKeyExport
from hes.probe.read import DC_EVENT_LOG
from hes.registry import Registry

__all__ = ["ImportResult", "import_bundle", "parse_rows", "store_concentrator_events"]

_Row = TypeVar("_Row", IntervalRow, RegisterRow, EventRow)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the bundle's identity, its rows, and how many were new (all zero when ``already``)."""

    bundle_id: str
    export_id: str
    device_kind: str
    device_id: str
    partial: bool
    why: str | None
    already: bool
    imported_at: datetime
    meters: tuple[str, ...]
    intervals: int
    registers: int
    events: int
    new_intervals: int = 0
    new_registers: int = 0
    new_events: int = 0
    concentrator_events: int = 0
    new_concentrator_events: int = 0

    @property
    def new(self) -> int:
        return self.new_intervals + self.new_registers + self.new_events + self.new_concentrator_events

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle_id, "export": self.export_id, "device": {"kind": self.device_kind,
                                                                           "id": self.device_id},
            "partial": self.partial, "why": self.why, "already_imported": self.already,
            "imported_at": self.imported_at.isoformat(), "meters": list(self.meters),
            "rows": {"intervals": self.intervals, "registers": self.registers, "events": self.events},
            "new": {"intervals": self.new_intervals, "registers": self.new_registers, "events": self.new_events,
                    "concentrator_events": self.new_concentrator_events},
            "concentrator_events": self.concentrator_events,
        }


def _time(text: Any) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError(f"time {text!r} has no time zone")
    return moment


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_rows(record: Mapping[str, Any], meter_id: int) -> tuple[list[IntervalRow], list[RegisterRow], list[EventRow]]:
    """One meter's rows of a bundle, as ``hes.db.readings`` stores them (``ValueError``/``KeyError`` if malformed)."""
    intervals = [IntervalRow(meter_id, str(obis), int(attribute), _time(end), value, int(scaler), _optional_int(unit),
                             _optional_int(status), int(quality))
                 for obis, attribute, end, value, scaler, unit, status, quality in record["intervals"]]
    registers = [RegisterRow(meter_id, str(obis), _time(at), value, int(scaler), _optional_int(unit),
                             _optional_int(deviation))
                 for obis, at, value, scaler, unit, deviation in record["registers"]]
    events = [EventRow(meter_id, str(log), int(code), _time(at), None if name is None else str(name))
              for log, code, at, name in record["events"]]
    for obis, value in [(r.obis, r.value) for r in intervals] + [(r.obis, r.value) for r in registers]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"value {value!r} of {obis} is not a number")
    return intervals, registers, events


def _verified(registry: Registry, loaded: LoadedBundle) -> FieldKeyExport:
    with storage_errors(registry.engine), session_factory(registry.engine)() as session:
        export = session.get(FieldKeyExport, loaded.export_id)
    if export is None:
        raise BundleError(f"bundle {loaded.path} was made with key file export {loaded.export_id}, which this "
                          "head-end did not issue: refused, nothing stored")
    key = registry.master_key.decrypt(export.bundle_key_enc, bundle_key_aad(export.export_id))
    loaded.verify(key)
    return export


def import_bundle(registry: Registry, path: str | os.PathLike[str], *, who: str = "system",
                  clock: Callable[[], datetime] = utcnow) -> ImportResult:
    """Verify and store the bundle at ``path`` (see the module docstring); ``BundleError`` refuses it whole."""
    loaded = load_bundle(path)
    export = _verified(registry, loaded)
    payload = loaded.payload
    try:
        device = payload["device"]
        kind, ident = str(device["kind"]), str(device["id"])
        records = list(payload["meters"])
        serials = [str(r["serial"]) for r in records]
        partial, why = bool(payload["partial"]), payload.get("why")
        started, finished = _time(payload["started_at"]), _time(payload["finished_at"])
        tool = f"{payload['tool']['name']} {payload['tool']['version']}"[:64]
        # Counted and checked before the transaction: a malformed row refuses the bundle whole.
        parsed = {serial: parse_rows(record, 0) for serial, record in zip(serials, records)}
        dc_events = [(_time(at), int(code)) for at, code in (payload.get("concentrator") or {}).get("events") or []
                     if at is not None and code is not None]
        floors = [(device, int(record["client_sap"]), int(record["last_received"]))
                  for device, record in [*zip(serials, records), (ident, payload.get("concentrator") or {})]
                  if record.get("last_received") is not None]
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"bundle {loaded.path} is malformed ({type(exc).__name__}: {exc}): refused, "
                          "nothing stored") from None
    strangers = [s for s in [*serials, ident] if s not in export.devices]
    if strangers:
        raise BundleError(f"bundle {loaded.path} holds data of {', '.join(strangers)}, for which its key file "
                          f"{export.export_id} was not issued: refused, nothing stored")
    counts = [sum(len(rows[i]) for rows in parsed.values()) for i in range(3)]

    def result(already: bool, when: datetime, new: tuple[int, int, int, int] = (0, 0, 0, 0)) -> ImportResult:
        return ImportResult(loaded.bundle_id, loaded.export_id, kind, ident, partial, why, already, when,
                            tuple(serials), counts[0], counts[1], counts[2], new[0], new[1], new[2], len(dc_events),
                            new[3])

    now = clock()

    def store() -> tuple[int, int, int, int] | datetime:
        """The new rows per kind, or when the bundle was imported before (nothing stored then)."""
        with storage_errors(registry.engine), session_factory(registry.engine)() as session, session.begin():
            earlier = session.get(FieldImport, loaded.bundle_id)
            if earlier is not None:
                return earlier.imported_at
            ids = meter_ids(session, serials)
            missing = [s for s in serials if s not in ids]
            if missing:
                raise BundleError(f"meters {', '.join(missing)} of bundle {loaded.path} are not registered: register "
                                  "them (hes registry import), then import again; nothing stored")
            # The record first: a second import of the same bundle running at the same time waits on its key.
            row = FieldImport(
                bundle_id=loaded.bundle_id, export_id=export.export_id, device_kind=kind, device_id=ident,
                sha256=loaded.sha256, partial=partial, read_started_at=started, read_finished_at=finished, tool=tool,
                imported_at=now, imported_by=who, intervals=counts[0], registers=counts[1], events=counts[2],
                new_intervals=0, new_registers=0, new_events=0, concentrator_events=len(dc_events),
                new_concentrator_events=0,
                detail={"why": why, "concentrator": payload.get("concentrator"),
                        "observations": {r["serial"]: r.get("observations", []) for r in records},
                        "failed": {r["serial"]: r.get("failed", {}) for r in records}},
            )
            session.add(row)
            session.flush()
            new = [0, 0, 0]
            with correlation(f"import:{loaded.bundle_id}"):
                for serial, (intervals, registers, events) in parsed.items():
                    meter = ids[serial]
                    added = (
                        store_intervals(session, [_with_meter(r, meter) for r in intervals]),
                        store_registers(session, [_with_meter(r, meter) for r in registers]),
                        store_events(session, [_with_meter(r, meter) for r in events]),
                    )
                    for i in range(3):
                        new[i] += added[i]
                    record_asset_event(session, meter, "data received",
                                       f"field import {loaded.bundle_id} ({kind} {ident}): "
                                       f"{sum(len(r) for r in parsed[serial])} values, {sum(added)} new", when=now)
                new.append(store_concentrator_events(session.connection(), ident, dc_events))
            row.new_intervals, row.new_registers, row.new_events, row.new_concentrator_events = new
            record_audit(session, who, f"import {os.fspath(loaded.path)} bundle {loaded.bundle_id} ({kind} {ident})",
                         f"OK{' (partial)' if partial else ''}: {sum(counts)} rows, {sum(new)} new", when=now)
        return new[0], new[1], new[2], new[3]

    try:
        outcome = store()
        # The server counters the probe accepted: the head-end's replay floor for the device moves up to them.
        for device, client_sap, last in floors:
            record_received(registry.engine, device, client_sap, last)
    except StorageError:
        # Another import of the same bundle committed first (its key refused ours): that one stored it.
        with storage_errors(registry.engine), session_factory(registry.engine)() as session:
            earlier = session.get(FieldImport, loaded.bundle_id)
        if earlier is None:
            raise
        outcome = earlier.imported_at
    if isinstance(outcome, datetime):
        return result(True, outcome)
    return result(False, now, outcome)


def store_concentrator_events(connection: Connection, concentrator: str,
                              events: Sequence[tuple[datetime, int]]) -> int:
    """Store a concentrator's own log entries as its on-demand read does (``hes.events.concentrator``): named by
    the event table, once each on (DC, log, code, time), MQTT messages queued at or above the threshold."""
    if not events:
        return 0
    catalog = load_catalog()
    graded = [(at, code, catalog.lookup("concentrator", code)) for at, code in events]
    now = utcnow()
    values = [{"concentrator_id": concentrator, "log_obis": str(DC_EVENT_LOG), "event_code": code, "event_time": at,
               "name": definition.name, "collected_at": now} for at, code, definition in graded]
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    table = cast(Table, ConcentratorEvent.__table__)
    stored = len(connection.execute(insert(table).values(values).on_conflict_do_nothing()
                                    .returning(table.c.event_code)).all())
    threshold = min_criticality()
    queue(connection, [event_message(definition, concentrator, concentrator, str(DC_EVENT_LOG), at, source="import",
                                     device="concentrator")
                       for at, _code, definition in graded if definition.criticality >= threshold])
    return stored


def _with_meter(row: _Row, meter_id: int) -> _Row:
    # The rows were parsed before the meter ids were known (to refuse a malformed bundle early).
    return row._replace(meter_id=meter_id) if isinstance(row, tuple) else replace(row, meter_id=meter_id)
