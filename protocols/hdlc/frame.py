"""HDLC frames of IEC 62056-46 (frame format type 3): addresses, control, parameters, encode, decode."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.errors import DecodeError, EncodeError
from protocols.hdlc.crc import crc16, crc16_bytes

__all__ = [
    "DEFAULT_MAX_INFO_LENGTH",
    "DEFAULT_WINDOW_SIZE",
    "FLAG",
    "LLC_COMMAND",
    "LLC_RESPONSE",
    "MAX_FRAME_LENGTH",
    "FrameDecodeError",
    "FrameType",
    "HdlcAddress",
    "HdlcFrame",
    "HdlcParameters",
    "client_address",
    "server_address",
]

FLAG = 0x7E
#: The 11-bit frame length field caps a frame (flags excluded) at this many bytes.
MAX_FRAME_LENGTH = 0x7FF
#: LLC header of client->server information fields (destination LSAP, source LSAP, quality).
LLC_COMMAND = b"\xe6\xe6\x00"
#: LLC header of server->client information fields.
LLC_RESPONSE = b"\xe6\xe7\x00"
#: Values that apply when SNRM/UA carry no parameter (IEC 62056-46 6.4.4.4.3.2).
DEFAULT_MAX_INFO_LENGTH = 128
DEFAULT_WINDOW_SIZE = 1

# The parameters of the SNRM/UA group, by identifier, named from the sender's point of view.
_PARAMETER_NAMES = {0x05: "maximum information length transmit", 0x06: "maximum information length receive",
                    0x07: "window size transmit", 0x08: "window size receive"}

_FORMAT_TYPE_3 = 0xA0
_SEGMENTATION_BIT = 0x08
# Smallest frame: format (2) + destination (1) + source (1) + control (1) + FCS (2).
_MIN_FRAME_LENGTH = 7


class FrameDecodeError(DecodeError):
    """A frame that cannot be decoded.

    ``end`` is where the frame ends in the buffer when its extent is trustworthy (both checksums
    passed and only its content is wrong), so a receiver can skip it instead of hunting for a flag.
    """

    def __init__(self, message: str, offset: int | None = None, end: int | None = None) -> None:
        super().__init__(message, offset)
        self.end = end


class FrameType(IntEnum):
    """Frame types by their control field value with N(S), N(R) and P/F cleared."""

    I = 0x00  # noqa: E741 - the standard's name
    RR = 0x01
    RNR = 0x05
    UI = 0x03
    DM = 0x0F
    DISC = 0x43
    UA = 0x63
    SNRM = 0x83
    FRMR = 0x87


_UNNUMBERED = {t.value: t for t in (FrameType.UI, FrameType.DM, FrameType.DISC, FrameType.UA,
                                    FrameType.SNRM, FrameType.FRMR)}
_POLL_FINAL = 0x10


@dataclass(frozen=True, slots=True)
class HdlcAddress:
    """An HDLC address: ``upper`` (client SAP or logical device), ``lower`` (physical device) or None.

    ``size`` is the number of bytes on the wire: 1 (upper only), 2 or 4 (upper and lower halves).
    """

    upper: int
    lower: int | None = None
    size: int = 1

    def __post_init__(self) -> None:
        if self.size == 1:
            limit = 0x7F
            if self.lower is not None:
                raise EncodeError("a one-byte HDLC address has no lower part")
        elif self.size in (2, 4):
            limit = 0x7F if self.size == 2 else 0x3FFF
            if self.lower is None or not 0 <= self.lower <= limit:
                raise EncodeError(f"lower HDLC address {self.lower} does not fit in {self.size} bytes")
        else:
            raise EncodeError(f"HDLC address size must be 1, 2 or 4, not {self.size}")
        if not 0 <= self.upper <= limit:
            raise EncodeError(f"upper HDLC address {self.upper} does not fit in {self.size} bytes")

    def encode(self) -> bytes:
        """The address bytes: 7 bits per byte, shifted left, extension bit 1 on the last byte."""
        if self.size == 1:
            return bytes(((self.upper << 1) | 1,))
        lower = self.lower or 0
        if self.size == 2:
            return bytes((self.upper << 1, (lower << 1) | 1))
        return bytes((
            (self.upper >> 7) << 1,
            (self.upper & 0x7F) << 1,
            (lower >> 7) << 1,
            ((lower & 0x7F) << 1) | 1,
        ))

    @classmethod
    def decode(cls, data: bytes | bytearray, pos: int, end: int) -> tuple[HdlcAddress, int]:
        """Decode the address at ``pos`` (not past ``end``); returns it and the position after it."""
        for size in (1, 2, 3, 4):
            if pos + size > end:
                break
            if data[pos + size - 1] & 1:
                if size == 3:
                    raise FrameDecodeError("HDLC address of 3 bytes", pos)
                groups = [b >> 1 for b in data[pos:pos + size]]
                if size == 1:
                    return cls(groups[0]), pos + 1
                if size == 2:
                    return cls(groups[0], groups[1], 2), pos + 2
                return cls((groups[0] << 7) | groups[1], (groups[2] << 7) | groups[3], 4), pos + 4
        raise FrameDecodeError("HDLC address without its extension bit", pos)

    def __str__(self) -> str:
        return str(self.upper) if self.lower is None else f"{self.upper}/{self.lower}"


def client_address(sap: int) -> HdlcAddress:
    """The one-byte address of a client SAP (16 is the public client)."""
    return HdlcAddress(sap)


def server_address(logical: int, physical: int | None = None, size: int = 4) -> HdlcAddress:
    """A server address from its logical device address, physical device address and size (1, 2, 4)."""
    if size == 1:
        if physical is not None:
            raise EncodeError("a one-byte server address carries no physical address")
        return HdlcAddress(logical)
    return HdlcAddress(logical, 0 if physical is None else physical, size)


def _uint_bytes(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """The negotiated link parameters, from one station's point of view (tx = what it sends)."""

    max_info_tx: int = DEFAULT_MAX_INFO_LENGTH
    max_info_rx: int = DEFAULT_MAX_INFO_LENGTH
    window_tx: int = DEFAULT_WINDOW_SIZE
    window_rx: int = DEFAULT_WINDOW_SIZE

    def __post_init__(self) -> None:
        for name in ("max_info_tx", "max_info_rx"):
            if not 1 <= getattr(self, name) <= MAX_FRAME_LENGTH:
                raise EncodeError(f"{name} must be 1..{MAX_FRAME_LENGTH}")
        for name in ("window_tx", "window_rx"):
            if not 1 <= getattr(self, name) <= 7:
                raise EncodeError(f"{name} must be 1..7 (3-bit sequence numbers)")

    @property
    def is_default(self) -> bool:
        return self == HdlcParameters()

    def encode(self) -> bytes:
        """The SNRM/UA information field; lengths in the fewest bytes, windows in four bytes."""
        body = bytearray()
        for ident, value in ((0x05, self.max_info_tx), (0x06, self.max_info_rx)):
            width = 1 if value < 0x100 else 2
            body += bytes((ident, width)) + _uint_bytes(value, width)
        for ident, value in ((0x07, self.window_tx), (0x08, self.window_rx)):
            body += bytes((ident, 4)) + _uint_bytes(value, 4)
        return bytes((0x81, 0x80, len(body))) + bytes(body)

    @classmethod
    def decode(cls, data: bytes) -> HdlcParameters:
        """Parse an SNRM/UA information field; an empty one means all defaults."""
        if not data:
            return cls()
        if len(data) < 3 or data[0] != 0x81 or data[1] != 0x80:
            raise DecodeError("HDLC parameter field must start with 81 80", 0)
        end = 3 + data[2]
        if end != len(data):
            raise DecodeError("HDLC parameter group length does not match the field", 2)
        values: dict[int, int] = {}
        pos = 3
        while pos < end:
            if pos + 2 > end:
                raise DecodeError("truncated HDLC parameter", pos)
            ident, width = data[pos], data[pos + 1]
            if width not in (1, 2, 4) or pos + 2 + width > end:
                raise DecodeError(f"bad length {width} of HDLC parameter {ident:#04x}", pos + 1)
            # Unknown parameters are skipped: the standard lets stations ignore what they don't know.
            values[ident] = int.from_bytes(data[pos + 2:pos + 2 + width], "big")
            pos += 2 + width
        # Out-of-range proposals are clamped rather than refused: a station may offer more than we use.
        return cls(
            max_info_tx=max(1, min(values.get(0x05, DEFAULT_MAX_INFO_LENGTH), MAX_FRAME_LENGTH)),
            max_info_rx=max(1, min(values.get(0x06, DEFAULT_MAX_INFO_LENGTH), MAX_FRAME_LENGTH)),
            window_tx=max(1, min(values.get(0x07, DEFAULT_WINDOW_SIZE), 7)),
            window_rx=max(1, min(values.get(0x08, DEFAULT_WINDOW_SIZE), 7)),
        )

    @classmethod
    def read_lenient(cls, data: bytes) -> tuple[HdlcParameters, tuple[str, ...]]:
        """Parse an SNRM/UA information field as a liberal receiver: what can be read is used, the rest
        falls back to the defaults, and each oddity is named in the notes (empty when the field is sound).

        Real stations send odd groups: gurux-dlms's meter server (1.0.203) declares a group length of 0
        and then sends 18 bytes of parameters (its length is written at the wrong offset, into the last
        window value). Refusing such a UA leaves the client repeating SNRMs until it gives up, although
        the parameters are readable; IEC 62056-46 6.4.4.4.3.2 makes the defaults apply to any parameter
        not given, which is what an unreadable one is taken as here.
        """
        if not data:
            return cls(), ()
        notes: list[str] = []
        if data[0] == 0x81 and len(data) >= 2 and data[1] == 0x80:
            start = 3
            declared: int | None = data[2] if len(data) >= 3 else None
        elif data[0] == 0x80:
            notes.append("the format identifier 81 is missing before the parameter group 80")
            start, declared = 2, data[1] if len(data) >= 2 else None
        else:
            notes.append(f"no parameter group (starts {data[:2].hex(' ')}, not 81 80): defaults used")
            return cls(), tuple(notes)
        present = len(data) - start
        if declared is None:
            notes.append("the group length is missing: defaults used")
            return cls(), tuple(notes)
        if declared != present:
            notes.append(f"the group length says {declared} bytes but {present} follow: read the {present}")
        values: dict[int, int] = {}
        pos = start
        while pos < len(data):
            if pos + 2 > len(data):
                notes.append(f"a parameter cut short at byte {pos} ({data[pos:].hex(' ')}) ignored")
                break
            ident, width = data[pos], data[pos + 1]
            if not 1 <= width <= 4 or pos + 2 + width > len(data):
                notes.append(f"parameter {ident:#04x} of length {width} at byte {pos} is unreadable: "
                             "it and what follows are ignored")
                break
            value = int.from_bytes(data[pos + 2:pos + 2 + width], "big")
            if ident not in _PARAMETER_NAMES:
                notes.append(f"unknown parameter {ident:#04x} (= {value}) ignored")
            elif ident in values:
                notes.append(f"{_PARAMETER_NAMES[ident]} given twice ({values[ident]}, then {value}): "
                             "the first is kept")
            else:
                values[ident] = value
            pos += 2 + width
        chosen: dict[int, int] = {}
        for ident, name in _PARAMETER_NAMES.items():
            if ident not in values:
                continue
            value = values[ident]
            if ident in (0x05, 0x06):
                if value < 1:
                    notes.append(f"{name} {value} is not a length: the default {DEFAULT_MAX_INFO_LENGTH} used")
                    continue
                if value > MAX_FRAME_LENGTH:
                    # A station may offer more than a frame holds; the most a frame holds is what it gets.
                    notes.append(f"{name} {value} exceeds a frame: {MAX_FRAME_LENGTH} used")
                    value = MAX_FRAME_LENGTH
            elif not 1 <= value <= 7:
                # A window is a 3-bit count; anything else is garbage, not an offer of a larger window.
                notes.append(f"{name} {value} is not a window of 1 to 7: the default {DEFAULT_WINDOW_SIZE} used")
                continue
            chosen[ident] = value
        params = cls(
            max_info_tx=chosen.get(0x05, DEFAULT_MAX_INFO_LENGTH),
            max_info_rx=chosen.get(0x06, DEFAULT_MAX_INFO_LENGTH),
            window_tx=chosen.get(0x07, DEFAULT_WINDOW_SIZE),
            window_rx=chosen.get(0x08, DEFAULT_WINDOW_SIZE),
        )
        return params, tuple(notes)

    def reversed(self) -> HdlcParameters:
        """The same values seen from the peer (its tx is our rx)."""
        return HdlcParameters(self.max_info_rx, self.max_info_tx, self.window_rx, self.window_tx)


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One HDLC frame of format type 3, with its information field as raw bytes (LLC included)."""

    frame_type: FrameType
    destination: HdlcAddress
    source: HdlcAddress
    information: bytes = b""
    poll_final: bool = True
    send_sequence: int = 0
    receive_sequence: int = 0
    segmented: bool = False

    @property
    def control(self) -> int:
        """The control field byte."""
        value = int(self.frame_type) | (_POLL_FINAL if self.poll_final else 0)
        if self.frame_type is FrameType.I:
            value |= ((self.receive_sequence & 7) << 5) | ((self.send_sequence & 7) << 1)
        elif self.frame_type in (FrameType.RR, FrameType.RNR):
            value |= (self.receive_sequence & 7) << 5
        return value

    def encode(self) -> bytes:
        """The frame between (and including) its opening and closing flags."""
        if not (0 <= self.send_sequence <= 7 and 0 <= self.receive_sequence <= 7):
            raise EncodeError("HDLC sequence numbers are 0..7")
        header = self.destination.encode() + self.source.encode() + bytes((self.control,))
        length = 2 + len(header) + 2 + (len(self.information) + 2 if self.information else 0)
        if length > MAX_FRAME_LENGTH:
            raise EncodeError(f"HDLC frame of {length} bytes exceeds the 11-bit length field")
        fmt = _FORMAT_TYPE_3 | (_SEGMENTATION_BIT if self.segmented else 0) | (length >> 8)
        body = bytes((fmt, length & 0xFF)) + header
        if self.information:
            body += crc16_bytes(body)
            body += self.information
        return b"\x7e" + body + crc16_bytes(body) + b"\x7e"

    @classmethod
    def decode(cls, data: bytes | bytearray, pos: int = 0) -> tuple[HdlcFrame, int]:
        """Decode the frame whose opening flag is at ``pos``; returns it and the end of its closing flag.

        Trailing bytes are left alone. Raises ``DecodeError`` (a ``FrameDecodeError``) on anything else.
        """
        result = parse_frame(data, pos)
        if result is None:
            raise FrameDecodeError("truncated HDLC frame", len(data))
        return result


def _address_end(data: bytes | bytearray, pos: int, limit: int, end: int) -> int | None:
    """Where the address at ``pos`` ends; None if the buffer stops first; ``limit`` bounds the frame."""
    for size in (1, 2, 3, 4):
        at = pos + size - 1
        if at >= limit:
            break
        if at >= end:
            return None
        if data[at] & 1:
            if size == 3:
                raise FrameDecodeError("HDLC address of 3 bytes", pos)
            return at + 1
    raise FrameDecodeError("HDLC address without its extension bit", pos)


def _check_header(data: bytes | bytearray, pos: int, end: int, length: int) -> tuple[int, bool]:
    """Validate the header at ``pos`` (the format byte); returns the control offset and has-info flag.

    ``end`` is how far the buffer goes; raises ``FrameDecodeError``, or returns (-1, False) while
    the header is not complete yet.
    """
    limit = pos + length - 2  # addresses and control come before the FCS
    dst_end = _address_end(data, pos + 2, limit, end)
    if dst_end is None:
        return -1, False
    control_pos = _address_end(data, dst_end, limit, end)
    if control_pos is None:
        return -1, False
    if control_pos >= limit:
        raise FrameDecodeError(f"HDLC frame length {length} leaves no room for the control field", pos)
    header_len = control_pos + 1 - pos
    if length == header_len + 2:
        return control_pos, False
    if length < header_len + 5:
        raise FrameDecodeError(f"HDLC frame length {length} leaves no room for HCS and information", pos)
    if end < control_pos + 3:
        return -1, False
    hcs = data[control_pos + 1] | (data[control_pos + 2] << 8)
    if crc16(data[pos:control_pos + 1]) != hcs:
        raise FrameDecodeError("HDLC header check sequence (HCS) mismatch", control_pos + 1)
    return control_pos, True


def header_plausible(data: bytes | bytearray, pos: int) -> bool | None:
    """Whether a frame may start at the flag at ``pos``: True, False, or None (need more bytes).

    Used to resynchronise: a flag, a type-3 format byte, sane addresses and, where the frame has
    an information field, an HCS that checks.
    """
    end = len(data)
    if pos + 3 > end:
        return None
    fmt = data[pos + 1]
    if fmt & 0xF0 != _FORMAT_TYPE_3:
        return False
    length = ((fmt & 0x07) << 8) | data[pos + 2]
    if length < _MIN_FRAME_LENGTH:
        return False
    try:
        control_pos, _ = _check_header(data, pos + 1, end, length)
    except FrameDecodeError:
        return False
    return None if control_pos < 0 else True


def parse_frame(data: bytes | bytearray, pos: int) -> tuple[HdlcFrame, int] | None:
    """Parse the frame with its opening flag at ``pos``; None when more bytes are needed.

    Raises ``FrameDecodeError`` as soon as the bytes at hand prove the frame bad.
    """
    try:
        return _parse_frame(data, pos)
    except FrameDecodeError:
        raise
    except (IndexError, ValueError, EncodeError) as exc:
        raise FrameDecodeError(f"bad HDLC frame: {exc}", pos) from exc


def _parse_frame(data: bytes | bytearray, pos: int) -> tuple[HdlcFrame, int] | None:
    end = len(data)
    if pos >= end:
        return None
    if data[pos] != FLAG:
        raise FrameDecodeError("HDLC frame does not start with the 7E flag", pos)
    if pos + 3 > end:
        return None
    fmt = data[pos + 1]
    if fmt & 0xF0 != _FORMAT_TYPE_3:
        raise FrameDecodeError(f"HDLC format byte {fmt:#04x} is not frame format type 3", pos + 1)
    length = ((fmt & 0x07) << 8) | data[pos + 2]
    if length < _MIN_FRAME_LENGTH:
        raise FrameDecodeError(f"HDLC frame length {length} is too short", pos + 1)
    start = pos + 1
    control_pos, has_info = _check_header(data, start, end, length)
    if control_pos < 0:
        return None
    frame_end = start + length
    if frame_end + 1 > end:
        return None
    fcs = data[frame_end - 2] | (data[frame_end - 1] << 8)
    if crc16(data[start:frame_end - 2]) != fcs:
        raise FrameDecodeError("HDLC frame check sequence (FCS) mismatch", frame_end - 2)
    after = frame_end + 1
    if data[frame_end] != FLAG:
        raise FrameDecodeError("HDLC frame not closed by the 7E flag", frame_end)
    # Both checksums passed: from here on the frame's extent is known even if its content is wrong.
    destination, dst_end = HdlcAddress.decode(data, start + 2, control_pos)
    source, _ = HdlcAddress.decode(data, dst_end, control_pos)
    control = data[control_pos]
    information = bytes(data[control_pos + 3:frame_end - 2]) if has_info else b""
    poll_final = bool(control & _POLL_FINAL)
    ns = nr = 0
    if not control & 1:
        frame_type = FrameType.I
        ns, nr = (control >> 1) & 7, control >> 5
    elif control & 0x03 == 0x01:
        base = control & 0x0F
        if base == FrameType.RR:
            frame_type = FrameType.RR
        elif base == FrameType.RNR:
            frame_type = FrameType.RNR
        else:
            raise FrameDecodeError(f"unsupported supervisory control {control:#04x}", control_pos, after)
        nr = control >> 5
    else:
        found = _UNNUMBERED.get(control & ~_POLL_FINAL & 0xFF)
        if found is None:
            raise FrameDecodeError(f"unknown HDLC control field {control:#04x}", control_pos, after)
        frame_type = found
    if information and frame_type in (FrameType.RR, FrameType.RNR):
        raise FrameDecodeError(f"{frame_type.name} frame with an information field", control_pos, after)
    segmented = bool(fmt & _SEGMENTATION_BIT)
    frame = HdlcFrame(frame_type, destination, source, information, poll_final, ns, nr, segmented)
    return frame, after
