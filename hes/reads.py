"""On-demand reads of one meter: the use case's order, through the one order runner, with the values read.

``read_meter(registry, serial, what, start=..., end=..., requested_by=...)`` runs the use case
"on-demand reading of a meter" end to end as an order of ``hes.runner.OrderRunner``: the order
(committed PENDING), the checks (the meter exists, is commissioned, is linked, its DC is not known
to be down: nothing is contacted when one fails), the counters, the session through the meter's
gate, the GETs for ``what`` (``Reader``: the profile, daily values and event logs through the one
profile reader, ``hes.profiles``), idempotent storage (``hes.db.readings``: interval values per
channel and interval end, registers and daily values with their scaler and unit, events per log,
code and time), the DC's reachability, the order EXE, WARN (observations: partial data, gaps, clock
deviation beyond tolerance, quality flags) or FAIL (the reason, and whether a retry can help), an
audit row and a "data received" lifecycle event.

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
from typing import Any, Literal

from sqlalchemy.orm import Session

from concentrator.keys import logical_device_key
from concentrator.links import ReadMode
from hes.db.orders import record_asset_event
from hes.db.readings import EventRow, IntervalRow, RegisterRow, store_events, store_intervals, store_registers
from hes.db.stored import correlation, current_correlation
from hes.devicetypes import ProfileSpec
from hes.errors import HesError
from hes.events.catalog import load_catalog
from hes.profiles import (
    QUALITY_STATUS_FLAGGED,
    QUALITY_TIME_FILLED,
    ProfileRead,
    dated_rows,
    deviation_of,
    integer,
    interval_rows,
    read_profile,
    register_rows,
)
from hes.registry import Registry
from hes.runner import Finish, Job, Observations, OrderRunner
from hes.session import AttributeRef, LinkFactory, MeterSession, Timeouts
from hes.slots import Gate
from protocols.axdr import Data, DataTag
from protocols.cosem import ScalerUnit, unit_symbol
from protocols.cosem.profile import ColumnRole
from protocols.cosem.units import apply_scaler
from protocols.cosem_datetime import ClockStatus, CosemDateTime
from protocols.errors import DecodeError, ProtocolError, ServiceError

__all__ = [
    "MAX_REGISTERS",
    "QUALITY_STATUS_FLAGGED",
    "QUALITY_TIME_FILLED",
    "WHATS",
    "ReadRequestError",
    "ReadResult",
    "ReadValue",
    "Reader",
    "What",
    "counter_budget",
    "read_job",
    "read_meter",
    "received_device",
]

logger = logging.getLogger(__name__)

What = Literal["clock", "registers", "profile", "daily", "events"]
WHATS: tuple[What, ...] = ("clock", "registers", "profile", "daily", "events")
State = Literal["EXE", "WARN", "FAIL"]

#: The most registers a device type names, for the invocation counters of a register read (reserved
#: before the meter's type is known).
MAX_REGISTERS = 32

_DEFAULT_TOLERANCE = timedelta(seconds=60)
_DEFAULT_SPAN = timedelta(days=1)


class ReadRequestError(HesError):
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
    #: The FAIL found the meter's concentrator unreachable (no connection to it).
    concentrator_unreachable: bool = False

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
    meter_time: datetime | None = None
    clock_offset: Decimal | None = None


# --- helpers ---------------------------------------------------------------------------------------------


def _date_time(data: Data, what: str) -> CosemDateTime:
    if data.tag == DataTag.OCTET_STRING and isinstance(data.value, bytes | bytearray):
        return CosemDateTime.decode(bytes(data.value))
    if data.tag == DataTag.DATE_TIME and isinstance(data.value, CosemDateTime):
        return data.value
    raise DecodeError(f"{what}: expected a date-time, got {DataTag(data.tag).name.lower()}")


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


# --- reading the meter -----------------------------------------------------------------------------------


class Reader:
    """The GETs of one read and the rows they give, on an open session; raises the stack's typed errors.

    ``observations`` collects what makes the read a WARN; ``out`` what it read. The field tool reads
    with the same ``Reader`` (``meter_id`` 0: its rows go into a bundle, filed under the meter at import).
    """

    def __init__(self, session: MeterSession, meter_id: int, hes_clock: Callable[[], datetime],
                 tolerance: timedelta | None, observations: list[str] | None = None) -> None:
        self.session = session
        #: Where the meter has what (``hes.devicetypes``): every OBIS code read comes from it.
        self.kind = session.target.device_type
        self.names = {str(r.obis): r.name for r in self.kind.registers} | {str(self.kind.clock): "clock"}
        self.meter_id = meter_id
        self.hes_clock = hes_clock
        self.tolerance = tolerance
        self.observations = observations if observations is not None else []
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
            self.observations.append(
                f"clock deviation {offset:+.0f} s beyond the tolerance of {_seconds(self.tolerance):.0f} s")
        status = stamp.status
        if status is not None and status & (ClockStatus.INVALID_VALUE | ClockStatus.DOUBTFUL_VALUE):
            self.observations.append(f"meter clock status {status!r}: time invalid or doubtful")
        return local, stamp

    async def clock(self) -> None:
        clock = self.kind.clock
        local, stamp = self._clock(await self.session.get(8, clock, 2))
        self.out.values.append(ReadValue(
            "clock", local.astimezone(UTC), deviation_of(local), str(clock), "clock", self.out.clock_offset, "s",
            stamp.clock_status if stamp.status is not None else None))

    async def registers(self) -> None:
        refs = [AttributeRef(8, self.kind.clock, 2)]
        for r in self.kind.registers:
            refs += [AttributeRef(r.class_id, r.obis, 2), AttributeRef(r.class_id, r.obis, 3)]
        answers = await self.session.get_many(refs)
        clock = answers[0]
        if isinstance(clock, ServiceError):
            raise clock  # without the capture time, no reading can be stored
        local, _ = self._clock(clock)
        captured, deviation = local.astimezone(UTC), deviation_of(local)
        for index, register in enumerate(self.kind.registers):
            obis, name = register.obis, register.name
            value, scaler_unit = answers[1 + 2 * index], answers[2 + 2 * index]
            if isinstance(value, ServiceError) or isinstance(scaler_unit, ServiceError):
                problem = value if isinstance(value, ServiceError) else scaler_unit
                self.observations.append(f"partial data: {name} ({obis}) not read: {problem}")
                continue
            raw = integer(value, f"{name} value")
            su = ScalerUnit.from_data(scaler_unit)
            self.out.registers.append(RegisterRow(self.meter_id, str(obis), captured, raw, su.scaler, int(su.unit),
                                                  deviation))
            self.out.values.append(ReadValue("register", captured, deviation, str(obis), name,
                                             apply_scaler(raw, su.scaler), unit_symbol(su.unit)))
        if not self.out.registers:
            raise ServiceError(f"meter {self.session.target.serial}: no register could be read")

    def _gaps(self, times: list[datetime], start: datetime, upper: datetime, period: int, exclusive: bool,
              what: str) -> None:
        if period <= 0 or upper <= start:
            return
        step = timedelta(seconds=period)
        if not times:
            expected = math.floor((upper - start) / step)
            if expected > 0:
                self.observations.append(f"gap: no {what} in the range (about {expected} expected)")
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
            self.observations.append(f"gap: {missing} {what} missing in the range")

    def _meter_now(self, clock: Data | None) -> datetime:
        if clock is None:
            return self.hes_clock()
        local, _ = self._clock(clock)
        return local.astimezone(UTC)

    def _expected(self, what: str, spec: ProfileSpec, read: ProfileRead) -> None:
        """A profile whose capture objects are not those its device type expects: an observation, read anyway."""
        if spec.capture and tuple(c.capture for c in read.shape.columns) != spec.capture:
            got = ", ".join(f"{c.capture.class_id}/{c.capture.logical_name}/{c.capture.attribute_index}"
                            for c in read.shape.columns)
            self.observations.append(f"{what} {spec.obis} captures {got}, not what device type {self.kind.name} "
                                     "expects: read as the meter says")

    async def profile(self, start: datetime, end: datetime) -> None:
        spec = self.kind.load_profile
        read = await read_profile(self.session, spec.obis, start, end, with_clock=True, status=spec.status)
        self.observations.extend(read.notes)
        self._expected("load profile", spec, read)
        now = self._meter_now(read.clock)
        dated = dated_rows(read.rows, start, end)
        rows, flagged, power = interval_rows(self.meter_id, read.shape, dated)
        self.out.intervals.extend(rows)
        for row in rows:
            local = dated.by_time[row.interval_end].time
            deviation = None if local is None else deviation_of(local)
            value = apply_scaler(int(row.value), row.scaler)
            self.out.values.append(ReadValue("interval", row.interval_end, deviation, row.obis,
                                             self.names.get(row.obis, row.obis), value, _unit(row.unit), row.status,
                                             row.quality))
        if dated.undated:
            self.observations.append(f"partial data: {dated.undated} profile rows without a capture time skipped")
        if flagged:
            detail = f", {power} with a power failure" if power else ""
            self.observations.append(f"quality: {flagged} intervals with status flags{detail}")
        self._gaps(dated.times, start, min(end, now), read.shape.period, True, "intervals")

    async def daily(self, start: datetime, end: datetime) -> None:
        spec = self.kind.daily
        if spec is None:
            raise ServiceError(f"meter {self.session.target.serial}: device type {self.kind.name} has no daily values")
        read = await read_profile(self.session, spec.obis, start, end, exclusive_start=False, with_clock=True,
                                  status=spec.status)
        self.observations.extend(read.notes)
        self._expected("daily values", spec, read)
        now = self._meter_now(read.clock)
        dated = dated_rows(read.rows, start, end, exclusive_start=False)
        rows = register_rows(self.meter_id, read.shape, dated)
        self.out.registers.extend(rows)
        for row in rows:
            self.out.values.append(ReadValue("daily", row.capture_time, row.deviation_minutes, row.obis,
                                             self.names.get(row.obis, row.obis),
                                             apply_scaler(int(row.value), row.scaler), _unit(row.unit)))
        if dated.undated:
            self.observations.append(f"partial data: {dated.undated} daily rows without a capture time skipped")
        self._gaps(dated.times, start, min(end, now), read.shape.period, False, "daily values")

    async def events(self, start: datetime, end: datetime) -> None:
        read_logs = 0
        # The meter's own code tables where its type has them, the head-end's event table otherwise.
        catalog = self.kind.event_catalog(load_catalog())
        for log_spec in self.kind.event_logs:
            log, log_name = log_spec.obis, log_spec.name
            try:
                read = await read_profile(self.session, log, start, end, exclusive_start=False, scalers=False)
            except ServiceError as exc:
                self.observations.append(f"partial data: {log_name} event log ({log}) not read: {exc}")
                continue
            read_logs += 1
            columns = read.shape.columns
            codes = [i for i, c in enumerate(columns) if c.role is ColumnRole.VALUE]
            preferred = [i for i in codes if columns[i].capture.logical_name.c == 96
                         and columns[i].capture.logical_name.d == 11]
            if not (preferred or codes):
                raise ProtocolError(f"{log_name} event log ({log}) captures no event code")
            code_column = (preferred or codes)[0]
            for row in read.rows:
                code = row.values[code_column]
                if row.time is None or not isinstance(code, int) or isinstance(code, bool):
                    self.observations.append(f"partial data: a {log_name} event without time or code skipped")
                    continue
                at = row.time.astimezone(UTC)
                # Named (and graded, for the event bus) by the meter's code table.
                name = catalog.lookup_obis(str(log), code).name
                self.out.events.append(EventRow(self.meter_id, str(log), code, at, name))
                self.out.values.append(ReadValue("event", at, deviation_of(row.time), str(log),
                                                 f"{log_name}: {name}", code))
        if not read_logs:
            raise ServiceError(f"meter {self.session.target.serial}: no event log could be read")
        self.out.values.sort(key=lambda v: (v.time or datetime.min.replace(tzinfo=UTC), v.obis))


def _unit(unit: int | None) -> str:
    return "" if unit is None else unit_symbol(unit)


# --- the use case ------------------------------------------------------------------------------------------


def counter_budget(what: What, start: datetime | None, end: datetime | None) -> int:
    """Invocation counters for one session: association, HLS reply, release, every request and block."""
    base = 8  # AARQ, the HLS reply, RLRQ and slack for a repeated request
    if what == "clock":
        return base + 2
    if what == "registers":
        return base + 2 + 2 * MAX_REGISTERS  # GET-with-list, or one GET per attribute when not granted
    span = (end - start) if start is not None and end is not None else _DEFAULT_SPAN
    if what == "profile":
        rows, row_bytes = span / timedelta(minutes=15), 50
    elif what == "daily":
        rows, row_bytes = span / timedelta(days=1), 60
    else:
        rows, row_bytes = 3 * 100 * max(1.0, span / timedelta(days=1)), 20
    blocks = math.ceil(rows * row_bytes / 500) + 1  # a block carries at least ~500 bytes
    return base + 16 + 2 * blocks


def received_device(concentrator_id: str, logical_device: int) -> str:
    """The key under which the last invocation counter received from one of a DC's logical devices is kept."""
    return logical_device_key(concentrator_id, logical_device)


