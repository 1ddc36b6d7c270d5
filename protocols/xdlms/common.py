"""Building blocks shared by the xDLMS service APDUs: invoke ids, descriptors, results, byte cursors."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from protocols import axdr
from protocols.axdr import Data, DataTag
from protocols.errors import DecodeError, EncodeError, ServiceError
from protocols.obis import ObisCode

__all__ = [
    "ActionResult",
    "CosemAttributeDescriptor",
    "CosemAttributeDescriptorWithSelection",
    "CosemMethodDescriptor",
    "DataAccessResult",
    "DataBlockSA",
    "InvokeIdAndPriority",
    "LongInvokeIdAndPriority",
    "Priority",
    "Reader",
    "SelectiveAccessDescriptor",
    "ServiceClass",
    "Writer",
    "XdlmsTag",
    "MIN_DESCRIPTOR_SIZE",
    "MIN_DESCRIPTOR_WITH_SELECTION_SIZE",
    "decode_entry",
    "error_of",
    "expect_type",
    "read_choice",
    "read_tag",
    "read_result",
    "read_sequence",
    "result_value",
    "service_error_for",
    "write_result",
    "write_sequence",
]


class XdlmsTag(IntEnum):
    """APDU tags of the xDLMS services handled here (IEC 62056-5-3, LN referencing)."""

    CONFIRMED_SERVICE_ERROR = 0x0E
    DATA_NOTIFICATION = 0x0F
    GET_REQUEST = 0xC0
    SET_REQUEST = 0xC1
    EVENT_NOTIFICATION_REQUEST = 0xC2
    ACTION_REQUEST = 0xC3
    GET_RESPONSE = 0xC4
    SET_RESPONSE = 0xC5
    ACTION_RESPONSE = 0xC7
    EXCEPTION_RESPONSE = 0xD8
    GENERAL_BLOCK_TRANSFER = 0xE0
    GATEWAY_REQUEST = 0xE6
    GATEWAY_RESPONSE = 0xE7


class ServiceClass(IntEnum):
    UNCONFIRMED = 0
    CONFIRMED = 1


class Priority(IntEnum):
    NORMAL = 0
    HIGH = 1


class DataAccessResult(IntEnum):
    """Result of a GET or SET of one attribute (Green Book ``Data-Access-Result``)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ActionResult(IntEnum):
    """Result of an ACTION on one method (Green Book ``Action-Result``)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


# Only a transient condition of the meter is worth trying again; the rest repeats identically.
_RETRYABLE = frozenset({2})


def service_error_for(result: DataAccessResult | ActionResult) -> ServiceError | None:
    """The ``ServiceError`` a non-success result stands for, or None for success."""
    if result == 0:
        return None
    name = result.name.lower().replace("_", "-")
    return ServiceError(
        f"{type(result).__name__} {name} ({int(result)})", int(result), retryable=int(result) in _RETRYABLE
    )


# --- byte cursors ------------------------------------------------------------------------------


class Reader:
    """A cursor over an APDU; every read checks its bounds and raises ``DecodeError``."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def _take(self, n: int, what: str) -> int:
        start = self.pos
        end = start + n
        if end > len(self.buf):
            raise DecodeError(f"{what} truncated", start)
        self.pos = end
        return start

    def u8(self, what: str = "byte") -> int:
        return self.buf[self._take(1, what)]

    def i8(self, what: str = "integer") -> int:
        value = self.u8(what)
        return value - 256 if value > 127 else value

    def u16(self, what: str = "long-unsigned") -> int:
        start = self._take(2, what)
        return int.from_bytes(self.buf[start : start + 2], "big")

    def u32(self, what: str = "double-long-unsigned") -> int:
        start = self._take(4, what)
        return int.from_bytes(self.buf[start : start + 4], "big")

    def raw(self, n: int, what: str = "bytes") -> bytes:
        start = self._take(n, what)
        return bytes(self.buf[start : start + n])

    def boolean(self, what: str = "boolean") -> bool:
        return self.u8(what) != 0

    def length(self) -> int:
        value, self.pos = axdr.decode_length(self.buf, self.pos)
        return value

    def count(self, min_item_size: int) -> int:
        """A SEQUENCE OF count, refused when its items cannot fit in what is left."""
        at = self.pos
        value = self.length()
        if value * min_item_size > len(self.buf) - self.pos:
            raise DecodeError(f"{value} items cannot fit in {len(self.buf) - self.pos} bytes", at)
        return value

    def octet_string(self, what: str = "octet-string") -> bytes:
        return self.raw(self.length(), what)

    def data(self) -> bytes:
        """The encoded bytes of one ``Data`` that other fields follow (walked with ``skip_data``)."""
        start = self.pos
        self.pos = axdr.skip_data(self.buf, start)
        return bytes(self.buf[start : self.pos])

    def tail_data(self) -> bytes:
        """The encoded ``Data`` that ends the APDU, split off without walking it.

        Leaf values are checked to end exactly at the end of the APDU; arrays, structures and
        compact-arrays are only checked when the caller decodes them (``decode_data_exact``),
        so that a profile buffer costs nothing to split off.
        """
        start = self.pos
        buf = self.buf
        if start >= len(buf):
            raise DecodeError("data expected, APDU ended", start)
        tag = buf[start]
        if tag not in (DataTag.ARRAY, DataTag.STRUCTURE, DataTag.COMPACT_ARRAY):
            end = axdr.skip_data(buf, start)
            if end != len(buf):
                raise DecodeError(f"{len(buf) - end} bytes after the data", end)
        self.pos = len(buf)
        return bytes(buf[start:])

    def optional(self) -> bool:
        """An A-XDR OPTIONAL/DEFAULT presence flag: 0x00 absent, 0x01 present."""
        at = self.pos
        flag = self.u8("optional flag")
        if flag > 1:
            raise DecodeError(f"presence flag 0x{flag:02x} is neither 0 nor 1", at)
        return flag == 1

    def rest(self) -> bytes:
        start = self.pos
        self.pos = len(self.buf)
        return bytes(self.buf[start:])

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise DecodeError(f"{len(self.buf) - self.pos} bytes after the APDU", self.pos)


