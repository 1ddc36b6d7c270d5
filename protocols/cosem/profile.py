"""IC 7 Profile generic (Blue Book 4.3.6) and the fast decoding of profile buffers into typed rows."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum, IntEnum
from functools import lru_cache, partial
from itertools import repeat
from typing import Any, NamedTuple

from protocols.axdr import Data, DataTag, decode_data, decode_length
from protocols.cosem._base import (
    Codec,
    InterfaceClass,
    any_codec,
    enum_codec,
    expect_array,
    expect_structure,
    int_codec,
    logical_name_codec,
)
from protocols.cosem.register import reset_parameter
from protocols.cosem.units import ScalerUnit, apply_scaler
from protocols.cosem_datetime import CosemDateTime, offset_timezone
from protocols.errors import DecodeError, EncodeError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import CaptureObjectDefinition

__all__ = [
    "PROFILE_GENERIC",
    "CaptureObjectDefinition",
    "ColumnRole",
    "ProfileColumn",
    "ProfileGenericAttribute",
    "ProfileGenericMethod",
    "ProfileRow",
    "SortMethod",
    "capture_objects_codec",
    "columns_for",
    "parse_profile_buffer",
    "profile_rows_from_data",
]


class ProfileGenericAttribute(IntEnum):
    LOGICAL_NAME = 1
    BUFFER = 2
    CAPTURE_OBJECTS = 3
    CAPTURE_PERIOD = 4
    SORT_METHOD = 5
    SORT_OBJECT = 6
    ENTRIES_IN_USE = 7
    PROFILE_ENTRIES = 8


class ProfileGenericMethod(IntEnum):
    RESET = 1
    CAPTURE = 2


class SortMethod(IntEnum):
    FIFO = 1
    LIFO = 2
    LARGEST = 3
    SMALLEST = 4
    NEAREST_TO_ZERO = 5
    FARTHEST_FROM_ZERO = 6


def _capture_objects_from_data(data: Data) -> tuple[CaptureObjectDefinition, ...]:
    return tuple(CaptureObjectDefinition.from_data(item) for item in expect_array(data, "capture_objects"))


def _capture_objects_to_data(objects: Sequence[CaptureObjectDefinition]) -> Data:
    if not all(isinstance(o, CaptureObjectDefinition) for o in objects):
        raise EncodeError("capture_objects needs CaptureObjectDefinition items")
    return Data(DataTag.ARRAY, tuple(o.to_data() for o in objects))


capture_objects_codec: Codec[tuple[CaptureObjectDefinition, ...]] = Codec(
    _capture_objects_from_data, _capture_objects_to_data
)

PROFILE_GENERIC = InterfaceClass(
    class_id=7,
    version=1,
    name="Profile generic",
    attributes=ProfileGenericAttribute,
    methods=ProfileGenericMethod,
    attribute_codecs={
        ProfileGenericAttribute.LOGICAL_NAME: logical_name_codec,
        # The buffer's rows only mean something with the capture objects: see parse_profile_buffer.
        ProfileGenericAttribute.BUFFER: any_codec,
        ProfileGenericAttribute.CAPTURE_OBJECTS: capture_objects_codec,
        ProfileGenericAttribute.CAPTURE_PERIOD: int_codec(DataTag.DOUBLE_LONG_UNSIGNED, "capture_period"),
        ProfileGenericAttribute.SORT_METHOD: enum_codec(SortMethod, "sort_method"),
        ProfileGenericAttribute.SORT_OBJECT: Codec(
            CaptureObjectDefinition.from_data, CaptureObjectDefinition.to_data
        ),
        ProfileGenericAttribute.ENTRIES_IN_USE: int_codec(DataTag.DOUBLE_LONG_UNSIGNED, "entries_in_use"),
        ProfileGenericAttribute.PROFILE_ENTRIES: int_codec(DataTag.DOUBLE_LONG_UNSIGNED, "profile_entries"),
    },
    method_codecs={
        ProfileGenericMethod.RESET: reset_parameter,
        ProfileGenericMethod.CAPTURE: reset_parameter,
    },
)


# --- typed rows ----------------------------------------------------------------------------------


class ColumnRole(Enum):
    CLOCK = "clock"  # the capture time: becomes an aware datetime, nulls filled from the period
    STATUS = "status"  # the profile status word: an int
    VALUE = "value"  # anything else: scaled when a scaler is known


@dataclass(frozen=True, slots=True)
class ProfileColumn:
    """A column of a profile buffer: what was captured, and the register's scaler_unit if known.

    ``ProfileColumn.of`` (and ``columns_for``) infer the role: the clock's time (class 8,
    attribute 2) is the capture time, an object 0.x.96.10.x.x (status register) the profile status.
    """

    capture: CaptureObjectDefinition
    scaler_unit: ScalerUnit | None = None
    role: ColumnRole = field(default=ColumnRole.VALUE)

    @classmethod
    def of(cls, capture: CaptureObjectDefinition, scaler_unit: ScalerUnit | None = None) -> ProfileColumn:
        if capture.class_id == 8 and capture.attribute_index == 2:
            role = ColumnRole.CLOCK
        elif capture.logical_name.c == 96 and capture.logical_name.d == 10:
            role = ColumnRole.STATUS
        else:
            role = ColumnRole.VALUE
        return cls(capture, scaler_unit, role)


def columns_for(
    capture_objects: Sequence[CaptureObjectDefinition],
    scaler_units: Mapping[ObisCode, ScalerUnit] | None = None,
) -> list[ProfileColumn]:
    """Columns for a profile's capture objects, with the scaler_unit of the registers that have one."""
    units = scaler_units or {}
    return [
        ProfileColumn.of(c, units.get(c.logical_name) if c.attribute_index == 2 else None)
        for c in capture_objects
    ]