def _describe(what: str, start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return what
    return f"{what} {_iso(start)}..{_iso(end)}"


def _range(what: str, start: datetime | None, end: datetime | None,
           clock: Callable[[], datetime]) -> tuple[What, datetime | None, datetime | None]:
    """The request checked: ``what`` known, times aware, a range only where one applies and not empty."""
    if what not in WHATS:
        raise ReadRequestError(f"cannot read {what!r}: one of {', '.join(WHATS)}")
    kind: What = what
    for name, moment in (("from", start), ("to", end)):
        if moment is not None and moment.utcoffset() is None:
            raise ReadRequestError(f"--{name} {moment.isoformat()} needs a time zone (e.g. Z)")
    if kind in ("clock", "registers"):
        if start is not None or end is not None:
            raise ReadRequestError(f"a {kind} read takes no time range (--from/--to)")
        return kind, None, None
    end = (end or clock()).astimezone(UTC)
    start = start.astimezone(UTC) if start is not None else end - _DEFAULT_SPAN
    if start >= end:
        raise ReadRequestError(f"the range is empty: from {_iso(start)} is not before to {_iso(end)}")
    return kind, start, end


def read_job(what: str, *, serial: str, start: datetime | None = None, end: datetime | None = None,
             clock: Callable[[], datetime], clock_tolerance: timedelta | None = _DEFAULT_TOLERANCE,
             mode: ReadMode = "gateway", recheck_dc: bool = False) -> Job[_Outcome]:
    """The order of an on-demand read (``ReadRequestError`` for a malformed request): what ``read_meter`` runs."""
    kind, start, end = _range(what, start, end, clock)
    described = _describe(kind, start, end)

    async def body(session: MeterSession, observations: Observations) -> _Outcome:
        reader = Reader(session, 0, clock, clock_tolerance, observations)
        if kind == "clock":
            await reader.clock()
        elif kind == "registers":
            await reader.registers()
        elif start is not None and end is not None:
            await getattr(reader, kind)(start, end)
        return reader.out

    def store(db: Session, finish: Finish, out: _Outcome) -> tuple[int, str | None]:
        meter_id = finish.device_id
        intervals = [row._replace(meter_id=meter_id) for row in out.intervals]
        registers = [row._replace(meter_id=meter_id) for row in out.registers]
        events = [replace(row, meter_id=meter_id) for row in out.events]
        # What a read stores is correlated (CIM's CorrelationID) with the plan run around it, else with its order.
        with correlation(current_correlation() or finish.order_number):
            stored = store_intervals(db, intervals) + store_registers(db, registers) + store_events(db, events)
        record_asset_event(db, meter_id, "data received",
                           f"{finish.order_number}: {described}, {len(out.values)} values, {stored} new",
                           when=finish.now)
        return stored, None

    return Job(serial, f"read {kind}", body, counter_budget(kind, start, end),
               parameters={"what": kind, "from": _iso(start), "to": _iso(end), "mode": mode,
                           "described": f"read {described} {serial}"},
               mode=mode, force_contact=recheck_dc, store=store, crash_point="read-before-store",
               check_dc_clock=True)


async def read_meter(
    db: Registry,
    serial: str,
    what: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    requested_by: str,
    clock: Callable[[], datetime] | None = None,
    clock_tolerance: timedelta | None = _DEFAULT_TOLERANCE,
    timeouts: Timeouts | None = None,
    gate: Gate | None = None,
    mode: ReadMode = "gateway",
    recheck_dc: bool = False,
    connect: LinkFactory | None = None,
    runner: OrderRunner | None = None,
) -> ReadResult:
    """Read ``what`` from meter ``serial`` now, store it, and return the order's result (see the module docstring).

    ``start``/``end`` (aware) bound profile, daily and event reads (default: the day up to the
    head-end's clock); ``clock`` is that clock (checks of the meter's clock, order times; default:
    ``runner``'s); ``clock_tolerance`` None disables the deviation check. A DC known to be
    unreachable is not contacted unless ``recheck_dc``. ``runner`` is the process's order runner
    (its gate, pool, deadlines); without one, a runner of this call's (``gate``, ``timeouts``,
    ``connect``). Raises ``ReadRequestError`` for a malformed request and ``StorageError`` when the
    database fails; every outcome of the field is a ``ReadResult``.
    """
    if runner is None:
        options: dict[str, Any] = {"gate": gate, "timeouts": timeouts, "connect": connect}
        if clock is not None:
            options["clock"] = clock
        runner = OrderRunner(db, requested_by=requested_by, **options)
    job = read_job(what, serial=serial, start=start, end=end, clock=clock or runner.clock,
                   clock_tolerance=clock_tolerance, mode=mode, recheck_dc=recheck_dc)
    kind = job.parameters["what"]
    begin, finish = _parse_iso(job.parameters["from"]), _parse_iso(job.parameters["to"])
    result = await runner.run(job, requested_by=requested_by)
    out = result.result
    if result.state == "FAIL" or out is None:
        failure = result.failure
        return ReadResult(result.order_number, serial, kind, "FAIL", result.reason, result.retryable, start=begin,
                          end=finish, counters_used=result.counters_used, last_received=result.last_received,
                          concentrator_unreachable=failure is not None and failure.concentrator_unreachable)
    return ReadResult(result.order_number, serial, kind, result.state, None, False, result.observations,
                      tuple(out.values), result.stored, begin, finish, out.meter_time, out.clock_offset,
                      result.counters_used, result.last_received)


def _parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))
