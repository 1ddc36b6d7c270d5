"""A-XDR encoding of COSEM ``Data`` (Green Book, IEC 62056-5-3 / IEC 61334-6), typed both ways.

A decoded value is a ``Data`` (tag, value) tree, so that encoding it again gives the same bytes.
Python values per tag:

=======================  ==========================================================
null-data, dont-care     ``None``
array, structure         ``tuple[Data, ...]``
boolean                  ``bool``
bit-string               ``str`` of ``"0"``/``"1"``, first bit first
integers, enum, bcd      ``int``
octet-string             ``bytes``
visible-string           ``str`` (Latin-1, so every byte survives)
utf8-string              ``str``
float32, float64         ``float``
date-time, date, time    ``CosemDateTime``, ``CosemDate``, ``CosemTime``
compact-array            ``CompactArray``
=======================  ==========================================================
"""

from __future__ import annotations

import math
import struct
from enum import IntEnum
from typing import Any, NamedTuple

from protocols.cosem_datetime import CosemDate, CosemDateTime, CosemTime
from protocols.errors import DecodeError, EncodeError

__all__ = [
    "MAX_DEPTH",
    "CompactArray",
    "Data",
    "DataTag",
    "TypeDescription",
    "decode_data",
    "decode_data_exact",
    "decode_length",
    "decode_type_description",
    "encode_data",
    "encode_length",
    "encode_type_description",
    "skip_data",
]

#: Deepest nesting of arrays/structures accepted from a peer (real objects need fewer than 8).
MAX_DEPTH = 32


class DataTag(IntEnum):
    """The ``Data`` CHOICE tags of the Green Book."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DONT_CARE = 255


class Data(NamedTuple):
    """One typed COSEM value."""

    tag: DataTag
    value: Any

    def to_python(self) -> Any:
        """The value without tags: arrays and structures become lists, the rest stays as is."""
        if self.tag in (DataTag.ARRAY, DataTag.STRUCTURE):
            return [item.to_python() for item in self.value]
        if self.tag == DataTag.COMPACT_ARRAY:
            return [item.to_python() for item in self.value.elements]
        return self.value

    # Constructors named after the spec's types, for readable encoders.
    @classmethod
    def null(cls) -> Data:
        return cls(DataTag.NULL_DATA, None)

    @classmethod
    def array(cls, items: Any) -> Data:
        return cls(DataTag.ARRAY, tuple(items))

    @classmethod
    def structure(cls, items: Any) -> Data:
        return cls(DataTag.STRUCTURE, tuple(items))

    @classmethod
    def boolean(cls, value: bool) -> Data:
        return cls(DataTag.BOOLEAN, bool(value))

    @classmethod
    def octet_string(cls, value: bytes) -> Data:
        return cls(DataTag.OCTET_STRING, bytes(value))

    @classmethod
    def visible_string(cls, value: str) -> Data:
        return cls(DataTag.VISIBLE_STRING, value)

    @classmethod
    def unsigned(cls, value: int) -> Data:
        return cls(DataTag.UNSIGNED, value)

    @classmethod
    def long_unsigned(cls, value: int) -> Data:
        return cls(DataTag.LONG_UNSIGNED, value)

    @classmethod
    def double_long_unsigned(cls, value: int) -> Data:
        return cls(DataTag.DOUBLE_LONG_UNSIGNED, value)

    @classmethod
    def integer(cls, value: int) -> Data:
        return cls(DataTag.INTEGER, value)

    @classmethod
    def long(cls, value: int) -> Data:
        return cls(DataTag.LONG, value)

    @classmethod
    def double_long(cls, value: int) -> Data:
        return cls(DataTag.DOUBLE_LONG, value)

    @classmethod
    def enum(cls, value: int) -> Data:
        return cls(DataTag.ENUM, value)


class TypeDescription(NamedTuple):
    """The type of a compact-array element (Green Book ``TypeDescription``).

    For an array, ``number_of_elements`` is how many elements it has and ``children`` holds the element type;
    for a structure, ``children`` holds one description per member; simple types have neither.
    """

    tag: DataTag
    number_of_elements: int = 0
    children: tuple[TypeDescription, ...] = ()


class CompactArray(NamedTuple):
    """A compact-array: one type description, then elements without their tags."""

    description: TypeDescription
    elements: tuple[Data, ...]


# --- lengths -----------------------------------------------------------------------------------


def encode_length(length: int) -> bytes:
    """A-XDR length: one byte below 0x80, else 0x80 | n followed by n big-endian bytes."""
    if length < 0:
        raise EncodeError(f"negative length {length}")
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def decode_length(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an A-XDR length at ``pos``; returns (length, position after it)."""
    if pos >= len(buf):
        raise DecodeError("length expected, buffer ended", pos)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise DecodeError(f"length of {n} bytes not supported", pos)
    end = pos + 1 + n
    if end > len(buf):
        raise DecodeError("length bytes truncated", pos)
    return int.from_bytes(buf[pos + 1 : end], "big"), end


