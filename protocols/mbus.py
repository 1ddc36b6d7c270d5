"""Wired M-Bus long frames (EN 13757-2) that carry DLMS/COSEM APDUs, as Austrian meters push them.

A long frame is ``68 L L 68 C A CI <data> CS 16``: L counts C, A, CI and the data; CS is the sum
of those bytes modulo 256. The DLMS/COSEM transport over M-Bus uses CI values 0x00-0x1F: bit 4
(0x10) marks the last segment of an APDU and bits 0-3 count the segments modulo 16; every segment
starts with the source and destination TSAPs (one byte each) before its part of the APDU.

CI 0x60/0x61 (to the device) and 0x7C/0x7D (from the device) carry "DLMS/COSEM with OBIS
identifier" after the transport-layer header of EN 13757-7 (long: 12 bytes, identification,
manufacturer, version, device type, access number, status, configuration; short: 4 bytes, access
number, status, configuration), one whole APDU per frame. Source: EN 13757-7:2018 table 2 as
reproduced in the CI table of the Elixir library exmbus (``Exmbus.CI``); the configuration field's
security mode (bits 8-12, little-endian) must be 0 here: an OMS-ciphered payload is refused, not
misread. No capture of these CIs from a real meter was at hand; the Austrian meters use 0x00-0x1F.

Sources, for the layout and the CI bits: the customer-interface descriptions of the Austrian grid
operators, as reproduced with worked examples in fneur/smart-meter-tirol ``doc/EXAMPLE.md``
(TINETZ, Kaifa MA309: "CI=0x00 for the 1st segment and CI=0x11 for the 2nd") and Netz NÖ
"Smart Meter Kundenschnittstelle" (218_9_SmartMeter_Kundenschnittstelle_lektoriert_14), whose
example frame toreamun/amshan keeps in ``tests/test_wiredmb.py``. The meters seen (Kaifa MA309,
Sagemcom T210-D, Landis+Gyr E450) send C=0x53 (SND_UD), A=0xFF (broadcast), TSAPs 0x01 and 0x67.

Pure: bytes in, frames and APDUs out; raises only ``DecodeError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.errors import DecodeError, EncodeError

__all__ = [
    "DLMS_CI_MAX",
    "TPL_HEADER_LENGTHS",
    "MbusFrame",
    "MbusSegment",
    "decode_frame",
    "decode_frames",
    "join_segments",
    "looks_like_mbus",
]

_START = 0x68
_STOP = 0x16
_HEADER = 4  # 68 L L 68
_MIN_LENGTH = 3  # C, A, CI
#: Highest CI of the DLMS/COSEM transport layer (0x00-0x1F); other CIs carry other protocols.
DLMS_CI_MAX = 0x1F
_CI_LAST_SEGMENT = 0x10
_CI_SEQUENCE = 0x0F
_TSAPS = 2
#: CIs of DLMS/COSEM after an EN 13757-7 transport-layer header, and that header's length.
TPL_HEADER_LENGTHS = {0x60: 12, 0x61: 4, 0x7C: 12, 0x7D: 4}
_MODE_MASK = 0x1F


@dataclass(frozen=True, slots=True)
class MbusFrame:
    """One long frame: control (C), address (A), control information (CI) and the data after CI."""

    control: int
    address: int
    control_information: int
    data: bytes
    #: The L field held the length modulo 256 (see ``decode_frame``).
    length_wrapped: bool = False

    def encode(self) -> bytes:
        body = bytes((self.control, self.address, self.control_information)) + bytes(self.data)
        if len(body) > 0xFF and not self.length_wrapped:
            raise EncodeError(f"an M-Bus long frame carries at most 252 data bytes, got {len(self.data)}")
        length = len(body) & 0xFF
        return bytes((_START, length, length, _START)) + body + bytes((sum(body) & 0xFF, _STOP))


@dataclass(frozen=True, slots=True)
class MbusSegment:
    """A frame read as one segment of the DLMS/COSEM transport layer.

    Frames with a transport-layer header (CI 0x60/0x61/0x7C/0x7D) are one whole APDU: a single
    last segment without TSAPs, their header kept in ``tpl_header``.
    """

    frame: MbusFrame
    last: bool
    sequence: int
    source_tsap: int | None
    destination_tsap: int | None
    apdu_part: bytes
    tpl_header: bytes = b""


def looks_like_mbus(raw: bytes) -> bool:
    """Whether ``raw`` opens with an M-Bus long-frame header (68 L L 68)."""
    return len(raw) >= _HEADER and raw[0] == _START and raw[3] == _START and raw[1] == raw[2]


def decode_frame(buf: bytes, pos: int = 0) -> tuple[MbusFrame, int]:
    """One long frame at ``pos``; returns it and the position after its stop byte.

    Some meters (the Sagemcom frames in toreamun/amshan ``tests/test_wiredmb.py``) send 257 bytes
    after an L field of 0x01: the length modulo 256. When the frame as L gives it does not hold
    (too short, wrong checksum or stop byte) but L + 256 bytes end in a matching checksum and a
    stop byte, the frame is read so and marked ``length_wrapped``; a checksum over 257 bytes
    that happens to match is the evidence, not a guess.
    """
    try:
        buf = bytes(buf)
        try:
            return _decode_frame(buf, pos, 0)
        except DecodeError as exc:
            try:
                return _decode_frame(buf, pos, 0x100)
            except DecodeError:
                raise exc from None
    except (IndexError, ValueError, struct.error) as exc:  # a short buffer read past its end
        raise DecodeError(f"M-Bus frame truncated ({exc})", pos) from None


def _decode_frame(buf: bytes, pos: int, wrap: int) -> tuple[MbusFrame, int]:
    if len(buf) - pos < _HEADER:
        raise DecodeError("M-Bus frame header truncated", pos)
    if buf[pos] != _START or buf[pos + 3] != _START:
        raise DecodeError("not an M-Bus long frame (68 L L 68)", pos)
    if buf[pos + 2] != buf[pos + 1]:
        raise DecodeError(f"M-Bus length fields differ ({buf[pos + 1]} and {buf[pos + 2]})", pos + 2)
    length = buf[pos + 1] + wrap
    if length < _MIN_LENGTH:
        raise DecodeError(f"M-Bus length {length} is shorter than C, A and CI", pos + 1)
    body_start = pos + _HEADER
    end = body_start + length + 2
    if end > len(buf):
        raise DecodeError(f"M-Bus frame truncated: L={length} needs {length + 2} bytes after the header "
                          f"(with checksum and stop byte), {len(buf) - body_start} given", pos)
    body = buf[body_start : body_start + length]
    checksum = buf[body_start + length]
    if sum(body) & 0xFF != checksum:
        raise DecodeError(
            f"M-Bus checksum 0x{checksum:02X}, the bytes sum to 0x{sum(body) & 0xFF:02X}", body_start + length
        )
    if buf[end - 1] != _STOP:
        raise DecodeError(f"M-Bus stop byte 0x{buf[end - 1]:02X}, expected 0x16", end - 1)
    return MbusFrame(body[0], body[1], body[2], body[3:], bool(wrap)), end


def decode_frames(buf: bytes) -> list[MbusFrame]:
    """Every long frame of ``buf``, back to back; anything between or after them is an error."""
    buf = bytes(buf)
    frames = []
    pos = 0
    while pos < len(buf):
        frame, pos = decode_frame(buf, pos)
        frames.append(frame)
    if not frames:
        raise DecodeError("no M-Bus frame", 0)
    return frames


def _segment(frame: MbusFrame, index: int) -> MbusSegment:
    ci = frame.control_information
    header_length = TPL_HEADER_LENGTHS.get(ci)
    if header_length is not None:
        if len(frame.data) <= header_length:
            raise DecodeError(f"M-Bus frame {index + 1}: CI 0x{ci:02X} needs a {header_length}-byte transport "
                              "header and an APDU")
        header = frame.data[:header_length]
        mode = int.from_bytes(header[-2:], "little") >> 8 & _MODE_MASK
        if mode:
            raise DecodeError(f"M-Bus frame {index + 1}: transport-layer security mode {mode} (OMS ciphering) "
                              "is not supported")
        return MbusSegment(frame, True, 0, None, None, frame.data[header_length:], header)
    if ci > DLMS_CI_MAX:
        raise DecodeError(f"M-Bus frame {index + 1}: CI 0x{ci:02X} carries no DLMS/COSEM "
                          "(0x00-0x1F, 0x60, 0x61, 0x7C, 0x7D do)")
    if len(frame.data) < _TSAPS:
        raise DecodeError(f"M-Bus frame {index + 1}: no room for the source and destination TSAPs")
    return MbusSegment(frame, bool(ci & _CI_LAST_SEGMENT), ci & _CI_SEQUENCE, frame.data[0], frame.data[1],
                       frame.data[_TSAPS:])


def join_segments(frames: list[MbusFrame]) -> list[tuple[list[MbusSegment], bytes]]:
    """The APDUs the frames carry: segments joined in sequence up to each last-segment mark.

    Sequence numbers must follow each other (modulo 16) within an APDU, and an APDU must end with
    a last segment: a capture that starts or stops inside an APDU is refused, not half-decoded.
    """
    out: list[tuple[list[MbusSegment], bytes]] = []
    current: list[MbusSegment] = []
    for index, frame in enumerate(frames):
        segment = _segment(frame, index)
        if current and segment.tpl_header:
            raise DecodeError(f"M-Bus frame {index + 1}: a whole APDU inside a segmented one")
        if current:
            expected = (current[-1].sequence + 1) & _CI_SEQUENCE
            if segment.sequence != expected:
                raise DecodeError(
                    f"M-Bus frame {index + 1}: segment {segment.sequence} where {expected} was expected"
                )
        elif segment.sequence != 0:
            raise DecodeError(
                f"M-Bus frame {index + 1}: segment {segment.sequence} of an APDU whose first segment is not given"
            )
        current.append(segment)
        if segment.last:
            out.append((current, b"".join(part.apdu_part for part in current)))
            current = []
    if current:
        raise DecodeError(f"the APDU in M-Bus frames {len(frames) - len(current) + 1}-{len(frames)} has no last "
                          "segment: it continues in frames not given")
    return out
