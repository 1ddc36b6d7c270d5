"""``hes export cim``: the stored readings and events of a time range as CIM XML files and a CSV, for manual transfer.

The messages are built by the same code as the outbox's (``cim.outbox.cim_values`` and
``build_messages``: same tables, same cut, same validation-ready XML), from what the HES database
holds for [from, to]: intervals whose END lies in (from, to], registers and daily closures captured
in [from, to], events stamped in [from, to]. Their CorrelationID is ``export:FROM/TO``, so the
MessageIDs are stable for the same range and data; delivered into the legacy database besides the
outbox's messages, the readings stay once (the legacy tables are keyed by identity).

Files: ``<Noun>-<MessageID>.xml`` per message, and ``readings.csv`` with one row per value carried
(message_id, kind, meter, code, time, value, qualities): a kWh value exactly as in the XML.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from cim.legacy import parse_message
from cim.messages import CimError, CimMessage
from cim.outbox import OutboxConfig, build_messages, cim_values
from hes.db.engine import storage_errors
from hes.db.models import EventRecord, IntervalValue, Meter, RegisterReading
from hes.db.readings import EventRow, IntervalRow, RegisterRow

__all__ = ["CSV_COLUMNS", "CSV_NAME", "ExportError", "ExportResult", "ExportWriteError", "export_cim"]

CSV_NAME = "readings.csv"
CSV_COLUMNS = ("message_id", "kind", "meter", "code", "time", "value", "qualities")


class ExportError(CimError):
    """An export asked for wrongly (range, meters, output folder)."""


class ExportWriteError(ExportError):
    """The files could not be written (disk full, no permission): the export failed, the request was fine."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote."""

    messages: tuple[CimMessage, ...]
    files: tuple[Path, ...]
    csv: Path
    values: int

    def to_json(self) -> dict[str, Any]:
        return {"messages": len(self.messages), "files": [str(f) for f in self.files], "csv": str(self.csv),
                "values": self.values, "message_ids": [m.message_id for m in self.messages]}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _rows(engine: Engine, start: datetime, end: datetime, serials: Sequence[str] | None
          ) -> tuple[list[IntervalRow], list[RegisterRow], list[EventRow]]:
    with storage_errors(engine), engine.connect() as connection:
        ids: list[int] | None = None
        if serials is not None:
            query = select(Meter.serial, Meter.id).where(Meter.serial.in_(list(serials)))
            found = {serial: ident for serial, ident in connection.execute(query)}
            unknown = sorted(set(serials) - set(found))
            if unknown:
                raise ExportError(f"unknown meter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
            ids = list(found.values())
        iv, rg, ev = IntervalValue, RegisterReading, EventRecord
        q_iv = select(iv.meter_id, iv.obis, iv.attribute, iv.interval_end, iv.value, iv.scaler, iv.unit, iv.status,
                      iv.quality).where(iv.interval_end > start, iv.interval_end <= end)
        q_rg = select(rg.meter_id, rg.obis, rg.capture_time, rg.value, rg.scaler, rg.unit,
                      rg.deviation_minutes).where(rg.capture_time >= start, rg.capture_time <= end)
        q_ev = select(ev.meter_id, ev.log_obis, ev.event_code, ev.event_time, ev.name).where(
            ev.event_time >= start, ev.event_time <= end)
        if ids is not None:
            q_iv, q_rg, q_ev = q_iv.where(iv.meter_id.in_(ids)), q_rg.where(rg.meter_id.in_(ids)), \
                q_ev.where(ev.meter_id.in_(ids))
        intervals = [IntervalRow(*row) for row in connection.execute(q_iv)]
        registers = [RegisterRow(*row) for row in connection.execute(q_rg)]
        events = [EventRow(*row) for row in connection.execute(q_ev)]
        return intervals, registers, events


def export_cim(engine: Engine, start: datetime, end: datetime, out: Path, *, meters: Sequence[str] | None = None,
               outbox: OutboxConfig, now: datetime) -> ExportResult:
    """Write the CIM messages of [start, end] (all meters, or ``meters``) and ``readings.csv`` into ``out``."""
    for name, moment in (("--from", start), ("--to", end)):
        if moment.utcoffset() is None:
            raise ExportError(f"{name} {moment.isoformat()} needs a time zone (e.g. Z)")
    if start >= end:
        raise ExportError(f"the range is empty: --from {_iso(start)} is not before --to {_iso(end)}")
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder")
    intervals, registers, events = _rows(engine, start, end, meters)
    with storage_errors(engine), engine.connect() as connection:
        values = cim_values(connection, intervals, registers, events, outbox.tables)
    messages = build_messages(*values, outbox, f"export:{_iso(start)}/{_iso(end)}", now)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        count = 0
        with (out / CSV_NAME).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for message in messages:
                path = out / f"{message.noun}-{message.message_id}.xml"
                path.write_bytes(message.xml)
                files.append(path)
                # The CSV is read back from the XML: it says what the files carry, nothing else.
                parsed = parse_message(message.xml)
                for row in parsed.intervals:
                    writer.writerow((message.message_id, "interval", row["meter"], row["reading_type"],
                                     _iso(row["interval_end"]), "" if row["value"] is None else row["value"],
                                     row["qualities"] or ""))
                for row in parsed.readings:
                    writer.writerow((message.message_id, "reading", row["meter"], row["reading_type"],
                                     _iso(row["reading_time"]), row["value"], row["qualities"] or ""))
                for row in parsed.events:
                    writer.writerow((message.message_id, "event", row["meter"], row["event_type"],
                                     _iso(row["event_time"]), row["event_code"] if row["event_code"] is not None
                                     else "", ""))
                count += parsed.rows
    except OSError as exc:
        raise ExportWriteError(f"cannot write into {out}: {exc}") from None
    return ExportResult(tuple(messages), tuple(files), out / CSV_NAME, count)
