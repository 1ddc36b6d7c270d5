"""OBIS codes (IEC 62056-6-1): six value groups A-F, parsed from and printed in both usual notations."""

from __future__ import annotations

import re
from typing import NamedTuple

from protocols.errors import DecodeError

__all__ = ["ObisCode"]

# "1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0.255", "1.0.1.8.0" (F defaults to 255)
_PATTERN = re.compile(
    r"^\s*(\d{1,3})[.-](\d{1,3})[.:](\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[.*&](\d{1,3}))?\s*$"
)


class ObisCode(NamedTuple):
    """An OBIS code; ``str()`` gives the dotted form ``1.0.1.8.0.255``."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    @classmethod
    def parse(cls, text: str) -> ObisCode:
        """Parse ``1.0.1.8.0.255`` or ``1-0:1.8.0*255`` (F may be left out: 255)."""
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError(f"not an OBIS code: {text!r}")
        groups = [int(g) if g is not None else 255 for g in match.groups()]
        if any(g > 255 for g in groups):
            raise ValueError(f"OBIS value group above 255: {text!r}")
        return cls(*groups)

    @classmethod
    def from_bytes(cls, data: bytes) -> ObisCode:
        if len(data) != 6:
            raise DecodeError(f"an OBIS code has 6 bytes, got {len(data)}")
        return cls(*data)

    def to_bytes(self) -> bytes:
        return bytes(self)

    @property
    def reduced(self) -> str:
        """The IEC 62056-6-1 reduced form, ``1-0:1.8.0*255``."""
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"

    def __str__(self) -> str:
        return f"{self.a}.{self.b}.{self.c}.{self.d}.{self.e}.{self.f}"
