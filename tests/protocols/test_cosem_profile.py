"""Profile buffers into typed rows: vectors, fast path == generic path, null times, bad bytes, speed."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocols.cosem.profile as profile_module
from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.cosem import ScalerUnit, Unit
from protocols.cosem.profile import (
    CaptureObjectDefinition,
    ColumnRole,
    ProfileColumn,
    ProfileRow,
    columns_for,
    parse_profile_buffer,
    profile_rows_from_data,
)
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError
from protocols.obis import ObisCode
from tests.vectors.cosem_vectors import PROFILE_VECTORS

CLOCK = CaptureObjectDefinition(8, ObisCode(0, 0, 1, 0, 0, 255), 2)
STATUS = CaptureObjectDefinition(1, ObisCode(0, 0, 96, 10, 1, 255), 2)
A_PLUS = CaptureObjectDefinition(3, ObisCode(1, 0, 1, 8, 0, 255), 2)
A_MINUS = CaptureObjectDefinition(3, ObisCode(1, 0, 2, 8, 0, 255), 2)
START = datetime(2024, 3, 1, tzinfo=timezone(timedelta(hours=1)))


def _same(a: list[ProfileRow], b: list[ProfileRow]) -> None:
    """Equal rows, and equal offsets and value types (== on datetimes and Decimals is too lenient)."""
    assert a == b
    for x, y in zip(a, b):
        assert [type(v) for v in x.values] == [type(v) for v in y.values]
        assert [v.utcoffset() for v in x.values if isinstance(v, datetime)] == [
            v.utcoffset() for v in y.values if isinstance(v, datetime)
        ]
        assert [str(v) for v in x.values if isinstance(v, Decimal)] == [
            str(v) for v in y.values if isinstance(v, Decimal)
        ]


def _both(raw: bytes, columns: list[ProfileColumn], period: int | None) -> list[ProfileRow]:
    fast = parse_profile_buffer(raw, columns, period)
    _same(fast, profile_rows_from_data(decode_data_exact(raw), columns, period))
    return fast


@pytest.mark.parametrize(
    ("name", "source", "hex_", "expected"), PROFILE_VECTORS, ids=[v[0] for v in PROFILE_VECTORS]
)
def test_profile_vectors(name: str, source: str, hex_: str, expected: Any) -> None:
    assert source
    raw = bytes.fromhex(hex_)
    captures, period, rows = expected
    columns = columns_for(
        [CaptureObjectDefinition(c, ObisCode.parse(obis), a) for c, obis, a in captures],
    )
    got = _both(raw, columns, period)
    assert [tuple(r) for r in got] == rows
    assert encode_data(decode_data_exact(raw)) == raw
    with pytest.raises(DecodeError):
        parse_profile_buffer(raw + b"\x00", columns, period)
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            parse_profile_buffer(raw[:cut], columns, period)


def test_profile_vector_agrees_with_dlms_cosem() -> None:
    parsers = pytest.importorskip("dlms_cosem.parsers")
    cosem = pytest.importorskip("dlms_cosem.cosem")
    enumerations = pytest.importorskip("dlms_cosem.enumerations")
    _, _, hex_, (captures, period, _) = PROFILE_VECTORS[0]
    theirs = parsers.ProfileGenericBufferParser(
        capture_objects=[
            cosem.CosemAttribute(
                interface=enumerations.CosemInterface(c), instance=cosem.Obis.from_string(o), attribute=a
            )
            for c, o, a in captures
        ],
        capture_period=period // 60,  # minutes there
    ).parse_bytes(bytes.fromhex(hex_))
    ours = parse_profile_buffer(bytes.fromhex(hex_), columns_for(
        [CaptureObjectDefinition(c, ObisCode.parse(o), a) for c, o, a in captures]), period)  # fmt: skip
    assert [r.time for r in ours] == [row[0].value for row in theirs]
    assert [r.values[2:] for r in ours] == [tuple(cell.value for cell in row[2:]) for row in theirs]


def _profile(rows: int, *, nulls: frozenset[int] = frozenset(), status: bool = False) -> bytes:
    entries = []
    for i in range(rows):
        when = Data.null() if i in nulls else Data.octet_string(
            CosemDateTime.from_datetime(START + timedelta(minutes=15 * i)).encode()
        )  # fmt: skip
        cells = [when]
        if status:
            cells.append(Data.unsigned(i % 256))
        cells += [Data.double_long_unsigned(1000 + i), Data.double_long_unsigned(50 + i)]
        entries.append(Data.structure(cells))
    return encode_data(Data.array(entries))


def test_rows_typed_scaled_and_filled() -> None:
    raw = _profile(5, nulls=frozenset({2, 3}), status=True)
    columns = columns_for(
        [CLOCK, STATUS, A_PLUS, A_MINUS], {A_PLUS.logical_name: ScalerUnit(-3, Unit.WATT_HOUR)}
    )
    assert [c.role for c in columns] == [
        ColumnRole.CLOCK,
        ColumnRole.STATUS,
        ColumnRole.VALUE,
        ColumnRole.VALUE,
    ]
    rows = _both(raw, columns, 900)
    assert [r.time for r in rows] == [START + timedelta(minutes=15 * i) for i in range(5)]
    assert [r.time_filled for r in rows] == [False, False, True, True, False]
    assert rows[2].values[0] == rows[2].time
    assert [r.status for r in rows] == [0, 1, 2, 3, 4]
    assert rows[1].values[2] == Decimal("1.001")
    assert rows[1].values[3] == 51
    # without a capture period the null times stay unknown
    assert [r.time for r in parse_profile_buffer(raw, columns, 0)][2:4] == [None, None]
    assert [r.time for r in parse_profile_buffer(raw, columns, None)][4] == START + timedelta(minutes=60)


def test_fast_path_on_96_rows_matches_generic_with_scalers() -> None:
    raw = _profile(96)
    for scalers in (
        {},
        {A_PLUS.logical_name: ScalerUnit(2, Unit.WATT_HOUR)},
        {A_MINUS.logical_name: ScalerUnit(-1, 32)},
    ):
        columns = columns_for([CLOCK, A_PLUS, A_MINUS], scalers)
        rows = _both(raw, columns, 900)
        assert len(rows) == 96
        assert rows[95].time == START + timedelta(minutes=15 * 95)
    assert parse_profile_buffer(encode_data(Data.array([])), columns, 900) == []


_WILD = st.sampled_from(
    [
        CosemDateTime(2024, 2, 30, 0xFF, 1, 0, 0, 0, -60, 0),  # no such day
        CosemDateTime(2024, 3, 1, 5, 1, 0xFF, 0xFF, 0xFF, 0, 0),  # unspecified seconds
        CosemDateTime(2024, 3, 1, 5, 1, 0, 0, 0, -0x8000, 0),  # unspecified deviation
        CosemDateTime(2024, 3, 1, 5, 1, 0, 0, 0, 800, 0),  # deviation out of range
        CosemDateTime(0xFFFF, 0xFE, 0xFF, 0xFF, 2, 0, 0, 0, -120, 0x80),
    ]
)


@st.composite
def _buffers(draw: st.DrawFn) -> tuple[bytes, list[ProfileColumn], int]:
    count = draw(st.integers(0, 40))
    with_status = draw(st.booleans())
    period = draw(st.sampled_from([0, 60, 900, 3600]))
    scaler = draw(st.one_of(st.none(), st.integers(-4, 3)))
    value_tag = draw(st.sampled_from([DataTag.DOUBLE_LONG_UNSIGNED, DataTag.LONG64, DataTag.LONG_UNSIGNED]))
    bounds = {DataTag.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1), DataTag.LONG64: (-(2**63), 2**63 - 1),
              DataTag.LONG_UNSIGNED: (0, 65535)}[value_tag]  # fmt: skip
    entries = []
    base = draw(st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1)))
    deviation = draw(st.sampled_from([0, -60, -120, 180, 330]))
    for i in range(count):
        kind = draw(st.sampled_from(["time", "time", "time", "null", "wild", "date-time"]))
        if kind == "null":
            when = Data.null()
        elif kind == "wild":
            when = Data.octet_string(draw(_WILD).encode())
        elif kind == "date-time":
            when = Data(
                DataTag.DATE_TIME, CosemDateTime.from_datetime(base + timedelta(hours=i), deviation=deviation)
            )
        else:
            when = Data.octet_string(
                CosemDateTime.from_datetime(base + timedelta(hours=i), deviation=deviation).encode()
            )
        cells = [when]
        if with_status:
            cells.append(
                draw(st.sampled_from([Data.unsigned(i % 256), Data.null(), Data(DataTag.BIT_STRING, "1")]))
            )
        cells.append(Data(value_tag, draw(st.integers(*bounds))))
        cells.append(
            draw(st.sampled_from([Data.double_long_unsigned(i), Data.null(), Data.visible_string("x")]))
        )
        entries.append(Data.structure(cells))
    captures = [CLOCK, *([STATUS] if with_status else []), A_PLUS, A_MINUS]
    units = {} if scaler is None else {A_PLUS.logical_name: ScalerUnit(scaler, 30)}
    return encode_data(Data.array(entries)), columns_for(captures, units), period


@given(case=_buffers())
def test_fast_and_generic_paths_give_identical_rows(case: tuple[bytes, list[ProfileColumn], int]) -> None:
    raw, columns, period = case
    rows = _both(raw, columns, period)
    for prev, row in itertools.pairwise(rows):
        if row.time_filled:
            assert prev.time is not None
            assert row.time == prev.time + timedelta(seconds=period)


@given(rows=st.integers(3, 30), where=st.data())
def test_corrupt_row_in_the_middle_is_a_decode_error(rows: int, where: st.DataObject) -> None:
    raw = bytearray(_profile(rows))
    row_size = (len(raw) - 2) // rows
    middle = 2 + row_size * (rows // 2)
    # a tag byte of the middle row: the structure tag, the clock's tag or a value's tag
    offset = where.draw(st.sampled_from([0, 2, 16, 21]))
    raw[middle + offset] = where.draw(st.sampled_from([0x07, 0x08, 0xEE, 0x1C]))
    columns = columns_for([CLOCK, A_PLUS, A_MINUS])
    with pytest.raises(DecodeError):
        parse_profile_buffer(bytes(raw), columns, 900)
    with pytest.raises(DecodeError):
        profile_rows_from_data(decode_data_exact(bytes(raw)), columns, 900)


def test_shape_errors() -> None:
    columns = columns_for([CLOCK, A_PLUS, A_MINUS])
    with pytest.raises(DecodeError):
        parse_profile_buffer(_profile(3), columns[:2], 900)  # rows have 3 cells, 2 columns given
    with pytest.raises(DecodeError):
        parse_profile_buffer(b"\x02\x00", columns, 900)
    with pytest.raises(DecodeError):
        parse_profile_buffer(b"\x01\x05\x02\x03", columns, 900)
    bad_clock = encode_data(
        Data.array([Data.structure([Data.octet_string(b"\x07"), Data.unsigned(1), Data.unsigned(2)])])
    )
    with pytest.raises(DecodeError):
        parse_profile_buffer(bad_clock, columns, 900)
    with pytest.raises(DecodeError):
        profile_rows_from_data(decode_data_exact(bad_clock), columns, 900)
    with pytest.raises(DecodeError):
        profile_rows_from_data(Data.structure([]), columns, 900)


@given(raw=st.binary(max_size=200))
def test_fuzz_random_bytes(raw: bytes) -> None:
    columns = columns_for([CLOCK, STATUS, A_PLUS])
    try:
        rows = parse_profile_buffer(raw, columns, 900)
    except DecodeError:
        with pytest.raises(DecodeError):
            profile_rows_from_data(decode_data_exact(raw), columns, 900)
        return
    _same(rows, profile_rows_from_data(decode_data_exact(raw), columns, 900))


_BASE = _profile(6, nulls=frozenset({3}), status=True)


@given(edits=st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzz_mutated_buffers(edits: list[tuple[int, int]]) -> None:
    raw = bytearray(_BASE)
    for at, value in edits:
        raw[at] = value
    columns = columns_for([CLOCK, STATUS, A_PLUS, A_MINUS])
    try:
        rows = parse_profile_buffer(bytes(raw), columns, 900)
    except DecodeError:
        with pytest.raises(DecodeError):
            profile_rows_from_data(decode_data_exact(bytes(raw)), columns, 900)
        return
    _same(rows, profile_rows_from_data(decode_data_exact(bytes(raw)), columns, 900))


def test_96_rows_of_one_shape_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same-shaped rows never reach the generic decoder (its speed is measured in bench/codec.py)."""
    raw = _profile(96)
    columns = columns_for([CLOCK, A_PLUS, A_MINUS])
    expected = profile_rows_from_data(decode_data_exact(raw), columns, 900)

    def generic(*_args: object) -> None:
        raise AssertionError("the generic decoder was used for a same-shaped row")

    monkeypatch.setattr(profile_module, "decode_data", generic)
    assert parse_profile_buffer(raw, columns, 900) == expected
