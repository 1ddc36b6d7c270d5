"""The xDLMS conformance block (Green Book, IEC 62056-5-3): named bits, BER encoding, negotiation."""

from __future__ import annotations

from enum import IntFlag

from protocols.errors import DecodeError, EncodeError

__all__ = [
    "CONFORMANCE_TAG",
    "Conformance",
    "decode_conformance",
    "encode_conformance",
    "negotiate_conformance",
]

#: [APPLICATION 31] IMPLICIT BIT STRING: two identifier bytes, then length 4 and 0 unused bits.
CONFORMANCE_TAG = b"\x5f\x1f"
_HEADER = CONFORMANCE_TAG + b"\x04\x00"


def _bit(number: int) -> int:
    # The spec numbers the 24 bits from the most significant one (bit 0) down, so the flag value
    # equals the three bytes on the wire read as a big-endian integer.
    return 1 << (23 - number)


class Conformance(IntFlag):
    """The conformance block; each member is the spec's bit, valued as it sits in the 24-bit field."""

    RESERVED_ZERO = _bit(0)
    GENERAL_PROTECTION = _bit(1)
    GENERAL_BLOCK_TRANSFER = _bit(2)
    READ = _bit(3)
    WRITE = _bit(4)
    UNCONFIRMED_WRITE = _bit(5)
    DELTA_VALUE_ENCODING = _bit(6)
    RESERVED_SEVEN = _bit(7)
    ATTRIBUTE0_SUPPORTED_WITH_SET = _bit(8)
    PRIORITY_MGMT_SUPPORTED = _bit(9)
    ATTRIBUTE0_SUPPORTED_WITH_GET = _bit(10)
    BLOCK_TRANSFER_WITH_GET_OR_READ = _bit(11)
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = _bit(12)
    BLOCK_TRANSFER_WITH_ACTION = _bit(13)
    MULTIPLE_REFERENCES = _bit(14)
    INFORMATION_REPORT = _bit(15)
    DATA_NOTIFICATION = _bit(16)
    ACCESS = _bit(17)
    PARAMETERIZED_ACCESS = _bit(18)
    GET = _bit(19)
    SET = _bit(20)
    SELECTIVE_ACCESS = _bit(21)
    EVENT_NOTIFICATION = _bit(22)
    ACTION = _bit(23)

    @property
    def bit_number(self) -> int:
        """The spec's bit number of a single flag (0 is the first bit on the wire)."""
        value = int(self)
        if value == 0 or value & (value - 1):
            raise ValueError("bit_number is defined for one flag only")
        return 23 - (value.bit_length() - 1)


def encode_conformance(conformance: Conformance | int) -> bytes:
    """The seven bytes ``5F 1F 04 00 xx xx xx`` that carry a conformance block."""
    value = int(conformance)
    if not 0 <= value <= 0xFFFFFF:
        raise EncodeError(f"conformance 0x{value:x} does not fit 24 bits")
    return _HEADER + value.to_bytes(3, "big")


def decode_conformance(buf: bytes, pos: int = 0) -> tuple[Conformance, int]:
    """Decode the conformance block at ``pos``; returns it and the position after it."""
    end = pos + 7
    if end > len(buf):
        raise DecodeError("conformance block truncated", pos)
    if buf[pos : pos + 4] != _HEADER:
        raise DecodeError(f"conformance block expected, got {bytes(buf[pos : pos + 4]).hex()}", pos)
    return Conformance(int.from_bytes(buf[pos + 4 : end], "big")), end


def negotiate_conformance(proposed: Conformance | int, supported: Conformance | int) -> Conformance:
    """What a server grants: the services both sides name (reserved bits never survive)."""
    reserved = Conformance.RESERVED_ZERO | Conformance.RESERVED_SEVEN
    return Conformance(int(proposed) & int(supported) & ~int(reserved) & 0xFFFFFF)
