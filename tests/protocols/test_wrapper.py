"""TCP/UDP wrapper (IEC 62056-47 / 62056-9-7): frames both ways, the incremental connection, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import DecodeError, EncodeError, StateError
from protocols.wrapper import ApduReceived, ConnectionClosed, WrapperConnection, WrapperError, WrapperFrame

# AARQ in a wrapper from client wPort 16 to server wPort 1, as emitted by gurux-dlms 1.0.203
# GXDLMSClient(True, 16, 1) with InterfaceType.WRAPPER (re-derived live below).
AARQ_HEX = "000100100001001f601da109060760857405080101be10040e01000000065f1f0400401e5dffff"
AARQ = bytes.fromhex(AARQ_HEX)


def test_vector_both_ways() -> None:
    frame, end = WrapperFrame.decode(AARQ + b"\x00\x01junk")
    assert end == len(AARQ)
    assert (frame.version, frame.source, frame.destination) == (1, 16, 1)
    assert frame.apdu == AARQ[8:] and len(frame.apdu) == 0x1F
    assert frame.encode() == AARQ
    conn = WrapperConnection(1, 16)
    events = [e for b in AARQ for e in conn.receive_data(bytes((b,)))]
    assert events == [ApduReceived(16, 1, AARQ[8:])]


def test_vector_matches_gurux_and_dlms_cosem() -> None:
    from dlms_cosem.protocol.wrappers import WrapperProtocolDataUnit
    from gurux_dlms import GXDLMSClient
    from gurux_dlms.enums import InterfaceType

    client = GXDLMSClient(True, 16, 1)
    client.interfaceType = InterfaceType.WRAPPER
    assert bytes(client.aarqRequest()[0]) == AARQ
    theirs = WrapperProtocolDataUnit.from_bytes(AARQ)
    assert theirs.data == WrapperFrame.decode(AARQ)[0].apdu


def test_connection_sends_and_splits_a_stream() -> None:
    client = WrapperConnection(16, 1)
    client.send_apdu(b"\x01\x02")
    client.send_apdu(b"", destination=17)
    out = client.data_to_send()
    assert out == bytes.fromhex("0001001000010002" "0102" "0001001000110000")
    server = WrapperConnection(1, 16)
    assert server.receive_data(out[:5]) == []
    assert server.receive_data(out[5:]) == [ApduReceived(16, 1, b"\x01\x02"), ApduReceived(16, 17, b"")]
    assert server.receive_data(b"\x00\x01\x00") == []
    assert server.receive_data(b"") == [ConnectionClosed(3)]
    with pytest.raises(StateError):
        server.receive_data(b"\x00")
    with pytest.raises(StateError):
        server.send_apdu(b"\x01")


def test_bad_version_is_an_error_event() -> None:
    conn = WrapperConnection(1, 16)
    good = WrapperFrame(16, 1, b"\xaa").encode()
    events = conn.receive_data(good + b"\x00\x02\x00\x10\x00\x01\x00\x00")
    assert events[0] == ApduReceived(16, 1, b"\xaa")
    assert isinstance(events[1], WrapperError) and events[1].offset == len(good)
    assert conn.failed
    assert conn.receive_data(good) == []
    with pytest.raises(DecodeError):
        WrapperFrame.decode(b"\x00\x02\x00\x10\x00\x01\x00\x00")
    with pytest.raises(DecodeError):
        WrapperFrame.decode(AARQ[:-1])


def test_encode_limits() -> None:
    with pytest.raises(EncodeError):
        WrapperFrame(1, 1, bytes(0x10000)).encode()
    with pytest.raises(EncodeError):
        WrapperFrame(0x10000, 1, b"").encode()


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=300))
def test_round_trip(source: int, destination: int, apdu: bytes) -> None:
    raw = WrapperFrame(source, destination, apdu).encode()
    assert WrapperFrame.decode(raw + b"\x00") == (WrapperFrame(source, destination, apdu), len(raw))


@given(st.binary(max_size=100), st.integers(1, 20))
def test_fuzz(data: bytes, step: int) -> None:
    try:
        frame, end = WrapperFrame.decode(data)
        assert frame.encode() == data[:end]
    except DecodeError:
        pass
    conn = WrapperConnection(1, 16)
    for pos in range(0, len(data), step):
        for event in conn.receive_data(data[pos:pos + step]):
            assert isinstance(event, ApduReceived | WrapperError)
