"""The one profile reader: a profile generic's shape and its buffer by time range, and its rows as stored rows.

Load profiles, daily values, event logs and a DC's own log are all profile generics (IC 7): the
same reading serves them all, on-demand reads, N2PLoad, the DC's log and the field tool alike.

- ``read_shape``: the capture objects (attribute 3), the capture period (4) and, for registers
  captured, their scalers and units (attribute 3 of each), in two GET-with-list exchanges; with
  ``with_clock`` the device's clock comes in the first one (on-demand reads check it).
- ``read_profile``: the buffer (attribute 2) for a time range by range selective access on the
  clock column, with a known ``shape`` (N2PLoad keeps it with its watermark) or after reading it;
  a kept shape the buffer no longer matches (a reconfigured meter) is read again.
- ``dated_rows``, ``interval_rows``, ``register_rows``: the rows as the head-end stores them
  (``hes.db.readings``), times in UTC, values raw with their scaler; a value that is not an
  integer is a ``DecodeError``.

Speed matters here (a pass reads a million meter-days): shapes decoded from text are interned,
capture times converted to UTC are memoised, and a clean buffer's interval rows are built column
by column.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hes.db.readings import IntervalRow, RegisterRow
from hes.session import AttributeRef, MeterSession
from protocols.axdr import Data, DataTag
from protocols.cosem import CaptureObjectDefinition, ProfileColumn, ScalerUnit, parse_profile_buffer
from protocols.cosem.profile import ColumnRole, ProfileRow
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, DlmsError, ProtocolError, ServiceError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import RangeDescriptor

__all__ = [
    "CLOCK",
    "QUALITY_AFTER_GAP",
    "QUALITY_STATUS_FLAGGED",
    "QUALITY_TIME_FILLED",
    "STATUS_POWER_DOWN",
    "Dated",
    "ProfileRead",
    "ProfileShape",
    "dated_rows",
    "deviation_of",
    "integer",
    "interval_rows",
    "range_value",
    "read_profile",
    "read_shape",
    "register_rows",
]

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
#: Our quality flags on stored interval values (bitmask).
QUALITY_STATUS_FLAGGED = 0x01  # the meter's status word for the interval is not zero
QUALITY_TIME_FILLED = 0x02  # the meter sent no capture time; it was computed from the period
#: The intervals just before this one were missing from what the field returned when it was collected
#: (N2PLoad sets it; cleared once the gap is filled).
QUALITY_AFTER_GAP = 0x04
#: IDIS/DSMR AMR profile status bit 7: a power failure happened in the interval.
STATUS_POWER_DOWN = 0x80

_ONE_SECOND = timedelta(seconds=1)


def integer(data: Data, what: str) -> int:
    if data.tag in (DataTag.BOOLEAN, DataTag.FLOAT32, DataTag.FLOAT64) or not isinstance(data.value, int):
        raise DecodeError(f"{what}: expected an integer, got {DataTag(data.tag).name.lower()}")
    return int(data.value)


def range_value(moment: datetime) -> Data:
    """A range bound: UTC with deviation 0, unambiguous whatever the device's own time zone."""
    return Data.octet_string(CosemDateTime.from_datetime(moment.astimezone(UTC), deviation=0).encode())


