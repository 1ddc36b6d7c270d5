"""COSEM interface-class models (Blue Book, IEC 62056-6-2): ids, attribute codecs, typed profile rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocols.axdr import Data
from protocols.cosem._base import Codec, InterfaceClass
from protocols.cosem.association import ASSOCIATION_LN, ObjectListElement
from protocols.cosem.clock import CLOCK
from protocols.cosem.data import DATA
from protocols.cosem.disconnect import DISCONNECT_CONTROL, ControlMode, ControlState, DisconnectControlMachine
from protocols.cosem.profile import (
    PROFILE_GENERIC,
    CaptureObjectDefinition,
    ProfileColumn,
    ProfileRow,
    columns_for,
    parse_profile_buffer,
    profile_rows_from_data,
)
from protocols.cosem.register import EXTENDED_REGISTER, REGISTER
from protocols.cosem.security_setup import SECURITY_SETUP
from protocols.cosem.units import ScalerUnit, Unit, apply_scaler, unit_symbol
from protocols.errors import DecodeError, EncodeError

__all__ = [
    "ASSOCIATION_LN",
    "CLOCK",
    "DATA",
    "DISCONNECT_CONTROL",
    "EXTENDED_REGISTER",
    "INTERFACE_CLASSES",
    "PROFILE_GENERIC",
    "REGISTER",
    "SECURITY_SETUP",
    "CaptureObjectDefinition",
    "Codec",
    "ControlMode",
    "ControlState",
    "DisconnectControlMachine",
    "InterfaceClass",
    "ObjectListElement",
    "ProfileColumn",
    "ProfileRow",
    "ScalerUnit",
    "Unit",
    "apply_scaler",
    "attribute_from_data",
    "attribute_to_data",
    "columns_for",
    "parse_profile_buffer",
    "profile_rows_from_data",
    "unit_symbol",
]

#: The modelled interface classes by class id.
INTERFACE_CLASSES: Mapping[int, InterfaceClass] = {
    ic.class_id: ic
    for ic in (
        DATA,
        REGISTER,
        EXTENDED_REGISTER,
        PROFILE_GENERIC,
        CLOCK,
        ASSOCIATION_LN,
        SECURITY_SETUP,
        DISCONNECT_CONTROL,
    )
}


def attribute_from_data(class_id: int, attribute_id: int, data: Data) -> Any:
    """Parse an attribute of any modelled class; ``DecodeError`` for unknown ids or a wrong shape."""
    ic = INTERFACE_CLASSES.get(class_id)
    if ic is None:
        raise DecodeError(f"interface class {class_id} is not modelled")
    return ic.attribute_from_data(attribute_id, data)


def attribute_to_data(class_id: int, attribute_id: int, value: Any) -> Data:
    ic = INTERFACE_CLASSES.get(class_id)
    if ic is None:
        raise EncodeError(f"interface class {class_id} is not modelled")
    return ic.attribute_to_data(attribute_id, value)
