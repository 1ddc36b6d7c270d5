"""ACTION service APDUs (Action-Request 0xC3, Action-Response 0xC7), logical name referencing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from protocols import axdr
from protocols.axdr import Data
from protocols.errors import ServiceError
from protocols.xdlms.common import (
    MIN_DESCRIPTOR_SIZE,
    ActionResult,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    Reader,
    Writer,
    XdlmsTag,
    decode_entry,
    expect_type,
    read_choice,
    read_result,
    read_sequence,
    read_tag,
    result_value,
    service_error_for,
    write_result,
    write_sequence,
)

__all__ = [
    "ActionRequest",
    "ActionRequestNextPblock",
    "ActionRequestNormal",
    "ActionRequestWithFirstPblock",
    "ActionRequestWithList",
    "ActionRequestWithListAndFirstPblock",
    "ActionRequestWithPblock",
    "ActionResponse",
    "ActionResponseNextPblock",
    "ActionResponseNormal",
    "ActionResponseWithList",
    "ActionResponseWithOptionalData",
    "ActionResponseWithPblock",
    "decode_action_request",
    "decode_action_response",
]

_REQUEST = XdlmsTag.ACTION_REQUEST
_RESPONSE = XdlmsTag.ACTION_RESPONSE


def _write_methods(w: Writer, items: tuple[CosemMethodDescriptor, ...]) -> None:
    write_sequence(w, tuple(items), lambda w, d: d.write(w))


def _read_methods(r: Reader) -> tuple[CosemMethodDescriptor, ...]:
    return read_sequence(r, CosemMethodDescriptor.read, MIN_DESCRIPTOR_SIZE)


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    """Invoke one method; ``parameters`` is the encoded A-XDR ``Data`` or None."""

    CHOICE: ClassVar[int] = 1

    invoke_id_and_priority: InvokeIdAndPriority
    method_descriptor: CosemMethodDescriptor
    parameters: bytes | None = None

    def parameters_value(self) -> Data | None:
        return None if self.parameters is None else axdr.decode_data_exact(self.parameters)

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.method_descriptor.write(w)
        if self.parameters is None:
            w.u8(0)
        else:
            w.u8(1)
            w.data(self.parameters)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionRequestNormal:
        return expect_type(cls, decode_action_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionRequestNormal:
        descriptor = CosemMethodDescriptor.read(r)
        return cls(iip, descriptor, r.tail_data() if r.optional() else None)


@dataclass(frozen=True, slots=True)
class ActionRequestNextPblock:
    CHOICE: ClassVar[int] = 2

    invoke_id_and_priority: InvokeIdAndPriority
    block_number: int

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.u32(self.block_number, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionRequestNextPblock:
        return expect_type(cls, decode_action_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionRequestNextPblock:
        return cls(iip, r.u32("block number"))


@dataclass(frozen=True, slots=True)
class ActionRequestWithList:
    CHOICE: ClassVar[int] = 3

    invoke_id_and_priority: InvokeIdAndPriority
    method_descriptors: tuple[CosemMethodDescriptor, ...]
    parameters: tuple[bytes, ...]

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        _write_methods(w, self.method_descriptors)
        write_sequence(w, tuple(self.parameters), Writer.data)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionRequestWithList:
        return expect_type(cls, decode_action_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionRequestWithList:
        methods = _read_methods(r)
        return cls(iip, methods, read_sequence(r, Reader.data, 1))


@dataclass(frozen=True, slots=True)
class ActionRequestWithFirstPblock:
    CHOICE: ClassVar[int] = 4

    invoke_id_and_priority: InvokeIdAndPriority
    method_descriptor: CosemMethodDescriptor
    pblock: DataBlockSA

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.method_descriptor.write(w)
        self.pblock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionRequestWithFirstPblock:
        return expect_type(cls, decode_action_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionRequestWithFirstPblock:
        descriptor = CosemMethodDescriptor.read(r)
        return cls(iip, descriptor, DataBlockSA.read(r))


@dataclass(frozen=True, slots=True)
class ActionRequestWithListAndFirstPblock:
    CHOICE: ClassVar[int] = 5

    invoke_id_and_priority: InvokeIdAndPriority
    method_descriptors: tuple[CosemMethodDescriptor, ...]
    pblock: DataBlockSA

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        _write_methods(w, self.method_descriptors)
        self.pblock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionRequestWithListAndFirstPblock:
        return expect_type(cls, decode_action_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionRequestWithListAndFirstPblock:
        methods = _read_methods(r)
        return cls(iip, methods, DataBlockSA.read(r))


@dataclass(frozen=True, slots=True)
class ActionRequestWithPblock:
    CHOICE: ClassVar[int] = 6

    invoke_id_and_priority: InvokeIdAndPriority
    pblock: DataBlockSA

    def encode(self) -> bytes:
        w = Writer(_REQUEST, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.pblock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionRequestWithPblock:
        return expect_type(cls, decode_action_request(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionRequestWithPblock:
        return cls(iip, DataBlockSA.read(r))


@dataclass(frozen=True, slots=True)
class ActionResponseWithOptionalData:
    """An ``Action-Result`` and the optional return parameters (a Get-Data-Result)."""

    result: ActionResult
    return_parameters: bytes | DataAccessResult | None = None

    def raise_for_result(self) -> None:
        """Raise the ``ServiceError`` matching a non-success result."""
        error = service_error_for(self.result)
        if error is not None:
            raise error

    def value(self) -> Data | None:
        """The decoded return data, None when there is none; raises ``ServiceError`` on errors."""
        self.raise_for_result()
        if self.return_parameters is None:
            return None
        if isinstance(self.return_parameters, DataAccessResult):
            raise ServiceError(
                f"action return data-access-result {self.return_parameters.name.lower()}",
                int(self.return_parameters),
                retryable=self.return_parameters == DataAccessResult.TEMPORARY_FAILURE,
            )
        return result_value(self.return_parameters)

    def write(self, w: Writer) -> None:
        w.u8(int(self.result), "action-result")
        if self.return_parameters is None:
            w.u8(0)
        else:
            w.u8(1)
            write_result(w, self.return_parameters)

    @classmethod
    def read(cls, r: Reader, *, tail: bool) -> ActionResponseWithOptionalData:
        result = ActionResult(r.u8("action-result"))
        if tail and r.pos == len(r.buf):
            # Some meters (and gurux) end the APDU without the return-parameters presence flag;
            # at the very end of the APDU that can only mean "no data", so accept it.
            return cls(result, None)
        return cls(result, read_result(r, tail=tail) if r.optional() else None)


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    CHOICE: ClassVar[int] = 1

    invoke_id_and_priority: InvokeIdAndPriority
    response: ActionResponseWithOptionalData

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.response.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionResponseNormal:
        return expect_type(cls, decode_action_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionResponseNormal:
        return cls(iip, ActionResponseWithOptionalData.read(r, tail=True))


@dataclass(frozen=True, slots=True)
class ActionResponseWithPblock:
    CHOICE: ClassVar[int] = 2

    invoke_id_and_priority: InvokeIdAndPriority
    pblock: DataBlockSA

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        self.pblock.write(w)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionResponseWithPblock:
        return expect_type(cls, decode_action_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionResponseWithPblock:
        return cls(iip, DataBlockSA.read(r))


@dataclass(frozen=True, slots=True)
class ActionResponseWithList:
    CHOICE: ClassVar[int] = 3

    invoke_id_and_priority: InvokeIdAndPriority
    responses: tuple[ActionResponseWithOptionalData, ...]

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        write_sequence(w, tuple(self.responses), lambda w, x: x.write(w))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionResponseWithList:
        return expect_type(cls, decode_action_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionResponseWithList:
        return cls(iip, read_sequence(r, lambda r: ActionResponseWithOptionalData.read(r, tail=False), 2))


@dataclass(frozen=True, slots=True)
class ActionResponseNextPblock:
    CHOICE: ClassVar[int] = 4

    invoke_id_and_priority: InvokeIdAndPriority
    block_number: int

    def encode(self) -> bytes:
        w = Writer(_RESPONSE, self.CHOICE, self.invoke_id_and_priority.to_byte())
        w.u32(self.block_number, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ActionResponseNextPblock:
        return expect_type(cls, decode_action_response(buf))

    @classmethod
    def read(cls, r: Reader, iip: InvokeIdAndPriority) -> ActionResponseNextPblock:
        return cls(iip, r.u32("block number"))


ActionRequest = (
    ActionRequestNormal
    | ActionRequestNextPblock
    | ActionRequestWithList
    | ActionRequestWithFirstPblock
    | ActionRequestWithListAndFirstPblock
    | ActionRequestWithPblock
)
ActionResponse = (
    ActionResponseNormal | ActionResponseWithPblock | ActionResponseWithList | ActionResponseNextPblock
)

_REQUESTS: dict[int, type[ActionRequest]] = {
    c.CHOICE: c
    for c in (
        ActionRequestNormal,
        ActionRequestNextPblock,
        ActionRequestWithList,
        ActionRequestWithFirstPblock,
        ActionRequestWithListAndFirstPblock,
        ActionRequestWithPblock,
    )
}
_RESPONSES: dict[int, type[ActionResponse]] = {
    c.CHOICE: c
    for c in (
        ActionResponseNormal,
        ActionResponseWithPblock,
        ActionResponseWithList,
        ActionResponseNextPblock,
    )
}


def _read_request(r: Reader) -> ActionRequest:
    read_tag(r, _REQUEST)
    kind = read_choice(r, _REQUESTS, "action-request choice")
    return kind.read(r, InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority")))


def _read_response(r: Reader) -> ActionResponse:
    read_tag(r, _RESPONSE)
    kind = read_choice(r, _RESPONSES, "action-response choice")
    return kind.read(r, InvokeIdAndPriority.from_byte(r.u8("invoke-id-and-priority")))


def decode_action_request(buf: bytes) -> ActionRequest:
    """Decode a whole Action-Request APDU (tag 0xC3)."""
    return decode_entry(_read_request, buf)


def decode_action_response(buf: bytes) -> ActionResponse:
    """Decode a whole Action-Response APDU (tag 0xC7)."""
    return decode_entry(_read_response, buf)