class ProfileRow(NamedTuple):
    """One buffer entry: ``values`` has one item per column (the clock column as a datetime).

    ``time`` is the capture time (None when the meter gave an unspecified one);
    ``time_filled`` says it was computed from the previous row and the capture period because
    the meter sent null-data (the Blue Book's compression of profile entries).
    """

    time: datetime | None
    status: int | None
    values: tuple[Any, ...]
    time_filled: bool = False


_SCALABLE = frozenset(
    {
        DataTag.DOUBLE_LONG,
        DataTag.DOUBLE_LONG_UNSIGNED,
        DataTag.INTEGER,
        DataTag.LONG,
        DataTag.UNSIGNED,
        DataTag.LONG_UNSIGNED,
        DataTag.LONG64,
        DataTag.LONG64_UNSIGNED,
    }
)
_FLOATS = frozenset({DataTag.FLOAT32, DataTag.FLOAT64})
_STRUCTURED = frozenset({DataTag.ARRAY, DataTag.STRUCTURE, DataTag.COMPACT_ARRAY})


def _scale_float(value: float, scaler: int) -> float:
    return value * 10.0**scaler


def _cell_value(data: Data, scaler: int | None) -> Any:
    """The Python value of a non-clock cell; the fast path must give exactly the same."""
    tag = data.tag
    if tag in _SCALABLE:
        return data.value if scaler is None else apply_scaler(data.value, scaler)
    if tag in _FLOATS:
        return data.value if scaler is None else _scale_float(data.value, scaler)
    if tag in _STRUCTURED:
        return data
    return data.value


def _clock_value(data: Data) -> datetime | None:
    tag = data.tag
    if tag == DataTag.OCTET_STRING:
        raw = data.value
        if len(raw) != 12:
            raise DecodeError(f"capture time: expected 12 bytes, got {len(raw)}")
        return CosemDateTime.decode(raw).to_datetime()
    if tag == DataTag.DATE_TIME:
        value: datetime | None = data.value.to_datetime()
        return value
    raise DecodeError(f"capture time: expected an octet-string or null-data, got {DataTag(tag).name.lower()}")


class _Plan(NamedTuple):
    roles: tuple[ColumnRole, ...]
    scalers: tuple[int | None, ...]
    clock: int  # index of the capture-time column, -1 when none
    status: int  # index of the status column, -1 when none


def _plan(columns: Sequence[ProfileColumn]) -> _Plan:
    roles = tuple(c.role for c in columns)
    scalers = tuple(None if c.scaler_unit is None else c.scaler_unit.scaler for c in columns)
    clock = roles.index(ColumnRole.CLOCK) if ColumnRole.CLOCK in roles else -1
    status = roles.index(ColumnRole.STATUS) if ColumnRole.STATUS in roles else -1
    return _Plan(roles, scalers, clock, status)


def _generic_values(row: Data, plan: _Plan) -> list[Any]:
    cells = expect_structure(row, len(plan.roles), "profile entry")
    values: list[Any] = []
    for cell, role, scaler in zip(cells, plan.roles, plan.scalers):
        if cell.tag == DataTag.NULL_DATA:
            values.append(None)
        elif role is ColumnRole.CLOCK:
            values.append(_clock_value(cell))
        else:
            values.append(_cell_value(cell, scaler))
    return values


_new_row = tuple.__new__