# --- fixed-size types --------------------------------------------------------------------------

_INT_FORMATS: dict[int, struct.Struct] = {
    DataTag.DOUBLE_LONG: struct.Struct(">i"),
    DataTag.DOUBLE_LONG_UNSIGNED: struct.Struct(">I"),
    DataTag.INTEGER: struct.Struct(">b"),
    DataTag.LONG: struct.Struct(">h"),
    DataTag.UNSIGNED: struct.Struct(">B"),
    DataTag.LONG_UNSIGNED: struct.Struct(">H"),
    DataTag.LONG64: struct.Struct(">q"),
    DataTag.LONG64_UNSIGNED: struct.Struct(">Q"),
    DataTag.ENUM: struct.Struct(">B"),
    DataTag.BCD: struct.Struct(">B"),
    DataTag.FLOAT32: struct.Struct(">f"),
    DataTag.FLOAT64: struct.Struct(">d"),
}
_FIXED_SIZES = {tag: fmt.size for tag, fmt in _INT_FORMATS.items()}
_FIXED_SIZES.update({DataTag.BOOLEAN: 1, DataTag.DATE_TIME: 12, DataTag.DATE: 5, DataTag.TIME: 4})
_TAGS = {int(tag): tag for tag in DataTag}
_ARRAY = DataTag.ARRAY
_STRUCTURE = DataTag.STRUCTURE
_OCTET_STRING = DataTag.OCTET_STRING
_new_data = tuple.__new__


# --- decoding ----------------------------------------------------------------------------------


def decode_data(buf: bytes, pos: int = 0) -> tuple[Data, int]:
    """Decode one ``Data`` at ``pos``; returns it and the position after it.

    Raises only ``DecodeError``, whatever the bytes.
    """
    try:
        return _decode(buf, pos, 0)
    except DecodeError:
        raise
    except (IndexError, ValueError, struct.error, UnicodeDecodeError, OverflowError) as exc:
        raise DecodeError(f"malformed data: {exc}", pos) from None


def decode_data_exact(buf: bytes) -> Data:
    """Decode a buffer that holds exactly one ``Data``."""
    value, end = decode_data(buf, 0)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} bytes after the data", end)
    return value


