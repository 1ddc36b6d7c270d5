"""Whose invocation counters a session uses and checks, and which device it must have to itself.

A ciphered association sends invocation counters that the device checks (each above the last it
accepted) and receives the device's own (which the head-end checks, its replay floor). Where the
head-end keeps each depends on who it talks to:

- a meter (point-to-point, or end to end through a DC's gateway): the meter's sequence, both ways,
  under its serial;
- a DC's management logical device (its own events, clock, meter table): the DC's sequence, under
  its id;
- one of a DC's concentrated logical devices (the DC's tables for one meter): what the head-end
  sends counts in the DC's one sequence (its id), but the DC keeps one server counter per logical
  device, so the replay floor of what comes back is per logical device (``DC#LD``).

The device that checks the counters serves one association at a time: two sessions of one
head-end would interleave their counters and the device would refuse the later one as a replay.
``lock`` is that device's key (``hes.slots.DeviceLocks``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CounterKeys", "concentrated_keys", "logical_device_key", "management_keys", "meter_keys"]


@dataclass(frozen=True, slots=True)
class CounterKeys:
    """(device, client SAP) of the counters sent and of those received; ``lock``: the device to hold alone."""

    sent_device: str
    received_device: str
    client_sap: int

    @property
    def lock(self) -> str:
        return self.received_device

    @property
    def shared_sequence(self) -> bool:
        """The counters sent are one sequence with other devices' (a DC's logical devices share the DC's)."""
        return self.sent_device != self.received_device


def logical_device_key(concentrator_id: str, logical_device: int) -> str:
    """The key of one of a DC's logical devices (its replay floor, its lock)."""
    return f"{concentrator_id}#{logical_device}"


def meter_keys(serial: str, client_sap: int) -> CounterKeys:
    return CounterKeys(serial, serial, client_sap)


def management_keys(concentrator_id: str, client_sap: int) -> CounterKeys:
    return CounterKeys(concentrator_id, concentrator_id, client_sap)


def concentrated_keys(concentrator_id: str, client_sap: int, logical_device: int) -> CounterKeys:
    return CounterKeys(concentrator_id, logical_device_key(concentrator_id, logical_device), client_sap)
