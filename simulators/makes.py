"""The simulated makes: each meter's make, model, firmware and device type, and each make's event code table.

Make A (``MAKE_A``, device type ``hes-sim-a``) is the IDIS-like meter the simulator always had; its
event codes are the IDIS ones of ``simulators.events.EventCode``. Make B (``MAKE_B``, ``hes-sim-b``)
is a single-rate meter of another object layout (``simulators.meter`` serves both) that numbers the
same physical events from its own vendor table, ``MAKE_B_EVENT_CODES``, sent as long-unsigned
because its codes do not fit one byte. ``event_code(device_type, code)`` gives a make's number for a
``simulators.events`` event, ``event_of`` the reverse; both are what a test derives expectations from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from simulators.events import EventCode

__all__ = [
    "DEVICE_TYPES",
    "MAKE_A",
    "MAKE_B",
    "MAKE_B_EVENT_CODES",
    "DeviceType",
    "device_type",
    "event_code",
    "event_of",
]


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A simulated make as a head-end registers it: device type name, make, model and firmware version."""

    name: str
    make: str
    model: str
    firmware: str
    #: "MAKE MODEL FIRMWARE", as the DC's meter table shows it (made once: every table row shares it).
    identification: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identification", f"{self.make} {self.model} {self.firmware}")


MAKE_A = DeviceType("hes-sim-a", "HES-SIM", "SIM-A", "1.0")
MAKE_B = DeviceType("hes-sim-b", "HES-SIM", "SIM-B", "2.1")
DEVICE_TYPES = MappingProxyType({t.name: t for t in (MAKE_A, MAKE_B)})

#: Make B's vendor codes for the physical events (hundreds: the kind of event, units: which one).
MAKE_B_EVENT_CODES: MappingProxyType[EventCode, int] = MappingProxyType({
    EventCode.POWER_DOWN: 1001,
    EventCode.POWER_UP: 1002,
    EventCode.CLOCK_ADJUSTED_OLD_TIME: 1101,
    EventCode.CLOCK_ADJUSTED_NEW_TIME: 1102,
    EventCode.TERMINAL_COVER_REMOVED: 1201,
    EventCode.TERMINAL_COVER_CLOSED: 1202,
    EventCode.METER_COVER_REMOVED: 1203,
    EventCode.METER_COVER_CLOSED: 1204,
    EventCode.DECRYPTION_OR_AUTHENTICATION_FAILURE: 1301,
    EventCode.REPLAY_ATTACK: 1302,
    EventCode.MANUAL_DISCONNECTION: 1401,
    EventCode.MANUAL_CONNECTION: 1402,
    EventCode.REMOTE_DISCONNECTION: 1403,
    EventCode.REMOTE_CONNECTION: 1404,
    EventCode.LOCAL_DISCONNECTION: 1405,
    EventCode.LOCAL_RECONNECTION: 1406,
})
_MAKE_B_EVENTS = {number: code for code, number in MAKE_B_EVENT_CODES.items()}


def device_type(name: str) -> DeviceType:
    """The simulated make of a device type name (``KeyError`` names the known ones)."""
    try:
        return DEVICE_TYPES[name]
    except KeyError:
        raise KeyError(f"device type {name!r}: the simulator has {', '.join(DEVICE_TYPES)}") from None


def event_code(kind: DeviceType, code: EventCode) -> int:
    """The number a meter of make ``kind`` logs for the physical event ``code``."""
    return MAKE_B_EVENT_CODES[code] if kind.name == MAKE_B.name else int(code)


def event_of(kind: DeviceType, number: int) -> EventCode | None:
    """The physical event behind a number a meter of make ``kind`` logged (None when the make has no such code)."""
    if kind.name == MAKE_B.name:
        return _MAKE_B_EVENTS.get(number)
    try:
        return EventCode(number)
    except ValueError:
        return None
