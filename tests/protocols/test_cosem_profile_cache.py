"""The fast profile path caches capture times by their bytes: the rows must not depend on the cache."""

from __future__ import annotations

import pytest

import protocols.cosem.profile as profile_module
from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.cosem.profile import ProfileColumn, columns_for, parse_profile_buffer, profile_rows_from_data
from protocols.cosem_datetime import CosemDateTime
from tests.protocols.test_cosem_profile import A_MINUS, A_PLUS, CLOCK, STATUS, _same

_CLOCKS = [
    CosemDateTime(2024, 3, 1, 5, 0, 15, 0, 0, -60, 0),
    CosemDateTime(2024, 3, 1, 5, 0, 30, 0, 0, -60, 0),
    CosemDateTime(2024, 2, 30, 0xFF, 1, 0, 0, 0, -60, 0),  # no such day
    CosemDateTime(2024, 3, 1, 5, 1, 0xFF, 0xFF, 0xFF, 0, 0),  # unspecified seconds
    CosemDateTime(2024, 3, 1, 5, 1, 0, 0, 0, -0x8000, 0),  # unspecified deviation
    CosemDateTime(2024, 3, 1, 5, 1, 0, 0, 0, 800, 0),  # deviation out of range
    CosemDateTime(2024, 3, 1, 5, 1, 0, 0, 0, 333, 0),  # an odd deviation
    CosemDateTime(0xFFFF, 0xFE, 0xFF, 0xFF, 2, 0, 0, 0, -120, 0x80),
    CosemDateTime(2024, 3, 1, 5, 0, 15, 0, 0, -60, 0),  # the first again
]


def _buffer(status: Data, tag: DataTag = DataTag.OCTET_STRING) -> bytes:
    """Same-shaped rows (the fast path) whose clocks include wildcards and odd deviations."""
    rows = []
    for i, when in enumerate(_CLOCKS):
        clock = Data.octet_string(when.encode()) if tag == DataTag.OCTET_STRING else Data(tag, when)
        rows.append(Data.structure([clock, status, Data.double_long_unsigned(i), Data.long_unsigned(7)]))
    return encode_data(Data.array(rows))


def _check(raw: bytes, columns: list[ProfileColumn]) -> None:
    expected = profile_rows_from_data(decode_data_exact(raw), columns, 900)
    for _ in range(2):  # cold, then from the cache
        _same(parse_profile_buffer(raw, columns, 900), expected)


@pytest.mark.parametrize("tag", [DataTag.OCTET_STRING, DataTag.DATE_TIME])
@pytest.mark.parametrize("status", [Data.unsigned(8), Data.boolean(True), Data.octet_string(b"\x01")])
def test_cached_capture_times_match_the_generic_path(
    monkeypatch: pytest.MonkeyPatch, status: Data, tag: DataTag
) -> None:
    monkeypatch.setattr(profile_module, "_CAPTURE_TIMES", {})
    _check(_buffer(status, tag), columns_for([CLOCK, STATUS, A_PLUS, A_MINUS]))


def test_a_full_cache_is_emptied_and_the_rows_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_module, "_CAPTURE_TIMES", {})
    monkeypatch.setattr(profile_module, "_CAPTURE_TIMES_MAX", 3)
    columns = columns_for([CLOCK, STATUS, A_PLUS, A_MINUS])
    _check(_buffer(Data.unsigned(0)), columns)
    assert len(profile_module._CAPTURE_TIMES) <= len(_CLOCKS)
    # Some stamps cached, more new ones than room: the cache is emptied and every row still decodes.
    profile_module._CAPTURE_TIMES.clear()
    monkeypatch.setattr(profile_module, "_CAPTURE_TIMES_MAX", 4)
    first_two = encode_data(Data.array(decode_data_exact(_buffer(Data.unsigned(0))).value[:2]))
    _check(first_two, columns)
    _check(_buffer(Data.unsigned(0)), columns)


def test_rows_without_a_clock_or_without_columns() -> None:
    raw = encode_data(Data.array([Data.structure([Data.double_long_unsigned(i), Data.long_unsigned(1)])
                                  for i in range(5)]))
    _check(raw, columns_for([A_PLUS, A_MINUS]))
    empty = encode_data(Data.array([Data.structure([]) for _ in range(3)]))
    _check(empty, [])
