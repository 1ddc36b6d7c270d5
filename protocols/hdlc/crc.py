"""CRC-16/X.25, the HCS and FCS of DLMS HDLC frames (IEC 62056-46 clause 6.4.3.8, from ISO/IEC 13239)."""

from __future__ import annotations

__all__ = ["CRC_TABLE", "crc16", "crc16_bytes"]


def _make_table() -> tuple[int, ...]:
    # Reflected polynomial 0x8408 (0x1021 bit-reversed) because the line sends every byte LSB first.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


#: The 256-entry table of the reflected CRC-16/X.25, built once at import.
CRC_TABLE: tuple[int, ...] = _make_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X.25 of ``data`` (init 0xFFFF, final xor 0xFFFF)."""
    crc = 0xFFFF
    table = CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def crc16_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The CRC as it goes on the wire: two bytes, least significant first."""
    return crc16(data).to_bytes(2, "little")
