"""SET service APDUs (Set-Request 0xC1, Set-Response 0xC5), logical name referencing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocols import axdr
from protocols.axdr import Data
from protocols.xdlms.common import (
    MIN_DESCRIPTOR_WITH_SELECTION_SIZE,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    Reader,
    SelectiveAccessDescriptor,
    Writer,
    XdlmsTag,
    decode_entry,
    expect_type,
    read_choice,
    read_sequence,
    read_tag,
    write_sequence,
)

__all__ = [
    "SetRequest",
    "SetRequestNormal",
    "SetRequestWithDatablock",
    "SetRequestWithFirstDatablock",
    "SetRequestWithList",
    "SetRequestWithListAndFirstDatablock",
    "SetResponse",
    "SetResponseDatablock",
    "SetResponseLastDatablock",
    "SetResponseLastDatablockWithList",
    "SetResponseNormal",
    "SetResponseWithList",
    "decode_set_request",
    "decode_set_response",
]

_REQUEST = XdlmsTag.SET_REQUEST
_RESPONSE = XdlmsTag.SET_RESPONSE


def _write_descriptors(w: Writer, items: tuple[CosemAttributeDescriptorWithSelection, ...]) -> None:
    write_sequence(w, tuple(items), lambda w, d: d.write(w))


def _read_descriptors(r: Reader) -> tuple[CosemAttributeDescriptorWithSelection, ...]:
    return read_sequence(r, CosemAttributeDescriptorWithSelection.read, MIN_DESCRIPTOR_WITH_SELECTION_SIZE)


def _write_results(w: Writer, results: tuple[DataAccessResult, ...]) -> None:
    write_sequence(w, tuple(results), lambda w, x: w.u8(int(x), "data-access-result"))


def _read_results(r: Reader) -> tuple[DataAccessResult, ...]:
    return read_sequence(r, lambda r: DataAccessResult(r.u8("data-access-result")), 1)


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    """Write one attribute; ``value`` is the encoded A-XDR ``Data``."""

    CHOICE: ClassVar[int] = 1

    invoke_id_and_priority: InvokeIdAndPriority
    attribute_descriptor: CosemAttributeDescriptor
    value: bytes
    access_selection: SelectiveAccessDescriptor | None = None

    def data(self) -> Data:
        return axdr.decode_data_exact(self.value)

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.attribute_descriptor.write(w)
        SelectiveAccessDescriptor.write_optional(w, self.access_selection)
        w.data(self.value)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetRequestNormal:
        return expect_type(cls, decode_set_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetRequestNormal:
        descriptor = CosemAttributeDescriptor.read(r)
        selection = SelectiveAccessDescriptor.read_optional(r)
        return cls(iip, descriptor, r.tail_data(), selection)


@dataclass(frozen=True, slots=True)
class SetRequestWithFirstDatablock:
    CHOICE: ClassVar[int] = 2

    invoke_id_and_priority: InvokeIdAndPriority
    attribute_descriptor: CosemAttributeDescriptor
    datablock: DataBlockSA
    access_selection: SelectiveAccessDescriptor | None = None

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.attribute_descriptor.write(w)
        SelectiveAccessDescriptor.write_optional(w, self.access_selection)
        self.datablock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetRequestWithFirstDatablock:
        return expect_type(cls, decode_set_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetRequestWithFirstDatablock:
        descriptor = CosemAttributeDescriptor.read(r)
        selection = SelectiveAccessDescriptor.read_optional(r)
        return cls(iip, descriptor, DataBlockSA.read(r), selection)


@dataclass(frozen=True, slots=True)
class SetRequestWithDatablock:
    CHOICE: ClassVar[int] = 3

    invoke_id_and_priority: InvokeIdAndPriority
    datablock: DataBlockSA

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.datablock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetRequestWithDatablock:
        return expect_type(cls, decode_set_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetRequestWithDatablock:
        return cls(iip, DataBlockSA.read(r))


@dataclass(frozen=True, slots=True)
class SetRequestWithList:
    """Write several attributes; ``values`` holds one encoded ``Data`` per descriptor."""

    CHOICE: ClassVar[int] = 4

    invoke_id_and_priority: InvokeIdAndPriority
    attribute_descriptors: tuple[CosemAttributeDescriptorWithSelection, ...]
    values: tuple[bytes, ...]

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        _write_descriptors(w, self.attribute_descriptors)
        write_sequence(w, tuple(self.values), Writer.data)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetRequestWithList:
        return expect_type(cls, decode_set_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetRequestWithList:
        descriptors = _read_descriptors(r)
        return cls(iip, descriptors, read_sequence(r, Reader.data, 1))


@dataclass(frozen=True, slots=True)
class SetRequestWithListAndFirstDatablock:
    CHOICE: ClassVar[int] = 5

    invoke_id_and_priority: InvokeIdAndPriority
    attribute_descriptors: tuple[CosemAttributeDescriptorWithSelection, ...]
    datablock: DataBlockSA

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        _write_descriptors(w, self.attribute_descriptors)
        self.datablock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetRequestWithListAndFirstDatablock:
        return expect_type(cls, decode_set_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetRequestWithListAndFirstDatablock:
        descriptors = _read_descriptors(r)
        return cls(iip, descriptors, DataBlockSA.read(r))


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    CHOICE: ClassVar[int] = 1

    invoke_id_and_priority: InvokeIdAndPriority
    result: DataAccessResult

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.u8(int(self.result), "data-access-result")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetResponseNormal:
        return expect_type(cls, decode_set_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetResponseNormal:
        return cls(iip, DataAccessResult(r.u8("data-access-result")))


@dataclass(frozen=True, slots=True)
class SetResponseDatablock:
    """Acknowledges one block of a long SET."""

    CHOICE: ClassVar[int] = 2

    invoke_id_and_priority: InvokeIdAndPriority
    block_number: int

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.u32(self.block_number, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetResponseDatablock:
        return expect_type(cls, decode_set_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetResponseDatablock:
        return cls(iip, r.u32("block number"))


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablock:
    CHOICE: ClassVar[int] = 3

    invoke_id_and_priority: InvokeIdAndPriority
    result: DataAccessResult
    block_number: int

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.u8(int(self.result), "data-access-result")
        w.u32(self.block_number, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetResponseLastDatablock:
        return expect_type(cls, decode_set_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetResponseLastDatablock:
        result = DataAccessResult(r.u8("data-access-result"))
        return cls(iip, result, r.u32("block number"))


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablockWithList:
    CHOICE: ClassVar[int] = 4

    invoke_id_and_priority: InvokeIdAndPriority
    results: tuple[DataAccessResult, ...]
    block_number: int

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        _write_results(w, self.results)
        w.u32(self.block_number, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetResponseLastDatablockWithList:
        return expect_type(cls, decode_set_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetResponseLastDatablockWithList:
        results = _read_results(r)
        return cls(iip, results, r.u32("block number"))


@dataclass(frozen=True, slots=True)
class SetResponseWithList:
    CHOICE: ClassVar[int] = 5

    invoke_id_and_priority: InvokeIdAndPriority
    results: tuple[DataAccessResult, ...]

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        _write_results(w, self.results)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> SetResponseWithList:
        return expect_type(cls, decode_set_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> SetResponseWithList:
        return cls(iip, _read_results(r))


SetRequest = (
    SetRequestNormal
    | SetRequestWithFirstDatablock
    | SetRequestWithDatablock
    | SetRequestWithList
    | SetRequestWithListAndFirstDatablock
)
SetResponse = (
    SetResponseNormal
    | SetResponseDatablock
    | SetResponseLastDatablock
    | SetResponseLastDatablockWithList
    | SetResponseWithList
)

_REQUESTS: dict[int, type[SetRequest]] = {
    c.CHOICE: c
    for c in (
        SetRequestNormal,
        SetRequestWithFirstDatablock,
        SetRequestWithDatablock,
        SetRequestWithList,
        SetRequestWithListAndFirstDatablock,
    )
}
_RESPONSES: dict[int, type[SetResponse]] = {
    c.CHOICE: c
    for c in (
        SetResponseNormal,
        SetResponseDatablock,
        SetResponseLastDatablock,
        SetResponseLastDatablockWithList,
        SetResponseWithList,
    )
}


def _read_request(r: Reader) -> SetRequest:
    read_tag(r, _REQUEST)
    kind = read_choice(r, _REQUESTS, "set-request choice")
    return kind.read(r, InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority")))


def _read_response(r: Reader) -> SetResponse:
    read_tag(r, _RESPONSE)
    kind = read_choice(r, _RESPONSES, "set-response choice")
    return kind.read(r, InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority")))


def decode_set_request(buf: bytes) -> SetRequest:
    """Decode a whole Set-Request APDU (tag 0xC1)."""
    return decode_entry(_read_request, buf)


def decode_set_response(buf: bytes) -> SetResponse:
    """Decode a whole Set-Response APDU (tag 0xC5)."""
    return decode_entry(_read_response, buf)
