"""IC 3 Register and IC 4 Extended register (Blue Book 4.3.2, 4.3.3): a value with its scaler and unit."""

from __future__ import annotations

from enum import IntEnum

from protocols.axdr import DataTag
from protocols.cosem._base import (
    Codec,
    InterfaceClass,
    any_codec,
    date_time_codec,
    int_codec,
    logical_name_codec,
)
from protocols.cosem.units import ScalerUnit

__all__ = [
    "EXTENDED_REGISTER",
    "REGISTER",
    "ExtendedRegisterAttribute",
    "ExtendedRegisterMethod",
    "RegisterAttribute",
    "RegisterMethod",
    "reset_parameter",
    "scaler_unit_codec",
]


class RegisterAttribute(IntEnum):
    LOGICAL_NAME = 1
    VALUE = 2
    SCALER_UNIT = 3


class RegisterMethod(IntEnum):
    RESET = 1


class ExtendedRegisterAttribute(IntEnum):
    LOGICAL_NAME = 1
    VALUE = 2
    SCALER_UNIT = 3
    STATUS = 4
    CAPTURE_TIME = 5


class ExtendedRegisterMethod(IntEnum):
    RESET = 1


scaler_unit_codec: Codec[ScalerUnit] = Codec(ScalerUnit.from_data, ScalerUnit.to_data)
#: The parameter of reset (and of other methods taking "data ::= integer(0)").
reset_parameter: Codec[int] = int_codec(DataTag.INTEGER, "reset data")

REGISTER = InterfaceClass(
    class_id=3,
    version=0,
    name="Register",
    attributes=RegisterAttribute,
    methods=RegisterMethod,
    attribute_codecs={
        RegisterAttribute.LOGICAL_NAME: logical_name_codec,
        RegisterAttribute.VALUE: any_codec,
        RegisterAttribute.SCALER_UNIT: scaler_unit_codec,
    },
    method_codecs={RegisterMethod.RESET: reset_parameter},
)

EXTENDED_REGISTER = InterfaceClass(
    class_id=4,
    version=0,
    name="Extended register",
    attributes=ExtendedRegisterAttribute,
    methods=ExtendedRegisterMethod,
    attribute_codecs={
        ExtendedRegisterAttribute.LOGICAL_NAME: logical_name_codec,
        ExtendedRegisterAttribute.VALUE: any_codec,
        ExtendedRegisterAttribute.SCALER_UNIT: scaler_unit_codec,
        # status is a CHOICE (bit-string, unsigned, ... as the manufacturer defines it)
        ExtendedRegisterAttribute.STATUS: any_codec,
        ExtendedRegisterAttribute.CAPTURE_TIME: date_time_codec("capture_time"),
    },
    method_codecs={ExtendedRegisterMethod.RESET: reset_parameter},
)