# --- the shape -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileShape:
    """A profile's columns (with scalers where known), capture period (0: unknown) and the clock column."""

    columns: tuple[ProfileColumn, ...]
    period: int
    clock: CaptureObjectDefinition
    #: The columns without scalers: buffers are parsed raw, storage keeps the raw value and its scaler.
    plain: tuple[ProfileColumn, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", tuple(replace(c, scaler_unit=None) for c in self.columns))

    @property
    def channels(self) -> list[tuple[int, ProfileColumn]]:
        """The value columns (not the clock, not the status word), with their positions."""
        return [(i, c) for i, c in enumerate(self.columns) if c.role is ColumnRole.VALUE]

    def encode(self) -> str:
        """The shape as text, kept with a watermark so a pass need not ask again (a status word that the rule
        of ``ProfileColumn.of`` would not find carries its role)."""
        columns = []
        for c in self.columns:
            entry: list[Any] = [c.capture.class_id, str(c.capture.logical_name), c.capture.attribute_index,
                                c.capture.data_index,
                                None if c.scaler_unit is None else [c.scaler_unit.scaler, int(c.scaler_unit.unit)]]
            if c.role is not ProfileColumn.of(c.capture).role:
                entry.append(c.role.value)
            columns.append(entry)
        return json.dumps({"period": self.period, "columns": columns}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> ProfileShape | None:
        """A shape kept as text (interned: a fleet has few distinct shapes); None if absent or unusable."""
        if text is None:
            return None
        known = _DECODED.get(text)
        if known is not None:
            return known
        try:
            data = json.loads(text)
            columns = []
            for class_id, obis, attribute, index, su, *role in data["columns"]:
                capture = CaptureObjectDefinition(int(class_id), ObisCode.parse(obis), int(attribute), int(index))
                column = ProfileColumn.of(capture, None if su is None else ScalerUnit(int(su[0]), int(su[1])))
                if role:
                    column = replace(column, role=ColumnRole(role[0]))
                columns.append(column)
            clocks = [c.capture for c in columns if c.role is ColumnRole.CLOCK]
            shape = cls(tuple(columns), int(data["period"]), clocks[0])
        except (ValueError, KeyError, TypeError, IndexError, DlmsError):
            return None
        if len(_DECODED) > 10_000:
            _DECODED.clear()
        _DECODED[text] = shape
        return shape


_DECODED: dict[str, ProfileShape] = {}


@dataclass(slots=True)
class _ShapeRead:
    shape: ProfileShape
    clock: Data | None
    notes: list[str]


async def read_shape(session: MeterSession, obis: ObisCode, *, scalers: bool = True, with_clock: bool = False,
                     status: ObisCode | None = None) -> _ShapeRead:
    """Capture objects, capture period and (``scalers``) the captured registers' scalers, from the device.

    ``status``: the capture object that is the profile's status word, when the device type says so
    (else the rule of ``ProfileColumn.of``: an object 0.x.96.10.x.x).
    """
    refs = [AttributeRef(7, obis, 3), AttributeRef(7, obis, 4)]
    if with_clock:
        refs.insert(0, AttributeRef(8, CLOCK, 2))
    answers = await session.get_many(refs)
    clock: Data | None = None
    if with_clock:
        first = answers.pop(0)
        if isinstance(first, ServiceError):
            raise first  # without the device's time, nothing it sends can be judged
        clock = first
    capture, period_data = answers
    if isinstance(capture, ServiceError):
        raise capture
    if capture.tag != DataTag.ARRAY:
        raise DecodeError(f"{obis} capture objects: expected an array")
    definitions = [CaptureObjectDefinition.from_data(item) for item in capture.value]
    period = 0 if isinstance(period_data, ServiceError) else integer(period_data, f"{obis} capture period")
    clocks = [d for d in definitions if d.class_id == 8 and d.attribute_index == 2]
    if not clocks:
        raise ProtocolError(f"{obis} captures no clock: it cannot be read by time range")
    units: dict[int, ScalerUnit] = {}
    notes: list[str] = []
    wanted = [(i, d) for i, d in enumerate(definitions) if d.class_id in (3, 4) and d.attribute_index == 2] \
        if scalers else []
    if wanted:
        got = await session.get_many([AttributeRef(d.class_id, d.logical_name, 3) for _, d in wanted])
        for (i, d), answer in zip(wanted, got, strict=True):
            if isinstance(answer, ServiceError):
                notes.append(f"scaler of {d.logical_name} not read ({answer}): stored unscaled")
            else:
                units[i] = ScalerUnit.from_data(answer)
    columns = tuple(ProfileColumn(d, None, ColumnRole.STATUS) if status is not None and d.logical_name == status
                    and d.class_id != 8 else ProfileColumn.of(d, units.get(i)) for i, d in enumerate(definitions))
    return _ShapeRead(ProfileShape(columns, period, clocks[0]), clock, notes)


@dataclass(slots=True)
class ProfileRead:
    """What ``read_profile`` got: the shape used, the rows (raw values), and what else came with it."""

    shape: ProfileShape
    rows: list[ProfileRow]
    #: The shape was read from the device now (not the one given): keep it.
    shape_read: bool
    #: The device's clock (attribute 2), when asked for.
    clock: Data | None = None
    notes: list[str] = field(default_factory=list)


async def read_profile(session: MeterSession, obis: ObisCode, start: datetime, end: datetime, *,
                       shape: ProfileShape | None = None, exclusive_start: bool = True, scalers: bool = True,
                       with_clock: bool = False, status: ObisCode | None = None) -> ProfileRead:
    """The rows of profile ``obis`` captured in [start, end] ((start, end] when ``exclusive_start``)."""
    clock: Data | None = None
    notes: list[str] = []
    read_now = shape is None
    if shape is None:
        found = await read_shape(session, obis, scalers=scalers, with_clock=with_clock, status=status)
        shape, clock, notes = found.shape, found.clock, found.notes
    elif with_clock:
        clock = await session.get(8, CLOCK, 2)
    since = start + _ONE_SECOND if exclusive_start else start
    raw = await session.get_raw(7, obis, 2, RangeDescriptor(shape.clock, range_value(since), range_value(end)))
    try:
        rows = parse_profile_buffer(raw, shape.plain, shape.period or None)
    except DecodeError:
        if read_now:
            raise
        # The kept shape no longer matches the buffer (a reconfigured meter): read it again.
        found = await read_shape(session, obis, scalers=scalers, status=status)
        shape, notes, read_now = found.shape, found.notes, True
        rows = parse_profile_buffer(raw, shape.plain, shape.period or None)
    return ProfileRead(shape, rows, read_now, clock, notes)


# --- rows as stored ------------------------------------------------------------------------------------------------


#: Capture times in UTC by the parser's (local) capture time; bounded like the parser's own cache.
_UTC_TIMES: dict[datetime, datetime] = {}
_UTC_TIMES_MAX = 16384


@dataclass(slots=True)
class Dated:
    """A buffer's rows by UTC capture time within a range: ``times`` ascending, ``by_time`` the row of each."""

    times: list[datetime]
    by_time: dict[datetime, ProfileRow]
    #: Rows without a capture time, left out.
    undated: int


def dated_rows(rows: Iterable[ProfileRow], start: datetime, end: datetime, *, exclusive_start: bool = True) -> Dated:
    """The rows stamped within (start, end] (or [start, end]), by UTC capture time, the last one of a time kept."""
    by_time: dict[datetime, ProfileRow] = {}
    undated = 0
    in_utc = _UTC_TIMES
    if len(in_utc) > _UTC_TIMES_MAX:
        in_utc.clear()
    for row in rows:
        at = row.time
        if at is None:
            undated += 1
            continue
        if at.tzinfo is not UTC:
            # First: comparing and hashing across time zones costs several times more. Memoised: the
            # parser hands the same datetime objects to every meter of a fleet (their hashes are kept).
            local = at
            at = in_utc.get(local)
            if at is None:
                at = in_utc[local] = local.astimezone(UTC)
        if (start < at if exclusive_start else start <= at) and at <= end:
            by_time[at] = row
    times = sorted(by_time)  # a buffer is in time order: the sort only checks it (linear, in C)
    return Dated(times, by_time, undated)


_make_interval = functools.partial(tuple.__new__, IntervalRow)
_INT_ONLY = frozenset((int,))


def _not_an_integer(what: str, obis: str) -> DecodeError:
    error = DecodeError(f"{what} {obis}: a value is not an integer")
    error.retryable = False  # the same answer again: not line noise
    return error


def _specs(shape: ProfileShape) -> list[tuple[int, str, int, int, int]]:
    specs = []
    for i, column in shape.channels:
        su = column.scaler_unit or ScalerUnit(0, 255)
        specs.append((i, str(column.capture.logical_name), column.capture.attribute_index, su.scaler, int(su.unit)))
    return specs


def _columnwise(meter_id: int, dated: Dated, specs: list[tuple[int, str, int, int, int]],
                after_gap: set[datetime]) -> tuple[list[IntervalRow], int, int] | None:
    """``interval_rows`` column by column (the loops in C), for the usual buffer where every value is an integer;
    None otherwise (a missing or corrupted value), and the row-by-row loop decides. Same rows, same order."""
    times = dated.times
    rows = [dated.by_time[at] for at in times]
    columns = []
    for i, _, _, _, _ in specs:
        column = [row.values[i] for row in rows]
        if column and set(map(type, column)) != _INT_ONLY:
            return None
        columns.append(column)
    statuses = [row.status for row in rows]
    flagged = power = 0
    qualities: Iterable[int] = itertools.repeat(0)
    if any(statuses) or after_gap or any(row.time_filled for row in rows):
        qualities = [(QUALITY_STATUS_FLAGGED if row.status else 0) | (QUALITY_TIME_FILLED if row.time_filled else 0)
                     | (QUALITY_AFTER_GAP if at in after_gap else 0) for at, row in zip(times, rows, strict=True)]
        flagged = sum(1 for status in statuses if status)
        power = sum(1 for status in statuses if status and status & STATUS_POWER_DOWN)
    per_channel = [
        list(map(_make_interval, zip(itertools.repeat(meter_id), itertools.repeat(obis), itertools.repeat(attribute),
                                     times, column, itertools.repeat(scaler), itertools.repeat(unit), statuses,
                                     qualities)))
        for (_, obis, attribute, scaler, unit), column in zip(specs, columns, strict=True)]
    if len(per_channel) == 1:
        return per_channel[0], flagged, power
    return list(itertools.chain.from_iterable(zip(*per_channel, strict=True))), flagged, power


def interval_rows(meter_id: int, shape: ProfileShape, dated: Dated, *,
                  after_gap: set[datetime] | None = None) -> tuple[list[IntervalRow], int, int]:
    """The interval values of a load profile's dated rows, with their quality flags (``after_gap``: intervals that
    follow a gap); also how many intervals carry status flags, and how many of those a power failure."""
    specs = _specs(shape)
    gaps = after_gap or set()
    fast = _columnwise(meter_id, dated, specs, gaps)
    if fast is not None:
        return fast
    out: list[IntervalRow] = []
    add = out.append
    flagged = power = 0
    for at in dated.times:
        row = dated.by_time[at]
        status = row.status
        quality = (QUALITY_STATUS_FLAGGED if status else 0) | (QUALITY_TIME_FILLED if row.time_filled else 0)
        if at in gaps:
            quality |= QUALITY_AFTER_GAP
        if status:
            flagged += 1
            power += 1 if status & STATUS_POWER_DOWN else 0
        for i, obis, attribute, scaler, unit in specs:
            raw = row.values[i]
            if type(raw) is int:
                add(IntervalRow(meter_id, obis, attribute, at, raw, scaler, unit, status, quality))
            elif raw is not None:
                raise _not_an_integer("load profile", obis)
    return out, flagged, power


def register_rows(meter_id: int, shape: ProfileShape, dated: Dated, *, what: str = "daily values") -> list[RegisterRow]:
    """The register readings of a billing profile's dated rows (daily values), each with the device's deviation."""
    specs = _specs(shape)
    out: list[RegisterRow] = []
    for at in dated.times:
        row = dated.by_time[at]
        deviation = None if row.time is None else deviation_of(row.time)
        for i, obis, _, scaler, unit in specs:
            raw = row.values[i]
            if type(raw) is int:
                out.append(RegisterRow(meter_id, obis, at, raw, scaler, unit, deviation))
            elif raw is not None:
                raise _not_an_integer(what, obis)
    return out


def deviation_of(moment: datetime) -> int | None:
    """The COSEM deviation (minutes, UTC = local + deviation) of an aware local time."""
    offset = moment.utcoffset()
    return None if offset is None else -int(offset.total_seconds() // 60)
