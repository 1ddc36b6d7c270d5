"""COSEM date, time and date-time (Blue Book, IEC 62056-6-2 4.1.6.1) with their unspecified fields.

Deviation follows the classic Blue Book convention: minutes to add to the local time to get UTC,
so Central European Summer Time has deviation -120. ``to_datetime`` therefore gives an aware
datetime whose UTC offset is ``-deviation`` minutes: the meter's own offset is kept, and
``.astimezone(UTC)`` normalises it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import IntFlag
from functools import lru_cache

from protocols.errors import DecodeError, EncodeError

__all__ = [
    "DEVIATION_NOT_SPECIFIED",
    "NOT_SPECIFIED",
    "ClockStatus",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "offset_timezone",
]

#: Marker of an unspecified one-byte field.
NOT_SPECIFIED = 0xFF
#: Marker of an unspecified deviation (0x8000 as an int16).
DEVIATION_NOT_SPECIFIED = -0x8000
_YEAR_NOT_SPECIFIED = 0xFFFF
_MONTH_DST_END = 0xFD
_MONTH_DST_BEGIN = 0xFE
_DAY_SECOND_LAST = 0xFD
_DAY_LAST = 0xFE

_DATE_TIME = struct.Struct(">HBBBBBBBhB")
_DATE = struct.Struct(">HBBB")
_TIME = struct.Struct(">BBBB")


class ClockStatus(IntFlag):
    """Clock status bits of a date-time (Blue Book 4.1.6.1)."""

    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


@lru_cache(maxsize=256)
def offset_timezone(deviation: int) -> timezone:
    """The fixed-offset time zone of a COSEM deviation (UTC = local + deviation)."""
    if deviation == 0:
        return UTC
    return timezone(timedelta(minutes=-deviation))


@dataclass(frozen=True, slots=True)
class CosemDate:
    """A COSEM date: 5 bytes; 0xFF (0xFFFF for the year) marks an unspecified field."""

    year: int = _YEAR_NOT_SPECIFIED
    month: int = NOT_SPECIFIED
    day: int = NOT_SPECIFIED
    day_of_week: int = NOT_SPECIFIED

    @classmethod
    def decode(cls, data: bytes) -> CosemDate:
        if len(data) != 5:
            raise DecodeError(f"a COSEM date has 5 bytes, got {len(data)}")
        return cls(*_DATE.unpack(data))

    def encode(self) -> bytes:
        try:
            return _DATE.pack(self.year, self.month, self.day, self.day_of_week)
        except struct.error as exc:
            raise EncodeError(f"COSEM date field out of range: {exc}") from None

    @classmethod
    def from_date(cls, value: date) -> CosemDate:
        return cls(value.year, value.month, value.day, value.isoweekday())

    @property
    def is_specified(self) -> bool:
        """True when year, month and day are plain values (no wildcard, no DST marker)."""
        return self.year != _YEAR_NOT_SPECIFIED and 1 <= self.month <= 12 and 1 <= self.day <= 31

    def to_date(self) -> date | None:
        """The calendar date, or None when a field is unspecified or out of range."""
        if not self.is_specified:
            return None
        try:
            return date(self.year, self.month, self.day)
        except ValueError:
            return None

    def __str__(self) -> str:
        return _fmt_date(self.year, self.month, self.day)


@dataclass(frozen=True, slots=True)
class CosemTime:
    """A COSEM time: 4 bytes (hour, minute, second, hundredths); 0xFF marks an unspecified field."""

    hour: int = NOT_SPECIFIED
    minute: int = NOT_SPECIFIED
    second: int = NOT_SPECIFIED
    hundredths: int = NOT_SPECIFIED

    @classmethod
    def decode(cls, data: bytes) -> CosemTime:
        if len(data) != 4:
            raise DecodeError(f"a COSEM time has 4 bytes, got {len(data)}")
        return cls(data[0], data[1], data[2], data[3])

    def encode(self) -> bytes:
        try:
            return _TIME.pack(self.hour, self.minute, self.second, self.hundredths)
        except struct.error as exc:
            raise EncodeError(f"COSEM time field out of range: {exc}") from None

    @classmethod
    def from_time(cls, value: time) -> CosemTime:
        return cls(value.hour, value.minute, value.second, value.microsecond // 10000)

    def to_time(self) -> time | None:
        """The time of day, unspecified seconds and hundredths read as 0; None when hour or minute are."""
        if self.hour > 23 or self.minute > 59:
            return None
        second = 0 if self.second == NOT_SPECIFIED else self.second
        hundredths = 0 if self.hundredths == NOT_SPECIFIED else self.hundredths
        if second > 59 or hundredths > 99:
            return None
        return time(self.hour, self.minute, second, hundredths * 10000)

    def __str__(self) -> str:
        return _fmt_time(self.hour, self.minute, self.second, self.hundredths)


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """A COSEM date-time: 12 bytes, every field possibly unspecified.

    Values are kept as they came (wildcards included) so that encode(decode(b)) == b.
    """

    year: int = _YEAR_NOT_SPECIFIED
    month: int = NOT_SPECIFIED
    day: int = NOT_SPECIFIED
    day_of_week: int = NOT_SPECIFIED
    hour: int = NOT_SPECIFIED
    minute: int = NOT_SPECIFIED
    second: int = NOT_SPECIFIED
    hundredths: int = NOT_SPECIFIED
    deviation: int = DEVIATION_NOT_SPECIFIED
    clock_status: int = NOT_SPECIFIED

    @classmethod
    def decode(cls, data: bytes) -> CosemDateTime:
        if len(data) != 12:
            raise DecodeError(f"a COSEM date-time has 12 bytes, got {len(data)}")
        return cls(*_DATE_TIME.unpack(data))

    def encode(self) -> bytes:
        try:
            return _DATE_TIME.pack(
                self.year,
                self.month,
                self.day,
                self.day_of_week,
                self.hour,
                self.minute,
                self.second,
                self.hundredths,
                self.deviation,
                self.clock_status,
            )
        except struct.error as exc:
            raise EncodeError(f"COSEM date-time field out of range: {exc}") from None

    @classmethod
    def from_datetime(
        cls, value: datetime, *, deviation: int | None = None, clock_status: int = 0
    ) -> CosemDateTime:
        """Encode an aware datetime as local time with a deviation.

        Without ``deviation`` the datetime's own UTC offset is used (UTC = local + deviation).
        A naive datetime needs an explicit ``deviation``.
        """
        if deviation is None:
            offset = value.utcoffset()
            if offset is None:
                raise EncodeError("a naive datetime needs an explicit deviation")
            deviation = -int(offset.total_seconds() // 60)
        elif value.tzinfo is not None:
            value = value.astimezone(offset_timezone(deviation))
        return cls(
            value.year,
            value.month,
            value.day,
            value.isoweekday(),
            value.hour,
            value.minute,
            value.second,
            value.microsecond // 10000,
            deviation,
            clock_status,
        )

    @property
    def date(self) -> CosemDate:
        return CosemDate(self.year, self.month, self.day, self.day_of_week)

    @property
    def time(self) -> CosemTime:
        return CosemTime(self.hour, self.minute, self.second, self.hundredths)

    @property
    def status(self) -> ClockStatus | None:
        """Clock status flags, None when the status is unspecified."""
        return None if self.clock_status == NOT_SPECIFIED else ClockStatus(self.clock_status)

    @property
    def deviation_specified(self) -> bool:
        return self.deviation != DEVIATION_NOT_SPECIFIED

    def to_datetime(self, default_deviation: int | None = None) -> datetime | None:
        """The instant as an aware datetime at the meter's own offset, or None if not a full instant.

        ``default_deviation`` stands in when the meter left the deviation unspecified; with neither,
        the result is None (the instant is not known). Unspecified seconds and hundredths read as 0.
        """
        d = self.date.to_date()
        t = self.time.to_time()
        if d is None or t is None:
            return None
        deviation = self.deviation if self.deviation != DEVIATION_NOT_SPECIFIED else default_deviation
        if deviation is None or not -720 <= deviation <= 720:
            return None
        return datetime.combine(d, t, offset_timezone(deviation))

    def __str__(self) -> str:
        text = f"{_fmt_date(self.year, self.month, self.day)} " + _fmt_time(
            self.hour, self.minute, self.second, self.hundredths
        )
        if self.deviation != DEVIATION_NOT_SPECIFIED:
            offset = -self.deviation
            sign = "+" if offset >= 0 else "-"
            text += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        return text


def _fmt_field(value: int, width: int, unspecified: int) -> str:
    return "*" * width if value == unspecified else f"{value:0{width}d}"


def _fmt_date(year: int, month: int, day: int) -> str:
    month_text = {_MONTH_DST_END: "DE", _MONTH_DST_BEGIN: "DB"}.get(month) or _fmt_field(
        month, 2, NOT_SPECIFIED
    )
    day_text = {_DAY_SECOND_LAST: "L2", _DAY_LAST: "LD"}.get(day) or _fmt_field(day, 2, NOT_SPECIFIED)
    return f"{_fmt_field(year, 4, _YEAR_NOT_SPECIFIED)}-{month_text}-{day_text}"


def _fmt_time(hour: int, minute: int, second: int, hundredths: int) -> str:
    text = (
        f"{_fmt_field(hour, 2, NOT_SPECIFIED)}:{_fmt_field(minute, 2, NOT_SPECIFIED)}:"
        f"{_fmt_field(second, 2, NOT_SPECIFIED)}"
    )
    if hundredths not in (0, NOT_SPECIFIED):
        text += f".{hundredths:02d}"
    return text
