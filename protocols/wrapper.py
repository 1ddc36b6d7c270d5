"""The DLMS/COSEM TCP and UDP wrapper (IEC 62056-47 / IEC 62056-9-7): an 8-byte header before each APDU."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.errors import DecodeError, EncodeError, StateError

__all__ = [
    "HEADER_LENGTH",
    "WRAPPER_VERSION",
    "ApduReceived",
    "ConnectionClosed",
    "WrapperConnection",
    "WrapperError",
    "WrapperEvent",
    "WrapperFrame",
]

WRAPPER_VERSION = 0x0001
HEADER_LENGTH = 8
_HEADER = struct.Struct(">HHHH")


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    """One wrapper PDU: version, source wPort, destination wPort, then the APDU (length implied)."""

    source: int
    destination: int
    apdu: bytes
    version: int = WRAPPER_VERSION

    def encode(self) -> bytes:
        if len(self.apdu) > 0xFFFF:
            raise EncodeError(f"APDU of {len(self.apdu)} bytes does not fit the wrapper's 16-bit length")
        for name, value in (("source", self.source), ("destination", self.destination),
                            ("version", self.version)):
            if not 0 <= value <= 0xFFFF:
                raise EncodeError(f"wrapper {name} {value} is not a 16-bit value")
        return _HEADER.pack(self.version, self.source, self.destination, len(self.apdu)) + self.apdu

    @classmethod
    def decode(cls, data: bytes | bytearray, pos: int = 0) -> tuple[WrapperFrame, int]:
        """Decode the wrapper PDU at ``pos``; returns it and the offset after it (trailing bytes left)."""
        result = _parse(data, pos)
        if result is None:
            raise DecodeError("truncated wrapper PDU", len(data))
        return result


def _parse(data: bytes | bytearray, pos: int) -> tuple[WrapperFrame, int] | None:
    if len(data) - pos < HEADER_LENGTH:
        return None
    version, source, destination, length = _HEADER.unpack_from(data, pos)
    if version != WRAPPER_VERSION:
        raise DecodeError(f"wrapper version {version:#06x}, expected {WRAPPER_VERSION:#06x}", pos)
    end = pos + HEADER_LENGTH + length
    if end > len(data):
        return None
    return WrapperFrame(source, destination, bytes(data[pos + HEADER_LENGTH:end])), end


@dataclass(frozen=True, slots=True)
class ApduReceived:
    source: int
    destination: int
    apdu: bytes


@dataclass(frozen=True, slots=True)
class WrapperError:
    """The stream cannot be read further (bad version); the connection ignores the rest of it."""

    reason: str
    offset: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream; ``pending`` bytes of an unfinished PDU were lost."""

    pending: int


WrapperEvent = ApduReceived | WrapperError | ConnectionClosed


class WrapperConnection:
    """Incremental wrapper over a TCP stream; ``local_port``/``remote_port`` are the default wPorts."""

    def __init__(self, local_port: int, remote_port: int) -> None:
        self.local_port = local_port
        self.remote_port = remote_port
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._consumed = 0
        self.failed = False
        self.closed = False

    def send_apdu(self, apdu: bytes, *, source: int | None = None, destination: int | None = None) -> None:
        if self.closed:
            raise StateError("send_apdu on a closed wrapper connection")
        frame = WrapperFrame(self.local_port if source is None else source,
                             self.remote_port if destination is None else destination, apdu)
        self._outgoing += frame.encode()

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def receive_data(self, data: bytes) -> list[WrapperEvent]:
        """Feed bytes; returns the PDUs they complete. ``b""`` means the peer closed."""
        if self.closed:
            if data:
                raise StateError("receive_data after the stream was closed")
            return []
        if not data:
            self.closed = True
            pending = len(self._buffer)
            self._buffer.clear()
            return [ConnectionClosed(pending)]
        if self.failed:
            # Without a trustworthy length there is no next PDU to find: the stream is lost.
            return []
        self._buffer += data
        events: list[WrapperEvent] = []
        pos = 0
        while True:
            try:
                result = _parse(self._buffer, pos)
            except DecodeError as exc:
                self.failed = True
                events.append(WrapperError(str(exc), self._consumed + pos))
                pos = len(self._buffer)
                break
            if result is None:
                break
            frame, pos = result
            events.append(ApduReceived(frame.source, frame.destination, frame.apdu))
        del self._buffer[:pos]
        self._consumed += pos
        return events