class Writer:
    """Collects the bytes of an APDU; refuses values that do not fit their field."""

    __slots__ = ("out",)

    def __init__(self, *head: int) -> None:
        self.out = bytearray(head)

    def u8(self, value: int, what: str = "unsigned") -> None:
        if not 0 <= value <= 0xFF:
            raise EncodeError(f"{what} {value!r} does not fit one byte")
        self.out.append(value)

    def i8(self, value: int, what: str = "integer") -> None:
        if not -128 <= value <= 127:
            raise EncodeError(f"{what} {value!r} does not fit an integer")
        self.out.append(value & 0xFF)

    def u16(self, value: int, what: str = "long-unsigned") -> None:
        if not 0 <= value <= 0xFFFF:
            raise EncodeError(f"{what} {value!r} does not fit a long-unsigned")
        self.out += value.to_bytes(2, "big")

    def u32(self, value: int, what: str = "double-long-unsigned") -> None:
        if not 0 <= value <= 0xFFFFFFFF:
            raise EncodeError(f"{what} {value!r} does not fit a double-long-unsigned")
        self.out += value.to_bytes(4, "big")

    def boolean(self, value: bool) -> None:
        # Gurux and the Green Book examples write TRUE as 0x01; any non-zero byte decodes as TRUE.
        self.out.append(1 if value else 0)

    def length(self, value: int) -> None:
        self.out += axdr.encode_length(value)

    def octet_string(self, value: bytes) -> None:
        self.out += axdr.encode_length(len(value))
        self.out += value

    def raw(self, value: bytes) -> None:
        self.out += value

    def data(self, value: bytes) -> None:
        """Encoded ``Data``, checked to be exactly one value (a local bug otherwise)."""
        try:
            end = axdr.skip_data(value, 0)
        except DecodeError as exc:
            raise EncodeError(f"not an encoded Data: {exc}") from None
        if end != len(value):
            raise EncodeError(f"{len(value) - end} bytes after the encoded Data")
        self.out += value

    def getvalue(self) -> bytes:
        return bytes(self.out)


_T = TypeVar("_T")


def decode_entry(decode: Callable[[Reader], _T], buf: bytes) -> _T:
    """Run a decoder over a whole APDU: trailing bytes are refused, any slip becomes ``DecodeError``."""
    try:
        reader = Reader(bytes(buf))
        value = decode(reader)
        reader.end()
        return value
    except DecodeError:
        raise
    except (IndexError, ValueError, TypeError, KeyError, struct.error, OverflowError) as exc:
        # ValueError includes unknown enum values; TypeError covers non-bytes input.
        raise DecodeError(f"malformed APDU: {exc}") from None


