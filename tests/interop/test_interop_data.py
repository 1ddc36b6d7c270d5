"""A-XDR Data of every type through ours, gurux and dlms-cosem, with random values both ways."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.axdr import CompactArray, Data, DataTag, TypeDescription, decode_data, encode_data
from tests.interop.ours import plain, plain_bytes, to_data
from tests.peers import TypedValue
from tests.peers import dlms_cosem_peer as dc
from tests.peers import gurux_peer as gx

_INTS = {
    5: (-(2**31), 2**31 - 1),
    6: (0, 2**32 - 1),
    15: (-128, 127),
    16: (-(2**15), 2**15 - 1),
    17: (0, 255),
    18: (0, 2**16 - 1),
    20: (-(2**63), 2**63 - 1),
    21: (0, 2**64 - 1),
    22: (0, 255),
}


def _leaf(max_string: int, null: bool) -> st.SearchStrategy[TypedValue]:
    ints = [st.tuples(st.just(tag), st.integers(low, high)) for tag, (low, high) in _INTS.items()]
    return st.one_of(
        *ints,
        st.tuples(st.just(0), st.none()) if null else st.nothing(),
        st.tuples(st.just(9), st.binary(max_size=max_string)),
        st.tuples(st.just(10), st.text(alphabet="abcXYZ019 -_", max_size=max_string)),
    )


def _typed(max_string: int, *, null: bool = True) -> st.SearchStrategy[TypedValue]:
    return st.recursive(
        _leaf(max_string, null),
        lambda children: st.one_of(
            st.tuples(st.just(1), st.lists(children, max_size=4)),
            st.tuples(st.just(2), st.lists(children, max_size=4)),
        ),
        max_leaves=12,
    )


def _untyped(typed: TypedValue) -> Any:
    tag, value = typed
    if tag in (1, 2):
        return [_untyped(item) for item in value]
    return value


@settings(max_examples=60, deadline=None)
@given(typed=_typed(max_string=300))
def test_our_encoding_reads_the_same_in_gurux(typed: TypedValue) -> None:
    ours = encode_data(to_data(typed))
    assert plain_bytes(ours) == _untyped(typed)
    assert gx.decode_data(ours) == _untyped(typed)
    # gurux's translator writes the same bytes from the same typed value
    assert gx.get_response_normal(typed)[4:] == ours


@settings(max_examples=60, deadline=None)
@given(typed=_typed(max_string=127, null=False))  # dlms-cosem cannot encode null-data (nor boolean)
def test_dlms_cosem_both_ways(typed: TypedValue) -> None:
    ours = encode_data(to_data(typed))
    assert dc.encode_data(typed) == ours
    assert dc.decode_data(ours) == _untyped(typed)
    value, end = decode_data(dc.encode_data(typed) + b"\x00\xff")  # trailing junk stays after the value
    assert end == len(ours) and plain(value) == _untyped(typed)


def test_null_data_reads_in_dlms_cosem_but_does_not_encode() -> None:
    assert dc.decode_data(encode_data(Data.null())) is None
    with pytest.raises(NotImplementedError):
        dc.encode_data((0, None))


def test_dlms_cosem_writes_long_string_lengths_wrong() -> None:
    """dlms-cosem writes a string length >= 128 as one raw byte (README defect); ours and gurux use 81 xx."""
    ours = encode_data(Data.octet_string(b"\x00" * 200))
    assert ours[:3] == b"\x09\x81\xc8"
    assert dc.encode_data((9, b"\x00" * 200))[:2] == b"\x09\xc8"
    assert gx.decode_data(ours) == b"\x00" * 200
    assert dc.decode_data(ours) == b"\x00" * 200


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (Data(DataTag.FLOAT32, 1.5), 1.5),
        (Data(DataTag.FLOAT64, -2.25), -2.25),
        (Data(DataTag.BCD, 0x12), 0x12),
        (Data(DataTag.UTF8_STRING, "é"), None),
        (Data(DataTag.BIT_STRING, "101"), b"\xa0"),
    ],
    ids=["float32", "float64", "bcd", "utf8", "bit-string"],
)
def test_types_dlms_cosem_cannot_read_go_through_gurux(data: Data, expected: Any) -> None:
    ours = encode_data(data)
    theirs = gx.decode_data(ours)
    if data.tag == DataTag.UTF8_STRING:
        assert theirs == "C3 A9"  # gurux shows a UTF-8 string as the hex of its bytes
    else:
        assert theirs == expected
    with pytest.raises(NotImplementedError):
        dc.decode_data(ours)


def test_date_and_time_types_in_both_peers() -> None:
    from datetime import date, time

    from protocols.cosem_datetime import CosemDate, CosemTime

    day = encode_data(Data(DataTag.DATE, CosemDate.decode(bytes.fromhex("07E40101FF"))))
    clock = encode_data(Data(DataTag.TIME, CosemTime.decode(bytes.fromhex("0C0000FF"))))
    assert dc.decode_data(day) == date(2020, 1, 1)
    assert dc.decode_data(clock) == time(12, 0)
    assert (gx.decode_data(day).year, gx.decode_data(day).month) == (2020, 1)
    assert gx.decode_data(clock).hour == 12


def test_compact_array_reads_in_gurux_not_in_dlms_cosem() -> None:
    description = TypeDescription(
        DataTag.STRUCTURE, 0, (TypeDescription(DataTag.UNSIGNED), TypeDescription(DataTag.LONG_UNSIGNED))
    )
    rows = tuple(Data.structure((Data.unsigned(n), Data.long_unsigned(n * 1000))) for n in range(1, 5))
    ours = encode_data(Data(DataTag.COMPACT_ARRAY, CompactArray(description, rows)))
    expected = [[n, n * 1000] for n in range(1, 5)]
    assert plain_bytes(ours) == expected
    assert gx.decode_data(ours) == expected
    with pytest.raises(NotImplementedError):
        dc.decode_data(ours)
