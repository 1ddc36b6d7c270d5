"""IEC 62056-21 messages that open mode E (switch to HDLC/DLMS) on an optical or serial port.

Only the messages and their order live here; changing the line speed is the transport's job, told
by the ``SwitchToHdlc`` event. References: IEC 62056-21:2002 6.3.1 (request message), 6.3.2
(identification message, enhanced identification character "\\2" = HDLC available), 6.3.3
(acknowledgement/option select message) and 6.4.6 / Annex E (protocol mode E).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocols.errors import DecodeError, EncodeError, StateError

__all__ = [
    "ACK",
    "BAUD_RATES",
    "AcknowledgementMessage",
    "HandshakeFailed",
    "IdentificationMessage",
    "Message",
    "ModeEEvent",
    "ModeEHandshake",
    "ModeERole",
    "ModeEState",
    "SignOnRequest",
    "SwitchToHdlc",
    "TRANSITIONS",
    "baud_char",
    "baud_rate",
    "decode_message",
]

ACK = 0x06
_CRLF = b"\r\n"
#: Baud rate characters of protocol modes C and E (6.3.2 item 14).
BAUD_RATES: dict[str, int] = {
    "0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200,
}
#: Protocol control character V for HDLC (mode E) in the acknowledgement message.
PROTOCOL_HDLC = "2"
#: Mode control character Y asking for binary mode (HDLC).
MODE_BINARY = "2"
#: Enhanced identification character: binary mode (HDLC) available.
ENHANCED_HDLC = "2"
_MAX_LINE = 128
_MAX_IDENT = 16


def baud_rate(char: str) -> int:
    """The baud rate a mode C/E baud character stands for."""
    try:
        return BAUD_RATES[char]
    except KeyError:
        raise DecodeError(f"unknown baud rate character {char!r}") from None


def baud_char(rate: int) -> str:
    """The mode C/E baud character of a baud rate."""
    for char, value in BAUD_RATES.items():
        if value == rate:
            return char
    raise EncodeError(f"no IEC 62056-21 baud character for {rate} Bd")


def _printable(text: str, forbidden: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E and c not in forbidden for c in text)


@dataclass(frozen=True, slots=True)
class SignOnRequest:
    """``/ ? [device address] ! CR LF``: the client wakes the device up at 300 Bd."""

    device_address: str = ""

    def encode(self) -> bytes:
        if len(self.device_address) > 32 or not _printable(self.device_address, "/?!"):
            raise EncodeError(f"bad device address {self.device_address!r}")
        return b"/?" + self.device_address.encode("ascii") + b"!\r\n"

    @classmethod
    def decode(cls, data: bytes) -> SignOnRequest:
        if not (data.startswith(b"/?") and data.endswith(b"!\r\n")):
            raise DecodeError("not a sign-on request (/?...!CRLF)", 0)
        address = data[2:-3].decode("latin-1")
        if len(address) > 32 or not _printable(address, "/?!"):
            raise DecodeError("bad device address in sign-on request", 2)
        return cls(address)


@dataclass(frozen=True, slots=True)
class IdentificationMessage:
    """``/ XXX Z [\\W...] ident CR LF``: manufacturer, baud character, escape sequences, identification.

    ``escapes`` holds the character after each backslash; "2" (enhanced identification) means
    the device offers binary mode, i.e. HDLC/DLMS (mode E).
    """

    manufacturer: str
    baud_char: str
    identification: str
    escapes: tuple[str, ...] = (ENHANCED_HDLC,)

    @property
    def supports_mode_e(self) -> bool:
        return ENHANCED_HDLC in self.escapes

    @property
    def baud_rate(self) -> int:
        return baud_rate(self.baud_char)

    def encode(self) -> bytes:
        if len(self.manufacturer) != 3 or not self.manufacturer.isascii() or not self.manufacturer.isalpha():
            raise EncodeError(f"manufacturer id must be three letters, not {self.manufacturer!r}")
        if self.baud_char not in BAUD_RATES:
            raise EncodeError(f"unknown baud rate character {self.baud_char!r}")
        if len(self.identification) > _MAX_IDENT or not _printable(self.identification, "/!\\"):
            raise EncodeError(f"bad identification {self.identification!r}")
        if any(len(e) != 1 or not _printable(e, "") for e in self.escapes):
            raise EncodeError("each escape is one printable character")
        escapes = "".join("\\" + e for e in self.escapes)
        text = f"/{self.manufacturer}{self.baud_char}{escapes}{self.identification}\r\n"
        return text.encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> IdentificationMessage:
        if len(data) < 7 or data[:1] != b"/" or not data.endswith(_CRLF):
            raise DecodeError("not an identification message (/XXXZ...CRLF)", 0)
        text = data[1:-2].decode("latin-1")
        manufacturer, char = text[:3], text[3]
        if not (manufacturer.isascii() and manufacturer.isalpha()):
            raise DecodeError(f"bad manufacturer id {manufacturer!r}", 1)
        if char not in BAUD_RATES:
            raise DecodeError(f"unknown baud rate character {char!r}", 4)
        rest = text[4:]
        escapes = []
        while rest.startswith("\\"):
            if len(rest) < 2:
                raise DecodeError("escape sequence cut short", len(data) - 3)
            if not _printable(rest[1], ""):
                raise DecodeError(f"bad escape character {rest[1]!r}", len(data) - 2 - len(rest) + 1)
            escapes.append(rest[1])
            rest = rest[2:]
        if len(rest) > _MAX_IDENT or not _printable(rest, "/!\\"):
            raise DecodeError(f"bad identification {rest!r}", 5)
        return cls(manufacturer, char, rest, tuple(escapes))


@dataclass(frozen=True, slots=True)
class AcknowledgementMessage:
    """``ACK V Z Y CR LF``: protocol control V ("2" = HDLC), baud character Z, mode control Y."""

    baud_char: str
    protocol_control: str = PROTOCOL_HDLC
    mode_control: str = MODE_BINARY

    @property
    def is_mode_e(self) -> bool:
        return self.protocol_control == PROTOCOL_HDLC and self.mode_control == MODE_BINARY

    @property
    def baud_rate(self) -> int:
        return baud_rate(self.baud_char)

    def encode(self) -> bytes:
        if self.baud_char not in BAUD_RATES:
            raise EncodeError(f"unknown baud rate character {self.baud_char!r}")
        if not (self.protocol_control.isdigit() and len(self.protocol_control) == 1):
            raise EncodeError("protocol control character is one digit")
        if len(self.mode_control) != 1 or not self.mode_control.isalnum() or not self.mode_control.isascii():
            raise EncodeError("mode control character is one digit or letter")
        body = f"{self.protocol_control}{self.baud_char}{self.mode_control}\r\n"
        return bytes((ACK,)) + body.encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> AcknowledgementMessage:
        if len(data) != 6 or data[0] != ACK or not data.endswith(_CRLF):
            raise DecodeError("not an acknowledgement message (ACK V Z Y CRLF)", 0)
        v, z, y = (chr(b) for b in data[1:4])
        if not (v.isascii() and v.isdigit()):
            raise DecodeError(f"bad protocol control character {v!r}", 1)
        if z not in BAUD_RATES:
            raise DecodeError(f"unknown baud rate character {z!r}", 2)
        if not (y.isascii() and y.isalnum()):
            raise DecodeError(f"bad mode control character {y!r}", 3)
        return cls(z, v, y)


Message = SignOnRequest | IdentificationMessage | AcknowledgementMessage


def decode_message(data: bytes) -> Message:
    """Decode one whole message (ending in CR LF) of the three kinds; raises ``DecodeError`` otherwise."""
    try:
        if data.startswith(b"/?"):
            return SignOnRequest.decode(data)
        if data.startswith(b"/"):
            return IdentificationMessage.decode(data)
        if data[:1] == bytes((ACK,)):
            return AcknowledgementMessage.decode(data)
    except (IndexError, ValueError) as exc:
        raise DecodeError(f"bad IEC 62056-21 message: {exc}") from exc
    raise DecodeError("not an IEC 62056-21 mode E message", 0)


class ModeERole(Enum):
    CLIENT = "client"
    SERVER = "server"


class ModeEState(Enum):
    IDLE = "idle"  # client: nothing sent yet; server: waiting for a sign-on
    AWAITING_IDENTIFICATION = "awaiting-identification"
    AWAITING_ACKNOWLEDGEMENT = "awaiting-acknowledgement"
    DONE = "done"  # HDLC from here on, at the agreed speed
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SwitchToHdlc:
    """Flush ``data_to_send()`` at the current speed, then switch to ``baud_rate`` and HDLC."""

    baud_rate: int


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    reason: str


ModeEEvent = SwitchToHdlc | HandshakeFailed

_C, _S = ModeERole.CLIENT, ModeERole.SERVER
#: Every transition: (role, state, message type) -> handler name; anything else fails the handshake.
TRANSITIONS: dict[tuple[ModeERole, ModeEState, type], str] = {
    (_C, ModeEState.AWAITING_IDENTIFICATION, IdentificationMessage): "_on_identification",
    (_S, ModeEState.IDLE, SignOnRequest): "_on_sign_on",
    # A client that missed the identification signs on again: answer again.
    (_S, ModeEState.AWAITING_ACKNOWLEDGEMENT, SignOnRequest): "_on_sign_on",
    (_S, ModeEState.AWAITING_ACKNOWLEDGEMENT, AcknowledgementMessage): "_on_acknowledgement",
}


class ModeEHandshake:
    """The mode E opening, for the client (HES, probe) or the server (meter) side.

    Client: ``start()`` queues the sign-on; the identification is answered with ``ACK 2 Z 2`` where
    Z is the lower of the device's and ``max_baud_rate``; then ``SwitchToHdlc``. Server: a sign-on
    (for ``device_address``, or without address) gets ``identification``; ``ACK 2 Z 2`` gives
    ``SwitchToHdlc``; any other option select fails the handshake.
    """

    def __init__(self, role: ModeERole, *, device_address: str = "", max_baud_rate: int = 19200,
                 identification: IdentificationMessage | None = None) -> None:
        if role is ModeERole.SERVER and identification is None:
            raise StateError("a server needs its identification message")
        self.role = role
        self.state = ModeEState.IDLE
        self.device_address = device_address
        self.max_baud_rate = max_baud_rate
        self.identification = identification
        self.baud_rate: int | None = None
        self._buffer = bytearray()
        self._outgoing = bytearray()

    def start(self) -> None:
        """Client: queue the sign-on request."""
        if self.role is not ModeERole.CLIENT or self.state is not ModeEState.IDLE:
            raise StateError(f"start() is for an idle client, not a {self.role.value} in {self.state.value}")
        self._outgoing += SignOnRequest(self.device_address).encode()
        self.state = ModeEState.AWAITING_IDENTIFICATION

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def receive_data(self, data: bytes) -> list[ModeEEvent]:
        """Feed bytes at the current speed; ``b""`` means the line closed."""
        if self.state in (ModeEState.DONE, ModeEState.FAILED):
            if data:
                raise StateError(f"mode E handshake already {self.state.value}; bytes belong to HDLC")
            return []
        if not data:
            return self._fail("line closed during the mode E handshake")
        self._buffer += data
        events: list[ModeEEvent] = []
        while self.state not in (ModeEState.DONE, ModeEState.FAILED):
            # Line noise before a message's first character is dropped (optical heads pick it up).
            start = min((i for i in (self._buffer.find(b"/"), self._buffer.find(bytes((ACK,)))) if i >= 0),
                        default=-1)
            if start < 0:
                self._buffer.clear()
                break
            del self._buffer[:start]
            end = self._buffer.find(_CRLF)
            if end < 0:
                if len(self._buffer) > _MAX_LINE:
                    events += self._fail("no CR LF within a message's length")
                break
            line = bytes(self._buffer[:end + 2])
            del self._buffer[:end + 2]
            try:
                message = decode_message(line)
            except DecodeError as exc:
                events += self._fail(str(exc))
                break
            handler = TRANSITIONS.get((self.role, self.state, type(message)))
            if handler is None:
                events += self._fail(f"{type(message).__name__} not expected in state {self.state.value}")
                break
            events += getattr(self, handler)(message)
        return events

    def _fail(self, reason: str) -> list[ModeEEvent]:
        self.state = ModeEState.FAILED
        return [HandshakeFailed(reason)]

    def _on_identification(self, message: IdentificationMessage) -> list[ModeEEvent]:
        if not message.supports_mode_e:
            return self._fail(f"device {message.manufacturer} {message.identification!r} offers no mode E")
        rate = min(message.baud_rate, self.max_baud_rate)
        chars = [c for c, r in BAUD_RATES.items() if r <= rate]
        char = chars[-1] if chars else "0"
        self._outgoing += AcknowledgementMessage(char).encode()
        self.baud_rate = BAUD_RATES[char]
        self.state = ModeEState.DONE
        return [SwitchToHdlc(self.baud_rate)]

    def _on_sign_on(self, message: SignOnRequest) -> list[ModeEEvent]:
        if message.device_address and message.device_address != self.device_address:
            return []  # another device on the bus was addressed
        if self.identification is not None:
            self._outgoing += self.identification.encode()
        self.state = ModeEState.AWAITING_ACKNOWLEDGEMENT
        return []

    def _on_acknowledgement(self, message: AcknowledgementMessage) -> list[ModeEEvent]:
        if not message.is_mode_e:
            return self._fail(f"option select V={message.protocol_control} Y={message.mode_control} "
                              "is not mode E (only binary HDLC mode is served)")
        offered = self.identification.baud_rate if self.identification is not None else 300
        if message.baud_rate > offered:
            return self._fail(f"client asked {message.baud_rate} Bd, more than the {offered} Bd offered")
        self.baud_rate = message.baud_rate
        self.state = ModeEState.DONE
        return [SwitchToHdlc(message.baud_rate)]
