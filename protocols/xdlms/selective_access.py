"""Selective access parameters of profile buffers: range (selector 1) and entry (selector 2) descriptors."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.axdr import Data, DataTag
from protocols.errors import DecodeError
from protocols.obis import ObisCode
from protocols.xdlms.common import SelectiveAccessDescriptor

__all__ = [
    "ENTRY_SELECTOR",
    "RANGE_SELECTOR",
    "CaptureObjectDefinition",
    "EntryDescriptor",
    "RangeDescriptor",
    "access_selection_from",
]

RANGE_SELECTOR = 1
ENTRY_SELECTOR = 2


def _field(items: tuple[Data, ...], index: int, tag: DataTag, what: str) -> Data:
    item = items[index]
    if item.tag != tag:
        raise DecodeError(f"{what} is {DataTag(item.tag).name.lower()}, expected {tag.name.lower()}")
    return item


def _members(data: Data, count: int, what: str) -> tuple[Data, ...]:
    if data.tag != DataTag.STRUCTURE or len(data.value) != count:
        raise DecodeError(f"{what} must be a structure of {count} elements")
    return tuple(data.value)


@dataclass(frozen=True, slots=True)
class CaptureObjectDefinition:
    """{class_id, logical_name, attribute_index, data_index}: one column of a profile."""

    class_id: int
    logical_name: ObisCode
    attribute_index: int
    data_index: int = 0

    def to_data(self) -> Data:
        return Data.structure(
            (
                Data.long_unsigned(self.class_id),
                Data.octet_string(bytes(self.logical_name)),
                Data.integer(self.attribute_index),
                Data.long_unsigned(self.data_index),
            )
        )

    @classmethod
    def from_data(cls, data: Data) -> CaptureObjectDefinition:
        items = _members(data, 4, "capture object definition")
        name = _field(items, 1, DataTag.OCTET_STRING, "logical_name").value
        return cls(
            _field(items, 0, DataTag.LONG_UNSIGNED, "class_id").value,
            ObisCode.from_bytes(name),
            _field(items, 2, DataTag.INTEGER, "attribute_index").value,
            _field(items, 3, DataTag.LONG_UNSIGNED, "data_index").value,
        )


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Rows whose restricting object lies between ``from_value`` and ``to_value`` (selector 1).

    An empty ``selected_values`` asks for every column.
    """

    restricting_object: CaptureObjectDefinition
    from_value: Data
    to_value: Data
    selected_values: tuple[CaptureObjectDefinition, ...] = ()

    def to_data(self) -> Data:
        return Data.structure(
            (
                self.restricting_object.to_data(),
                self.from_value,
                self.to_value,
                Data.array(column.to_data() for column in self.selected_values),
            )
        )

    @classmethod
    def from_data(cls, data: Data) -> RangeDescriptor:
        items = _members(data, 4, "range descriptor")
        columns = _field(items, 3, DataTag.ARRAY, "selected_values").value
        return cls(
            CaptureObjectDefinition.from_data(items[0]),
            items[1],
            items[2],
            tuple(CaptureObjectDefinition.from_data(column) for column in columns),
        )

    def to_access_selection(self) -> SelectiveAccessDescriptor:
        return SelectiveAccessDescriptor.from_data(RANGE_SELECTOR, self.to_data())


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """Rows ``from_entry``..``to_entry`` and columns ``from_selected_value``..``to_selected_value``
    (selector 2; entries and columns count from 1, a 0 upper bound means "to the last")."""

    from_entry: int
    to_entry: int = 0
    from_selected_value: int = 1
    to_selected_value: int = 0

    def to_data(self) -> Data:
        return Data.structure(
            (
                Data.double_long_unsigned(self.from_entry),
                Data.double_long_unsigned(self.to_entry),
                Data.long_unsigned(self.from_selected_value),
                Data.long_unsigned(self.to_selected_value),
            )
        )

    @classmethod
    def from_data(cls, data: Data) -> EntryDescriptor:
        items = _members(data, 4, "entry descriptor")
        return cls(
            _field(items, 0, DataTag.DOUBLE_LONG_UNSIGNED, "from_entry").value,
            _field(items, 1, DataTag.DOUBLE_LONG_UNSIGNED, "to_entry").value,
            _field(items, 2, DataTag.LONG_UNSIGNED, "from_selected_value").value,
            _field(items, 3, DataTag.LONG_UNSIGNED, "to_selected_value").value,
        )

    def to_access_selection(self) -> SelectiveAccessDescriptor:
        return SelectiveAccessDescriptor.from_data(ENTRY_SELECTOR, self.to_data())


def access_selection_from(selection: SelectiveAccessDescriptor) -> RangeDescriptor | EntryDescriptor:
    """The typed descriptor of an access selection (``DecodeError`` for other selectors)."""
    data = selection.parameters()
    if selection.access_selector == RANGE_SELECTOR:
        return RangeDescriptor.from_data(data)
    if selection.access_selector == ENTRY_SELECTOR:
        return EntryDescriptor.from_data(data)
    raise DecodeError(f"access selector {selection.access_selector} is neither range (1) nor entry (2)")
