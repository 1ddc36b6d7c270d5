"""The CIM outbox: readings and events stored by the head-end become CIM messages in the same transaction.

``install(settings)`` registers ``on_stored`` with ``hes.db.stored``; from then on every store
call that adds rows (``hes.db.readings``: reads, plans, field imports) also writes, on the same
connection, the MeterReadings and EndDeviceEvents messages that carry exactly those new rows, cut
into messages of bounded size (``HES_CIM_SPLIT``, ``HES_CIM_MAX_VALUES``). The data and its
messages commit or roll back together, so nothing stored is left without its message and no
message describes data that was not stored. The delivery worker (``cim.delivery``) takes them
from there.

How stored rows become CIM values:

- values are exact: the raw value with its scaler applied (an ``int``, or a ``Decimal`` for a
  negative scaler), in the DLMS unit; a row whose DLMS unit is not the unit of its ReadingType is
  left out (and logged): a wrong unit would be a wrong bill.
- an interval's qualities are those of its status word (``status_bits``) and of the head-end's
  flags (``quality_bits``); a flag mapped to 2.5.259 (known missing) sends the interval without a
  value.
- an interval the head-end knows to be missing (``StoredBatch.missing``: N2PLoad declared its gap
  lost, it will not come) is sent without a value and with ReadingQuality 2.5.259, cut into
  messages like the others; the legacy side stores NULL, and a value read later for it replaces
  the NULL there (``cim.legacy``).
- a register reading captured at local midnight (its time minus the meter's deviation) is a
  daily closure when the table has a daily ReadingType for its OBIS: that is what the daily
  profile stores (the HES database keeps both kinds in one table, keyed by time), and a register
  read at exactly midnight is the same value.
- rows without a ReadingType or EndDeviceEventType in the table are left out (logged once per
  code and installed configuration): storing must never fail because a code is not configured.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import Connection, Engine, Insert, Table, bindparam, insert, select

from cim.fast import meter_readings as fast_meter_readings
from cim.messages import (
    _INTERVAL_SETTERS,
    MISSING_QUALITY,
    CimError,
    CimMessage,
    DeviceEvent,
    IntervalReading,
    RegisterReading,
    SplitBy,
    split_end_device_events,
    split_meter_readings,
)
from cim.models import OutboxMessage
from cim.reading_types import CimTables, default_tables, load_tables
from hes.config import ConfigError, Settings, load_settings
from hes.db.models import Meter
from hes.db.readings import EventRow, IntervalRow, MissingInterval, RegisterRow
from hes.db.stored import StoredBatch, add_listener, remove_listener

__all__ = [
    "CIM_TO_DLMS_UNIT",
    "OutboxConfig",
    "build_messages",
    "cim_values",
    "config",
    "install",
    "install_from_environment",
    "messages_for",
    "on_stored",
    "uninstall",
    "write_messages",
]

logger = logging.getLogger(__name__)

#: CIM UnitSymbol (ReadingType field 17) -> the DLMS unit (IEC 62056-6-2) a value must come in.
CIM_TO_DLMS_UNIT = {72: 30, 71: 31, 73: 32, 38: 27, 61: 28, 63: 29, 5: 33, 29: 35, 33: 44}

_OUTBOX = cast(Table, OutboxMessage.__table__)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """How stored rows become messages: the code tables, the cut, the Header Source."""

    tables: CimTables
    per: SplitBy = "meter-day"
    max_values: int = 10_000
    source: str = "hes"

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxConfig:
        """From ``HES_CIM_*``; ``TableError`` (one line) for a table file that cannot be used."""
        tables = default_tables() if settings.cim_tables is None else load_tables(settings.cim_tables)
        return cls(tables, cast(SplitBy, settings.cim_split), settings.cim_max_values)


_config: OutboxConfig | None = None
_warned: set[str] = set()
_lock = threading.Lock()


_pending_settings: Settings | None = None


def config() -> OutboxConfig:
    """The installed configuration (the defaults when none was installed).

    Installed from the environment, the table file is read on first use (``TableError`` for a bad
    one), so a command that stores nothing never reads it.
    """
    global _config, _pending_settings
    if _config is None and _pending_settings is not None:
        with _lock:
            if _config is None and _pending_settings is not None:
                _config = OutboxConfig.from_settings(_pending_settings)
                _pending_settings = None
    return _config if _config is not None else OutboxConfig(default_tables())


def install_from_environment() -> None:
    """What the ``hes`` command does at start: install with ``HES_CIM_*`` (``HES_CIM_OUTBOX=off``: not at all).

    A bad ``HES_*`` setting installs nothing here: every command that stores reports it itself.
    """
    global _config, _pending_settings
    try:
        settings = load_settings()
    except ConfigError:
        return
    if not settings.cim_outbox:
        uninstall()
        return
    with _lock:
        _config, _pending_settings = None, settings
        _warned.clear()
    add_listener(on_stored)


def install(settings: Settings | None = None, outbox: OutboxConfig | None = None) -> None:
    """Write CIM messages for everything stored in this process from now on (idempotent; the last config wins).

    ``settings.cim_outbox`` False uninstalls instead. Raises ``TableError`` for a bad table file.
    """
    global _config, _pending_settings
    if settings is not None and not settings.cim_outbox:
        uninstall()
        return
    if outbox is None:
        outbox = OutboxConfig.from_settings(settings) if settings is not None else OutboxConfig(default_tables())
    with _lock:
        _config, _pending_settings = outbox, None
        _warned.clear()  # a new configuration: say again what it leaves out
    add_listener(on_stored)


def uninstall() -> None:
    """Stop writing messages (stores go back to the plain insert when no other listener is left)."""
    remove_listener(on_stored)


def _warn_once(key: str, message: str, *args: object) -> None:
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


# --- rows to CIM values ---------------------------------------------------------------------------------------------


def _exact(value: float | int | Decimal, scaler: int) -> int | Decimal:
    """The raw value with its scaler applied, exactly (raw values are integers read from the meter).

    Rows come as the reader made them (``int``) or as the database gives them back (``float``).
    """
    raw: int | Decimal
    if isinstance(value, int):
        raw = value
    elif isinstance(value, float):
        raw = int(value) if value.is_integer() else Decimal(repr(value))
    else:
        raw = int(value) if value == value.to_integral_value() else value
    if scaler == 0:
        return raw
    if scaler > 0 and isinstance(raw, int):
        return raw * int(10**scaler)
    return Decimal(raw).scaleb(scaler)


def _unit_ok(code: str, unit: int | None, what: str) -> bool:
    if unit is None:
        return True  # not known (stored without a scaler-unit): nothing to contradict the table
    expected = CIM_TO_DLMS_UNIT.get(int(code.split(".")[16]))
    if expected is None or expected == unit:
        return True
    _warn_once(f"unit|{what}|{unit}", "CIM: %s comes in DLMS unit %s, not the unit of its ReadingType %s: not sent",
               what, unit, code)
    return False


_METERS = cast(Table, Meter.__table__)
# A Core statement made once (its compiled form cached): the ORM select cost a third of a millisecond a call.
_SERIALS = select(_METERS.c.id, _METERS.c.serial).where(_METERS.c.id.in_(bindparam("ids", expanding=True)))
_meter_cache: weakref.WeakKeyDictionary[Engine, dict[int, str]] = weakref.WeakKeyDictionary()


def _serials(connection: Connection, ids: set[int]) -> dict[int, str]:
    """Meter serials by id; cached per engine (a meter's id and serial never change once registered)."""
    cache = _meter_cache.setdefault(connection.engine, {})
    missing = [i for i in ids if i not in cache]
    if missing:
        for ident, serial in connection.execute(_SERIALS, {"ids": missing}):
            cache[ident] = serial
    return cache


def _daily(row: RegisterRow) -> bool:
    local = row.capture_time - timedelta(minutes=row.deviation_minutes or 0)
    return local.hour == local.minute == local.second == local.microsecond == 0


def messages_for(
    connection: Connection, batch: StoredBatch, outbox: OutboxConfig, timestamp: datetime
) -> list[CimMessage]:
    """The messages carrying ``batch`` (rows without a code in the tables left out, logged once)."""
    if outbox.per == "meter-day" and not batch.missing and (batch.intervals or batch.registers):
        fast = _fast_messages(connection, batch, outbox, timestamp)
        if fast is not None:
            return fast
    intervals, registers, events = cim_values(connection, batch.intervals, batch.registers, batch.events,
                                              outbox.tables, missing=batch.missing)
    return build_messages(intervals, registers, events, outbox, batch.correlation_id, timestamp)


def _fast_messages(
    connection: Connection, batch: StoredBatch, outbox: OutboxConfig, timestamp: datetime
) -> list[CimMessage] | None:
    """``messages_for`` through ``cim.fast`` (the same messages, a fraction of the cost); None: not the common case."""
    tables = outbox.tables
    ids = {r.meter_id for r in batch.intervals} | {r.meter_id for r in batch.registers}
    ids |= {r.meter_id for r in batch.events}
    serials = _serials(connection, ids)
    checked: dict[tuple[str, int | None], bool] = {}

    def channel_ok(obis: str, unit: int | None) -> bool:
        ok = checked.get((obis, unit))
        if ok is None:
            ok = checked[(obis, unit)] = _channel_ok(obis, unit, tables)
        return ok

    readings = fast_meter_readings(
        batch.intervals, _registers(batch.registers, serials, tables), serials, tables, channel_ok=channel_ok,
        general=lambda rows: _intervals(rows, serials, tables), correlation_id=batch.correlation_id,
        timestamp=timestamp, source=outbox.source, max_values=outbox.max_values,
    )
    if readings is None:
        return None
    events = _events(batch.events, serials, tables)
    return readings + build_messages((), (), events, outbox, batch.correlation_id, timestamp)


def cim_values(
    connection: Connection, intervals: Sequence[IntervalRow], registers: Sequence[RegisterRow],
    events: Sequence[EventRow], tables: CimTables, *, missing: Sequence[MissingInterval] = (),
) -> tuple[list[IntervalReading], list[RegisterReading], list[DeviceEvent]]:
    """Stored rows (and known missing intervals) as the builder's inputs (see the module docstring).

    Rows without a code are left out.
    """
    ids = {r.meter_id for r in intervals} | {r.meter_id for r in registers} | {r.meter_id for r in events}
    ids |= {r.meter_id for r in missing}
    serials = _serials(connection, ids)
    readings = _intervals(intervals, serials, tables)
    if missing:
        readings += _missing(missing, serials, tables, readings)
    return readings, _registers(registers, serials, tables), _events(events, serials, tables)


def build_messages(
    intervals: Sequence[IntervalReading], registers: Sequence[RegisterReading], events: Sequence[DeviceEvent],
    outbox: OutboxConfig, correlation_id: str | None, timestamp: datetime,
) -> list[CimMessage]:
    """MeterReadings then EndDeviceEvents messages for the values given, cut as ``outbox`` says."""
    out: list[CimMessage] = []
    if intervals or registers:
        out += split_meter_readings(
            intervals, registers, correlation_id=correlation_id, timestamp=timestamp, source=outbox.source,
            tables=outbox.tables, per=outbox.per, max_values=outbox.max_values,
        )
    if events:
        out += split_end_device_events(
            events, correlation_id=correlation_id, timestamp=timestamp, source=outbox.source, tables=outbox.tables,
            per=outbox.per, max_values=outbox.max_values,
        )
    return out


def _intervals(rows: Sequence[IntervalRow], serials: dict[int, str], tables: CimTables) -> list[IntervalReading]:
    out: list[IntervalReading] = []
    # Whether a channel in a unit can be sent, decided once per (OBIS, unit) in a call (logged once per code anyway).
    checked: dict[tuple[str, int | None], bool] = {}
    unchecked = IntervalReading.unchecked
    # IntervalReading.unchecked inline for a reading with a value (one call frame less per reading).
    new, cls = object.__new__, IntervalReading
    set_meter, set_obis, set_end, set_value, set_qualities = _INTERVAL_SETTERS
    for row in rows:
        obis, unit = row.obis, row.unit
        ok = checked.get((obis, unit))
        if ok is None:
            ok = checked[(obis, unit)] = _channel_ok(obis, unit, tables)
        if not ok:
            continue
        qualities: tuple[str, ...] = ()
        if row.status or row.quality:  # most intervals have neither: skip the look-ups
            qualities = _qualities(row.status, row.quality, tables)
            if MISSING_QUALITY in qualities:
                out.append(unchecked(serials[row.meter_id], obis, row.interval_end, None, qualities))
                continue
        raw, scaler = row.value, row.scaler
        value = raw if type(raw) is int and not scaler else _exact(raw, scaler)  # _exact's common case inline
        reading = new(cls)
        set_meter(reading, serials[row.meter_id])
        set_obis(reading, obis)
        set_end(reading, row.interval_end)
        set_value(reading, value)
        set_qualities(reading, qualities)
        out.append(reading)
    return out


def _channel_ok(obis: str, unit: int | None, tables: CimTables) -> bool:
    """Whether an interval channel in a DLMS unit can be sent (logged once when it cannot)."""
    entry = tables.reading_types.get(("interval", obis))
    if entry is None:
        _warn_once(f"interval|{obis}", "CIM: no interval ReadingType for %s in the table: not sent", obis)
        return False
    return _unit_ok(entry.code, unit, f"interval {obis}")


def _missing(rows: Sequence[MissingInterval], serials: dict[int, str], tables: CimTables,
             given: Sequence[IntervalReading]) -> list[IntervalReading]:
    """Known missing intervals without a value (the builder adds 2.5.259); one given with a value wins."""
    taken = {(r.meter, r.obis, r.end) for r in given}
    out: list[IntervalReading] = []
    types = tables.reading_types
    for row in rows:
        if ("interval", row.obis) not in types:
            _warn_once(f"interval|{row.obis}", "CIM: no interval ReadingType for %s in the table: not sent", row.obis)
            continue
        identity = (serials[row.meter_id], row.obis, row.interval_end.astimezone(UTC))
        if identity in taken:
            continue
        taken.add(identity)
        out.append(IntervalReading.unchecked(*identity, None))
    return out


def _qualities(status: int | None, quality: int, tables: CimTables) -> tuple[str, ...]:
    qualities = tables.status_qualities(status) + tables.quality_qualities(quality)
    unmapped = tables.unmapped_quality_bits(quality)
    if unmapped:
        _warn_once(f"quality|{unmapped}", "CIM: head-end quality flags %#x are not in the table's quality_bits: "
                   "not sent as qualities", unmapped)
    return tuple(dict.fromkeys(qualities)) if len(qualities) > 1 else qualities


def _registers(rows: Sequence[RegisterRow], serials: dict[int, str], tables: CimTables) -> list[RegisterReading]:
    out: list[RegisterReading] = []
    types = tables.reading_types
    for row in rows:
        kind: Literal["daily", "register"] = "daily" if _daily(row) and ("daily", row.obis) in types else "register"
        entry = types.get((kind, row.obis))
        if entry is None:
            _warn_once(f"{kind}|{row.obis}", "CIM: no %s ReadingType for %s in the table: not sent", kind, row.obis)
            continue
        if not _unit_ok(entry.code, row.unit, f"{kind} {row.obis}"):
            continue
        out.append(RegisterReading.unchecked(
            serials[row.meter_id], row.obis, row.capture_time.astimezone(UTC), _exact(row.value, row.scaler), (), kind,
        ))
    return out


def _events(rows: Sequence[EventRow], serials: dict[int, str], tables: CimTables) -> list[DeviceEvent]:
    out: list[DeviceEvent] = []
    for row in rows:
        known = tables.event_types
        if (row.log_obis, row.event_code) not in known and (None, row.event_code) not in known:
            _warn_once(f"event|{row.log_obis}|{row.event_code}",
                       "CIM: no EndDeviceEventType for event %s of log %s in the table: not sent", row.event_code,
                       row.log_obis)
            continue
        out.append(DeviceEvent(serials[row.meter_id], row.log_obis, row.event_code, row.event_time, row.name))
    return out


# --- the listener ---------------------------------------------------------------------------------------------------


def write_messages(connection: Connection, messages: Sequence[CimMessage], now: datetime) -> None:
    """Insert ``messages`` into the outbox as PENDING (a MessageID already there is left as it is).

    One driver-level statement on the storing connection (the same transaction): the INSERT is
    compiled once per dialect and each column's value goes through the bind processor SQLAlchemy
    would apply, so the stored row is the one a Core insert would store, without its per-call cost.
    """
    if not messages:
        return
    rows = [
        {
            "message_id": m.message_id, "noun": m.noun, "correlation_id": _column(m.correlation_id), "set_id": m.set_id,
            "part": m.part, "parts": m.parts, "meters": ",".join(m.meters), "item_count": m.count, "xml": m.xml,
            "state": "PENDING", "attempts": 0, "reason": None, "created_at": now, "next_attempt_at": now,
            "lease_until": None, "claimed_by": None, "delivered_at": None,
        }
        for m in messages
    ]
    if connection.get_execution_options().get("schema_translate_map"):  # the driver SQL would name the wrong table
        connection.execute(_insert_new(connection.dialect.name), rows)
        return
    insert_new = _driver_insert(connection)
    connection.exec_driver_sql(insert_new.sql, [insert_new.parameters(row) for row in rows])


@dataclass(frozen=True, slots=True)
class _DriverInsert:
    """The outbox INSERT as the driver takes it: its SQL and, per bound column, the value's conversion."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = [row[name] if convert is None or row[name] is None else convert(row[name])
                  for name, convert in zip(self.names, self.processors, strict=True)]
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


_DRIVER_INSERTS: dict[tuple[str, str], _DriverInsert] = {}


def _driver_insert(connection: Connection) -> _DriverInsert:
    dialect = connection.dialect
    key = (dialect.name, dialect.driver)
    found = _DRIVER_INSERTS.get(key)
    if found is None:
        compiled = _insert_new(dialect.name).compile(dialect=dialect)
        names = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else tuple(compiled.params)
        processors = tuple(_OUTBOX.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        found = _DRIVER_INSERTS[key] = _DriverInsert(compiled.string, names, processors, bool(compiled.positional))
    return found


_INSERTS: dict[str, Insert] = {}


def _insert_new(dialect: str) -> Insert:
    """The outbox INSERT that leaves a MessageID already there as it is."""
    statement = _INSERTS.get(dialect)
    if statement is None:
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(_OUTBOX).on_conflict_do_nothing(index_elements=["message_id"])
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            statement = postgresql_insert(_OUTBOX).on_conflict_do_nothing(index_elements=["message_id"])
        else:
            statement = insert(_OUTBOX)
        _INSERTS[dialect] = statement
    return statement


def on_stored(connection: Connection, batch: StoredBatch) -> None:
    """``hes.db.stored`` listener: the messages for ``batch``, written on the storing connection.

    Values that cannot be put into a message (``CimInputError``, e.g. a character XML cannot
    carry in a serial), or a ``HES_CIM_TABLES`` file that cannot be read, must not undo the storing
    of what the field gave: the data is stored, and the outbox records a DISCARDED entry with the
    reason (visible in ``hes cim status``; ``hes export cim`` rebuilds the range once it is fixed).
    """
    now = datetime.now(UTC)
    try:
        messages = messages_for(connection, batch, config(), now)
    except CimError as exc:  # bad values, or a table file that cannot be read (TableError)
        _record_unbuildable(connection, batch, str(exc), now)
        return
    write_messages(connection, messages, now)


def _record_unbuildable(connection: Connection, batch: StoredBatch, reason: str, now: datetime) -> None:
    readings = batch.intervals or batch.registers or batch.missing
    noun = "EndDeviceEvents" if batch.events and not readings else "MeterReadings"
    message_id = str(uuid.uuid4())
    count = len(batch.intervals) + len(batch.registers) + len(batch.events) + len(batch.missing)
    logger.error("CIM: %d stored values (correlation %s) could not be put into a %s message, recorded as %s "
                 "DISCARDED: %s", count, batch.correlation_id, noun, message_id, reason)
    connection.execute(insert(_OUTBOX), {
        "message_id": message_id, "noun": noun, "correlation_id": _column(batch.correlation_id), "set_id": None,
        "part": 1, "parts": 1, "meters": "", "item_count": count, "xml": b"", "state": "DISCARDED", "attempts": 0,
        "reason": f"not built: {reason}", "created_at": now, "next_attempt_at": now, "lease_until": None,
        "claimed_by": None, "delivered_at": None,
    })


def _column(correlation_id: str | None) -> str | None:
    # The column is for search; the XML carries the whole CorrelationID.
    return None if correlation_id is None else correlation_id[:255]
