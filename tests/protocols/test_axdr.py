"""A-XDR Data: known encodings, round trips for every type, and bad bytes giving DecodeError only."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.axdr import (
    CompactArray,
    Data,
    DataTag,
    TypeDescription,
    decode_data,
    decode_data_exact,
    decode_length,
    decode_type_description,
    encode_data,
    encode_length,
    encode_type_description,
    skip_data,
)
from protocols.cosem_datetime import CosemDate, CosemDateTime, CosemTime
from protocols.errors import DecodeError, EncodeError

# (name, hex, expected Data). Encodings per the Green Book's A-XDR rules (IEC 61334-6 / 62056-5-3 9.5).
KNOWN = [
    ("null-data", "00", Data(DataTag.NULL_DATA, None)),
    ("boolean true", "0301", Data(DataTag.BOOLEAN, True)),
    ("boolean false", "0300", Data(DataTag.BOOLEAN, False)),
    ("double-long -2", "05fffffffe", Data(DataTag.DOUBLE_LONG, -2)),
    ("double-long-unsigned", "0600000100", Data(DataTag.DOUBLE_LONG_UNSIGNED, 256)),
    ("octet-string OBIS", "0906 0000010000ff", Data(DataTag.OCTET_STRING, bytes.fromhex("0000010000ff"))),
    ("visible-string", "0a03 414243", Data(DataTag.VISIBLE_STRING, "ABC")),
    ("utf8-string", "0c02 c3a9", Data(DataTag.UTF8_STRING, "\u00e9")),
    ("bcd", "0d12", Data(DataTag.BCD, 0x12)),
    ("integer -1", "0fff", Data(DataTag.INTEGER, -1)),
    ("long -300", "10fed4", Data(DataTag.LONG, -300)),
    ("unsigned", "11ff", Data(DataTag.UNSIGNED, 255)),
    ("long-unsigned", "120102", Data(DataTag.LONG_UNSIGNED, 0x0102)),
    ("long64", "14ffffffffffffffff", Data(DataTag.LONG64, -1)),
    ("long64-unsigned", "15 0000000100000000", Data(DataTag.LONG64_UNSIGNED, 1 << 32)),
    ("enum", "1602", Data(DataTag.ENUM, 2)),
    ("float32 1.5", "17 3fc00000", Data(DataTag.FLOAT32, 1.5)),
    ("float64 -2.25", "18 c002000000000000", Data(DataTag.FLOAT64, -2.25)),
    (
        "date-time",
        "19 07e6010a010c0000ff8000ff",
        Data(DataTag.DATE_TIME, CosemDateTime(2022, 1, 10, 1, 12, 0, 0, 0xFF, -0x8000, 0xFF)),
    ),
    ("date", "1a 07e6010aff", Data(DataTag.DATE, CosemDate(2022, 1, 10, 0xFF))),
    ("time", "1b 0c1e00ff", Data(DataTag.TIME, CosemTime(12, 30, 0, 0xFF))),
    ("dont-care", "ff", Data(DataTag.DONT_CARE, None)),
    ("bit-string 12 bits", "04 0c a5f0", Data(DataTag.BIT_STRING, "101001011111")),
    (
        # The structure of a capture object definition (Blue Book IC 7, capture_objects element).
        "capture object",
        "0204 120008 0906 0000010000ff 0f02 120000",
        Data.structure(
            [
                Data.long_unsigned(8),
                Data.octet_string(bytes.fromhex("0000010000ff")),
                Data.integer(2),
                Data.long_unsigned(0),
            ]
        ),
    ),
    (
        "array of two",
        "0102 1101 1102",
        Data.array([Data.unsigned(1), Data.unsigned(2)]),
    ),
    (
        # Green Book compact-array example shape: array of 2 x structure{long-unsigned, octet-string}
        "compact-array",
        "13 0202 12 09 09 0001 02aabb 0002 01cc",
        Data(
            DataTag.COMPACT_ARRAY,
            CompactArray(
                TypeDescription(
                    DataTag.STRUCTURE,
                    0,
                    (TypeDescription(DataTag.LONG_UNSIGNED), TypeDescription(DataTag.OCTET_STRING)),
                ),
                (
                    Data.structure([Data.long_unsigned(1), Data.octet_string(b"\xaa\xbb")]),
                    Data.structure([Data.long_unsigned(2), Data.octet_string(b"\xcc")]),
                ),
            ),
        ),
    ),
]


@pytest.mark.parametrize(("name", "hexstr", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_encodings_both_ways(name: str, hexstr: str, expected: Data) -> None:
    raw = bytes.fromhex(hexstr.replace(" ", ""))
    assert decode_data_exact(raw) == expected
    assert encode_data(expected) == raw
    assert skip_data(raw) == len(raw)
    # Trailing junk: decode_data stops at the end of the value, decode_data_exact refuses it.
    value, end = decode_data(raw + b"\x99\x99")
    assert (value, end) == (expected, len(raw))
    with pytest.raises(DecodeError):
        decode_data_exact(raw + b"\x00")
    # Every proper prefix is truncated data, except where a shorter value is complete on its own.
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_data_exact(raw[:cut])


def test_any_non_zero_byte_reads_as_true() -> None:
    assert decode_data_exact(b"\x03\xff") == Data(DataTag.BOOLEAN, True)
    assert decode_data_exact(b"\x03\x02") == Data(DataTag.BOOLEAN, True)


@pytest.mark.parametrize("length", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0xFFFFFFFF])
def test_length_round_trip(length: int) -> None:
    raw = encode_length(length)
    assert decode_length(raw + b"\x00", 0) == (length, len(raw))
    assert raw[0] < 0x80 if length < 0x80 else raw[0] == 0x80 | (len(raw) - 1)


def test_length_forms_from_the_standard() -> None:
    assert encode_length(0x81) == b"\x81\x81"
    assert encode_length(0x0102) == b"\x82\x01\x02"
    with pytest.raises(DecodeError):
        decode_length(b"\x80", 0)  # indefinite form does not exist in A-XDR
    with pytest.raises(DecodeError):
        decode_length(b"\x85\x00\x00\x00\x00\x01", 0)
    with pytest.raises(DecodeError):
        decode_length(b"\x82\x01", 0)


# --- hypothesis: every type round-trips ---------------------------------------------------------

_INT_RANGES = {
    DataTag.INTEGER: (-128, 127),
    DataTag.LONG: (-(2**15), 2**15 - 1),
    DataTag.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DataTag.LONG64: (-(2**63), 2**63 - 1),
    DataTag.UNSIGNED: (0, 255),
    DataTag.LONG_UNSIGNED: (0, 2**16 - 1),
    DataTag.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    DataTag.LONG64_UNSIGNED: (0, 2**64 - 1),
    DataTag.ENUM: (0, 255),
    DataTag.BCD: (0, 255),
}

_byte = st.integers(0, 255)
cosem_date_times = st.builds(
    CosemDateTime,
    st.integers(0, 0xFFFF),
    _byte,
    _byte,
    _byte,
    _byte,
    _byte,
    _byte,
    _byte,
    st.integers(-0x8000, 0x7FFF),
    _byte,
)


def _scalar() -> st.SearchStrategy[Data]:
    ints = [st.builds(Data, st.just(tag), st.integers(lo, hi)) for tag, (lo, hi) in _INT_RANGES.items()]
    return st.one_of(
        *ints,
        st.just(Data(DataTag.NULL_DATA, None)),
        st.just(Data(DataTag.DONT_CARE, None)),
        st.builds(Data, st.just(DataTag.BOOLEAN), st.booleans()),
        st.builds(Data, st.just(DataTag.OCTET_STRING), st.binary(max_size=300)),
        st.builds(
            Data,
            st.just(DataTag.VISIBLE_STRING),
            st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40),
        ),
        st.builds(Data, st.just(DataTag.UTF8_STRING), st.text(max_size=40)),
        st.builds(Data, st.just(DataTag.BIT_STRING), st.text("01", max_size=70)),
        st.builds(
            Data,
            st.just(DataTag.FLOAT32),
            st.floats(width=32, allow_nan=False),
        ),
        st.builds(Data, st.just(DataTag.FLOAT64), st.floats(allow_nan=False)),
        st.builds(Data, st.just(DataTag.DATE_TIME), cosem_date_times),
        st.builds(Data, st.just(DataTag.DATE), st.builds(CosemDate, st.integers(0, 0xFFFF), _byte, _byte, _byte)),
        st.builds(Data, st.just(DataTag.TIME), st.builds(CosemTime, _byte, _byte, _byte, _byte)),
    )


def _compact_arrays() -> st.SearchStrategy[Data]:
    member_tags = st.sampled_from(
        [DataTag.LONG_UNSIGNED, DataTag.DOUBLE_LONG, DataTag.OCTET_STRING, DataTag.BOOLEAN, DataTag.ENUM]
    )

    def values_for(tag: DataTag) -> st.SearchStrategy[Data]:
        if tag is DataTag.OCTET_STRING:
            return st.builds(Data, st.just(tag), st.binary(max_size=8))
        if tag is DataTag.BOOLEAN:
            return st.builds(Data, st.just(tag), st.booleans())
        lo, hi = _INT_RANGES[tag]
        return st.builds(Data, st.just(tag), st.integers(lo, hi))

    @st.composite
    def build(draw: st.DrawFn) -> Data:
        tags = draw(st.lists(member_tags, min_size=1, max_size=4))
        desc = TypeDescription(DataTag.STRUCTURE, 0, tuple(TypeDescription(t) for t in tags))
        rows = draw(
            st.lists(st.tuples(*[values_for(t) for t in tags]).map(Data.structure), min_size=0, max_size=6)
        )
        return Data(DataTag.COMPACT_ARRAY, CompactArray(desc, tuple(rows)))

    return build()


data_values: st.SearchStrategy[Data] = st.recursive(
    st.one_of(_scalar(), _compact_arrays()),
    lambda children: st.one_of(
        st.lists(children, max_size=5).map(Data.array),
        st.lists(children, max_size=5).map(Data.structure),
    ),
    max_leaves=25,
)


def _same(a: Data, b: Data) -> bool:
    # -0.0 == 0.0 and inf compare equal; compare encodings instead of floats alone.
    return encode_data(a) == encode_data(b)


@given(data_values)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_every_type_round_trips(value: Data) -> None:
    raw = encode_data(value)
    decoded = decode_data_exact(raw)
    assert _same(decoded, value)
    assert decoded == value or value.tag in (DataTag.FLOAT32, DataTag.FLOAT64) or _has_float(value)
    assert skip_data(raw) == len(raw)


def _has_float(value: Data) -> bool:
    if value.tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        return any(_has_float(v) for v in value.value)
    return value.tag in (DataTag.FLOAT32, DataTag.FLOAT64)


def test_type_description_round_trip() -> None:
    desc = TypeDescription(
        DataTag.ARRAY, 3, (TypeDescription(DataTag.STRUCTURE, 0, (TypeDescription(DataTag.ENUM),)),)
    )
    raw = encode_type_description(desc)
    assert raw == bytes.fromhex("010003020116")
    assert decode_type_description(raw) == (desc, len(raw))


# --- bad input ---------------------------------------------------------------------------------


@given(st.binary(max_size=200))
@settings(max_examples=2000)
def test_random_bytes_give_data_or_decode_error(raw: bytes) -> None:
    try:
        value, end = decode_data(raw)
    except DecodeError:
        # skip_data checks structure, not contents (e.g. UTF-8), so it may accept what decode refuses.
        with contextlib.suppress(DecodeError):
            skip_data(raw)
        return
    assert 0 < end <= len(raw)
    assert skip_data(raw) == end
    assert isinstance(value, Data)


@given(data_values, st.data())
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_encodings_give_data_or_decode_error(value: Data, data: st.DataObject) -> None:
    raw = bytearray(encode_data(value))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        decode_data(bytes(raw))


def test_deep_nesting_is_a_decode_error_not_a_recursion_error() -> None:
    raw = b"\x01\x01" * 5000 + b"\x00"
    with pytest.raises(DecodeError, match="nested too deeply"):
        decode_data(raw)
    with pytest.raises(DecodeError):
        skip_data(raw)


def test_huge_claimed_counts_fail_fast() -> None:
    with pytest.raises(DecodeError, match="cannot fit"):
        decode_data(b"\x01\x84\xff\xff\xff\xff\x00")
    with pytest.raises(DecodeError):
        decode_data(b"\x09\x84\xff\xff\xff\xff\x00")


def test_compact_array_of_empty_elements_with_contents_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode_data(bytes.fromhex("13 00 02 aabb".replace(" ", "")))


def test_invalid_utf8_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_data(b"\x0c\x01\xff")


@pytest.mark.parametrize(
    "bad",
    [
        Data(DataTag.UNSIGNED, 256),
        Data(DataTag.INTEGER, -129),
        Data(DataTag.LONG_UNSIGNED, -1),
        Data(DataTag.DOUBLE_LONG_UNSIGNED, "1"),
        Data(DataTag.OCTET_STRING, "text"),
        Data(DataTag.VISIBLE_STRING, "\u20ac"),
        Data(DataTag.BIT_STRING, "012"),
        Data(DataTag.NULL_DATA, 0),
        Data(DataTag.DATE_TIME, b"\x00" * 12),
        Data(DataTag.FLOAT32, 1e39),
        Data(7, 0),  # type: ignore[arg-type]
    ],
)
def test_values_the_tag_cannot_hold_are_encode_errors(bad: Data) -> None:
    with pytest.raises(EncodeError):
        encode_data(bad)


def test_profile_sized_buffer_decodes() -> None:
    rows = [
        Data.structure(
            [
                Data.octet_string(CosemDateTime(2024, 1, 1, 1, 0, 15 * i % 60, 0, 0, -60, 0).encode()),
                Data.double_long_unsigned(1000 * i),
                Data.double_long_unsigned(i),
            ]
        )
        for i in range(96)
    ]
    raw = encode_data(Data.array(rows))
    assert len(raw) == 2 + 96 * (2 + 14 + 5 + 5)
    decoded = decode_data_exact(raw)
    assert decoded.value[95].value[1].value == 95000
    assert struct.unpack(">I", raw[-4:])[0] == 95
