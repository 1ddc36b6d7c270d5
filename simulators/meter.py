"""The simulated meter: a DLMS logical device (COSEM object model, security, sessions) over seeded data.

``SimulatedMeter`` is a ``LogicalDevice``: transports call ``open_session(client_sap)`` and feed
the ``Session`` whole APDUs. Each session wraps our own ``ServerAssociation`` configured for that
client SAP (``public_sap``, 0x10 by default: no security, read only; every other served SAP: the
meter's policy, none / LLS / HLS-GMAC with suite-0 glo-ciphering, with read, write and methods).

Values come from ``simulators.energy`` and ``simulators.events`` (pure functions of seed, serial and
field time), so a test can say what any value read must be. Nothing per meter is precomputed: a
profile buffer is generated for the rows asked for, the object list is shared by every meter,
and a meter object holds a few fields (``__slots__``), so a fleet of 10,000 starts in moments.

Two makes (``simulators.makes``): make A (``MAKE_A``, the default) is the IDIS-like meter described
in docs/SIMULATORS.md; make B (``MAKE_B``) is a single-rate meter of another layout: load profile
``LOAD_PROFILE_B`` (clock, A-, A+, status word ``STATUS_WORD_B``), daily values ``DAILY_VALUES_B``
(clock, A+, A-), only A+, A- and voltage registers, and its own event code numbers. The values of
both come from the same functions; only the object model and the code numbers differ.

Choices worth knowing:
- Profile rows, billing rows and log entries are stamped with field (true) time; only the clock
  object (0.0.1.0.0.255, attribute 2) shows the meter's drifting time. Drift starts when the
  ``SimulatedMeter`` is created and restarts when a client sets the time.
- Buffers hold ``HISTORY_DAYS`` (100) days: load profile 9600 entries, daily billing 100, event
  logs the entries of those days (at most ``LOG_CAPACITY``). Entry numbers count from the oldest.
- Relay (IC 70, control mode 2 by default): remote_disconnect / remote_reconnect move the
  ``DisconnectControlMachine``; while the output is off, every interval it overlaps records 0.
  Asking for the state the relay is already in succeeds without a change (head-ends retry).
  Relay windows and runtime log entries live in memory only: a restart reconnects the relay.
- A decommissioned meter still opens sessions (the link answers) but rejects every AARQ
  (rejected-permanent, no-reason-given), which the head-end reports as "meter not commissioned".
- Invocation counters come from the ``CounterStore`` per (serial, client SAP); the meter's own
  counter is reserved ``COUNTER_BLOCK`` at a time, the client's stored after every request.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from protocols.acse import (
    AARQ_TAG,
    Aare,
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationResult,
    MechanismName,
)
from protocols.association import (
    ActionRequested,
    CipheringMode,
    Event,
    GetRequested,
    GetWithListRequested,
    SecurityFailure,
    SecurityPolicy,
    ServerAssociation,
    ServerConfig,
    SetRequested,
)
from protocols.axdr import Data, DataTag, decode_data_exact, encode_data, encode_length
from protocols.cosem import ControlMode, ControlState, DisconnectControlMachine, ObjectListElement, ScalerUnit, Unit
from protocols.cosem.association import (
    AssociatedPartnersId,
    AssociationStatus,
    AttributeAccessItem,
    ContextName,
    MethodAccessItem,
    XdlmsContextInfo,
)
from protocols.cosem.disconnect import Trigger
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, StateError
from protocols.obis import ObisCode
from protocols.xdlms.common import (
    ActionResult,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccessDescriptor,
)
from protocols.xdlms.errors import ExceptionServiceError, ExceptionStateError
from protocols.xdlms.selective_access import (
    ENTRY_SELECTOR,
    RANGE_SELECTOR,
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
)
from simulators.clock import FieldClock
from simulators.counters import Counters, CounterStore
from simulators.endpoint import Session
from simulators.energy import (
    FIELD_EPOCH,
    INTERVAL,
    INTERVAL_SECONDS,
    INTERVALS_PER_DAY,
    LOCAL_DEVIATION,
    Registers,
    Window,
    completed_intervals,
    interval_end,
    profile_intervals,
    profile_status,
    registers_after,
    voltage_at,
)
from simulators.events import EventCode, EventLog, MeterEvent, events_between, relay_openings
from simulators.makes import DEVICE_TYPES, MAKE_A, MAKE_B, DeviceType, event_code

__all__ = [
    "A_MINUS",
    "A_PLUS",
    "A_PLUS_T1",
    "A_PLUS_T2",
    "ASSOCIATION",
    "CLOCK",
    "COUNTER_BLOCK",
    "DAILY_BILLING",
    "DAILY_VALUES_B",
    "DISCONNECT_CONTROL",
    "HISTORY_DAYS",
    "LOAD_PROFILE",
    "LOAD_PROFILE_B",
    "LOG_CAPACITY",
    "PROFILE_STATUS",
    "SECURITY_SETUP",
    "SERIAL_NUMBER",
    "STATUS_WORD_B",
    "VOLTAGE_L1",
    "MeterConfig",
    "objects_of",
    "MeterConfigError",
    "MeterSession",
    "PolicyName",
    "SimulatedMeter",
]

PolicyName = Literal["none", "lls", "hls-gmac"]

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
SERIAL_NUMBER = ObisCode(0, 0, 96, 1, 0, 255)
A_PLUS = ObisCode(1, 0, 1, 8, 0, 255)
A_PLUS_T1 = ObisCode(1, 0, 1, 8, 1, 255)
A_PLUS_T2 = ObisCode(1, 0, 1, 8, 2, 255)
A_MINUS = ObisCode(1, 0, 2, 8, 0, 255)
VOLTAGE_L1 = ObisCode(1, 0, 32, 7, 0, 255)
LOAD_PROFILE = ObisCode(1, 0, 99, 1, 0, 255)
PROFILE_STATUS = ObisCode(0, 0, 96, 10, 1, 255)
DAILY_BILLING = ObisCode(1, 0, 98, 1, 0, 255)
DISCONNECT_CONTROL = ObisCode(0, 0, 96, 3, 10, 255)
SECURITY_SETUP = ObisCode(0, 0, 43, 0, 0, 255)
ASSOCIATION = ObisCode(0, 0, 40, 0, 0, 255)
#: Make B's load profile (clock, A-, A+, status word), daily values (clock, A+, A-) and status word.
LOAD_PROFILE_B = ObisCode(1, 0, 99, 2, 0, 255)
DAILY_VALUES_B = ObisCode(0, 0, 98, 1, 0, 255)
STATUS_WORD_B = ObisCode(0, 0, 96, 5, 0, 255)

HISTORY_DAYS = 100
LOG_CAPACITY = 1000
COUNTER_BLOCK = 32
_RUNTIME_EVENTS_KEPT = 2000
_PROFILE_CAPACITY = HISTORY_DAYS * INTERVALS_PER_DAY
_DAY = timedelta(days=1)
#: Local midnight (UTC+1) falls at 23:00Z: the first one after the epoch is 2024-01-01T23:00Z.
_FIRST_MIDNIGHT = FIELD_EPOCH + timedelta(hours=23)

_WH = ScalerUnit(0, Unit.WATT_HOUR)
_DECIVOLT = ScalerUnit(-1, Unit.VOLT)


class MeterConfigError(ValueError):
    """A meter configuration that cannot work (one line says why)."""


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """One meter: identity, seed, security and behaviour.

    ``policy`` applies to every served client SAP except ``public_sap`` (no security, read only).
    ``ek``/``ak`` are the global unicast encryption and authentication keys (16 bytes),
    ``system_title`` the meter's own (8 bytes). ``drift_seconds_per_day`` > 0 makes the clock run
    fast. ``control_mode`` is IC 70's control_mode (0..6). ``device_type`` is the make
    (``simulators.makes.MAKE_A`` or ``MAKE_B``): which object model the meter serves.
    """

    serial: str
    seed: int | str
    physical_address: int
    policy: PolicyName = "none"
    password: bytes | None = None
    system_title: bytes | None = None
    ek: bytes | None = None
    ak: bytes | None = None
    client_saps: tuple[int, ...] = (0x10, 0x01)
    public_sap: int = 0x10
    drift_seconds_per_day: float = 0.0
    decommissioned: bool = False
    control_mode: int = 2
    device_type: DeviceType = MAKE_A
    #: The most attributes it answers in one GET-with-list (None: any number). Above it the meter answers
    #: as real ones do: ``"short"`` with the first that many results only (gurux-dlms's meter server),
    #: ``"refuse"`` with one data-access-result for the whole list, ``"exception"`` with an
    #: ExceptionResponse (service-not-allowed, pdu-too-long).
    #: How an HLS-GMAC association ciphers (``general-glo``: general-glo-ciphering 0xDB, as some makes do).
    ciphering: Literal["service-specific", "general-glo"] = "service-specific"
    get_with_list_limit: int | None = None
    get_with_list_overflow: Literal["short", "refuse", "exception"] = "short"

    def __post_init__(self) -> None:
        if not self.serial or not self.serial.isprintable() or len(self.serial) > 64:
            raise MeterConfigError(f"meter serial {self.serial!r} must be 1-64 printable characters")
        if not 0 <= self.physical_address <= 0xFFFF:
            raise MeterConfigError(f"meter {self.serial}: physical address {self.physical_address} outside 0-65535")
        if self.policy not in ("none", "lls", "hls-gmac"):
            raise MeterConfigError(f"meter {self.serial}: unknown security policy {self.policy!r}")
        if self.policy == "lls" and not self.password:
            raise MeterConfigError(f"meter {self.serial}: LLS needs a password")
        if self.policy == "hls-gmac":
            if self.system_title is None or len(self.system_title) != 8:
                raise MeterConfigError(f"meter {self.serial}: HLS-GMAC needs an 8-byte system title")
            if self.ek is None or len(self.ek) != 16 or self.ak is None or len(self.ak) != 16:
                raise MeterConfigError(f"meter {self.serial}: HLS-GMAC needs 16-byte ek and ak")
        if not self.client_saps or any(not 0 < sap <= 0x7F for sap in self.client_saps):
            raise MeterConfigError(f"meter {self.serial}: client SAPs must be 1-127")
        if self.get_with_list_limit is not None and self.get_with_list_limit < 1:
            raise MeterConfigError(f"meter {self.serial}: GET-with-list limit {self.get_with_list_limit} below 1")
        if self.get_with_list_overflow not in ("short", "refuse", "exception"):
            raise MeterConfigError(f"meter {self.serial}: GET-with-list overflow {self.get_with_list_overflow!r}")
        if not 0 <= self.control_mode <= 6:
            raise MeterConfigError(f"meter {self.serial}: control mode {self.control_mode} outside 0-6")
        known = DEVICE_TYPES.get(self.device_type.name)
        if known is not self.device_type and known != self.device_type:
            raise MeterConfigError(f"meter {self.serial}: device type {self.device_type.name!r} is not simulated "
                                   f"(known: {', '.join(DEVICE_TYPES)})")

    def security_policy(self, client_sap: int) -> SecurityPolicy:
        """The association's security for this client SAP (the public client has none)."""
        if client_sap == self.public_sap or self.policy == "none":
            return SecurityPolicy()
        if self.policy == "lls":
            return SecurityPolicy(mechanism=MechanismName.LLS, password=self.password)
        return SecurityPolicy(
            mechanism=MechanismName.HLS_GMAC,
            ciphering=CipheringMode.GENERAL if self.ciphering == "general-glo" else CipheringMode.SERVICE_SPECIFIC,
            system_title=self.system_title,
            encryption_key=self.ek,
            authentication_key=self.ak,
        )


