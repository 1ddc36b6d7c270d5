"""IC 8 Clock (Blue Book 4.5.1): the meter's time, time zone, daylight saving and clock base."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.axdr import Data, DataTag
from protocols.cosem._base import (
    Codec,
    InterfaceClass,
    bool_codec,
    date_time_codec,
    date_time_to_data,
    enum_codec,
    expect_date_time,
    expect_structure,
    int_codec,
    logical_name_codec,
)
from protocols.cosem.register import reset_parameter
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import EncodeError

__all__ = [
    "CLOCK",
    "ClockAttribute",
    "ClockBase",
    "ClockMethod",
    "PresetAdjustingTime",
]


class ClockAttribute(IntEnum):
    LOGICAL_NAME = 1
    TIME = 2
    TIME_ZONE = 3
    STATUS = 4
    DAYLIGHT_SAVINGS_BEGIN = 5
    DAYLIGHT_SAVINGS_END = 6
    DAYLIGHT_SAVINGS_DEVIATION = 7
    DAYLIGHT_SAVINGS_ENABLED = 8
    CLOCK_BASE = 9


class ClockMethod(IntEnum):
    ADJUST_TO_QUARTER = 1
    ADJUST_TO_MEASURING_PERIOD = 2
    ADJUST_TO_MINUTE = 3
    ADJUST_TO_PRESET_TIME = 4
    PRESET_ADJUSTING_TIME = 5
    SHIFT_TIME = 6


class ClockBase(IntEnum):
    NOT_DEFINED = 0
    INTERNAL_CRYSTAL = 1
    MAINS_50_HZ = 2
    MAINS_60_HZ = 3
    GPS = 4
    RADIO_CONTROLLED = 5


@dataclass(frozen=True, slots=True)
class PresetAdjustingTime:
    """Parameter of preset_adjusting_time: the time to set, valid within an interval."""

    preset_time: CosemDateTime
    validity_interval_start: CosemDateTime
    validity_interval_end: CosemDateTime

    @classmethod
    def from_data(cls, data: Data) -> PresetAdjustingTime:
        members = expect_structure(data, 3, "preset_adjusting_time")
        return cls(
            expect_date_time(members[0], "preset_time"),
            expect_date_time(members[1], "validity_interval_start"),
            expect_date_time(members[2], "validity_interval_end"),
        )

    def to_data(self) -> Data:
        return Data(
            DataTag.STRUCTURE,
            (
                date_time_to_data(self.preset_time),
                date_time_to_data(self.validity_interval_start),
                date_time_to_data(self.validity_interval_end),
            ),
        )


def _shift_to_data(seconds: int) -> Data:
    # The Blue Book limits a shift to +-900 s.
    if not isinstance(seconds, int) or not -900 <= seconds <= 900:
        raise EncodeError(f"shift_time takes -900..900 seconds, got {seconds!r}")
    return Data(DataTag.LONG, seconds)


_SHIFT_TIME: Codec[int] = Codec(int_codec(DataTag.LONG, "shift_time").from_data, _shift_to_data)

CLOCK = InterfaceClass(
    class_id=8,
    version=0,
    name="Clock",
    attributes=ClockAttribute,
    methods=ClockMethod,
    attribute_codecs={
        ClockAttribute.LOGICAL_NAME: logical_name_codec,
        ClockAttribute.TIME: date_time_codec("time"),
        # minutes of deviation of local time from UTC (sign per the Blue Book edition; see cosem_datetime)
        ClockAttribute.TIME_ZONE: int_codec(DataTag.LONG, "time_zone"),
        ClockAttribute.STATUS: int_codec(DataTag.UNSIGNED, "status"),
        ClockAttribute.DAYLIGHT_SAVINGS_BEGIN: date_time_codec("daylight_savings_begin"),
        ClockAttribute.DAYLIGHT_SAVINGS_END: date_time_codec("daylight_savings_end"),
        ClockAttribute.DAYLIGHT_SAVINGS_DEVIATION: int_codec(DataTag.INTEGER, "daylight_savings_deviation"),
        ClockAttribute.DAYLIGHT_SAVINGS_ENABLED: bool_codec("daylight_savings_enabled"),
        ClockAttribute.CLOCK_BASE: enum_codec(ClockBase, "clock_base"),
    },
    method_codecs={
        ClockMethod.ADJUST_TO_QUARTER: reset_parameter,
        ClockMethod.ADJUST_TO_MEASURING_PERIOD: reset_parameter,
        ClockMethod.ADJUST_TO_MINUTE: reset_parameter,
        ClockMethod.ADJUST_TO_PRESET_TIME: reset_parameter,
        ClockMethod.PRESET_ADJUSTING_TIME: Codec(PresetAdjustingTime.from_data, PresetAdjustingTime.to_data),
        ClockMethod.SHIFT_TIME: _SHIFT_TIME,
    },
)
