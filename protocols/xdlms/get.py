"""GET service APDUs (Get-Request 0xC0, Get-Response 0xC4), logical name referencing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocols.axdr import Data
from protocols.errors import DecodeError
from protocols.xdlms.common import (
    MIN_DESCRIPTOR_WITH_SELECTION_SIZE,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    DataAccessResult,
    InvokeIdAndPriority,
    Reader,
    SelectiveAccessDescriptor,
    Writer,
    XdlmsTag,
    decode_entry,
    error_of,
    expect_type,
    read_choice,
    read_result,
    read_sequence,
    read_tag,
    result_value,
    write_result,
    write_sequence,
)

__all__ = [
    "GetRequest",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponse",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "decode_get_request",
    "decode_get_response",
]

_REQUEST = XdlmsTag.GET_REQUEST
_RESPONSE = XdlmsTag.GET_RESPONSE


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    CHOICE: ClassVar[int] = 1

    invoke_id_and_priority: InvokeIdAndPriority
    attribute_descriptor: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = None

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.attribute_descriptor.write(w)
        SelectiveAccessDescriptor.write_optional(w, self.access_selection)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GetRequestNormal:
        return expect_type(cls, decode_get_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> GetRequestNormal:
        return cls(iip, CosemAttributeDescriptor.read(r), SelectiveAccessDescriptor.read_optional(r))


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    CHOICE: ClassVar[int] = 2

    invoke_id_and_priority: InvokeIdAndPriority
    block_number: int

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.u32(self.block_number, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GetRequestNext:
        return expect_type(cls, decode_get_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> GetRequestNext:
        return cls(iip, r.u32("block number"))


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    CHOICE: ClassVar[int] = 3

    invoke_id_and_priority: InvokeIdAndPriority
    attribute_descriptors: tuple[CosemAttributeDescriptorWithSelection, ...]

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        write_sequence(w, tuple(self.attribute_descriptors), lambda w, d: d.write(w))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GetRequestWithList:
        return expect_type(cls, decode_get_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> GetRequestWithList:
        items = read_sequence(
            r, CosemAttributeDescriptorWithSelection.read, MIN_DESCRIPTOR_WITH_SELECTION_SIZE
        )
        return cls(iip, items)


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    """One attribute's value, kept encoded: ``result`` is the A-XDR ``Data`` bytes or an error."""

    CHOICE: ClassVar[int] = 1

    invoke_id_and_priority: InvokeIdAndPriority
    result: bytes | DataAccessResult

    @property
    def data(self) -> bytes:
        """The encoded data; a ``ServiceError`` when the meter answered with an error."""
        if isinstance(self.result, DataAccessResult):
            raise error_of(self.result)
        return self.result

    def value(self) -> Data:
        """The decoded data (``DecodeError`` if malformed, ``ServiceError`` if an error result)."""
        return result_value(self.result)

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        write_result(w, self.result)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GetResponseNormal:
        return expect_type(cls, decode_get_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> GetResponseNormal:
        return cls(iip, read_result(r, tail=True))


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock:
    """One block of a long GET (``DataBlock-G``): raw bytes of the value, or an error."""

    CHOICE: ClassVar[int] = 2

    invoke_id_and_priority: InvokeIdAndPriority
    last_block: bool
    block_number: int
    result: bytes | DataAccessResult

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.boolean(self.last_block)
        w.u32(self.block_number, "block number")
        if isinstance(self.result, DataAccessResult):
            w.u8(1)
            w.u8(int(self.result))
        else:
            w.u8(0)
            w.octet_string(bytes(self.result))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GetResponseWithDatablock:
        return expect_type(cls, decode_get_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> GetResponseWithDatablock:
        last_block = r.boolean("last-block")
        block_number = r.u32("block number")
        at = r.pos
        choice = r.u8("datablock result choice")
        result: bytes | DataAccessResult
        if choice == 0:
            result = r.octet_string("raw data")
        elif choice == 1:
            result = DataAccessResult(r.u8("data-access-result"))
        else:
            raise DecodeError(f"datablock result choice {choice} is neither raw-data nor result", at)
        return cls(iip, last_block, block_number, result)


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    CHOICE: ClassVar[int] = 3

    invoke_id_and_priority: InvokeIdAndPriority
    results: tuple[bytes | DataAccessResult, ...]

    def values(self) -> tuple[Data | DataAccessResult, ...]:
        """Each result decoded, errors left as their ``DataAccessResult``."""
        return tuple(
            item if isinstance(item, DataAccessResult) else result_value(item) for item in self.results
        )

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        write_sequence(w, tuple(self.results), write_result)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GetResponseWithList:
        return expect_type(cls, decode_get_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> GetResponseWithList:
        return cls(iip, read_sequence(r, lambda r: read_result(r, tail=False), 2))


GetRequest = GetRequestNormal | GetRequestNext | GetRequestWithList
GetResponse = GetResponseNormal | GetResponseWithDatablock | GetResponseWithList

_REQUESTS: dict[int, type[GetRequest]] = {
    c.CHOICE: c for c in (GetRequestNormal, GetRequestNext, GetRequestWithList)
}
_RESPONSES: dict[int, type[GetResponse]] = {
    c.CHOICE: c for c in (GetResponseNormal, GetResponseWithDatablock, GetResponseWithList)
}


def _read_request(r: Reader) -> GetRequest:
    read_tag(r, _REQUEST)
    kind = read_choice(r, _REQUESTS, "get-request choice")
    return kind.read(r, InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority")))


def _read_response(r: Reader) -> GetResponse:
    read_tag(r, _RESPONSE)
    kind = read_choice(r, _RESPONSES, "get-response choice")
    return kind.read(r, InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority")))


def decode_get_request(buf: bytes) -> GetRequest:
    """Decode a whole Get-Request APDU (tag 0xC0)."""
    return decode_entry(_read_request, buf)


def decode_get_response(buf: bytes) -> GetResponse:
    """Decode a whole Get-Response APDU (tag 0xC4); the data is split off, not decoded."""
    return decode_entry(_read_response, buf)