def _finish_row(
    values: list[Any], plan: _Plan, clock_null: bool, previous: datetime | None, step: timedelta | None
) -> ProfileRow:
    time: datetime | None = None
    filled = False
    if plan.clock >= 0:
        if clock_null:
            if previous is not None and step is not None:
                time = previous + step
                filled = True
            values[plan.clock] = time
        else:
            time = values[plan.clock]
    status = values[plan.status] if plan.status >= 0 else None
    if type(status) is not int:
        status = None
    return _new_row(ProfileRow, (time, status, tuple(values), filled))


def profile_rows_from_data(
    buffer: Data, columns: Sequence[ProfileColumn], capture_period: int | None
) -> list[ProfileRow]:
    """Typed rows from an already decoded buffer (the generic path; same rows as the fast one).

    ``capture_period`` is in seconds (attribute 4); 0 or None leaves null capture times as None.
    """
    try:
        plan = _plan(columns)
        step = timedelta(seconds=capture_period) if capture_period else None
        rows: list[ProfileRow] = []
        previous: datetime | None = None
        for entry in expect_array(buffer, "profile buffer"):
            values = _generic_values(entry, plan)
            clock_null = plan.clock >= 0 and entry.value[plan.clock].tag == DataTag.NULL_DATA
            row = _finish_row(values, plan, clock_null, previous, step)
            previous = row.time
            rows.append(row)
        return rows
    except DecodeError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise DecodeError(f"malformed profile buffer: {exc}") from None


# --- the fast path -------------------------------------------------------------------------------
#
# A load profile is a long run of rows with the same shape: the same tags, fixed-size values.
# Such a row is read with one struct; a whole run of them with one iter_unpack, after checking
# every row's tag bytes at once with strided slices. Rows of another shape (a null capture time,
# a string) go through the generic decoder.

_FIXED_FORMATS: dict[int, str] = {
    DataTag.DOUBLE_LONG: "i",
    DataTag.DOUBLE_LONG_UNSIGNED: "I",
    DataTag.INTEGER: "b",
    DataTag.LONG: "h",
    DataTag.UNSIGNED: "B",
    DataTag.LONG_UNSIGNED: "H",
    DataTag.LONG64: "q",
    DataTag.LONG64_UNSIGNED: "Q",
    DataTag.ENUM: "B",
    DataTag.BCD: "B",
    DataTag.FLOAT32: "f",
    DataTag.FLOAT64: "d",
    DataTag.BOOLEAN: "?",
}
_FIXED_WIDTHS = {fmt: struct.calcsize(">" + fmt) for fmt in _FIXED_FORMATS.values()}
#: The structs of the layouts seen: a fleet's profiles have few shapes, and compiling one costs.
_struct = lru_cache(maxsize=256)(struct.Struct)
# year, month, day, (day of week skipped) hour, minute, second, hundredths, deviation, (status skipped)
_CLOCK_FIELDS = struct.Struct(">HBBxBBBBhx")


class _Layout(NamedTuple):
    """A row whose every cell has a fixed size: the tag bytes it must have and one struct for its values.

    The values struct yields one field per column; the clock column's (index ``clock_field``,
    -1 when none) is its 12 encoded bytes, for ``_capture_time``.
    """

    size: int
    checks: tuple[tuple[int, int], ...]  # (offset in the row, byte) of every tag and length byte
    tags: struct.Struct  # unpacks the tag bytes of one row, as ``expected``
    expected: tuple[bytes, ...]
    values: struct.Struct
    clock_field: int
    scaled: tuple[tuple[int, bool, int], ...]  # (column, is float, scaler) of the cells to scale


