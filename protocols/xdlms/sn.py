"""Short-name referencing services (IEC 62056-5-3 9.5, Green Book ed. 8 "SN services"): Read and Write.

Older meters address attributes by short names (``ObjectName``, an Integer16): an object's base name is
its attribute 1, attribute n is at base + 8 (n - 1), and a method is invoked by reading (or writing) the
short name ``base + first method offset + 8 (m - 1)`` of its class (``method_short_name``). A Read
carries a list of variable-access-specifications, answered in order; a long answer comes in data blocks
asked for one by one with ``block-number-access``.

    ReadRequest  ::= SEQUENCE OF Variable-Access-Specification                                  (tag 5)
    ReadResponse ::= SEQUENCE OF CHOICE { data [0] Data, data-access-error [1] Data-Access-Result,
                                          data-block-result [2] Data-Block-Result, block-number [3] Unsigned16 }
    WriteRequest ::= SEQUENCE { SEQUENCE OF Variable-Access-Specification, SEQUENCE OF Data }    (tag 6)
    WriteResponse ::= SEQUENCE OF CHOICE { success [0] NULL, data-access-error [1] Data-Access-Result,
                                           block-number [2] Unsigned16 }                          (tag 13)
    Variable-Access-Specification ::= CHOICE { variable-name [2] ObjectName,
        parameterized-access [4] SEQUENCE { ObjectName, selector Unsigned8, parameter Data },
        block-number-access [5] SEQUENCE { block-number Unsigned16 } }

Data stays encoded (``bytes``), as in the LN services.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import DecodeError, EncodeError
from protocols.xdlms.common import DataAccessResult, Reader, Writer, decode_entry, read_tag

__all__ = [
    "READ_REQUEST",
    "READ_RESPONSE",
    "WRITE_REQUEST",
    "WRITE_RESPONSE",
    "BlockNumberAccess",
    "DataBlockResult",
    "ParameterizedAccess",
    "ReadRequest",
    "ReadResponse",
    "VariableAccess",
    "VariableName",
    "WriteRequest",
    "WriteResponse",
    "attribute_short_name",
    "method_short_name",
]

READ_REQUEST = 0x05
WRITE_REQUEST = 0x06
READ_RESPONSE = 0x0C
WRITE_RESPONSE = 0x0D

_VARIABLE_NAME, _PARAMETERIZED, _BLOCK_NUMBER = 2, 4, 5
_DATA, _ERROR, _DATA_BLOCK, _RESULT_BLOCK_NUMBER = 0, 1, 2, 3

#: Short-name offset of each class's first method and how many methods it has (Blue Book, "short name
#: mapping"; the same figures gurux-dlms uses): method m of an object is base + offset + 8 (m - 1).
_FIRST_METHOD: dict[int, tuple[int, int]] = {
    3: (0x28, 1),  # register: reset
    4: (0x38, 1),  # extended register: reset
    5: (0x48, 2),  # demand register: reset, next period
    7: (0x58, 4),  # profile generic: reset, capture, (reserved), (reserved)
    8: (0x60, 6),  # clock: adjust to quarter ... shift time
    9: (0x20, 1),  # script table: execute
    11: (0x10, 2),  # special days table
    12: (0x20, 8),  # association SN
    20: (0x50, 1),  # activity calendar
    70: (0x20, 2),  # disconnect control: remote disconnect, remote reconnect
}


def _short(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} {value} is not a 16-bit short name")
    return value


def attribute_short_name(base_name: int, attribute: int) -> int:
    """The short name of attribute ``attribute`` (1 is the base name itself)."""
    if attribute < 1:
        raise EncodeError(f"attribute {attribute}: attributes count from 1")
    return _short(base_name + 8 * (attribute - 1), "attribute")


def method_short_name(class_id: int, base_name: int, method: int) -> int:
    """The short name that invokes method ``method`` of an object of ``class_id`` at ``base_name``."""
    known = _FIRST_METHOD.get(class_id)
    if known is None:
        raise EncodeError(f"class {class_id} has no method short names known here")
    offset, count = known
    if not 1 <= method <= count:
        raise EncodeError(f"class {class_id} has methods 1 to {count}, not {method}")
    return _short(base_name + offset + 8 * (method - 1), "method")


@dataclass(frozen=True, slots=True)
class VariableName:
    """``variable-name``: the attribute (or method) at this short name."""

    short_name: int

    def write(self, w: Writer) -> None:
        w.u8(_VARIABLE_NAME)
        w.u16(_short(self.short_name, "variable name"), "variable name")


@dataclass(frozen=True, slots=True)
class ParameterizedAccess:
    """``parameterized-access``: a selective read (selector 1 by range, 2 by entry), ``parameter`` encoded Data."""

    short_name: int
    selector: int
    parameter: bytes

    def write(self, w: Writer) -> None:
        w.u8(_PARAMETERIZED)
        w.u16(_short(self.short_name, "variable name"), "variable name")
        w.u8(self.selector, "selector")
        w.data(self.parameter)


@dataclass(frozen=True, slots=True)
class BlockNumberAccess:
    """``block-number-access``: the next block of a long answer (the number of the one asked for)."""

    block_number: int

    def write(self, w: Writer) -> None:
        w.u8(_BLOCK_NUMBER)
        w.u16(self.block_number, "block number")


VariableAccess = VariableName | ParameterizedAccess | BlockNumberAccess


def _read_access(r: Reader) -> VariableAccess:
    at = r.pos
    choice = r.u8("variable-access-specification")
    if choice == _VARIABLE_NAME:
        return VariableName(r.u16("variable name"))
    if choice == _PARAMETERIZED:
        return ParameterizedAccess(r.u16("variable name"), r.u8("selector"), r.data())
    if choice == _BLOCK_NUMBER:
        return BlockNumberAccess(r.u16("block number"))
    raise DecodeError(f"variable-access-specification {choice} is not variable-name (2), parameterized-access (4) "
                      "or block-number-access (5)", at)


def _read_accesses(r: Reader) -> tuple[VariableAccess, ...]:
    at = r.pos
    items = tuple(_read_access(r) for _ in range(r.count(3)))
    if not items:
        raise DecodeError("a Read or Write names no variable", at)
    return items


def _write_accesses(w: Writer, items: tuple[VariableAccess, ...]) -> None:
    if not items:
        raise EncodeError("a Read or Write names at least one variable")
    w.length(len(items))
    for item in items:
        item.write(w)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    variables: tuple[VariableAccess, ...]

    def encode(self) -> bytes:
        w = Writer(READ_REQUEST)
        _write_accesses(w, self.variables)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ReadRequest:
        def read(r: Reader) -> ReadRequest:
            read_tag(r, READ_REQUEST)
            return cls(_read_accesses(r))

        return decode_entry(read, buf)


@dataclass(frozen=True, slots=True)
class DataBlockResult:
    """One block of a long answer: its number, whether it is the last, and its raw part of the encoded Data."""

    last_block: bool
    block_number: int
    raw_data: bytes


ReadResult = bytes | DataAccessResult | DataBlockResult | int


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """``results[i]`` answers the request's variable i: encoded Data, a Data-Access-Result, a data block, or
    (an int) the block number a write of blocks is acknowledged with."""

    results: tuple[ReadResult, ...]

    def encode(self) -> bytes:
        w = Writer(READ_RESPONSE)
        w.length(len(self.results))
        for result in self.results:
            if isinstance(result, DataAccessResult):
                w.u8(_ERROR)
                w.u8(int(result))
            elif isinstance(result, DataBlockResult):
                w.u8(_DATA_BLOCK)
                w.boolean(result.last_block)
                w.u16(result.block_number, "block number")
                w.octet_string(result.raw_data)
            elif isinstance(result, int):
                w.u8(_RESULT_BLOCK_NUMBER)
                w.u16(result, "block number")
            else:
                w.u8(_DATA)
                w.data(bytes(result))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> ReadResponse:
        def read(r: Reader) -> ReadResponse:
            read_tag(r, READ_RESPONSE)
            results: list[ReadResult] = []
            for _ in range(r.count(2)):
                at = r.pos
                choice = r.u8("read-response choice")
                if choice == _DATA:
                    results.append(r.data())
                elif choice == _ERROR:
                    results.append(DataAccessResult(r.u8("data-access-result")))
                elif choice == _DATA_BLOCK:
                    results.append(DataBlockResult(r.boolean("last-block"), r.u16("block number"),
                                                   r.octet_string("raw-data")))
                elif choice == _RESULT_BLOCK_NUMBER:
                    results.append(r.u16("block number"))
                else:
                    raise DecodeError(f"read-response choice {choice} is not data (0), data-access-error (1), "
                                      "data-block-result (2) or block-number (3)", at)
            return cls(tuple(results))

        return decode_entry(read, buf)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    variables: tuple[VariableAccess, ...]
    values: tuple[bytes, ...]

    def encode(self) -> bytes:
        if len(self.values) != len(self.variables):
            raise EncodeError(f"{len(self.variables)} variables but {len(self.values)} values")
        w = Writer(WRITE_REQUEST)
        _write_accesses(w, self.variables)
        w.length(len(self.values))
        for value in self.values:
            w.data(value)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> WriteRequest:
        def read(r: Reader) -> WriteRequest:
            read_tag(r, WRITE_REQUEST)
            variables = _read_accesses(r)
            at = r.pos
            values = tuple(r.data() for _ in range(r.count(1)))
            if len(values) != len(variables):
                raise DecodeError(f"{len(variables)} variables but {len(values)} values", at)
            return cls(variables, values)

        return decode_entry(read, buf)


@dataclass(frozen=True, slots=True)
class WriteResponse:
    """``results[i]``: None for success, else the Data-Access-Result (an int: a block number acknowledged)."""

    results: tuple[DataAccessResult | int | None, ...]

    def encode(self) -> bytes:
        w = Writer(WRITE_RESPONSE)
        w.length(len(self.results))
        for result in self.results:
            if result is None:
                w.u8(_DATA)
            elif isinstance(result, DataAccessResult):
                w.u8(_ERROR)
                w.u8(int(result))
            else:
                w.u8(2)
                w.u16(result, "block number")
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> WriteResponse:
        def read(r: Reader) -> WriteResponse:
            read_tag(r, WRITE_RESPONSE)
            results: list[DataAccessResult | int | None] = []
            for _ in range(r.count(1)):
                at = r.pos
                choice = r.u8("write-response choice")
                if choice == 0:
                    results.append(None)
                elif choice == 1:
                    results.append(DataAccessResult(r.u8("data-access-result")))
                elif choice == 2:
                    results.append(r.u16("block number"))
                else:
                    raise DecodeError(f"write-response choice {choice} is not success (0), data-access-error (1) "
                                      "or block-number (2)", at)
            return cls(tuple(results))

        return decode_entry(read, buf)