def expect_type(cls: type[_T], apdu: object) -> _T:
    """``apdu`` if it is a ``cls``; a ``DecodeError`` when the bytes held another APDU."""
    if not isinstance(apdu, cls):
        raise DecodeError(f"{type(apdu).__name__} where {cls.__name__} was expected", 1)
    return apdu


def read_tag(r: Reader, tag: int) -> None:
    found = r.u8("APDU tag")
    if found != tag:
        raise DecodeError(f"APDU tag 0x{found:02x}, expected 0x{tag:02x}", r.pos - 1)


def read_choice(r: Reader, table: dict[int, _T], what: str) -> _T:
    """The entry of ``table`` for the CHOICE byte at the cursor."""
    choice = r.u8(what)
    kind = table.get(choice)
    if kind is None:
        raise DecodeError(f"unknown {what} {choice}", r.pos - 1)
    return kind


def _check_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise EncodeError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


# --- invoke ids --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvokeIdAndPriority:
    """One byte: invoke id in bits 0-3, service class in bit 6, priority in bit 7."""

    invoke_id: int = 1
    service_class: ServiceClass = ServiceClass.CONFIRMED
    priority: Priority = Priority.HIGH

    def to_byte(self) -> int:
        if not 0 <= self.invoke_id <= 15:
            raise EncodeError(f"invoke id {self.invoke_id} outside 0-15")
        return self.invoke_id | (self.service_class << 6) | (self.priority << 7)

    @classmethod
    def from_byte(cls, value: int) -> InvokeIdAndPriority:
        # Bits 4-5 are reserved; some meters set them, so they are ignored rather than refused.
        # Built once per byte value: enum lookups would cost more than the rest of a decode.
        return _IIP_BY_BYTE[value]


_IIP_BY_BYTE: tuple[InvokeIdAndPriority, ...] = tuple(
    InvokeIdAndPriority(value & 0x0F, ServiceClass((value >> 6) & 1), Priority(value >> 7))
    for value in range(256)
)


@dataclass(frozen=True, slots=True)
class LongInvokeIdAndPriority:
    """Four bytes: invoke id in bits 0-23, self-descriptive bit 28, break-on-error bit 29,
    service class bit 30, priority bit 31 (Green Book ``Long-Invoke-Id-And-Priority``)."""

    invoke_id: int = 1
    self_descriptive: bool = False
    break_on_error: bool = False
    service_class: ServiceClass = ServiceClass.UNCONFIRMED
    priority: Priority = Priority.NORMAL

    def to_int(self) -> int:
        if not 0 <= self.invoke_id <= 0xFFFFFF:
            raise EncodeError(f"long invoke id {self.invoke_id} outside 24 bits")
        return (
            self.invoke_id
            | (int(self.self_descriptive) << 28)
            | (int(self.break_on_error) << 29)
            | (int(self.service_class) << 30)
            | (int(self.priority) << 31)
        )

    @classmethod
    def from_int(cls, value: int) -> LongInvokeIdAndPriority:
        return cls(
            value & 0xFFFFFF,
            bool(value >> 28 & 1),
            bool(value >> 29 & 1),
            ServiceClass(value >> 30 & 1),
            Priority(value >> 31 & 1),
        )


# --- descriptors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptor:
    """class id (long-unsigned), instance id (6-byte OBIS code), attribute id (integer)."""

    class_id: int
    instance_id: ObisCode
    attribute_id: int

    def write(self, w: Writer) -> None:
        w.u16(self.class_id, "class id")
        w.raw(_obis_bytes(self.instance_id))
        w.i8(self.attribute_id, "attribute id")

    @classmethod
    def read(cls, r: Reader) -> CosemAttributeDescriptor:
        return cls(r.u16("class id"), ObisCode(*r.raw(6, "instance id")), r.i8("attribute id"))


@dataclass(frozen=True, slots=True)
class CosemMethodDescriptor:
    """class id (long-unsigned), instance id (6-byte OBIS code), method id (integer)."""

    class_id: int
    instance_id: ObisCode
    method_id: int

    def write(self, w: Writer) -> None:
        w.u16(self.class_id, "class id")
        w.raw(_obis_bytes(self.instance_id))
        w.i8(self.method_id, "method id")

    @classmethod
    def read(cls, r: Reader) -> CosemMethodDescriptor:
        return cls(r.u16("class id"), ObisCode(*r.raw(6, "instance id")), r.i8("method id"))


