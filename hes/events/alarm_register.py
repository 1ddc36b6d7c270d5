"""Decode of the IDIS alarm register (0.0.97.98.0.255): a 32-bit word, one bit per alarm.

Bit positions follow the DSMR/IDIS alarm register 1: 0 clock invalid, 1 replace battery, 2 power
up, 8 program memory error, 9 RAM error, 10 NV memory error, 11 measurement system error, 12
watchdog error, 13 fraud attempt, 16-19 M-Bus communication error on channels 1-4, 20-23 M-Bus
fraud attempt, 24-27 new M-Bus device discovered. Their names and criticalities come from the
event table's ``alarm-register`` log, so a utility whose meters use other bits changes the table,
not the code. Each set bit becomes one event whose code is the bit number.
"""

from __future__ import annotations

from hes.events.catalog import Catalog, EventDefinition
from protocols.obis import ObisCode

__all__ = ["ALARM_FILTER", "ALARM_REGISTER", "ALARM_REGISTER_LOG", "decode_alarm_register", "set_bits"]

ALARM_REGISTER = ObisCode(0, 0, 97, 98, 0, 255)
#: The alarm filter: which bits a meter pushes (not read by the head-end; named for the docs).
ALARM_FILTER = ObisCode(0, 0, 97, 98, 10, 255)
ALARM_REGISTER_LOG = "alarm-register"


def set_bits(word: int) -> list[int]:
    """The numbers of the bits set in a 32-bit alarm word, lowest first (``ValueError`` outside 32 bits)."""
    if not 0 <= word <= 0xFFFFFFFF:
        raise ValueError(f"alarm register value {word} does not fit 32 bits")
    return [bit for bit in range(32) if word >> bit & 1]


def decode_alarm_register(word: int, catalog: Catalog) -> list[EventDefinition]:
    """One definition per set bit, named and graded by the catalog's ``alarm-register`` log."""
    return [catalog.lookup(ALARM_REGISTER_LOG, bit) for bit in set_bits(word)]
