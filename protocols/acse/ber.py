"""The BER subset ACSE needs (X.690): tags, lengths, INTEGER, OBJECT IDENTIFIER, BIT STRING, strings."""

from __future__ import annotations

from collections.abc import Iterator

# BER definite lengths and A-XDR lengths are the same bytes (short form, or 0x80 | n and n bytes).
from protocols.axdr import decode_length, encode_length
from protocols.errors import DecodeError, EncodeError

__all__ = [
    "decode_bit_string",
    "decode_integer",
    "decode_length",
    "decode_object_identifier",
    "decode_tag",
    "decode_tlv",
    "encode_bit_string",
    "encode_integer",
    "encode_length",
    "encode_object_identifier",
    "encode_tlv",
    "iter_tlvs",
]

def decode_tag(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an identifier at ``pos``; returns its bytes read as one integer (e.g. 0x5F1F) and the end."""
    if pos >= len(buf):
        raise DecodeError("BER tag expected, buffer ended", pos)
    tag = buf[pos]
    pos += 1
    if tag & 0x1F != 0x1F:
        return tag, pos
    for _ in range(4):
        if pos >= len(buf):
            raise DecodeError("BER tag truncated", pos)
        byte = buf[pos]
        tag = (tag << 8) | byte
        pos += 1
        if not byte & 0x80:
            return tag, pos
    raise DecodeError("BER tag too long", pos)


def encode_tlv(tag: int, content: bytes) -> bytes:
    """Identifier (given as its bytes read as an integer), length and content."""
    if tag < 0:
        raise EncodeError(f"negative tag {tag}")
    size = len(content)
    content = bytes(content)
    if tag <= 0xFF and size < 0x80:
        return bytes((tag, size)) + content  # the usual case: one identifier byte, short length
    ident = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    return ident + encode_length(size) + content


def decode_tlv(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int, int]:
    """Decode a TLV at ``pos`` bounded by ``end``; returns (tag, content start, content end)."""
    limit = len(buf) if end is None else end
    if pos + 1 < len(buf):
        # The usual case: a one-byte identifier and a short-form length.
        tag, length = buf[pos], buf[pos + 1]
        if tag & 0x1F != 0x1F and length < 0x80:
            pos += 2
            if pos + length > limit:
                raise DecodeError(f"BER value of {length} bytes overruns its container", pos)
            return tag, pos, pos + length
    tag, pos = decode_tag(buf, pos)
    length, pos = decode_length(buf, pos)
    if pos + length > limit:
        raise DecodeError(f"BER value of {length} bytes overruns its container", pos)
    return tag, pos, pos + length


def iter_tlvs(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Each (tag, content start, content end) of consecutive TLVs filling ``buf[pos:end]``."""
    while pos < end:
        tag, start, stop = decode_tlv(buf, pos, end)
        yield tag, start, stop
        pos = stop


def encode_integer(value: int) -> bytes:
    """INTEGER contents: minimal two's complement."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return value.to_bytes(size, "big", signed=True)


def decode_integer(content: bytes) -> int:
    if not content:
        raise DecodeError("empty BER INTEGER")
    return int.from_bytes(content, "big", signed=True)


def encode_object_identifier(arcs: tuple[int, ...]) -> bytes:
    """OBJECT IDENTIFIER contents: first two arcs as 40 * a + b, then base-128 arcs."""
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise EncodeError(f"invalid object identifier {arcs}")
    out = bytearray()
    for arc in (40 * arcs[0] + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def decode_object_identifier(content: bytes) -> tuple[int, ...]:
    if not content:
        raise DecodeError("empty OBJECT IDENTIFIER")
    if content[-1] & 0x80:
        raise DecodeError("OBJECT IDENTIFIER ends inside an arc")
    values = []
    arc = 0
    for byte in content:
        if arc == 0 and byte == 0x80:
            raise DecodeError("OBJECT IDENTIFIER arc with a leading zero byte")
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(arc)
            arc = 0
    first = values[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return (*head, *values[1:])


def encode_bit_string(bits: str) -> bytes:
    """BIT STRING contents from a string of "0"/"1": unused-bit count, then the padded bytes."""
    if bits.strip("01"):
        raise EncodeError(f"bit string of 0 and 1 expected, got {bits!r}")
    unused = -len(bits) % 8
    padded = bits + "0" * unused
    return bytes((unused,)) + bytes(int(padded[i : i + 8], 2) for i in range(0, len(padded), 8))


def decode_bit_string(content: bytes) -> str:
    if not content:
        raise DecodeError("empty BIT STRING")
    unused = content[0]
    if unused > 7 or (unused and len(content) == 1):
        raise DecodeError(f"BIT STRING with {unused} unused bits")
    text = "".join(f"{byte:08b}" for byte in content[1:])
    return text[: len(text) - unused]
