"""On-demand reads of one meter: the use case's checks, an order, the session, idempotent storage, EXE/WARN/FAIL.

``read_meter(registry, serial, what, start=..., end=..., requested_by=...)`` runs the use case
"on-demand reading of a meter" end to end:

1. Checks first, nothing contacted when one fails: the meter exists, is commissioned, is linked
   to a concentrator (DC) or has a direct address, and its DC is not known to be unreachable.
   Each failure is a FAIL order with the reason.
2. An order number; the order is stored PENDING (committed) before the field is contacted.
3. Invocation counters are reserved (committed) when the association ciphers, sized for the read.
4. The session: association per the meter's security, the GETs for ``what``, release.
5. Values are stored idempotently (``hes.db.readings``): interval values per channel per interval
   end, registers and daily values as register readings with their scaler and unit, events per
   (log, code, time); the last invocation counter received is recorded, the DC's reachability,
   the order finished EXE, WARN (observations: partial data, gaps, clock deviation beyond
   tolerance, quality flags) or FAIL (the typed error's reason and whether a retry can help),
   an audit row and a "data received" lifecycle event.

Values come back scaled exactly (``int`` or ``Decimal``), times in UTC with the meter's own
deviation (minutes, COSEM sign: UTC = local + deviation) kept beside them. Ranges: a profile read
of [from, to] gives the intervals lying within it (interval ends in (from, to]); daily values and
events are those stamped in [from, to].
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.crash import crash_point
from hes.db.counters import counter_state, record_received, reserve_counters
from hes.db.engine import StorageError, session_factory, storage_errors
from hes.db.models import Concentrator, Meter, Order, utcnow
from hes.db.orders import create_order, finish_order, record_asset_event, record_audit, start_order
from hes.db.readings import EventRow, IntervalRow, RegisterRow, store_events, store_intervals, store_registers
from hes.db.stored import correlation, current_correlation
from hes.events.catalog import load_catalog
from hes.model import CounterReservation, MeterTarget, ViaConcentrator
from hes.registry import Registry
from hes.session import (
    AssociationRefused,
    AttributeRef,
    ConcentratorLimits,
    LinkFactory,
    MeterSession,
    Timeouts,
    open_session,
)
from protocols.axdr import Data, DataTag
from protocols.cosem import CaptureObjectDefinition, ProfileColumn, ScalerUnit, parse_profile_buffer, unit_symbol
from protocols.cosem.profile import ColumnRole
from protocols.cosem.units import apply_scaler
from protocols.cosem_datetime import ClockStatus, CosemDateTime
from protocols.errors import (
    ConnectionLost,
    ConnectTimeout,
    DecodeError,
    DlmsError,
    ProtocolError,
    ReadTimeout,
    ServiceError,
    TransportError,
)
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import RangeDescriptor

__all__ = [
    "CLOCK",
    "DAILY_VALUES",
    "EVENT_LOGS",
    "LOAD_PROFILE",
    "QUALITY_STATUS_FLAGGED",
    "QUALITY_TIME_FILLED",
    "REGISTERS",
    "WHATS",
    "ReadRequestError",
    "Reader",
    "ReadResult",
    "ReadValue",
    "What",
    "counter_budget",
    "read_meter",
    "received_device",
]

logger = logging.getLogger(__name__)

What = Literal["clock", "registers", "profile", "daily", "events"]
WHATS: tuple[What, ...] = ("clock", "registers", "profile", "daily", "events")
State = Literal["EXE", "WARN", "FAIL"]

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
LOAD_PROFILE = ObisCode(1, 0, 99, 1, 0, 255)
DAILY_VALUES = ObisCode(1, 0, 98, 1, 0, 255)
#: The registers an on-demand register read asks for, with the names operators know them by.
REGISTERS: tuple[tuple[ObisCode, str], ...] = (
    (ObisCode(1, 0, 1, 8, 0, 255), "A+ total"),
    (ObisCode(1, 0, 1, 8, 1, 255), "A+ T1"),
    (ObisCode(1, 0, 1, 8, 2, 255), "A+ T2"),
    (ObisCode(1, 0, 2, 8, 0, 255), "A- total"),
    (ObisCode(1, 0, 32, 7, 0, 255), "voltage L1"),
)
#: The IDIS event logs: standard, fraud detection, disconnector control.
EVENT_LOGS: tuple[tuple[ObisCode, str], ...] = (
    (ObisCode(0, 0, 99, 98, 0, 255), "standard"),
    (ObisCode(0, 0, 99, 98, 1, 255), "fraud"),
    (ObisCode(0, 0, 99, 98, 2, 255), "disconnector"),
)
_NAMES = {obis: name for obis, name in REGISTERS} | {CLOCK: "clock"}

#: Our quality flags on stored interval values (bitmask).
QUALITY_STATUS_FLAGGED = 0x01  # the meter's status word for the interval is not zero
QUALITY_TIME_FILLED = 0x02  # the meter sent no capture time; it was computed from the period
_POWER_DOWN = 0x80  # IDIS/DSMR AMR profile status bit 7

_ONE_SECOND = timedelta(seconds=1)
_DEFAULT_TOLERANCE = timedelta(seconds=60)
_DEFAULT_SPAN = timedelta(days=1)


class ReadRequestError(DlmsError):
    """The read was asked for wrongly (unknown ``what``, a range where none applies, from after to): fix the call."""


# --- results ---------------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_number(value: int | Decimal | str | None) -> int | str | None:
    # Decimals travel as strings so that JSON keeps them exact.
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True, slots=True)
class ReadValue:
    """One value read: a register, a channel of one interval, a daily value, an event, or the clock.

    ``time`` is UTC; ``deviation`` the meter's own (minutes, UTC = local + deviation); ``value``
    is scaled exactly (``int`` or ``Decimal``); for the clock it is the meter's offset from the
    head-end's clock in seconds, for an event its code.
    """

    kind: Literal["clock", "register", "interval", "daily", "event"]
    time: datetime | None
    deviation: int | None
    obis: str
    name: str
    value: int | Decimal | None
    unit: str = ""
    status: int | None = None
    quality: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "time": _iso(self.time), "deviation": self.deviation, "obis": self.obis,
            "name": self.name, "value": _json_number(self.value), "unit": self.unit, "status": self.status,
            "quality": self.quality,
        }


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of one on-demand read: its order, state, reason or observations, values, what was stored."""

    order_number: str
    serial: str
    what: str
    state: State
    reason: str | None = None
    retryable: bool = False
    observations: tuple[str, ...] = ()
    values: tuple[ReadValue, ...] = ()
    stored: int = 0  # rows new to the database (0 when everything was already stored)
    start: datetime | None = None
    end: datetime | None = None
    meter_time: datetime | None = None  # the meter's clock, UTC
    clock_offset: Decimal | None = None  # meter minus head-end, seconds
    counters_used: int | None = None
    last_received: int | None = None

    @property
    def ok(self) -> bool:
        return self.state != "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order_number, "serial": self.serial, "what": self.what, "state": self.state,
            "reason": self.reason, "retryable": self.retryable, "observations": list(self.observations),
            "stored": self.stored, "from": _iso(self.start), "to": _iso(self.end),
            "meter_time": _iso(self.meter_time), "clock_offset": _json_number(self.clock_offset),
            "values": [v.to_json() for v in self.values],
        }


