"""COSEM date-time: bytes both ways, unspecified fields, deviation semantics, bad lengths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.cosem_datetime import (
    DEVIATION_NOT_SPECIFIED,
    ClockStatus,
    CosemDate,
    CosemDateTime,
    CosemTime,
)
from protocols.errors import DecodeError, EncodeError


def test_blue_book_layout() -> None:
    # 2024-03-31 02:15:30.50, Sunday, deviation -120 (CEST), daylight saving active
    raw = bytes.fromhex("07e8031f07020f1e32ff8880")
    value = CosemDateTime.decode(raw)
    assert (value.year, value.month, value.day, value.day_of_week) == (2024, 3, 31, 7)
    assert (value.hour, value.minute, value.second, value.hundredths) == (2, 15, 30, 50)
    assert value.deviation == -120
    assert value.status == ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert value.encode() == raw


def test_deviation_is_minutes_to_add_to_local_time_for_utc() -> None:
    value = CosemDateTime(2024, 7, 1, 1, 12, 0, 0, 0, -120, 0x80)
    local = value.to_datetime()
    assert local is not None
    assert local.utcoffset() == timedelta(hours=2)
    assert local.astimezone(UTC) == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)


def test_from_datetime_keeps_the_offset_and_round_trips() -> None:
    moment = datetime(2024, 1, 1, 0, 15, tzinfo=timezone(timedelta(hours=1)))
    value = CosemDateTime.from_datetime(moment)
    assert value.deviation == -60
    assert value.day_of_week == 1
    assert value.to_datetime() == moment
    utc_view = CosemDateTime.from_datetime(moment, deviation=0)
    assert (utc_view.hour, utc_view.minute, utc_view.deviation) == (23, 15, 0)
    with pytest.raises(EncodeError):
        CosemDateTime.from_datetime(datetime(2024, 1, 1))


def test_unspecified_fields() -> None:
    value = CosemDateTime.decode(bytes.fromhex("ffffffffff0000ffff8000ff"))
    assert value.to_datetime() is None
    assert value.status is None
    assert not value.deviation_specified
    assert str(value) == "****-**-** 00:00:**"
    no_deviation = CosemDateTime(2024, 1, 1, 1, 0, 0, 0, 0, DEVIATION_NOT_SPECIFIED, 0)
    assert no_deviation.to_datetime() is None
    assert no_deviation.to_datetime(default_deviation=-60) == datetime(
        2024, 1, 1, tzinfo=timezone(timedelta(hours=1))
    )
    impossible = CosemDateTime(2023, 2, 30, 0xFF, 0, 0, 0, 0, 0, 0)
    assert impossible.to_datetime() is None


def test_date_and_time() -> None:
    assert CosemDate.decode(bytes.fromhex("07e80cfeff")).to_date() is None  # last day of month
    assert str(CosemDate.decode(bytes.fromhex("07e80cfeff"))) == "2024-12-LD"
    assert CosemTime.decode(bytes.fromhex("173b3b63")).encode() == bytes.fromhex("173b3b63")
    assert CosemTime(25, 0, 0, 0).to_time() is None


@pytest.mark.parametrize("cls,size", [(CosemDateTime, 12), (CosemDate, 5), (CosemTime, 4)])
def test_wrong_lengths_are_decode_errors(cls: type, size: int) -> None:
    for length in (0, size - 1, size + 1):
        with pytest.raises(DecodeError):
            cls.decode(b"\x00" * length)


@given(st.binary(min_size=12, max_size=12))
def test_any_twelve_bytes_round_trip_and_never_crash(raw: bytes) -> None:
    value = CosemDateTime.decode(raw)
    assert value.encode() == raw
    value.to_datetime()
    str(value)


def test_out_of_range_fields_are_encode_errors() -> None:
    with pytest.raises(EncodeError):
        CosemDateTime(2024, 256).encode()
