"""How long to wait for an answer, by the link the exchange crosses: PLC, RF, or IP only.

An exchange the DC answers itself (its management logical device, or its tables of concentrated
data) crosses only the WAN, like a point-to-point meter's: seconds. An exchange tunnelled through
the DC's gateway crosses the DC's PLC or RF network too, where one APDU takes seconds and a large
answer comes back in many blocks, each crossing again: G3-PLC gateway reads of a load profile take
about a minute, and the use case's on-demand reads through a DC answer in one to five minutes. The
response deadline (per APDU awaited) is therefore per link: ``Deadlines.for_exchange``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_DEADLINES", "MEDIA", "READ_MODES", "DeadlineError", "Deadlines", "Medium", "ReadMode"]

#: The DC's network towards its meters.
Medium = Literal["plc", "rf"]
MEDIA: tuple[Medium, ...] = ("plc", "rf")
#: How a meter behind a DC is read. "concentrated" (cached): the DC's tables of what it collected on its
#: own schedule, an association with the DC's logical device for that meter, with the DC's security,
#: answered at once over the WAN; N2PLoad reads so. "gateway" (tunnelled): the meter's own association,
#: end to end with the meter's security, carried over the PLC/RF network live; on-demand reads and
#: commands (a relay order must reach the meter itself) go so.
ReadMode = Literal["gateway", "concentrated"]
READ_MODES: tuple[ReadMode, ...] = ("gateway", "concentrated")


class DeadlineError(ValueError):
    """A deadline that is not a positive number of seconds, or an unknown medium."""


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise DeadlineError(f"{what}: {value!r} is not a positive number of seconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds to wait for each answer: through a PLC gateway, through an RF gateway, over IP only."""

    plc: float = 90.0
    rf: float = 30.0
    ip: float = 20.0

    def __post_init__(self) -> None:
        for name in ("plc", "rf", "ip"):
            _positive(getattr(self, name), f"the {name} response deadline")

    def for_exchange(self, *, tunnelled: bool, medium: Medium | None = None, override: float | None = None) -> float:
        """The deadline of one exchange: ``tunnelled`` through a DC's ``medium`` (the DC's own ``override``
        when it has one), else over IP."""
        if not tunnelled:
            return self.ip
        if override is not None:
            return _positive(override, "the concentrator's response deadline")
        if medium == "rf":
            return self.rf
        if medium in (None, "plc"):
            return self.plc  # unknown media are treated as the slower one
        raise DeadlineError(f"medium {medium!r}: one of {', '.join(MEDIA)}")


DEFAULT_DEADLINES = Deadlines()
