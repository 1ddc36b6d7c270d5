"""Byte vectors of COSEM attribute values and profile buffers, with where each comes from.

Each entry is (name, source, hex, expected). "Constructed" means the bytes were written here
from the type definitions of the Blue Book (IEC 62056-6-2), not copied from a published example.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from protocols.cosem.association import AttributeAccessItem, MethodAccessItem, ObjectListElement
from protocols.cosem.units import ScalerUnit, Unit
from protocols.cosem_datetime import CosemDateTime
from protocols.obis import ObisCode

__all__ = ["ATTRIBUTE_VECTORS", "PROFILE_VECTORS"]

_CET = timezone(timedelta(hours=1))
_T0 = datetime(2019, 12, 31, 23, 0, tzinfo=_CET)
_HOUR = timedelta(hours=1)

#: (name, source, hex of the encoded Data, (class_id, attribute_id, expected parsed value))
ATTRIBUTE_VECTORS = [
    (
        "register scaler_unit 10^-1 Wh",
        "constructed from Blue Book (IEC 62056-6-2) 4.3.2 scal_unit_type: structure{integer, enum}",
        "0202 0fff 161e",
        (3, 3, ScalerUnit(-1, Unit.WATT_HOUR)),
    ),
    (
        "register scaler_unit 10^3 varh",
        "constructed from Blue Book (IEC 62056-6-2) 4.3.2 scal_unit_type",
        "0202 0f03 1620",
        (3, 3, ScalerUnit(3, Unit.VAR_HOUR)),
    ),
    (
        "clock time 2019-12-31 23:00 deviation -60",
        "first capture time of the profile buffer in the dlms-cosem test suite (tests/test_parsers.py, "
        "bytes read from a meter)",
        "090c 07e30c1f02170000 00ffc400",
        (8, 2, CosemDateTime(2019, 12, 31, 2, 23, 0, 0, 0, -60, 0)),
    ),
    (
        "disconnect control_state ready_for_reconnection",
        "constructed from Blue Book (IEC 62056-6-2) 4.5.8 control_state: enum",
        "1602",
        (70, 3, 2),
    ),
    (
        "object_list with one register",
        "constructed from Blue Book (IEC 62056-6-2) 4.4.3 object_list_element",
        "0101 0204 1200 03 1100 0906 0100010800ff 0202"
        " 0103 0203 0f01 1601 00  0203 0f02 1601 00  0203 0f03 1601 00"
        " 0101 0202 0f01 1601",
        (
            15,
            2,
            (
                ObjectListElement(
                    3,
                    0,
                    ObisCode(1, 0, 1, 8, 0, 255),
                    (AttributeAccessItem(1, 1), AttributeAccessItem(2, 1), AttributeAccessItem(3, 1)),
                    (MethodAccessItem(1, 1),),
                ),
            ),
        ),
    ),
]

#: (name, source, hex of the buffer, (capture objects as (class, OBIS, attribute), capture period
#: in seconds, expected rows as (time, status, values, time_filled)))
PROFILE_VECTORS = [
    (
        "compressed hourly profile, null capture times after the first",
        "dlms-cosem test suite, tests/test_parsers.py test_parse_buffer (bytes read from a meter); "
        "capture period 60 min as given there",
        "0104"
        "0204 090c07e30c1f0217000000ffc400 1106 0600 0005ed 0600 000654"
        "0204 00 1106 0600 0005ed 0600 000654"
        "0204 00 1106 0600 0005ed 0600 000654"
        "0204 00 1106 0600 0005ed 0600 000654",
        (
            (
                (8, "0.0.1.0.0.255", 2),
                (1, "0.0.96.10.1.255", 2),
                (3, "1.0.1.8.0.255", 2),
                (3, "1.0.2.8.0.255", 2),
            ),
            3600,
            [
                (_T0, 6, (_T0, 6, 1517, 1620), False),
                (_T0 + _HOUR, 6, (_T0 + _HOUR, 6, 1517, 1620), True),
                (_T0 + 2 * _HOUR, 6, (_T0 + 2 * _HOUR, 6, 1517, 1620), True),
                (_T0 + 3 * _HOUR, 6, (_T0 + 3 * _HOUR, 6, 1517, 1620), True),
            ],
        ),
    ),
]
