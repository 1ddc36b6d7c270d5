"""Shared pieces of the interface-class models: attribute codecs and strict Data shape checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

from protocols.axdr import Data, DataTag
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, EncodeError
from protocols.obis import ObisCode

__all__ = [
    "INTEGER_TAGS",
    "Codec",
    "InterfaceClass",
    "any_codec",
    "bool_codec",
    "date_time_codec",
    "enum_codec",
    "expect_array",
    "expect_bool",
    "expect_date_time",
    "expect_int",
    "expect_obis",
    "expect_octets",
    "expect_structure",
    "expect_text",
    "int_codec",
    "logical_name_codec",
    "obis_to_data",
    "octets_codec",
    "date_time_to_data",
]

T = TypeVar("T")

#: Tags whose value is a Python int (enum and bcd included).
INTEGER_TAGS = frozenset(
    {
        DataTag.DOUBLE_LONG,
        DataTag.DOUBLE_LONG_UNSIGNED,
        DataTag.INTEGER,
        DataTag.LONG,
        DataTag.UNSIGNED,
        DataTag.LONG_UNSIGNED,
        DataTag.LONG64,
        DataTag.LONG64_UNSIGNED,
        DataTag.ENUM,
        DataTag.BCD,
    }
)


def _describe(data: object) -> str:
    if isinstance(data, Data):
        try:
            return DataTag(data.tag).name.lower()
        except ValueError:
            return f"tag {data.tag!r}"
    return type(data).__name__


def _check(data: object, tag: DataTag, kind: type | tuple[type, ...], what: str) -> Any:
    # A hand-built Data may carry a value that does not match its tag: check both.
    if not isinstance(data, Data) or data.tag != tag or not isinstance(data.value, kind):
        raise DecodeError(f"{what}: expected {tag.name.lower()}, got {_describe(data)}")
    return data.value


def expect_structure(data: object, size: int | None, what: str) -> tuple[Data, ...]:
    """The members of a structure, checking their count when ``size`` is given."""
    items: tuple[Data, ...] = _check(data, DataTag.STRUCTURE, tuple, what)
    if size is not None and len(items) != size:
        raise DecodeError(f"{what}: expected a structure of {size} members, got {len(items)}")
    return items


def expect_array(data: object, what: str) -> tuple[Data, ...]:
    items: tuple[Data, ...] = _check(data, DataTag.ARRAY, tuple, what)
    return items


def expect_int(data: object, what: str, tags: frozenset[DataTag] | DataTag = INTEGER_TAGS) -> int:
    """An integer value; ``tags`` limits the accepted integer types."""
    allowed = frozenset({tags}) if isinstance(tags, DataTag) else tags
    if (
        not isinstance(data, Data)
        or data.tag not in allowed
        or not isinstance(data.value, int)
        or isinstance(data.value, bool)
    ):
        names = "/".join(sorted(t.name.lower() for t in allowed))
        raise DecodeError(f"{what}: expected {names}, got {_describe(data)}")
    return data.value


def expect_bool(data: object, what: str) -> bool:
    value: bool = _check(data, DataTag.BOOLEAN, bool, what)
    return value


def expect_octets(data: object, what: str, size: int | None = None) -> bytes:
    value: bytes = _check(data, DataTag.OCTET_STRING, bytes, what)
    if size is not None and len(value) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(value)}")
    return value


def expect_text(data: object, what: str) -> str:
    """A visible-string or utf8-string."""
    if isinstance(data, Data) and data.tag == DataTag.UTF8_STRING and isinstance(data.value, str):
        return data.value
    value: str = _check(data, DataTag.VISIBLE_STRING, str, what)
    return value


def expect_obis(data: object, what: str = "logical_name") -> ObisCode:
    return ObisCode(*expect_octets(data, what, 6))


def obis_to_data(value: ObisCode) -> Data:
    if not isinstance(value, tuple) or len(value) != 6 or not all(0 <= int(v) <= 255 for v in value):
        raise EncodeError(f"not an OBIS code: {value!r}")
    return Data(DataTag.OCTET_STRING, bytes(value))


def expect_date_time(data: object, what: str) -> CosemDateTime:
    """A date-time, as the usual octet-string of 12 bytes or as the date-time type."""
    if isinstance(data, Data) and data.tag == DataTag.DATE_TIME and isinstance(data.value, CosemDateTime):
        return data.value
    return CosemDateTime.decode(expect_octets(data, what, 12))


def date_time_to_data(value: CosemDateTime) -> Data:
    if not isinstance(value, CosemDateTime):
        raise EncodeError(f"expected a CosemDateTime, got {type(value).__name__}")
    return Data(DataTag.OCTET_STRING, value.encode())


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    """How one attribute (or method parameter) goes from ``Data`` to a Python value and back."""

    from_data: Callable[[Data], T]
    to_data: Callable[[T], Data]


def _int_to(tag: DataTag) -> Callable[[int], Data]:
    def encode(value: int) -> Data:
        if not isinstance(value, int) or isinstance(value, bool):
            raise EncodeError(f"{tag.name.lower()} needs an int, got {value!r}")
        return Data(tag, int(value))

    return encode


def int_codec(tag: DataTag, what: str) -> Codec[int]:
    """An integer of exactly one type (the type the standard gives the attribute)."""
    return Codec(lambda data: expect_int(data, what, tag), _int_to(tag))


E = TypeVar("E", bound=IntEnum)


def enum_codec(kind: type[E], what: str) -> Codec[int]:
    """An enum attribute: known values come back as ``kind`` members, others as plain ints."""

    def decode(data: Data) -> int:
        raw = expect_int(data, what, DataTag.ENUM)
        try:
            return kind(raw)
        except ValueError:
            return raw

    return Codec(decode, _int_to(DataTag.ENUM))


def _bool_to(value: bool) -> Data:
    return Data(DataTag.BOOLEAN, bool(value))


def bool_codec(what: str) -> Codec[bool]:
    return Codec(lambda data: expect_bool(data, what), _bool_to)


def _octets_to(value: bytes) -> Data:
    if not isinstance(value, (bytes, bytearray)):
        raise EncodeError(f"octet-string needs bytes, got {type(value).__name__}")
    return Data(DataTag.OCTET_STRING, bytes(value))


def octets_codec(what: str, size: int | None = None) -> Codec[bytes]:
    return Codec(lambda data: expect_octets(data, what, size), _octets_to)


def date_time_codec(what: str) -> Codec[CosemDateTime]:
    return Codec(lambda data: expect_date_time(data, what), date_time_to_data)


def _any_from(data: Data) -> Data:
    if not isinstance(data, Data):
        raise DecodeError(f"expected Data, got {type(data).__name__}")
    return data


def _any_to(value: Data) -> Data:
    if not isinstance(value, Data):
        raise EncodeError(f"expected Data, got {type(value).__name__}")
    return value


#: A CHOICE attribute (a register's value): the Data itself.
any_codec: Codec[Data] = Codec(_any_from, _any_to)
logical_name_codec: Codec[ObisCode] = Codec(expect_obis, obis_to_data)


def _guarded(codec: Codec[T], data: Data, what: str) -> T:
    # Parsers check shapes themselves; this catches what a hand-built, ill-typed Data could still
    # provoke (a member that is not a Data at all), so callers only ever see DecodeError.
    try:
        return codec.from_data(data)
    except DecodeError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise DecodeError(f"{what}: malformed data ({exc})") from None


@dataclass(frozen=True, slots=True)
class InterfaceClass:
    """One COSEM interface class: its id, version, attribute and method ids and their codecs."""

    class_id: int
    version: int
    name: str
    attributes: type[IntEnum]
    methods: type[IntEnum] | None
    attribute_codecs: Mapping[int, Codec[Any]]
    method_codecs: Mapping[int, Codec[Any]]

    def attribute_from_data(self, attribute_id: int, data: Data) -> Any:
        """Parse an attribute's value; ``DecodeError`` for an unknown attribute or a wrong shape."""
        codec = self.attribute_codecs.get(attribute_id)
        if codec is None:
            raise DecodeError(f"{self.name} has no attribute {attribute_id}")
        return _guarded(codec, data, f"{self.name} attribute {attribute_id}")

    def attribute_to_data(self, attribute_id: int, value: Any) -> Data:
        codec = self.attribute_codecs.get(attribute_id)
        if codec is None:
            raise EncodeError(f"{self.name} has no attribute {attribute_id}")
        return codec.to_data(value)

    def method_from_data(self, method_id: int, data: Data) -> Any:
        """Parse a method's invocation parameter."""
        codec = self.method_codecs.get(method_id)
        if codec is None:
            raise DecodeError(f"{self.name} has no method {method_id}")
        return _guarded(codec, data, f"{self.name} method {method_id}")

    def method_to_data(self, method_id: int, value: Any) -> Data:
        codec = self.method_codecs.get(method_id)
        if codec is None:
            raise EncodeError(f"{self.name} has no method {method_id}")
        return codec.to_data(value)