def _layout(buf: bytes, pos: int, plan: _Plan) -> _Layout | None:
    """The fixed layout of the row at ``pos``, or None if a cell has no fixed size."""
    ncols = len(plan.roles)
    if ncols >= 0x80 or pos + 2 > len(buf) or buf[pos] != DataTag.STRUCTURE or buf[pos + 1] != ncols:
        return None
    checks = [(0, buf[pos]), (1, buf[pos + 1])]
    tag_fmt = [">"]
    value_fmt = [">2x"]
    expected: list[bytes] = []
    scaled: list[tuple[int, bool, int]] = []
    header = bytearray(buf[pos : pos + 2])
    cursor = pos + 2
    clock_field = -1
    for column, (role, scaler) in enumerate(zip(plan.roles, plan.scalers)):
        if cursor + 1 >= len(buf):
            return None
        tag = buf[cursor]
        head = bytes((tag,))
        if role is ColumnRole.CLOCK:
            if clock_field >= 0:
                return None
            if tag == DataTag.OCTET_STRING:
                if buf[cursor + 1] != 12:
                    return None
                head += b"\x0c"
            elif tag != DataTag.DATE_TIME:
                return None
            body, width = "12s", 12
            clock_field = column
        elif tag == DataTag.OCTET_STRING:
            width = buf[cursor + 1]
            if width >= 0x80:
                return None
            head += bytes((width,))
            body = f"{width}s"
        else:
            fmt = _FIXED_FORMATS.get(tag)
            if fmt is None:
                return None
            body, width = fmt, _FIXED_WIDTHS[fmt]
            if scaler is not None and (tag in _SCALABLE or tag in _FLOATS):
                scaled.append((column, tag in _FLOATS, scaler))
        checks.extend((cursor - pos + k, b) for k, b in enumerate(head))
        header += head
        tag_fmt.append(f"{len(header)}s{width}x")
        expected.append(bytes(header))
        header = bytearray()
        value_fmt.append(f"{len(head)}x{body}")
        cursor += len(head) + width
    if cursor > len(buf):
        return None
    return _Layout(
        cursor - pos,
        tuple(checks),
        _struct("".join(tag_fmt)),
        tuple(expected),
        _struct("".join(value_fmt)),
        clock_field,
        tuple(scaled),
    )


#: The last layout seen per plan: a fleet's profiles have few shapes, and building one costs.
_LAYOUTS: dict[_Plan, _Layout] = {}
_LAYOUTS_MAX = 256


def _known_layout(buf: bytes, pos: int, plan: _Plan) -> _Layout | None:
    """``_layout(buf, pos, plan)``, reusing the plan's last layout when the row's tag and length bytes match it.

    Those bytes and the plan are all that ``_layout`` reads, so a match gives the same layout.
    """
    known = _LAYOUTS.get(plan)
    if known is not None and pos + known.size <= len(buf) and known.tags.unpack_from(buf, pos) == known.expected:
        return known
    layout = _layout(buf, pos, plan)
    if layout is not None:
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[plan] = layout
    return layout


_TIMEZONES: dict[int, timezone] = {}
#: Capture times by their 12 encoded bytes. The rows of a fleet's profiles share their interval
#: stamps, and building an aware datetime costs more than the rest of a row; values are immutable.
_CAPTURE_TIMES: dict[bytes, datetime | None] = {}
_CAPTURE_TIMES_MAX = 16384
_INT_ONLY = frozenset((int,))
_make_row = partial(tuple.__new__, ProfileRow)


def _decode_capture_time(raw: bytes) -> datetime | None:
    """The capture time of 12 encoded bytes by the exact rules of ``CosemDateTime.to_datetime``."""
    year, month, day, hour, minute, second, hundredths, deviation = _CLOCK_FIELDS.unpack(raw)
    try:
        return datetime(year, month, day, hour, minute, second, hundredths * 10000, _TIMEZONES[deviation])
    except (KeyError, ValueError):
        # Wildcards, DST markers, a deviation not seen yet: take the careful way.
        value = CosemDateTime.decode(raw)
        if -720 <= value.deviation <= 720 and value.deviation not in _TIMEZONES:
            _TIMEZONES[value.deviation] = offset_timezone(value.deviation)
        return value.to_datetime()


def _capture_time(raw: bytes) -> datetime | None:
    """``_decode_capture_time``, cached."""
    try:
        return _CAPTURE_TIMES[raw]
    except KeyError:
        pass
    if len(_CAPTURE_TIMES) >= _CAPTURE_TIMES_MAX:
        _CAPTURE_TIMES.clear()
    when = _CAPTURE_TIMES[raw] = _decode_capture_time(raw)
    return when


def _capture_times(raws: Sequence[bytes]) -> list[datetime | None]:
    """``_capture_time`` of each of ``raws``, decoding each distinct stamp not cached yet once."""
    cache = _CAPTURE_TIMES
    distinct = set(raws)
    new = distinct.difference(cache)
    if new and len(cache) + len(new) > _CAPTURE_TIMES_MAX:
        cache.clear()
        new = distinct
    for raw in new:
        cache[raw] = _decode_capture_time(raw)
    return list(map(cache.__getitem__, raws))


def _fixed_row(fields: tuple[Any, ...], layout: _Layout) -> tuple[Any, ...]:
    """The column values of a row unpacked with ``layout.values``."""
    ci = layout.clock_field
    if ci >= 0:
        fields = (*fields[:ci], _capture_time(fields[ci]), *fields[ci + 1 :])
    if layout.scaled:
        fields = _scale_cells(fields, layout.scaled)
    return fields


