"""What the head-end knows about reaching a meter: routes, security material, counter reservations.

These are the values the registry (storage) hands to sessions (transports and associations), so
the two meet here and nowhere else. Keys are plaintext only in memory: the registry decrypts them
with the master key when it builds a ``MeterTarget`` and never logs or prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from concentrator.keys import CounterKeys, concentrated_keys, management_keys, meter_keys
from concentrator.links import Medium, ReadMode
from hes.devicetypes import DeviceType, default_type

__all__ = [
    "CounterReservation",
    "DirectRoute",
    "ManagementRoute",
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
    mode: ReadMode = "gateway"
    #: The DC's network towards its meters, and its own response deadline for exchanges through it (None: by medium).
    medium: Medium = "plc"
    response_deadline: float | None = None

    @property
    def tunnelled(self) -> bool:
        """The exchanges cross the DC's PLC/RF network (gateway), not only its WAN (its tables)."""
        return self.mode == "gateway"


@dataclass(frozen=True, slots=True)
class ManagementRoute:
    """A data concentrator itself: its management logical device (wPort), with its own security."""

    concentrator_id: str
    host: str
    port: int
    wport: int
    client_sap: int


Route = DirectRoute | ViaConcentrator | ManagementRoute


@dataclass(frozen=True, slots=True)
class MeterTarget:
    """Everything a session needs to reach and authenticate one meter."""

    serial: str
    route: Route
    security: MeterSecurity
    client_sap: int = 1
    client_system_title: bytes = b"HES\x00\x00\x00\x00\x01"  # the head-end's own system title
    #: What the meter has and where (``hes.devicetypes``): reads take every OBIS code from it.
    device_type: DeviceType = field(default_factory=default_type)
    #: The most attributes one GET-with-list of this meter may ask for, learned from its answers (None: not
    #: learned); the session takes the least of this and the device type's limit.
    max_get_with_list: int | None = None

    @property
    def concentrator_id(self) -> str | None:
        """The DC every exchange of the session goes through (its session budget applies), or None."""
        route = self.route
        return None if isinstance(route, DirectRoute) else route.concentrator_id

    @property
    def counter_keys(self) -> CounterKeys:
        """Whose invocation counters the session sends and checks (``concentrator.keys``)."""
        route = self.route
        if isinstance(route, ManagementRoute):
            return management_keys(route.concentrator_id, route.client_sap)
        if isinstance(route, ViaConcentrator) and route.mode == "concentrated":
            return concentrated_keys(route.concentrator_id, route.dc_client_sap, route.logical_device)
        return meter_keys(self.serial, self.client_sap)

    @property
    def session_security(self) -> MeterSecurity:
        """The security of the association: the DC's for its tables, the device's own otherwise."""
        route = self.route
        if isinstance(route, ViaConcentrator) and route.mode == "concentrated":
            return route.dc_security
        return self.security


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