# --- encoding helpers ------------------------------------------------------------------------------------

_U32 = struct.Struct(">BI")
_U16 = struct.Struct(">BH")


def _date_time(moment: datetime) -> bytes:
    """A capture time as the A-XDR octet-string of a COSEM date-time at local time (UTC+1)."""
    return b"\x09\x0c" + CosemDateTime.from_datetime(moment, deviation=LOCAL_DEVIATION).encode()


def _dlu(value: int) -> bytes:
    return _U32.pack(DataTag.DOUBLE_LONG_UNSIGNED, value & 0xFFFFFFFF)


def _unsigned(value: int) -> bytes:
    return bytes((DataTag.UNSIGNED, value & 0xFF))


def _long_unsigned(value: int) -> bytes:
    return _U16.pack(DataTag.LONG_UNSIGNED, value & 0xFFFF)


def _obis_data(obis: ObisCode) -> Data:
    return Data.octet_string(bytes(obis))


def _instant(value: Data) -> datetime | None:
    try:
        if value.tag == DataTag.OCTET_STRING and isinstance(value.value, bytes):
            moment = CosemDateTime.decode(value.value)
        elif value.tag == DataTag.DATE_TIME and isinstance(value.value, CosemDateTime):
            moment = value.value
        else:
            return None
    except DecodeError:
        return None
    return moment.to_datetime(default_deviation=LOCAL_DEVIATION)