def _obis_bytes(code: ObisCode) -> bytes:
    try:
        raw = bytes(code)
    except (ValueError, TypeError):
        raise EncodeError(f"bad OBIS code {code!r}") from None
    if len(raw) != 6:
        raise EncodeError(f"an OBIS code has 6 value groups, got {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class SelectiveAccessDescriptor:
    """access-selector (unsigned) and access-parameters, kept as encoded ``Data`` bytes."""

    access_selector: int
    access_parameters: bytes

    def parameters(self) -> Data:
        return axdr.decode_data_exact(self.access_parameters)

    @classmethod
    def from_data(cls, access_selector: int, parameters: Data) -> SelectiveAccessDescriptor:
        return cls(access_selector, axdr.encode_data(parameters))

    def write(self, w: Writer) -> None:
        w.u8(self.access_selector, "access selector")
        w.data(_check_bytes(self.access_parameters, "access parameters"))

    @classmethod
    def read(cls, r: Reader) -> SelectiveAccessDescriptor:
        return cls(r.u8("access selector"), r.data())

    @staticmethod
    def write_optional(w: Writer, value: SelectiveAccessDescriptor | None) -> None:
        if value is None:
            w.u8(0)
        else:
            w.u8(1)
            value.write(w)

    @classmethod
    def read_optional(cls, r: Reader) -> SelectiveAccessDescriptor | None:
        return cls.read(r) if r.optional() else None


@dataclass(frozen=True, slots=True)
class CosemAttributeDescriptorWithSelection:
    """An attribute descriptor with its optional access selection (GET/SET with-list)."""

    attribute_descriptor: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = None

    def write(self, w: Writer) -> None:
        self.attribute_descriptor.write(w)
        SelectiveAccessDescriptor.write_optional(w, self.access_selection)

    @classmethod
    def read(cls, r: Reader) -> CosemAttributeDescriptorWithSelection:
        return cls(CosemAttributeDescriptor.read(r), SelectiveAccessDescriptor.read_optional(r))


# Smallest encodings, used to refuse counts that cannot fit in what is left of the APDU.
MIN_DESCRIPTOR_SIZE = 9
MIN_DESCRIPTOR_WITH_SELECTION_SIZE = 10


@dataclass(frozen=True, slots=True)
class DataBlockSA:
    """A block of a long SET or ACTION: last-block, block-number, raw-data (``DataBlock-SA``)."""

    last_block: bool
    block_number: int
    raw_data: bytes

    def write(self, w: Writer) -> None:
        w.boolean(self.last_block)
        w.u32(self.block_number, "block number")
        w.octet_string(_check_bytes(self.raw_data, "raw data"))

    @classmethod
    def read(cls, r: Reader) -> DataBlockSA:
        return cls(r.boolean("last-block"), r.u32("block number"), r.octet_string("raw data"))


def write_result(w: Writer, result: bytes | DataAccessResult) -> None:
    """``Get-Data-Result``: [0] Data or [1] Data-Access-Result."""
    if isinstance(result, DataAccessResult):
        w.u8(1)
        w.u8(int(result))
    else:
        w.u8(0)
        w.data(_check_bytes(result, "data"))


def read_result(r: Reader, *, tail: bool) -> bytes | DataAccessResult:
    at = r.pos
    choice = r.u8("get-data-result choice")
    if choice == 0:
        return r.tail_data() if tail else r.data()
    if choice == 1:
        return DataAccessResult(r.u8("data-access-result"))
    raise DecodeError(f"get-data-result choice {choice} is neither data (0) nor result (1)", at)


def error_of(result: DataAccessResult | ActionResult) -> ServiceError:
    """The ``ServiceError`` for a result that stands in place of data (even a bare success)."""
    error = service_error_for(result)
    if error is None:
        return ServiceError(f"{type(result).__name__} success where data was expected", 0)
    return error


def result_value(result: bytes | DataAccessResult) -> Data:
    """The decoded data of a Get-Data-Result; a ``ServiceError`` when it is an error."""
    if isinstance(result, DataAccessResult):
        raise error_of(result)
    return axdr.decode_data_exact(result)


def write_sequence(w: Writer, items: tuple[_T, ...], write: Callable[[Writer, _T], None]) -> None:
    w.length(len(items))
    for item in items:
        write(w, item)


def read_sequence(r: Reader, read: Callable[[Reader], _T], min_size: int) -> tuple[_T, ...]:
    return tuple(read(r) for _ in range(r.count(min_size)))
