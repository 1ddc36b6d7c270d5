"""The one error tree of the DLMS/COSEM stack and of the transports that drive it.

Every error says whether a retry can help (``retryable``); the scheduler decides from that alone.
Decoders raise only ``DecodeError`` on bad input, whatever the bytes.
"""

from __future__ import annotations

__all__ = [
    "ConnectTimeout",
    "ConnectionLost",
    "DecodeError",
    "DlmsError",
    "EncodeError",
    "ProtocolError",
    "ReadTimeout",
    "SecurityError",
    "ServiceError",
    "StateError",
    "TransportError",
]


class DlmsError(Exception):
    """Root of every error the stack raises."""

    #: Whether repeating the same operation later may succeed.
    retryable: bool = False


class ProtocolError(DlmsError):
    """The peer or the caller broke the protocol."""


class DecodeError(ProtocolError):
    """Bytes from the peer could not be decoded.

    ``offset`` is the position in the decoded buffer where decoding failed, when known.
    Corrupted bytes are often line noise, so a retry can help.
    """

    retryable = True

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at offset {offset})")
        self.offset = offset


class EncodeError(ProtocolError):
    """A value given to an encoder cannot be represented on the wire (a local bug)."""


class StateError(ProtocolError):
    """An event or request that the current state of a connection does not allow."""


class SecurityError(DlmsError):
    """Authentication, deciphering or key handling failed (wrong key, bad tag, replayed counter)."""


class ServiceError(DlmsError):
    """The peer answered, but refused or failed the service.

    ``code`` is the spec's value (e.g. a DataAccessResult or ActionResult); ``retryable`` is set
    by whoever raises it, from what that code means (temporary-failure is retryable).
    """

    def __init__(self, message: str, code: int | None = None, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class TransportError(DlmsError):
    """The link below the application layer failed."""

    retryable = True


class ConnectTimeout(TransportError):
    """No connection could be made within the deadline."""


class ReadTimeout(TransportError):
    """The peer did not answer within the deadline."""


class ConnectionLost(TransportError):
    """The connection closed or broke while in use."""
