"""What the head-end knows about reaching a meter: routes, security material, counter reservations.

These are the values the registry (storage) hands to sessions (transports and associations), so
the two meet here and nowhere else. Keys are plaintext only in memory: the registry decrypts them
with the master key when it builds a ``MeterTarget`` and never logs or prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CounterReservation",
    "DirectRoute",
    "MeterSecurity",
    "MeterTarget",
    "Route",
    "ViaConcentrator",
]

Policy = Literal["none", "lls", "hls-gmac"]
Interface = Literal["wrapper", "hdlc", "serial"]


@dataclass(frozen=True, slots=True)
class MeterSecurity:
    """A meter's (or a concentrator's) security for one client SAP. ``repr`` never shows secrets."""

    policy: Policy = "none"
    password: bytes | None = field(default=None, repr=False)
    system_title: bytes | None = None  # the server's
    ek: bytes | None = field(default=None, repr=False)
    ak: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DirectRoute:
    """A point-to-point meter: its own TCP endpoint (or a serial port for ``interface="serial"``)."""

    host: str
    port: int
    interface: Interface = "wrapper"
    client_sap: int = 1
    server_sap: int = 1
    physical_address: int | None = None  # HDLC lower address
    serial_device: str | None = None
    baud_rate: int = 9600  # serial line speed (interface "serial"); after an optical sign-on, the agreed one


@dataclass(frozen=True, slots=True)
class ViaConcentrator:
    """A meter behind a data concentrator.

    ``mode`` "gateway" tunnels the meter's own association through the DC (gateway APDUs with
    ``network_id`` and ``physical_address``), with the meter's security; "concentrated" reads the
    DC's tables at ``logical_device`` (wPort) with the DC's security.
    """

    concentrator_id: str
    host: str
    port: int
    dc_security: MeterSecurity
    dc_client_sap: int
    management_wport: int
    logical_device: int
    network_id: int
    physical_address: bytes
    mode: Literal["gateway", "concentrated"] = "gateway"


Route = DirectRoute | ViaConcentrator


@dataclass(frozen=True, slots=True)
class MeterTarget:
    """Everything a session needs to reach and authenticate one meter."""

    serial: str
    route: Route
    security: MeterSecurity
    client_sap: int = 1
    client_system_title: bytes = b"HES\x00\x00\x00\x00\x01"  # the head-end's own system title


@dataclass(frozen=True, slots=True)
class CounterReservation:
    """Invocation counters ``start`` .. ``limit - 1`` for one (device, client SAP), already persisted.

    The registry writes ``limit`` as the device's next counter before handing the reservation
    out, so a process killed at any point skips the unused ones and never reuses a counter.
    ``last_received`` is the last counter accepted from the device (replay check), or None.
    """

    start: int
    limit: int
    last_received: int | None = None