@dataclass(slots=True)
class _Outcome:
    """What a reader got from the meter, before it is stored."""

    values: list[ReadValue] = field(default_factory=list)
    intervals: list[IntervalRow] = field(default_factory=list)
    registers: list[RegisterRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    meter_time: datetime | None = None
    clock_offset: Decimal | None = None


class _Failed(Exception):
    """A check failed before anything was contacted (internal: carries the FAIL reason)."""

    def __init__(self, reason: str, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


# --- helpers ---------------------------------------------------------------------------------------------


def _deviation_of(moment: datetime) -> int | None:
    offset = moment.utcoffset()
    return None if offset is None else -int(offset.total_seconds() // 60)


def _date_time(data: Data, what: str) -> CosemDateTime:
    if data.tag == DataTag.OCTET_STRING and isinstance(data.value, bytes | bytearray):
        return CosemDateTime.decode(bytes(data.value))
    if data.tag == DataTag.DATE_TIME and isinstance(data.value, CosemDateTime):
        return data.value
    raise DecodeError(f"{what}: expected a date-time, got {DataTag(data.tag).name.lower()}")


def _range_value(moment: datetime) -> Data:
    # UTC with deviation 0: the instant is unambiguous whatever the meter's own time zone.
    return Data.octet_string(CosemDateTime.from_datetime(moment.astimezone(UTC), deviation=0).encode())


def _integer(data: Data, what: str) -> int:
    if data.tag in (DataTag.BOOLEAN, DataTag.FLOAT32, DataTag.FLOAT64) or not isinstance(data.value, int):
        raise DecodeError(f"{what}: expected an integer, got {DataTag(data.tag).name.lower()}")
    return int(data.value)


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


def _retry_hint(retryable: bool) -> str:
    return "a retry can help" if retryable else "a retry will not help"


# --- reading the meter -----------------------------------------------------------------------------------


class Reader:
    """The GETs of one read and the rows they give; raises the stack's typed errors."""

    def __init__(self, session: MeterSession, meter_id: int, hes_clock: Callable[[], datetime],
                 tolerance: timedelta | None) -> None:
        self.session = session
        self.meter_id = meter_id
        self.hes_clock = hes_clock
        self.tolerance = tolerance
        self.out = _Outcome()

    def _clock(self, data: Data) -> tuple[datetime, CosemDateTime]:
        """The meter's time (aware at its own offset) from the clock's attribute 2, checked against ours."""
        stamp = _date_time(data, "clock")
        local = stamp.to_datetime()
        if local is None:
            raise ProtocolError(f"meter clock {stamp} is not a complete instant (unspecified fields)")
        utc = local.astimezone(UTC)
        offset = _seconds(utc - self.hes_clock())
        self.out.meter_time, self.out.clock_offset = utc, offset
        if self.tolerance is not None and abs(offset) > _seconds(self.tolerance):
            self.out.observations.append(
                f"clock deviation {offset:+.0f} s beyond the tolerance of {_seconds(self.tolerance):.0f} s")
        status = stamp.status
        if status is not None and status & (ClockStatus.INVALID_VALUE | ClockStatus.DOUBTFUL_VALUE):
            self.out.observations.append(f"meter clock status {status!r}: time invalid or doubtful")
        return local, stamp

    async def clock(self) -> None:
        local, stamp = self._clock(await self.session.get(8, CLOCK, 2))
        self.out.values.append(ReadValue(
            "clock", local.astimezone(UTC), _deviation_of(local), str(CLOCK), "clock", self.out.clock_offset, "s",
            stamp.clock_status if stamp.status is not None else None))

    async def registers(self) -> None:
        refs = [AttributeRef(8, CLOCK, 2)]
        for obis, _ in REGISTERS:
            refs += [AttributeRef(3, obis, 2), AttributeRef(3, obis, 3)]
        answers = await self.session.get_many(refs)
        clock = answers[0]
        if isinstance(clock, ServiceError):
            raise clock  # without the capture time, no reading can be stored
        local, _ = self._clock(clock)
        captured, deviation = local.astimezone(UTC), _deviation_of(local)
        for index, (obis, name) in enumerate(REGISTERS):
            value, scaler_unit = answers[1 + 2 * index], answers[2 + 2 * index]
            problem = value if isinstance(value, ServiceError) else scaler_unit
            if isinstance(problem, ServiceError):
                self.out.observations.append(f"partial data: {name} ({obis}) not read: {problem}")
                continue
            assert isinstance(value, Data) and isinstance(scaler_unit, Data)  # narrowed by the checks above
            raw = _integer(value, f"{name} value")
            su = ScalerUnit.from_data(scaler_unit)
            self.out.registers.append(RegisterRow(self.meter_id, str(obis), captured, raw, su.scaler, int(su.unit),
                                                  deviation))
            self.out.values.append(ReadValue("register", captured, deviation, str(obis), name,
                                             apply_scaler(raw, su.scaler), unit_symbol(su.unit)))
        if not self.out.registers:
            raise ServiceError(f"meter {self.session.target.serial}: no register could be read")

    async def _buffer(self, obis: ObisCode, start: datetime, end: datetime, *, exclusive_start: bool,
                      scalers: bool) -> tuple[list[ProfileColumn], int, list[Any], datetime]:
        """Columns, capture period, typed rows (raw values) of a profile for [start, end], and the meter's time."""
        clock, capture, period_data = await self.session.get_many(
            [AttributeRef(8, CLOCK, 2), AttributeRef(7, obis, 3), AttributeRef(7, obis, 4)])
        for answer in (clock, capture):
            if isinstance(answer, ServiceError):
                raise answer
        assert isinstance(clock, Data) and isinstance(capture, Data)
        local, _ = self._clock(clock)
        if capture.tag != DataTag.ARRAY:
            raise DecodeError(f"{obis} capture objects: expected an array")
        definitions = [CaptureObjectDefinition.from_data(item) for item in capture.value]
        period = 0 if isinstance(period_data, ServiceError) else _integer(period_data, f"{obis} capture period")
        clock_columns = [d for d in definitions if d.class_id == 8 and d.attribute_index == 2]
        if not clock_columns:
            raise ProtocolError(f"{obis} captures no clock: it cannot be read by time range")
        units: dict[int, ScalerUnit] = {}
        if scalers:
            wanted = [(i, d) for i, d in enumerate(definitions)
                      if d.class_id in (3, 4) and d.attribute_index == 2]
            answers = await self.session.get_many([AttributeRef(d.class_id, d.logical_name, 3) for _, d in wanted])
            for (i, d), answer in zip(wanted, answers):
                if isinstance(answer, ServiceError):
                    self.out.observations.append(f"scaler of {d.logical_name} not read ({answer}): stored unscaled")
                else:
                    units[i] = ScalerUnit.from_data(answer)
        columns = [ProfileColumn(ProfileColumn.of(d).capture, units.get(i), ProfileColumn.of(d).role)
                   for i, d in enumerate(definitions)]
        since = start + _ONE_SECOND if exclusive_start else start
        access = RangeDescriptor(clock_columns[0], _range_value(since), _range_value(end))
        raw = await self.session.get_raw(7, obis, 2, access)
        # Parsed without scalers: storage keeps the raw value and the scaler, display scales exactly.
        plain = [replace(c, scaler_unit=None) for c in columns]
        rows = parse_profile_buffer(raw, plain, period or None)
        return columns, period, rows, local.astimezone(UTC)

    def _gaps(self, times: list[datetime], start: datetime, upper: datetime, period: int, exclusive: bool,
              what: str) -> None:
        if period <= 0 or upper <= start:
            return
        step = timedelta(seconds=period)
        if not times:
            expected = math.floor((upper - start) / step)
            if expected > 0:
                self.out.observations.append(f"gap: no {what} in the range (about {expected} expected)")
            return
        missing = 0
        first, last = times[0], times[-1]
        lead = first - start
        missing += max(0, math.ceil(lead / step) - 1) if exclusive else max(0, math.floor(lead / step))
        for before, after in itertools.pairwise(times):
            missing += max(0, round((after - before) / step) - 1)
        if upper > last:
            missing += math.floor((upper - last) / step)
        if missing:
            self.out.observations.append(f"gap: {missing} {what} missing in the range")

    async def profile(self, start: datetime, end: datetime) -> None:
        columns, period, rows, now = await self._buffer(LOAD_PROFILE, start, end, exclusive_start=True, scalers=True)
        channels = [(i, c) for i, c in enumerate(columns) if c.role is ColumnRole.VALUE]
        flagged = power = undated = 0
        times: list[datetime] = []
        for row in rows:
            if row.time is None:
                undated += 1
                continue
            end_utc = row.time.astimezone(UTC)
            times.append(end_utc)
            deviation = _deviation_of(row.time)
            quality = (QUALITY_STATUS_FLAGGED if row.status else 0) | (QUALITY_TIME_FILLED if row.time_filled else 0)
            if row.status:
                flagged += 1
                power += 1 if row.status & _POWER_DOWN else 0
            for i, column in channels:
                raw = row.values[i]
                if raw is None:
                    continue
                if not isinstance(raw, int) or isinstance(raw, bool):
                    raise DecodeError(f"load profile {column.capture.logical_name}: a value is not an integer")
                su = column.scaler_unit or ScalerUnit(0, 255)
                obis = str(column.capture.logical_name)
                self.out.intervals.append(IntervalRow(self.meter_id, obis, column.capture.attribute_index, end_utc,
                                                      raw, su.scaler, int(su.unit), row.status, quality))
                self.out.values.append(ReadValue("interval", end_utc, deviation, obis, _NAMES.get(
                    column.capture.logical_name, obis), apply_scaler(raw, su.scaler), unit_symbol(su.unit),
                    row.status, quality))
        if undated:
            self.out.observations.append(f"partial data: {undated} profile rows without a capture time skipped")
        if flagged:
            detail = f", {power} with a power failure" if power else ""
            self.out.observations.append(f"quality: {flagged} intervals with status flags{detail}")
        self._gaps(sorted(times), start, min(end, now), period, True, "intervals")

    async def daily(self, start: datetime, end: datetime) -> None:
        columns, period, rows, now = await self._buffer(DAILY_VALUES, start, end, exclusive_start=False, scalers=True)
        times: list[datetime] = []
        for row in rows:
            if row.time is None:
                self.out.observations.append("partial data: a daily row without a capture time skipped")
                continue
            at = row.time.astimezone(UTC)
            times.append(at)
            deviation = _deviation_of(row.time)
            for i, column in enumerate(columns):
                raw = row.values[i]
                if column.role is not ColumnRole.VALUE or raw is None:
                    continue
                if not isinstance(raw, int) or isinstance(raw, bool):
                    raise DecodeError(f"daily values {column.capture.logical_name}: a value is not an integer")
                su = column.scaler_unit or ScalerUnit(0, 255)
                obis = str(column.capture.logical_name)
                self.out.registers.append(RegisterRow(self.meter_id, obis, at, raw, su.scaler, int(su.unit),
                                                      deviation))
                self.out.values.append(ReadValue("daily", at, deviation, obis, _NAMES.get(
                    column.capture.logical_name, obis), apply_scaler(raw, su.scaler), unit_symbol(su.unit)))
        self._gaps(sorted(times), start, min(end, now), period, False, "daily values")

    async def events(self, start: datetime, end: datetime) -> None:
        read = 0
        catalog = load_catalog()
        for log, log_name in EVENT_LOGS:
            try:
                columns, _, rows, _ = await self._buffer(log, start, end, exclusive_start=False, scalers=False)
            except ServiceError as exc:
                self.out.observations.append(f"partial data: {log_name} event log ({log}) not read: {exc}")
                continue
            read += 1
            codes = [i for i, c in enumerate(columns) if c.role is ColumnRole.VALUE]
            preferred = [i for i in codes if columns[i].capture.logical_name.c == 96
                         and columns[i].capture.logical_name.d == 11]
            if not (preferred or codes):
                raise ProtocolError(f"{log_name} event log ({log}) captures no event code")
            code_column = (preferred or codes)[0]
            for row in rows:
                code = row.values[code_column]
                if row.time is None or not isinstance(code, int) or isinstance(code, bool):
                    self.out.observations.append(f"partial data: a {log_name} event without time or code skipped")
                    continue
                at = row.time.astimezone(UTC)
                # Named (and graded, for the event bus) by the configurable event table.
                name = catalog.lookup_obis(str(log), code).name
                self.out.events.append(EventRow(self.meter_id, str(log), code, at, name))
                self.out.values.append(ReadValue("event", at, _deviation_of(row.time), str(log),
                                                 f"{log_name}: {name}", code))
        if not read:
            raise ServiceError(f"meter {self.session.target.serial}: no event log could be read")
        self.out.values.sort(key=lambda v: (v.time or datetime.min.replace(tzinfo=UTC), v.obis))


# --- the use case ------------------------------------------------------------------------------------------


def counter_budget(what: What, start: datetime | None, end: datetime | None) -> int:
    """Invocation counters for one session: association, HLS reply, release, every request and block."""
    base = 8  # AARQ, the HLS reply, RLRQ and slack for a repeated request
    if what == "clock":
        return base + 2
    if what == "registers":
        return base + 2 + 2 * len(REGISTERS)  # GET-with-list, or one GET per attribute when not granted
    span = (end - start) if start is not None and end is not None else _DEFAULT_SPAN
    if what == "profile":
        rows, row_bytes = span / timedelta(minutes=15), 50
    elif what == "daily":
        rows, row_bytes = span / timedelta(days=1), 60
    else:
        rows, row_bytes = 3 * 100 * max(1.0, span / timedelta(days=1)), 20
    blocks = math.ceil(rows * row_bytes / 500) + 1  # a block carries at least ~500 bytes
    return base + 16 + 2 * blocks


#: A concentrator that failed is not contacted again for on-demand reads until this long after the failure.
DC_RECHECK_AFTER = timedelta(minutes=5)


def _checks(session: Session, meter: Meter | None, serial: str, recheck_dc: bool, now: datetime) -> Meter:
    """The use case's preconditions; ``_Failed`` with the reason for the first one that does not hold."""
    if meter is None:
        raise _Failed(f"meter {serial} is not registered")
    if meter.state == "decommissioned":
        raise _Failed(f"meter {serial} is decommissioned (since {meter.decommissioning_date}): it is not read")
    if meter.state != "commissioned":
        raise _Failed(f"meter {serial} is {meter.state}, not commissioned: it is not read yet")
    if meter.concentrator_id is None:
        if meter.host is None and meter.serial_device is None:
            raise _Failed(f"meter {serial} is linked to no concentrator and has no direct address")
        return meter
    dc = session.get(Concentrator, meter.concentrator_id)
    if dc is None or meter.dc_physical_address is None or meter.logical_device is None:
        raise _Failed(f"meter {serial}: its link to concentrator {meter.concentrator_id} is incomplete")
    # A failure recorded before attempts were timed has no time: recheck it rather than block forever.
    tried = dc.last_attempt
    if dc.reachable is False and tried is not None and now - tried < DC_RECHECK_AFTER and not recheck_dc:
        last = "never" if dc.last_contact is None else _iso(dc.last_contact)
        again = f" (tried again from {_iso(tried + DC_RECHECK_AFTER)})"
        raise _Failed(f"concentrator {dc.id} is unreachable (its last contact attempt failed; last answered: {last}); "
                      f"not contacted{again}", retryable=True)
    return meter


def _failure(exc: BaseException, target: MeterTarget, associated: bool) -> tuple[str, bool, bool | None]:
    """(reason, retryable, DC reachable or None when unknown) for an error of the session."""
    route = target.route
    via = isinstance(route, ViaConcentrator)
    retryable = bool(getattr(exc, "retryable", False))
    dc_state: bool | None = True if (via and associated) else None
    if isinstance(exc, TimeoutError):
        exc, retryable = ReadTimeout(f"meter {target.serial}: no answer in time"), True
    text = str(exc)
    if via and not associated and isinstance(exc, ConnectTimeout | ConnectionLost):
        dc = cast(ViaConcentrator, route).concentrator_id
        return f"concentrator {dc} is unreachable: {text} ({_retry_hint(True)})", True, False
    if via and not associated and isinstance(exc, ReadTimeout):
        dc = cast(ViaConcentrator, route).concentrator_id
        # The DC took the connection; the meter's answer never came back through it.
        return (f"meter {target.serial} unreachable from concentrator {dc}: no answer through the gateway "
                f"({text}) ({_retry_hint(True)})"), True, True
    if isinstance(exc, TransportError):
        kind = "meter did not answer" if isinstance(exc, ReadTimeout) else "communication failed"
        return f"{kind}: {text} ({_retry_hint(retryable)})", retryable, dc_state
    if isinstance(exc, AssociationRefused) and exc.permanent:
        return f"meter not commissioned in the field: {text} ({_retry_hint(False)})", False, dc_state
    if isinstance(exc, DecodeError):
        return f"corrupted answer: {text} ({_retry_hint(retryable)})", retryable, dc_state
    return f"{text} ({_retry_hint(retryable)})", retryable, dc_state


def _describe(what: str, start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return what
    return f"{what} {_iso(start)}..{_iso(end)}"


async def read_meter(
    db: Registry,
    serial: str,
    what: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    requested_by: str,
    clock: Callable[[], datetime] = utcnow,
    clock_tolerance: timedelta | None = _DEFAULT_TOLERANCE,
    timeouts: Timeouts | None = None,
    limits: ConcentratorLimits | None = None,
    mode: Literal["gateway", "concentrated"] = "gateway",
    recheck_dc: bool = False,
    connect: LinkFactory | None = None,
) -> ReadResult:
    """Read ``what`` from meter ``serial`` now, store it, and return the order's result (see the module docstring).

    ``start``/``end`` (aware) bound profile, daily and event reads (default: the day up to
    ``clock()``); ``clock`` is the head-end's clock (checks of the meter's clock, order times);
    ``clock_tolerance`` None disables the deviation check. A DC known to be unreachable is not
    contacted unless ``recheck_dc``. Raises ``ReadRequestError`` for a malformed request and
    ``StorageError`` when the database fails; every outcome of the field is a ``ReadResult``.
    """
    if what not in WHATS:
        raise ReadRequestError(f"cannot read {what!r}: one of {', '.join(WHATS)}")
    kind: What = what
    for name, moment in (("from", start), ("to", end)):
        if moment is not None and moment.utcoffset() is None:
            raise ReadRequestError(f"--{name} {moment.isoformat()} needs a time zone (e.g. Z)")
    if kind in ("clock", "registers"):
        if start is not None or end is not None:
            raise ReadRequestError(f"a {kind} read takes no time range (--from/--to)")
    else:
        end = (end or clock()).astimezone(UTC)
        start = (start.astimezone(UTC) if start is not None else end - _DEFAULT_SPAN)
        if start >= end:
            raise ReadRequestError(f"the range is empty: from {_iso(start)} is not before to {_iso(end)}")
    sessions = session_factory(db.engine)
    described = _describe(kind, start, end)
    parameters: dict[str, Any] = {"what": kind, "from": _iso(start), "to": _iso(end), "mode": mode}

    # 1-2. The order and the checks, committed before anything is contacted.
    with storage_errors(db.engine), sessions() as session, session.begin():
        order = create_order(session, serial, f"read {kind}", parameters, requested_by, when=clock())
        order_number, order_id = order.order_number, order.id
        meter = session.scalar(select(Meter).where(Meter.serial == serial))
        try:
            meter = _checks(session, meter, serial, recheck_dc, clock())
        except _Failed as failed:
            reason = f"{failed.reason} ({_retry_hint(failed.retryable)})"
            finish_order(session, order, "FAIL", reason=reason, when=clock())
            record_audit(session, requested_by, f"read {described} {serial} ({order_number})", f"FAIL: {reason}",
                         when=clock())
            return ReadResult(order_number, serial, kind, "FAIL", reason, failed.retryable, start=start, end=end)
        meter_id = meter.id
        start_order(session, order, when=clock())

    def fail(reason: str, retryable: bool) -> ReadResult:
        with storage_errors(db.engine), sessions() as s, s.begin():
            row = s.get(Order, order_id)
            assert row is not None
            finish_order(s, row, "FAIL", reason=reason, when=clock())
            record_audit(s, requested_by, f"read {described} {serial} ({order_number})", f"FAIL: {reason}",
                         when=clock())
        return ReadResult(order_number, serial, kind, "FAIL", reason, retryable, start=start, end=end)

    # 3. The target and its invocation counters (persisted before the first one is used).
    try:
        target = db.target_for(serial, mode=mode)
        reservation, device, client_sap = _reserve(db, target, kind, start, end)
    except StorageError:
        raise
    except DlmsError as exc:
        return fail(f"{exc} ({_retry_hint(exc.retryable)})", exc.retryable)

    # 4. The session.
    associated = False
    used: int | None = None
    received: int | None = None
    outcome: _Outcome | None = None
    error: BaseException | None = None
    try:
        async with open_session(target, reservation, limits=limits, timeouts=timeouts, connect=connect) as ms:
            associated = True
            try:
                reader = Reader(ms, meter_id, clock, clock_tolerance)
                if kind == "clock":
                    await reader.clock()
                elif kind == "registers":
                    await reader.registers()
                else:
                    assert start is not None and end is not None
                    await getattr(reader, kind)(start, end)
                outcome = reader.out
            finally:
                used, received = ms.counters_used, ms.last_received
    except (DlmsError, TimeoutError) as exc:
        error = exc
    logger.info("read %s %s (%s): %s", kind, serial, order_number, "done" if error is None else type(error).__name__)

    # 5. Storage and the result.
    crash_point("read-before-store")
    if received is not None and device is not None:
        record_received(db.engine, device, client_sap, received)
    dc_id = target.route.concentrator_id if isinstance(target.route, ViaConcentrator) else None
    if error is not None or outcome is None:
        failure = error if error is not None else ProtocolError("the read gave no result")
        reason, retryable, dc_state = _failure(failure, target, associated)
        if dc_id is not None and dc_state is not None:
            db.set_concentrator_contact(dc_id, dc_state, clock())
        result = fail(reason, retryable)
        return replace(result, counters_used=used, last_received=received)
    if dc_id is not None:
        db.set_concentrator_contact(dc_id, True, clock())
    state: State = "WARN" if outcome.observations else "EXE"
    observations = "; ".join(outcome.observations) or None
    # What this read stores is correlated (CIM's CorrelationID) with the plan run around it, else with its order.
    with storage_errors(db.engine), sessions() as s, s.begin(), correlation(current_correlation() or order_number):
        stored = store_intervals(s, outcome.intervals) + store_registers(s, outcome.registers) \
            + store_events(s, outcome.events)
        row = s.get(Order, order_id)
        assert row is not None
        row.parameters = {**parameters, "counters": [reservation.start, reservation.limit], "counters_used": used}
        finish_order(s, row, state, observations=observations, when=clock())
        record_asset_event(s, meter_id, "data received",
                           f"{order_number}: {described}, {len(outcome.values)} values, {stored} new", when=clock())
        record_audit(s, requested_by, f"read {described} {serial} ({order_number})",
                     state if observations is None else f"{state}: {observations}", when=clock())
    return ReadResult(order_number, serial, kind, state, None, False, tuple(outcome.observations),
                      tuple(outcome.values), stored, start, end, outcome.meter_time, outcome.clock_offset, used,
                      received)


def _reserve(db: Registry, target: MeterTarget, what: What, start: datetime | None,
             end: datetime | None) -> tuple[CounterReservation, str | None, int]:
    """Counters for a ciphered association (device, client SAP); a dummy reservation when none are sent."""
    route = target.route
    if isinstance(route, ViaConcentrator) and route.mode == "concentrated":
        security, device, client_sap = route.dc_security, route.concentrator_id, route.dc_client_sap
        # The counters we send go to the DC, one sequence for all its logical devices; but the DC keeps
        # one server counter per logical device, so the replay floor of what it sends is per LD.
        received_key = received_device(route.concentrator_id, route.logical_device)
    else:
        security, device, client_sap = target.security, target.serial, target.client_sap
        received_key = device
    if security.policy != "hls-gmac":
        # No ciphering, no invocation counters on the wire: nothing to persist.
        return CounterReservation(start=1, limit=2**32), None, client_sap
    reservation = reserve_counters(db.engine, device, client_sap, counter_budget(what, start, end))
    if received_key != device:
        state = counter_state(db.engine, received_key, client_sap)
        reservation = replace(reservation, last_received=None if state is None else state[1])
    return reservation, received_key, client_sap


def received_device(concentrator_id: str, logical_device: int) -> str:
    """The key under which the last invocation counter received from one of a DC's logical devices is kept."""
    return f"{concentrator_id}#{logical_device}"

