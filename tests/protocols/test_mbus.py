"""M-Bus long frames carrying DLMS: frames both ways, segments joined by sequence, bad bytes typed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import DecodeError
from protocols.mbus import MbusFrame, decode_frame, decode_frames, join_segments, looks_like_mbus
from tests.vectors.captures import CAPTURE_HEX

TINETZ = bytes.fromhex(CAPTURE_HEX["kaifa-ma309-tinetz-mbus"])


def _segment(ci: int, part: bytes) -> MbusFrame:
    return MbusFrame(0x53, 0xFF, ci, b"\x01\x67" + part)


def test_the_tinetz_example_is_two_segments_of_one_apdu() -> None:
    frames = decode_frames(TINETZ)
    assert [(f.control, f.address, f.control_information) for f in frames] == [(0x53, 0xFF, 0x00), (0x53, 0xFF, 0x11)]
    assert b"".join(f.encode() for f in frames) == TINETZ
    ((segments, apdu),) = join_segments(frames)
    assert [s.sequence for s in segments] == [0, 1] and segments[-1].last
    assert (segments[0].source_tsap, segments[0].destination_tsap) == (0x01, 0x67)
    # The joined APDU as the source prints it: general-glo-ciphering, system title, length 265.
    assert apdu[:13] == bytes.fromhex("DB084B464D101000002382 0109".replace(" ", ""))
    assert len(apdu) == 2 + 8 + 3 + 265


def test_frame_round_trip_and_position() -> None:
    frame = _segment(0x10, b"\x0f\x00")
    raw = b"\xaa" + frame.encode()
    assert looks_like_mbus(raw[1:])
    assert decode_frame(raw, 1) == (frame, len(raw))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:2] + b"\x07" + b[3:], "length fields differ"),
        (lambda b: b[:-2] + bytes([(b[-2] + 1) & 0xFF]) + b[-1:], "checksum"),
        (lambda b: b[:-1] + b"\x17", "stop byte"),
        (lambda b: b[:-3], "truncated"),
        (lambda b: b"\x68\x02\x02\x68\x53\xff\x55\x16", "shorter than C, A and CI"),
    ],
)
def test_bad_frames_are_decode_errors(mutate: object, message: str) -> None:
    raw = _segment(0x10, b"\x0f\x00\x00\x00\x00\x00\x01\x00").encode()
    with pytest.raises(DecodeError, match=message):
        decode_frames(mutate(raw))  # type: ignore[operator]


def test_a_length_past_255_is_read_by_its_checksum_and_stop_byte() -> None:
    long = MbusFrame(0x53, 0xFF, 0x00, bytes(range(256)) + b"\x01", length_wrapped=True)
    raw = long.encode()
    assert raw[1:3] == b"\x04\x04"  # 260 (0x104) bytes after the header: C, A, CI and 257 data bytes
    assert decode_frames(raw) == [long]
    broken = raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:]
    with pytest.raises(DecodeError, match=r"checksum|stop byte"):
        decode_frames(broken)


@pytest.mark.parametrize(
    ("cis", "message"),
    [
        ((0x11,), "first segment is not given"),
        ((0x00, 0x12), "segment 2 where 1 was expected"),
        ((0x00, 0x01), "no last segment"),
        ((0x72,), "carries no DLMS/COSEM"),
    ],
)
def test_segments_out_of_order_or_missing_are_refused(cis: tuple[int, ...], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        join_segments([_segment(ci, b"\x0f") for ci in cis])


def test_several_apdus_and_the_sequence_wrapping_at_16() -> None:
    cis = [*range(16), 0x10, 0x10]  # 17 segments of one APDU (0-15, then 0 with the last mark), then one more
    out = join_segments([_segment(ci, bytes([i])) for i, ci in enumerate(cis)])
    assert [apdu for _segments, apdu in out] == [bytes(range(17)), b"\x11"]


@given(st.binary(max_size=80))
@settings(max_examples=500)
def test_any_bytes_give_frames_or_a_decode_error(raw: bytes) -> None:
    try:
        frames = decode_frames(b"\x68" + raw)
    except DecodeError:
        return
    try:
        join_segments(frames)
    except DecodeError:
        return


# A short transport-layer header: access number, status, configuration (little-endian, mode 0).
SHORT_HEADER = bytes.fromhex("2A000000")


def test_dlms_after_a_transport_layer_header_is_one_whole_apdu() -> None:
    get = bytes.fromhex("C001C100080000010000FF0200")
    frames = [MbusFrame(0x08, 0x05, 0x7D, SHORT_HEADER + get), MbusFrame(0x08, 0x05, 0x7C, bytes(12) + get)]
    out = join_segments(decode_frames(b"".join(f.encode() for f in frames)))
    assert [apdu for _segments, apdu in out] == [get, get]
    assert out[0][0][0].tpl_header == SHORT_HEADER and out[0][0][0].source_tsap is None


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([MbusFrame(0x08, 0x05, 0x7D, bytes.fromhex("2A000005") + b"\xc0")], "security mode 5"),
        ([MbusFrame(0x08, 0x05, 0x7C, bytes(12))], "12-byte transport header and an APDU"),
        ([_segment(0x00, b"\x0f"), MbusFrame(0x08, 0x05, 0x7D, SHORT_HEADER + b"\xc0")], "inside a segmented"),
    ],
)
def test_transport_layer_headers_refused_when_ciphered_short_or_misplaced(frames: list[MbusFrame],
                                                                          message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        join_segments(frames)
