"""OBIS codes in both notations."""

from __future__ import annotations

import pytest

from protocols.errors import DecodeError
from protocols.obis import ObisCode


@pytest.mark.parametrize(
    "text", ["1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0.255", "1.0.1.8.0", " 1-0:1.8.0*255 "]
)
def test_both_notations(text: str) -> None:
    code = ObisCode.parse(text)
    assert code == ObisCode(1, 0, 1, 8, 0, 255)
    assert str(code) == "1.0.1.8.0.255"
    assert code.reduced == "1-0:1.8.0*255"


def test_bytes() -> None:
    clock = ObisCode.from_bytes(bytes.fromhex("0000010000ff"))
    assert str(clock) == "0.0.1.0.0.255"
    assert clock.to_bytes() == bytes.fromhex("0000010000ff")
    with pytest.raises(DecodeError):
        ObisCode.from_bytes(b"\x00" * 5)


@pytest.mark.parametrize("text", ["", "1.0.1.8", "1.0.1.8.0.256", "a.b.c.d.e.f", "1.0.1.8.0.255.1"])
def test_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        ObisCode.parse(text)