def parse_profile_buffer(
    buffer: bytes, columns: Sequence[ProfileColumn], capture_period: int | None
) -> list[ProfileRow]:
    """Typed rows from the encoded buffer (an A-XDR array of structures, nothing after it).

    Gives the same rows as ``profile_rows_from_data(decode_data_exact(buffer), ...)``, several
    times faster. ``capture_period`` is in seconds. Raises only ``DecodeError``.
    """
    try:
        return _parse(bytes(buffer), columns, capture_period)
    except DecodeError:
        raise
    except (IndexError, ValueError, TypeError, AttributeError, struct.error, OverflowError) as exc:
        raise DecodeError(f"malformed profile buffer: {exc}") from None


def _uniform(buf: bytes, pos: int, count: int, layout: _Layout) -> bool:
    """Whether all ``count`` rows from ``pos`` to the end have the layout (strided byte checks)."""
    size = layout.size
    if len(buf) - pos != count * size:
        return False
    return all(buf[pos + offset :: size] == bytes((byte,)) * count for offset, byte in layout.checks)


def _uniform_rows(buf: bytes, pos: int, count: int, layout: _Layout, status_index: int) -> list[ProfileRow]:
    """Rows of a buffer whose ``count`` rows all have ``layout``: the hot path.

    Built column by column so that the loops over the rows run in C (zip, map, set).
    """
    columns: list[Sequence[Any]] = list(zip(*layout.values.iter_unpack(buf[pos:]), strict=True))
    ci = layout.clock_field
    times: Iterable[datetime | None] = repeat(None)
    if ci >= 0:
        times = columns[ci] = _capture_times(columns[ci])
    for column, is_float, scaler in layout.scaled:
        scale: Callable[[Any, int], Any] = _scale_float if is_float else apply_scaler
        columns[column] = list(map(scale, columns[column], repeat(scaler)))
    statuses: Iterable[Any] = repeat(None)
    if status_index >= 0:
        statuses = columns[status_index]
        if set(map(type, statuses)) != _INT_ONLY:
            statuses = [status if type(status) is int else None for status in statuses]
    values: Iterable[tuple[Any, ...]] = zip(*columns, strict=True) if columns else repeat((), count)
    return list(map(_make_row, zip(times, statuses, values, repeat(False))))


def _scale_cells(values: tuple[Any, ...], scaled: tuple[tuple[int, bool, int], ...]) -> tuple[Any, ...]:
    cells = list(values)
    for column, is_float, scaler in scaled:
        cells[column] = (
            _scale_float(cells[column], scaler) if is_float else apply_scaler(cells[column], scaler)
        )
    return tuple(cells)


def _parse(buf: bytes, columns: Sequence[ProfileColumn], capture_period: int | None) -> list[ProfileRow]:
    if not buf or buf[0] != DataTag.ARRAY:
        raise DecodeError("profile buffer: expected an array", 0)
    count, pos = decode_length(buf, 1)
    end = len(buf)
    if count > end - pos:
        raise DecodeError(f"profile buffer: {count} entries cannot fit in {end - pos} bytes", pos)
    plan = _plan(columns)
    clock = plan.clock
    status_index = plan.status
    new_row = _new_row
    row_type = ProfileRow
    layout = _known_layout(buf, pos, plan) if count else None
    if layout is not None and _uniform(buf, pos, count, layout):
        return _uniform_rows(buf, pos, count, layout, status_index)
    rows: list[ProfileRow] = []
    append = rows.append
    step = timedelta(seconds=capture_period) if capture_period else None
    previous: datetime | None = None
    attempts = 1
    for _ in range(count):
        if layout is None and attempts < 4:
            attempts += 1
            layout = _layout(buf, pos, plan)
        if (
            layout is not None
            and pos + layout.size <= end
            and layout.tags.unpack_from(buf, pos) == layout.expected
        ):
            values = _fixed_row(layout.values.unpack_from(buf, pos), layout)
            pos += layout.size
            status = values[status_index] if status_index >= 0 else None
            row = new_row(
                row_type,
                (
                    values[clock] if clock >= 0 else None,
                    status if type(status) is int else None,
                    values,
                    False,
                ),
            )
        else:
            entry, pos = decode_data(buf, pos)
            cells = _generic_values(entry, plan)
            clock_null = clock >= 0 and entry.value[clock].tag == DataTag.NULL_DATA
            row = _finish_row(cells, plan, clock_null, previous, step)
        previous = row.time
        append(row)
    if pos != end:
        raise DecodeError(f"{end - pos} bytes after the profile buffer", pos)
    return rows