# --- buffers -------------------------------------------------------------------------------------------------


class _SelectionError(Exception):
    """A selective access the buffer cannot serve; carries the answer."""

    def __init__(self, result: DataAccessResult) -> None:
        super().__init__(result.name)
        self.result = result


@dataclass(frozen=True, slots=True)
class _Profile:
    """A profile generic object: columns, period, and how its rows are made.

    ``span(meter, now)`` gives (first key, count): the rows are keys first .. first+count-1 in
    time order; ``key_of_time`` maps a time bound to a key; ``rows`` encodes keys [lo, hi).
    """

    obis: ObisCode
    columns: tuple[CaptureObjectDefinition, ...]
    period: int
    capacity: int
    span: Callable[[SimulatedMeter, datetime], tuple[int, int]]
    first_key_at_or_after: Callable[[SimulatedMeter, datetime, datetime], int]
    last_key_at_or_before: Callable[[SimulatedMeter, datetime, datetime], int]
    rows: Callable[[SimulatedMeter, datetime, int, int], Iterator[tuple[bytes, ...]]]


def _lp_span(meter: SimulatedMeter, now: datetime) -> tuple[int, int]:
    done = completed_intervals(now)
    first = max(0, done - _PROFILE_CAPACITY)
    return first, done - first


def _lp_rows(meter: SimulatedMeter, now: datetime, lo: int, hi: int) -> Iterator[tuple[bytes, ...]]:
    for row in profile_intervals(meter.config.seed, meter.config.serial, lo, hi - 1, meter.windows):
        yield _date_time(interval_end(row.interval)), _unsigned(row.status), _dlu(row.a_plus), _dlu(row.a_minus)