def _decode(buf: bytes, pos: int, depth: int) -> tuple[Data, int]:
    if pos >= len(buf):
        raise DecodeError("data expected, buffer ended", pos)
    raw = buf[pos]
    tag = _TAGS.get(raw)
    if tag is None:
        raise DecodeError(f"unknown data tag 0x{raw:02x}", pos)
    pos += 1
    fmt = _INT_FORMATS.get(tag)
    if fmt is not None:
        end = pos + fmt.size
        if end > len(buf):
            raise DecodeError(f"{tag.name.lower()} truncated", pos)
        return _new_data(Data, (tag, fmt.unpack_from(buf, pos)[0])), end
    if tag is _ARRAY or tag is _STRUCTURE:
        if depth >= MAX_DEPTH:
            raise DecodeError("data nested too deeply", pos - 1)
        count, pos = decode_length(buf, pos)
        if count > len(buf) - pos:
            raise DecodeError(f"{count} elements cannot fit in {len(buf) - pos} bytes", pos)
        items: list[Data] = []
        append = items.append
        for _ in range(count):
            item, pos = _decode(buf, pos, depth + 1)
            append(item)
        return _new_data(Data, (tag, tuple(items))), pos
    if tag is _OCTET_STRING or tag is DataTag.VISIBLE_STRING or tag is DataTag.UTF8_STRING:
        length, pos = decode_length(buf, pos)
        end = pos + length
        if end > len(buf):
            raise DecodeError(f"{tag.name.lower()} of {length} bytes truncated", pos)
        raw_bytes = bytes(buf[pos:end])
        if tag is _OCTET_STRING:
            return _new_data(Data, (tag, raw_bytes)), end
        text = raw_bytes.decode("latin-1" if tag is DataTag.VISIBLE_STRING else "utf-8")
        return _new_data(Data, (tag, text)), end
    if tag is DataTag.NULL_DATA or tag is DataTag.DONT_CARE:
        return _new_data(Data, (tag, None)), pos
    if tag is DataTag.BOOLEAN:
        if pos >= len(buf):
            raise DecodeError("boolean truncated", pos)
        return _new_data(Data, (tag, buf[pos] != 0)), pos + 1
    if tag is DataTag.DATE_TIME or tag is DataTag.DATE or tag is DataTag.TIME:
        size = _FIXED_SIZES[tag]
        end = pos + size
        if end > len(buf):
            raise DecodeError(f"{tag.name.lower()} truncated", pos)
        chunk = bytes(buf[pos:end])
        value: Any
        if tag is DataTag.DATE_TIME:
            value = CosemDateTime.decode(chunk)
        elif tag is DataTag.DATE:
            value = CosemDate.decode(chunk)
        else:
            value = CosemTime.decode(chunk)
        return _new_data(Data, (tag, value)), end
    if tag is DataTag.BIT_STRING:
        bits, pos = decode_length(buf, pos)
        end = pos + (bits + 7) // 8
        if end > len(buf):
            raise DecodeError(f"bit-string of {bits} bits truncated", pos)
        text = "".join(f"{byte:08b}" for byte in buf[pos:end])[:bits]
        return _new_data(Data, (tag, text)), end
    # compact-array: the only tag left
    description, pos = _decode_description(buf, pos, depth)
    length, pos = decode_length(buf, pos)
    end = pos + length
    if end > len(buf):
        raise DecodeError(f"compact-array contents of {length} bytes truncated", pos)
    elements, pos = _decode_compact_contents(buf, pos, end, description, depth)
    return _new_data(Data, (tag, CompactArray(description, elements))), end


def skip_data(buf: bytes, pos: int = 0) -> int:
    """The position just after the ``Data`` at ``pos``, checked but without building values.

    APDUs keep the encoded bytes of their data and let the caller decode them (a profile buffer
    has a faster path than the generic decoder); this finds where such data ends.
    """
    try:
        return _skip(buf, pos, 0)
    except DecodeError:
        raise
    except (IndexError, ValueError) as exc:
        raise DecodeError(f"malformed data: {exc}", pos) from None


def _skip(buf: bytes, pos: int, depth: int) -> int:
    if pos >= len(buf):
        raise DecodeError("data expected, buffer ended", pos)
    tag = _TAGS.get(buf[pos])
    if tag is None:
        raise DecodeError(f"unknown data tag 0x{buf[pos]:02x}", pos)
    pos += 1
    size = _FIXED_SIZES.get(tag)
    if size is not None:
        end = pos + size
    elif tag is _ARRAY or tag is _STRUCTURE:
        if depth >= MAX_DEPTH:
            raise DecodeError("data nested too deeply", pos - 1)
        count, pos = decode_length(buf, pos)
        if count > len(buf) - pos:
            raise DecodeError(f"{count} elements cannot fit in {len(buf) - pos} bytes", pos)
        for _ in range(count):
            pos = _skip(buf, pos, depth + 1)
        return pos
    elif tag is DataTag.NULL_DATA or tag is DataTag.DONT_CARE:
        return pos
    elif tag is DataTag.BIT_STRING:
        bits, pos = decode_length(buf, pos)
        end = pos + (bits + 7) // 8
    elif tag is DataTag.COMPACT_ARRAY:
        # Rare on the wire: decode it fully so its contents are checked too.
        return _decode(buf, pos - 1, depth)[1]
    else:
        length, pos = decode_length(buf, pos)
        end = pos + length
    if end > len(buf):
        raise DecodeError(f"{tag.name.lower()} truncated", pos)
    return end


