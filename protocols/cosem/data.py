"""IC 1 Data (Blue Book 4.3.1): a value of any type under a logical name."""

from __future__ import annotations

from enum import IntEnum

from protocols.cosem._base import InterfaceClass, any_codec, logical_name_codec

__all__ = ["DATA", "DataAttribute"]


class DataAttribute(IntEnum):
    LOGICAL_NAME = 1
    VALUE = 2


DATA = InterfaceClass(
    class_id=1,
    version=0,
    name="Data",
    attributes=DataAttribute,
    methods=None,
    attribute_codecs={DataAttribute.LOGICAL_NAME: logical_name_codec, DataAttribute.VALUE: any_codec},
    method_codecs={},
)