def _ceil_div(a: timedelta, b: timedelta) -> int:
    return -((-a) // b)


_LOAD_PROFILE = _Profile(
    LOAD_PROFILE,
    (
        CaptureObjectDefinition(8, CLOCK, 2),
        CaptureObjectDefinition(1, PROFILE_STATUS, 2),
        CaptureObjectDefinition(3, A_PLUS, 2),
        CaptureObjectDefinition(3, A_MINUS, 2),
    ),
    INTERVAL_SECONDS,
    _PROFILE_CAPACITY,
    _lp_span,
    # the row of interval i is stamped with its end, epoch + (i + 1) x 15 min
    lambda meter, now, t: _ceil_div(t - FIELD_EPOCH, INTERVAL) - 1,
    lambda meter, now, t: (t - FIELD_EPOCH) // INTERVAL - 1,
    _lp_rows,
)


def _midnight(k: int) -> datetime:
    """The k-th local midnight after the epoch (k >= 0)."""
    return _FIRST_MIDNIGHT + k * _DAY


def _daily_span(meter: SimulatedMeter, now: datetime) -> tuple[int, int]:
    if now < _FIRST_MIDNIGHT:
        return 0, 0
    last = (now - _FIRST_MIDNIGHT) // _DAY
    first = max(0, last - HISTORY_DAYS + 1)
    return first, last - first + 1


def _daily_rows(meter: SimulatedMeter, now: datetime, lo: int, hi: int) -> Iterator[tuple[bytes, ...]]:
    for k in range(lo, hi):
        at = _midnight(k)
        r = meter.registers_at(at)
        yield _date_time(at), _dlu(r.a_plus), _dlu(r.a_plus_t1), _dlu(r.a_plus_t2), _dlu(r.a_minus)


_DAILY_BILLING = _Profile(
    DAILY_BILLING,
    (
        CaptureObjectDefinition(8, CLOCK, 2),
        CaptureObjectDefinition(3, A_PLUS, 2),
        CaptureObjectDefinition(3, A_PLUS_T1, 2),
        CaptureObjectDefinition(3, A_PLUS_T2, 2),
        CaptureObjectDefinition(3, A_MINUS, 2),
    ),
    86400,
    HISTORY_DAYS,
    _daily_span,
    lambda meter, now, t: _ceil_div(t - _FIRST_MIDNIGHT, _DAY),
    lambda meter, now, t: (t - _FIRST_MIDNIGHT) // _DAY,
    _daily_rows,
)


def _lp_rows_b(meter: SimulatedMeter, now: datetime, lo: int, hi: int) -> Iterator[tuple[bytes, ...]]:
    for row in profile_intervals(meter.config.seed, meter.config.serial, lo, hi - 1, meter.windows):
        yield _date_time(interval_end(row.interval)), _dlu(row.a_minus), _dlu(row.a_plus), _long_unsigned(row.status)


_LOAD_PROFILE_B = _Profile(
    LOAD_PROFILE_B,
    (
        CaptureObjectDefinition(8, CLOCK, 2),
        CaptureObjectDefinition(3, A_MINUS, 2),
        CaptureObjectDefinition(3, A_PLUS, 2),
        CaptureObjectDefinition(1, STATUS_WORD_B, 2),
    ),
    INTERVAL_SECONDS,
    _PROFILE_CAPACITY,
    _lp_span,
    _LOAD_PROFILE.first_key_at_or_after,
    _LOAD_PROFILE.last_key_at_or_before,
    _lp_rows_b,
)


def _daily_rows_b(meter: SimulatedMeter, now: datetime, lo: int, hi: int) -> Iterator[tuple[bytes, ...]]:
    for k in range(lo, hi):
        at = _midnight(k)
        r = meter.registers_at(at)
        yield _date_time(at), _dlu(r.a_plus), _dlu(r.a_minus)


_DAILY_VALUES_B = _Profile(
    DAILY_VALUES_B,
    (
        CaptureObjectDefinition(8, CLOCK, 2),
        CaptureObjectDefinition(3, A_PLUS, 2),
        CaptureObjectDefinition(3, A_MINUS, 2),
    ),
    86400,
    HISTORY_DAYS,
    _daily_span,
    _DAILY_BILLING.first_key_at_or_after,
    _DAILY_BILLING.last_key_at_or_before,
    _daily_rows_b,
)


def _log_profile(log: EventLog, code: Callable[[EventCode], bytes]) -> _Profile:
    def span(meter: SimulatedMeter, now: datetime) -> tuple[int, int]:
        return 0, len(meter.log_entries(log, now))

    def first_at_or_after(meter: SimulatedMeter, now: datetime, t: datetime) -> int:
        entries = meter.log_entries(log, now)
        return next((i for i, e in enumerate(entries) if e.when >= t), len(entries))

    def last_at_or_before(meter: SimulatedMeter, now: datetime, t: datetime) -> int:
        entries = meter.log_entries(log, now)
        return next((i for i in range(len(entries) - 1, -1, -1) if entries[i].when <= t), -1)

    def rows(meter: SimulatedMeter, now: datetime, lo: int, hi: int) -> Iterator[tuple[bytes, ...]]:
        for event in meter.log_entries(log, now)[lo:hi]:
            yield _date_time(event.when), code(event.code)

    return _Profile(
        log.obis,
        (CaptureObjectDefinition(8, CLOCK, 2), CaptureObjectDefinition(1, log.code_obis, 2)),
        0,
        LOG_CAPACITY,
        span,
        first_at_or_after,
        last_at_or_before,
        rows,
    )


def _code_a(code: EventCode) -> bytes:
    return _unsigned(code)


def _code_b(code: EventCode) -> bytes:
    # Make B's vendor numbers do not fit one byte: its code objects are long-unsigned.
    return _long_unsigned(event_code(MAKE_B, code))


def _select_columns(profile: _Profile, wanted: Sequence[CaptureObjectDefinition]) -> list[int]:
    if not wanted:
        return list(range(len(profile.columns)))
    keys = [(c.class_id, c.logical_name, c.attribute_index) for c in profile.columns]
    picked = []
    for column in wanted:
        key = (column.class_id, column.logical_name, column.attribute_index)
        if key not in keys:
            raise _SelectionError(DataAccessResult.OBJECT_UNAVAILABLE)
        picked.append(keys.index(key))
    return picked


def _buffer(
    meter: SimulatedMeter, profile: _Profile, now: datetime, selection: SelectiveAccessDescriptor | None
) -> bytes:
    first, count = profile.span(meter, now)
    lo, hi = first, first + count
    columns = list(range(len(profile.columns)))
    if selection is not None:
        try:
            parameters = selection.parameters()
            if selection.access_selector == RANGE_SELECTOR:
                described = RangeDescriptor.from_data(parameters)
                restricting = described.restricting_object
                if (restricting.class_id, restricting.logical_name, restricting.attribute_index) != (8, CLOCK, 2):
                    raise _SelectionError(DataAccessResult.OBJECT_UNAVAILABLE)
                since, until = _instant(described.from_value), _instant(described.to_value)
                if since is None or until is None:
                    raise _SelectionError(DataAccessResult.TYPE_UNMATCHED)
                lo = max(lo, profile.first_key_at_or_after(meter, now, since))
                hi = min(hi, profile.last_key_at_or_before(meter, now, until) + 1)
                columns = _select_columns(profile, described.selected_values)
            elif selection.access_selector == ENTRY_SELECTOR:
                entry = EntryDescriptor.from_data(parameters)
                last_entry = count if entry.to_entry == 0 else min(entry.to_entry, count)
                lo, hi = first + max(entry.from_entry, 1) - 1, first + last_entry
                last_column = len(profile.columns) if entry.to_selected_value == 0 else entry.to_selected_value
                columns = list(range(max(entry.from_selected_value, 1) - 1, min(last_column, len(profile.columns))))
                if not columns:
                    raise _SelectionError(DataAccessResult.OBJECT_UNAVAILABLE)
            else:
                raise _SelectionError(DataAccessResult.OBJECT_UNAVAILABLE)
        except DecodeError:
            raise _SelectionError(DataAccessResult.TYPE_UNMATCHED) from None
    out = bytearray()
    rows = 0
    head = bytes((DataTag.STRUCTURE, len(columns)))
    everything = len(columns) == len(profile.columns)
    if hi > lo:
        for cells in profile.rows(meter, now, lo, hi):
            out += head
            out += b"".join(cells) if everything else b"".join(cells[c] for c in columns)
            rows += 1
    return bytes((DataTag.ARRAY,)) + encode_length(rows) + bytes(out)


# --- the object models of the makes ------------------------------------------------------------------------

# (class id, version, logical name, attribute count, attributes a client may write, methods it may run)
_Object = tuple[int, int, ObisCode, int, tuple[int, ...], tuple[int, ...]]

_OBJECTS_A: tuple[_Object, ...] = (
    (15, 2, ASSOCIATION, 11, (), (1,)),
    (64, 1, SECURITY_SETUP, 6, (), ()),
    (8, 0, CLOCK, 9, (2,), ()),
    (1, 0, SERIAL_NUMBER, 2, (), ()),
    (3, 0, A_PLUS, 3, (), ()),
    (3, 0, A_PLUS_T1, 3, (), ()),
    (3, 0, A_PLUS_T2, 3, (), ()),
    (3, 0, A_MINUS, 3, (), ()),
    (3, 0, VOLTAGE_L1, 3, (), ()),
    (1, 0, PROFILE_STATUS, 2, (), ()),
    (7, 1, LOAD_PROFILE, 8, (), ()),
    (7, 1, DAILY_BILLING, 8, (), ()),
    *((7, 1, log.obis, 8, (), ()) for log in EventLog),
    *((1, 0, log.code_obis, 2, (), ()) for log in EventLog),
    (70, 0, DISCONNECT_CONTROL, 4, (4,), (1, 2)),
)
_OBJECTS_B: tuple[_Object, ...] = (
    (15, 2, ASSOCIATION, 11, (), (1,)),
    (64, 1, SECURITY_SETUP, 6, (), ()),
    (8, 0, CLOCK, 9, (2,), ()),
    (1, 0, SERIAL_NUMBER, 2, (), ()),
    (3, 0, A_PLUS, 3, (), ()),
    (3, 0, A_MINUS, 3, (), ()),
    (3, 0, VOLTAGE_L1, 3, (), ()),
    (1, 0, STATUS_WORD_B, 2, (), ()),
    (7, 1, LOAD_PROFILE_B, 8, (), ()),
    (7, 1, DAILY_VALUES_B, 8, (), ()),
    *((7, 1, log.obis, 8, (), ()) for log in EventLog),
    *((1, 0, log.code_obis, 2, (), ()) for log in EventLog),
    (70, 0, DISCONNECT_CONTROL, 4, (4,), (1, 2)),
)
_METHOD_COUNT = {8: 6, 7: 2, 70: 2, 15: 6, 64: 8, 3: 1}


def _object_list(objects: tuple[_Object, ...], manager: bool) -> bytes:
    elements = []
    for class_id, version, obis, attributes, writable, methods in objects:
        access = tuple(
            AttributeAccessItem(
                a,
                3 if manager and a in writable else 1,
                (RANGE_SELECTOR, ENTRY_SELECTOR) if class_id == 7 and a == 2 else None,
            )
            for a in range(1, attributes + 1)
        )
        method_access = tuple(
            MethodAccessItem(m, 1 if (manager or class_id == 15) and m in methods else 0)
            for m in range(1, _METHOD_COUNT.get(class_id, 0) + 1)
        )
        elements.append(ObjectListElement(class_id, version, obis, access, method_access))
    return encode_data(Data.array(e.to_data() for e in elements))


@dataclass(frozen=True, slots=True)
class _Model:
    """What one make serves: its objects, buffers, energy registers (index into ``Registers``), codes."""

    device_type: DeviceType
    objects: tuple[_Object, ...]
    profiles: dict[ObisCode, _Profile]
    registers: dict[ObisCode, int]
    status: ObisCode
    status_data: Callable[[int], Data]
    code_data: Callable[[int], Data]
    class_of: dict[ObisCode, int]
    writable: frozenset[tuple[ObisCode, int]]
    object_list: dict[bool, bytes]


def _model(
    device_type: DeviceType,
    objects: tuple[_Object, ...],
    profiles: tuple[_Profile, ...],
    registers: dict[ObisCode, int],
    status: ObisCode,
    status_data: Callable[[int], Data],
    code_data: Callable[[int], Data],
) -> _Model:
    return _Model(
        device_type, objects, {p.obis: p for p in profiles}, registers, status, status_data, code_data,
        {obis: class_id for class_id, _, obis, _, _, _ in objects},
        frozenset((obis, attribute) for _, _, obis, _, writable, _ in objects for attribute in writable),
        {False: _object_list(objects, False), True: _object_list(objects, True)},
    )


_MODELS = {
    MAKE_A.name: _model(
        MAKE_A, _OBJECTS_A,
        (_LOAD_PROFILE, _DAILY_BILLING, *(_log_profile(log, _code_a) for log in EventLog)),
        {A_PLUS: 0, A_PLUS_T1: 1, A_PLUS_T2: 2, A_MINUS: 3}, PROFILE_STATUS, Data.unsigned, Data.unsigned,
    ),
    MAKE_B.name: _model(
        MAKE_B, _OBJECTS_B,
        (_LOAD_PROFILE_B, _DAILY_VALUES_B, *(_log_profile(log, _code_b) for log in EventLog)),
        {A_PLUS: 0, A_MINUS: 3}, STATUS_WORD_B, Data.long_unsigned, Data.long_unsigned,
    ),
}


def objects_of(kind: DeviceType) -> tuple[tuple[int, ObisCode], ...]:
    """(class id, logical name) of every object a meter of make ``kind`` serves, in its object list's order."""
    return tuple((class_id, obis) for class_id, _, obis, _, _, _ in _MODELS[kind.name].objects)


# --- the meter ----------------------------------------------------------------------------------------------------


class SimulatedMeter:
    """A simulated meter's one logical device (server SAP 1): see the module docstring."""

    __slots__ = (
        "_clock",
        "_clock_offset",
        "_counters",
        "_drift_from",
        "_on_event",
        "_relay",
        "_runtime_events",
        "_sessions_opened",
        "_windows",
        "config",
        "get_with_list_sizes",
    )

    def __init__(self, config: MeterConfig, clock: FieldClock, counters: CounterStore) -> None:
        self.config = config
        self._clock = clock
        self._counters = counters
        self._drift_from = clock.now()
        self._clock_offset = 0.0  # seconds set by clients, on top of the drift
        self._relay: DisconnectControlMachine | None = None
        self._windows: list[Window] = []
        self._runtime_events: list[MeterEvent] = []
        self._sessions_opened = 0
        #: How many attributes each GET-with-list asked for, in order (tests count requests with it).
        self.get_with_list_sizes: list[int] = []
        #: Called with every event the meter logs at run time (``simulators.push`` pushes from here).
        self._on_event: Callable[[SimulatedMeter, MeterEvent], None] | None = None

    # --- state that others (tests, the concentrator) may read ------------------------------------------------

    @property
    def serial(self) -> str:
        return self.config.serial

    @property
    def device_type(self) -> DeviceType:
        """The meter's make, model, firmware and device type name (``simulators.makes``)."""
        return self.config.device_type

    @property
    def model(self) -> _Model:
        return _MODELS[self.config.device_type.name]

    @property
    def profile_objects(self) -> frozenset[ObisCode]:
        """The profile generic objects (IC 7) this meter's make serves: load profile, daily values, event logs."""
        return frozenset(self.model.profiles)

    @property
    def register_objects(self) -> tuple[ObisCode, ...]:
        """The registers (IC 3) this meter's make serves, in its object list's order."""
        return tuple(obis for class_id, _, obis, _, _, _ in self.model.objects if class_id == 3)

    @property
    def clock(self) -> FieldClock:
        return self._clock

    @property
    def counters(self) -> CounterStore:
        return self._counters

    @property
    def relay(self) -> DisconnectControlMachine:
        if self._relay is None:
            self._relay = DisconnectControlMachine(ControlMode(self.config.control_mode))
        return self._relay

    @property
    def windows(self) -> tuple[Window, ...]:
        """Relay-open periods so far (the last one may still be open: end None)."""
        return tuple(self._windows)

    def meter_time(self, now: datetime | None = None) -> datetime:
        """What the meter's clock shows: field time plus drift plus what clients set."""
        now = self._clock.now() if now is None else now
        drift = self.config.drift_seconds_per_day * ((now - self._drift_from) / _DAY)
        return now + timedelta(seconds=drift + self._clock_offset)

    def registers_at(self, when: datetime | None = None) -> Registers:
        when = self._clock.now() if when is None else when
        return registers_after(self.config.seed, self.config.serial, completed_intervals(when), self._windows)

    def event_code_value(self, code: EventCode) -> Data:
        """The physical event ``code`` as this meter's event code objects carry it (its make's number and type)."""
        model = self.model
        return model.code_data(event_code(model.device_type, code))

    def register_value(self, obis: ObisCode, when: datetime | None = None) -> Data | None:
        """A register's value (attribute 2) at ``when`` as this meter encodes it; None if its make has none."""
        when = self._clock.now() if when is None else when
        if obis == VOLTAGE_L1:
            return Data.long_unsigned(voltage_at(self.config.seed, self.config.serial, when))
        index = self.model.registers.get(obis)
        if index is None:
            return None
        return Data.double_long_unsigned(self.registers_at(when)[index])

    def log_entries(self, log: EventLog, now: datetime | None = None) -> list[MeterEvent]:
        """The log's entries within the history kept, seeded and runtime, oldest first."""
        now = self._clock.now() if now is None else now
        since = now - HISTORY_DAYS * _DAY
        entries = events_between(self.config.seed, self.config.serial, log, since, now)
        runtime = [e for e in self._runtime_events if e.log is log and since <= e.when <= now]
        if runtime:
            entries = sorted(entries + runtime)
        return entries[-LOG_CAPACITY:]

    # --- LogicalDevice ----------------------------------------------------------------------------------------

    def open_session(self, client_sap: int) -> Session | None:
        if client_sap not in self.config.client_saps:
            return None
        self._sessions_opened += 1
        return MeterSession(self, client_sap)

    # --- what sessions change ------------------------------------------------------------------------------------

    def _log(self, when: datetime, code: EventCode) -> None:
        event = MeterEvent(when, code)
        self._runtime_events.append(event)
        if len(self._runtime_events) > _RUNTIME_EVENTS_KEPT:
            del self._runtime_events[: len(self._runtime_events) - _RUNTIME_EVENTS_KEPT]
        if self._on_event is not None:
            self._on_event(self, event)

    def record_event(self, code: EventCode, when: datetime | None = None) -> MeterEvent:
        """Something happened at the meter now (a cover opened, a power cut): logged, and pushed if set up."""
        moment = self._clock.now() if when is None else when
        self._log(moment, code)
        return MeterEvent(moment, code)

    @property
    def on_event(self) -> Callable[[SimulatedMeter, MeterEvent], None] | None:
        return self._on_event

    @on_event.setter
    def on_event(self, hook: Callable[[SimulatedMeter, MeterEvent], None] | None) -> None:
        self._on_event = hook

    def set_time(self, new_time: datetime) -> None:
        """A client set the clock: log the old and the new time (IDIS codes 4 and 5)."""
        now = self._clock.now()
        old = self.meter_time(now)
        self._log(now, EventCode.CLOCK_ADJUSTED_OLD_TIME)
        self._log(now + (new_time - old), EventCode.CLOCK_ADJUSTED_NEW_TIME)
        self._drift_from = now
        self._clock_offset = (new_time - now).total_seconds()

    def operate_relay(self, trigger: Trigger) -> bool:
        """Apply a relay trigger; False when the control mode and state do not allow it."""
        relay = self.relay
        before = relay.output_state
        target = (
            ControlState.DISCONNECTED
            if trigger in (Trigger.REMOTE_DISCONNECT, Trigger.MANUAL_DISCONNECT, Trigger.LOCAL_DISCONNECT)
            else ControlState.CONNECTED
        )
        try:
            relay.handle(trigger)
        except StateError:
            return relay.control_state is target
        now = self._clock.now()
        if before and not relay.output_state:
            self._windows.append((now, None))
            self._log(now, _RELAY_CODES[trigger])
        elif not before and relay.output_state:
            start, _ = self._windows[-1]
            self._windows[-1] = (start, now)
            self._log(now, _RELAY_CODES[trigger])
        return True

    def _challenge(self, client_sap: int, counter: int) -> bytes:
        # Fresh per session, seeded, and different after a restart (the stored counter moved on).
        rng = random.Random(
            f"{self.config.seed}:{self.config.serial}:stoc:{client_sap}:{counter}:{self._sessions_opened}"
        )
        return rng.randbytes(16)


_RELAY_CODES = {
    Trigger.REMOTE_DISCONNECT: EventCode.REMOTE_DISCONNECTION,
    Trigger.REMOTE_RECONNECT: EventCode.REMOTE_CONNECTION,
    Trigger.MANUAL_DISCONNECT: EventCode.MANUAL_DISCONNECTION,
    Trigger.MANUAL_RECONNECT: EventCode.MANUAL_CONNECTION,
    Trigger.LOCAL_DISCONNECT: EventCode.LOCAL_DISCONNECTION,
    Trigger.LOCAL_RECONNECT: EventCode.LOCAL_RECONNECTION,
}


class MeterSession:
    """One client's association with a ``SimulatedMeter``: APDUs in, APDUs out."""

    __slots__ = (
        "_association", "_client_last", "_meter", "_model", "_reserved", "_secured", "client_sap", "manager",
    )

    def __init__(self, meter: SimulatedMeter, client_sap: int) -> None:
        self._meter = meter
        self._model = meter.model
        self.client_sap = client_sap
        config = meter.config
        self.manager = client_sap != config.public_sap
        policy = config.security_policy(client_sap)
        self._secured = policy.uses_system_titles
        stored = meter.counters.get(config.serial, client_sap) if self._secured else Counters()
        self._client_last = stored.client_last
        self._reserved = stored.server_next
        self._association = ServerAssociation(
            ServerConfig(
                policy=policy,
                server_challenge=meter._challenge(client_sap, stored.server_next)
                if policy.mechanism is MechanismName.HLS_GMAC
                else None,
                invocation_counter=stored.server_next,
                client_invocation_counter=stored.client_last,
                max_receive_pdu_size=1024,
                counter_used=self._counter_used if self._secured else None,
            )
        )

    @property
    def association(self) -> ServerAssociation:
        return self._association

    def _counter_used(self, value: int) -> None:
        # Reserve ahead: the store always holds a value above every counter already sent.
        if value >= self._reserved:
            self._reserved = value + COUNTER_BLOCK
            self._store()

    def _store(self) -> None:
        config = self._meter.config
        self._meter.counters.put(config.serial, self.client_sap, Counters(self._reserved, self._client_last))

    async def handle(self, apdu: bytes) -> list[bytes]:
        return self.answer(apdu)

    def answer(self, apdu: bytes) -> list[bytes]:
        """``handle`` without the coroutine, for callers that are not async (the concentrator, tests)."""
        if self._meter.config.decommissioned and apdu[:1] == bytes((AARQ_TAG,)):
            return [self._refusal()]
        association = self._association
        for event in association.receive_apdu(apdu):
            self._serve(event)
        if self._secured and association.client_invocation_counter != self._client_last:
            self._client_last = association.client_invocation_counter
            self._store()
        return association.data_to_send()

    def close(self) -> None:
        if self._secured and self._association.client_invocation_counter != self._client_last:
            self._client_last = self._association.client_invocation_counter
            self._store()

    def _refusal(self) -> bytes:
        ciphered = self._meter.config.security_policy(self.client_sap).ciphered
        return Aare(
            result=AssociationResult.REJECTED_PERMANENT,
            diagnostic=AcseServiceUserDiagnostic.NO_REASON_GIVEN,
            application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
            if ciphered
            else ApplicationContextName.LOGICAL_NAME,
        ).encode()

    # --- serving requests -----------------------------------------------------------------------------------------

    def _serve(self, event: Event) -> None:
        association = self._association
        if isinstance(event, GetRequested):
            association.respond_get(event.invoke_id, self._get(event.descriptor, event.access_selection))
        elif isinstance(event, GetWithListRequested):
            config = self._meter.config
            limit = config.get_with_list_limit
            self._meter.get_with_list_sizes.append(len(event.items))
            items = event.items
            if limit is not None and len(items) > limit:
                if config.get_with_list_overflow == "refuse":
                    association.respond_get_with_list(event.invoke_id, [DataAccessResult.OTHER_REASON])
                    return
                if config.get_with_list_overflow == "exception":
                    association.respond_exception(event.invoke_id, ExceptionStateError.SERVICE_NOT_ALLOWED,
                                                  ExceptionServiceError.PDU_TOO_LONG)
                    return
                items = items[:limit]
            association.respond_get_with_list(
                event.invoke_id, [self._get(i.attribute_descriptor, i.access_selection) for i in items]
            )
        elif isinstance(event, SetRequested):
            association.respond_set(event.invoke_id, self._set(event.descriptor, event.value, event.access_selection))
        elif isinstance(event, ActionRequested):
            result, data = self._action(event.descriptor, event.parameters)
            association.respond_action(event.invoke_id, result, data)
        elif isinstance(event, SecurityFailure):
            # The fraud log records what a real meter sees: a replayed counter or a bad tag/key.
            code = _REPLAY_ATTACK if hasattr(event.error, "lowest_acceptable") else _DECRYPTION_FAILURE
            self._meter._log(self._meter.clock.now(), code)

    def _get(
        self, d: CosemAttributeDescriptor, selection: SelectiveAccessDescriptor | None
    ) -> bytes | DataAccessResult:
        class_id = self._model.class_of.get(d.instance_id)
        if class_id is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if class_id != d.class_id:
            return DataAccessResult.OBJECT_CLASS_INCONSISTENT
        if d.attribute_id == 1:
            return encode_data(_obis_data(d.instance_id)) if selection is None else DataAccessResult.OTHER_REASON
        meter = self._meter
        now = meter.clock.now()
        profile = self._model.profiles.get(d.instance_id)
        if profile is not None and d.attribute_id == 2:
            try:
                return _buffer(meter, profile, now, selection)
            except _SelectionError as refused:
                return refused.result
        if selection is not None:
            return DataAccessResult.OTHER_REASON
        value = self._value(class_id, d.instance_id, d.attribute_id, now, profile)
        return DataAccessResult.OBJECT_UNDEFINED if value is None else encode_data(value)

    def _value(
        self, class_id: int, obis: ObisCode, attribute: int, now: datetime, profile: _Profile | None
    ) -> Data | None:
        meter = self._meter
        config = meter.config
        if class_id == 8:
            return _clock_attribute(attribute, meter.meter_time(now))
        if class_id == 3:
            if attribute == 3:
                return (_DECIVOLT if obis == VOLTAGE_L1 else _WH).to_data()
            if attribute != 2:
                return None
            return meter.register_value(obis, now)
        if class_id == 1 and attribute == 2:
            model = self._model
            if obis == SERIAL_NUMBER:
                return Data.visible_string(config.serial)
            if obis == model.status:
                done = completed_intervals(now)
                return model.status_data(profile_status(config.seed, config.serial, done - 1) if done else 0)
            log = EventLog(obis.e)
            entries = meter.log_entries(log, now)
            return model.code_data(event_code(model.device_type, entries[-1].code) if entries else 0)
        if class_id == 7 and profile is not None:
            return _profile_attribute(profile, attribute, meter, now)
        if class_id == 70:
            relay = meter.relay
            output, control = relay.output_state, relay.control_state
            if output and relay_openings(config.seed, config.serial, now, now + timedelta(microseconds=1)):
                # The customer opened the relay with the meter's button (seeded history): manual
                # disconnection leaves it ready for reconnection until closed the same way.
                output, control = False, ControlState.READY_FOR_RECONNECTION
            return {
                2: Data.boolean(output),
                3: Data.enum(int(control)),
                4: Data.enum(int(relay.control_mode)),
            }.get(attribute)
        if class_id == 64:
            return self._security_setup(attribute)
        if class_id == 15:
            return self._association_attribute(attribute)
        return None

    def _security_setup(self, attribute: int) -> Data | None:
        config = self._meter.config
        policy = config.security_policy(self.client_sap)
        # IC 64 version 1 security_policy bits: authenticated and encrypted requests and responses.
        bits = 0x04 | 0x08 | 0x20 | 0x40 if policy.ciphered else 0
        return {
            2: Data.enum(bits),
            3: Data.enum(0),
            4: Data.octet_string(self._association.client_system_title or b""),
            5: Data.octet_string(config.system_title or b""),
            6: Data.array(()),
        }.get(attribute)

    def _association_attribute(self, attribute: int) -> Data | None:
        association = self._association
        policy = self._meter.config.security_policy(self.client_sap)
        if attribute == 2:
            return decode_data_exact(self._model.object_list[self.manager])
        if attribute == 3:
            return AssociatedPartnersId(self.client_sap, 1).to_data()
        if attribute == 4:
            return ContextName((2, 16, 756, 5, 8, 1, 3 if policy.ciphered else 1)).to_data()
        if attribute == 5:
            return XdlmsContextInfo(
                int(association.conformance), 1024, association.client_max_receive_pdu_size or 1024, 6, 0, b""
            ).to_data()
        if attribute == 6:
            return ContextName((2, 16, 756, 5, 8, 2, int(policy.mechanism))).to_data()
        if attribute == 8:
            return Data.enum(int(AssociationStatus.ASSOCIATED))
        if attribute == 9:
            return _obis_data(SECURITY_SETUP)
        return None

    def _set(
        self, d: CosemAttributeDescriptor, value: bytes, selection: SelectiveAccessDescriptor | None
    ) -> DataAccessResult:
        class_id = self._model.class_of.get(d.instance_id)
        if class_id is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if class_id != d.class_id:
            return DataAccessResult.OBJECT_CLASS_INCONSISTENT
        if not self.manager or (d.instance_id, d.attribute_id) not in self._model.writable or selection is not None:
            return DataAccessResult.READ_WRITE_DENIED
        try:
            data = decode_data_exact(value)
        except DecodeError:
            return DataAccessResult.TYPE_UNMATCHED
        if d.instance_id == CLOCK:
            if data.tag not in (DataTag.OCTET_STRING, DataTag.DATE_TIME):
                return DataAccessResult.TYPE_UNMATCHED
            moment = _instant(data)
            if moment is None:
                return DataAccessResult.OTHER_REASON
            self._meter.set_time(moment)
            return DataAccessResult.SUCCESS
        # disconnect control, control_mode
        if data.tag != DataTag.ENUM:
            return DataAccessResult.TYPE_UNMATCHED
        if not 0 <= data.value <= 6:
            return DataAccessResult.OTHER_REASON
        self._meter.relay.control_mode = ControlMode(data.value)
        return DataAccessResult.SUCCESS

    def _action(self, d: CosemMethodDescriptor, parameters: bytes | None) -> tuple[ActionResult, bytes | None]:
        class_id = self._model.class_of.get(d.instance_id)
        if class_id is None:
            return ActionResult.OBJECT_UNDEFINED, None
        if class_id != d.class_id:
            return ActionResult.OBJECT_CLASS_INCONSISTENT, None
        if class_id != 70 or d.method_id not in (1, 2):
            # reply_to_HLS_authentication after the association is up, or a method not offered
            return ActionResult.READ_WRITE_DENIED, None
        if not self.manager:
            return ActionResult.READ_WRITE_DENIED, None
        if parameters is not None:
            try:
                data = decode_data_exact(parameters)
            except DecodeError:
                return ActionResult.TYPE_UNMATCHED, None
            if data.tag != DataTag.INTEGER:
                return ActionResult.TYPE_UNMATCHED, None
        trigger = Trigger.REMOTE_DISCONNECT if d.method_id == 1 else Trigger.REMOTE_RECONNECT
        ok = self._meter.operate_relay(trigger)
        return (ActionResult.SUCCESS if ok else ActionResult.OTHER_REASON), None


_REPLAY_ATTACK = EventCode.REPLAY_ATTACK
_DECRYPTION_FAILURE = EventCode.DECRYPTION_OR_AUTHENTICATION_FAILURE


def _clock_attribute(attribute: int, shown: datetime) -> Data | None:
    unspecified = Data.octet_string(CosemDateTime().encode())
    return {
        2: Data.octet_string(CosemDateTime.from_datetime(shown, deviation=LOCAL_DEVIATION).encode()),
        3: Data.long(LOCAL_DEVIATION),
        4: Data.unsigned(0),
        5: unspecified,
        6: unspecified,
        7: Data.integer(0),
        8: Data.boolean(False),
        9: Data.enum(1),  # internal crystal
    }.get(attribute)


def _profile_attribute(profile: _Profile, attribute: int, meter: SimulatedMeter, now: datetime) -> Data | None:
    if attribute == 3:
        return Data.array(c.to_data() for c in profile.columns)
    if attribute == 4:
        return Data.double_long_unsigned(profile.period)
    if attribute == 5:
        return Data.enum(1)  # FIFO
    if attribute == 6:
        return profile.columns[0].to_data()
    if attribute == 7:
        return Data.double_long_unsigned(profile.span(meter, now)[1])
    if attribute == 8:
        return Data.double_long_unsigned(profile.capacity)
    return None