def decode_type_description(buf: bytes, pos: int = 0) -> tuple[TypeDescription, int]:
    """Decode a compact-array ``TypeDescription`` at ``pos``."""
    try:
        return _decode_description(buf, pos, 0)
    except DecodeError:
        raise
    except (IndexError, ValueError) as exc:
        raise DecodeError(f"malformed type description: {exc}", pos) from None


def _decode_description(buf: bytes, pos: int, depth: int) -> tuple[TypeDescription, int]:
    if depth >= MAX_DEPTH:
        raise DecodeError("type description nested too deeply", pos)
    if pos >= len(buf):
        raise DecodeError("type description expected, buffer ended", pos)
    tag = _TAGS.get(buf[pos])
    if tag is None or tag is DataTag.COMPACT_ARRAY:
        raise DecodeError(f"bad type in type description 0x{buf[pos]:02x}", pos)
    pos += 1
    if tag is _ARRAY:
        if pos + 2 > len(buf):
            raise DecodeError("array type description truncated", pos)
        count = int.from_bytes(buf[pos : pos + 2], "big")
        child, pos = _decode_description(buf, pos + 2, depth + 1)
        return TypeDescription(tag, count, (child,)), pos
    if tag is _STRUCTURE:
        n, pos = decode_length(buf, pos)
        if n > len(buf) - pos:
            raise DecodeError(f"{n} member types cannot fit", pos)
        children = []
        for _ in range(n):
            child, pos = _decode_description(buf, pos, depth + 1)
            children.append(child)
        return TypeDescription(tag, 0, tuple(children)), pos
    return TypeDescription(tag), pos


def _decode_compact_contents(
    buf: bytes, pos: int, end: int, description: TypeDescription, depth: int
) -> tuple[tuple[Data, ...], int]:
    elements = []
    view = bytes(buf[:end])  # bounds every element read to the contents
    while pos < end:
        element, after = _decode_untagged(view, pos, description, depth + 1)
        if after == pos:
            raise DecodeError("compact-array of empty elements with non-empty contents", pos)
        elements.append(element)
        pos = after
    return tuple(elements), pos


def _decode_untagged(buf: bytes, pos: int, desc: TypeDescription, depth: int) -> tuple[Data, int]:
    """Decode a value whose tag is given by its type description (compact-array contents)."""
    if depth >= MAX_DEPTH:
        raise DecodeError("compact-array nested too deeply", pos)
    tag = desc.tag
    if tag is _ARRAY or tag is _STRUCTURE:
        members = desc.children * desc.number_of_elements if tag is _ARRAY else desc.children
        items: list[Data] = []
        for member in members:
            item, pos = _decode_untagged(buf, pos, member, depth + 1)
            items.append(item)
        return Data(tag, tuple(items)), pos
    # Simple types: reuse the tagged decoder on a virtual tag byte.
    tagged = bytes((tag,)) + bytes(buf[pos : pos + _untagged_span(buf, pos, tag)])
    value, used = _decode(tagged, 0, depth)
    return value, pos + used - 1


def _untagged_span(buf: bytes, pos: int, tag: DataTag) -> int:
    size = _FIXED_SIZES.get(tag)
    if size is not None:
        return size
    if tag in (DataTag.NULL_DATA, DataTag.DONT_CARE):
        return 0
    length, after = decode_length(buf, pos)
    if tag is DataTag.BIT_STRING:
        length = (length + 7) // 8
    return after - pos + length


# --- encoding ----------------------------------------------------------------------------------


def encode_data(data: Data) -> bytes:
    """Encode one ``Data`` (with its tag). Raises ``EncodeError`` for a value its tag cannot hold."""
    out = bytearray()
    _encode(data, out, True)
    return bytes(out)


