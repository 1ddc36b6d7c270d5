"""Short-name referencing services (``protocols.xdlms.sn``): vectors from gurux-dlms's SN client, both ways."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.apdu import decode_apdu
from protocols.axdr import Data, encode_data
from protocols.errors import DecodeError, EncodeError
from protocols.translate import translate
from protocols.xdlms.common import DataAccessResult
from protocols.xdlms.sn import (
    BlockNumberAccess,
    DataBlockResult,
    ParameterizedAccess,
    ReadRequest,
    ReadResponse,
    VariableName,
    WriteRequest,
    WriteResponse,
    attribute_short_name,
    method_short_name,
)
from tests.peers import gurux_peer as gx

#: Requests of gurux-dlms 1.0.203's client in SN mode (``GXDLMSClient(False, ...)``, InterfaceType.PDU), for a
#: clock at base name 0x2BC0, a register at 0x3000, a profile at 0x4000, a disconnect control at 0x5000.
GURUX_SN_REQUESTS = {
    # read(clock, 2)
    "read-clock-time": ("05 01 02 2bc8", ReadRequest((VariableName(0x2BC8),))),
    # readList([(clock, 2), (register, 2), (register, 3)])
    "read-list": ("05 03 02 2bc8 02 3008 02 3010",
                  ReadRequest((VariableName(0x2BC8), VariableName(0x3008), VariableName(0x3010)))),
    # readRowsByEntry(profile, 1, 10): parameterized access, selector 2
    "read-by-entry": ("05 01 04 4008 02 0204 0600000001 060000000a 120001 120000",
                      ReadRequest((ParameterizedAccess(0x4008, 2, bytes.fromhex(
                          "02040600000001060000000a120001120000")),))),
    # remoteDisconnect(): method 1 of class 70 is written at base + 0x20
    "disconnect": ("06 01 02 5020 01 0f00", WriteRequest((VariableName(0x5020),), (bytes.fromhex("0f00"),))),
    # write(register, 2) with value 5
    "write-register": ("06 01 02 3008 01 0500000005",
                       WriteRequest((VariableName(0x3008),), (bytes.fromhex("0500000005"),))),
}


@pytest.mark.parametrize("name", sorted(GURUX_SN_REQUESTS))
def test_gurux_sn_requests_decode_and_ours_encode_the_same_bytes(name: str) -> None:
    text, expected = GURUX_SN_REQUESTS[name]
    raw = bytes.fromhex(text.replace(" ", ""))
    assert decode_apdu(raw) == expected
    assert expected.encode() == raw


def test_the_vectors_are_what_gurux_sends_now() -> None:
    """Re-derived live, so a typo above (or a change in gurux) fails here."""
    live = gx.sn_requests()
    for name, (text, _) in GURUX_SN_REQUESTS.items():
        assert live[name] == bytes.fromhex(text.replace(" ", "")), name


def test_gurux_reads_our_read_and_write_responses() -> None:
    clock = bytes.fromhex("090c07e803010500000000000000")
    assert gx.sn_response_value(ReadResponse((clock,)).encode()) == bytes.fromhex("07e803010500000000000000")
    assert gx.sn_response_value(ReadResponse((encode_data(Data.double_long_unsigned(1234)),)).encode()) == 1234
    assert gx.sn_response_value(ReadResponse((DataAccessResult.READ_WRITE_DENIED,)).encode()) == ("error", 3)
    assert gx.sn_response_value(WriteResponse((None,)).encode()) is None


def test_short_names_of_attributes_and_methods() -> None:
    assert attribute_short_name(0x2BC0, 1) == 0x2BC0 and attribute_short_name(0x2BC0, 2) == 0x2BC8
    assert method_short_name(70, 0x5000, 1) == 0x5020 and method_short_name(70, 0x5000, 2) == 0x5028
    assert method_short_name(8, 0x2BC0, 1) == 0x2C20 and method_short_name(7, 0x4000, 2) == 0x4060
    for bad in ((70, 0x5000, 3), (1, 0x1000, 1), (70, 0xFFF0, 1)):
        with pytest.raises(EncodeError):
            method_short_name(*bad)
    with pytest.raises(EncodeError):
        attribute_short_name(0x1000, 0)


def test_read_responses_with_blocks_errors_and_data() -> None:
    response = ReadResponse((bytes.fromhex("0600000005"), DataAccessResult.OBJECT_UNDEFINED,
                             DataBlockResult(False, 1, b"\x01\x02\x03"), 7))
    raw = response.encode()
    assert raw == bytes.fromhex("0c04" "000600000005" "0104" "0200000103010203" "030007")
    assert ReadResponse.decode(raw) == response
    assert ReadRequest((BlockNumberAccess(2),)).encode() == bytes.fromhex("0501050002")
    out = translate(raw)
    assert out["apdu"]["type"] == "ReadResponse"


@pytest.mark.parametrize("raw", ["05", "0501", "050103", "0c0109", "0c01000600", "0601023008", "0d0105", "0d01",
                                 "0500", "06010230080105000000", "060102300802050000000505000000"])
def test_bad_sn_apdus_are_decode_errors(raw: str) -> None:
    with pytest.raises(DecodeError):
        decode_apdu(bytes.fromhex(raw))


_names = st.integers(0, 0xFFFF)
_access = st.one_of(
    _names.map(VariableName),
    st.builds(ParameterizedAccess, _names, st.integers(0, 255), st.just(bytes.fromhex("0600000001"))),
    st.integers(0, 0xFFFF).map(BlockNumberAccess),
)
_result = st.one_of(
    st.just(bytes.fromhex("120005")),
    st.sampled_from(list(DataAccessResult)),
    st.builds(DataBlockResult, st.booleans(), st.integers(0, 0xFFFF), st.binary(max_size=40)),
    st.integers(0, 0xFFFF),
)


@given(st.lists(_access, min_size=1, max_size=5))
def test_read_and_write_requests_round_trip(variables: list[ParameterizedAccess]) -> None:
    request = ReadRequest(tuple(variables))
    assert ReadRequest.decode(request.encode()) == request
    write = WriteRequest(tuple(variables), tuple(bytes.fromhex("0f01") for _ in variables))
    assert WriteRequest.decode(write.encode()) == write


@given(st.lists(_result, max_size=6))
def test_read_responses_round_trip(results: list[bytes]) -> None:
    response = ReadResponse(tuple(results))
    assert ReadResponse.decode(response.encode()) == response


@given(st.binary(max_size=30))
def test_any_bytes_behind_an_sn_tag_decode_or_raise_decode_error(body: bytes) -> None:
    for tag in (0x05, 0x06, 0x0C, 0x0D):
        with contextlib.suppress(DecodeError):  # the property: nothing but DecodeError escapes
            decode_apdu(bytes((tag,)) + body)