def _encode(data: Data, out: bytearray, tagged: bool) -> None:
    tag = data.tag
    if type(tag) is not DataTag:
        try:
            tag = DataTag(tag)
        except (ValueError, TypeError):
            raise EncodeError(f"unknown data tag {data.tag!r}") from None
    value = data.value
    if tagged:
        out.append(tag)
    fmt = _INT_FORMATS.get(tag)
    if fmt is not None:
        if tag in (DataTag.FLOAT32, DataTag.FLOAT64):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise EncodeError(f"{tag.name.lower()} needs a number, got {value!r}")
            if tag is DataTag.FLOAT32 and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
                raise EncodeError(f"{value!r} does not fit a float32")
        elif not isinstance(value, int) or isinstance(value, bool):
            raise EncodeError(f"{tag.name.lower()} needs an int, got {value!r}")
        try:
            out += fmt.pack(value)
        except (struct.error, OverflowError):
            raise EncodeError(f"{value!r} does not fit {tag.name.lower()}") from None
        return
    if tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        items = tuple(value)
        out += encode_length(len(items))
        for item in items:
            _encode(item, out, True)
    elif tag is DataTag.OCTET_STRING:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"octet-string needs bytes, got {type(value).__name__}")
        out += encode_length(len(value))
        out += value
    elif tag in (DataTag.VISIBLE_STRING, DataTag.UTF8_STRING):
        if not isinstance(value, str):
            raise EncodeError(f"{tag.name.lower()} needs a str, got {type(value).__name__}")
        try:
            raw = value.encode("latin-1" if tag is DataTag.VISIBLE_STRING else "utf-8")
        except UnicodeEncodeError:
            raise EncodeError(f"{value!r} is not a visible-string") from None
        out += encode_length(len(raw))
        out += raw
    elif tag in (DataTag.NULL_DATA, DataTag.DONT_CARE):
        if value is not None:
            raise EncodeError(f"{tag.name.lower()} carries no value, got {value!r}")
    elif tag is DataTag.BOOLEAN:
        out.append(0x01 if value else 0x00)  # the Green Book examples and both peers write 0x01
    elif tag is DataTag.DATE_TIME:
        _require(value, CosemDateTime, tag)
        out += value.encode()
    elif tag is DataTag.DATE:
        _require(value, CosemDate, tag)
        out += value.encode()
    elif tag is DataTag.TIME:
        _require(value, CosemTime, tag)
        out += value.encode()
    elif tag is DataTag.BIT_STRING:
        if not isinstance(value, str) or value.strip("01"):
            raise EncodeError(f"bit-string needs a str of 0 and 1, got {value!r}")
        out += encode_length(len(value))
        padded = value + "0" * (-len(value) % 8)
        out += bytes(int(padded[i : i + 8], 2) for i in range(0, len(padded), 8))
    else:  # compact-array
        _require(value, CompactArray, tag)
        out += encode_type_description(value.description)
        contents = bytearray()
        for element in value.elements:
            _encode_untagged(element, value.description, contents)
        out += encode_length(len(contents))
        out += contents


def _require(value: Any, kind: type, tag: DataTag) -> None:
    if not isinstance(value, kind):
        raise EncodeError(f"{tag.name.lower()} needs a {kind.__name__}, got {type(value).__name__}")


def _encode_untagged(element: Data, desc: TypeDescription, out: bytearray) -> None:
    if element.tag != desc.tag:
        raise EncodeError(f"compact-array element {element.tag!r} does not match {desc.tag!r}")
    if desc.tag is DataTag.ARRAY:
        if len(element.value) != desc.number_of_elements:
            raise EncodeError("compact-array inner array has the wrong element count")
        for item in element.value:
            _encode_untagged(item, desc.children[0], out)
    elif desc.tag is DataTag.STRUCTURE:
        if len(element.value) != len(desc.children):
            raise EncodeError("compact-array structure has the wrong member count")
        for item, child in zip(element.value, desc.children):
            _encode_untagged(item, child, out)
    else:
        _encode(element, out, False)


def encode_type_description(desc: TypeDescription) -> bytes:
    out = bytearray((desc.tag,))
    if desc.tag is DataTag.ARRAY:
        if len(desc.children) != 1 or not 0 <= desc.number_of_elements <= 0xFFFF:
            raise EncodeError("an array type description has one element type and a uint16 count")
        out += desc.number_of_elements.to_bytes(2, "big")
        out += encode_type_description(desc.children[0])
    elif desc.tag is DataTag.STRUCTURE:
        out += encode_length(len(desc.children))
        for child in desc.children:
            out += encode_type_description(child)
    elif desc.tag is DataTag.COMPACT_ARRAY:
        raise EncodeError("a compact-array cannot describe a compact-array")
    return bytes(out)
