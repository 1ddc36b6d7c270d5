"""Point-to-point meters: one simulated meter on its own TCP port, as behind its own cellular router."""

from __future__ import annotations

import asyncio
from typing import Literal

from protocols.hdlc import HdlcParameters
from simulators.endpoint import LogicalDevice
from simulators.faults import FaultPlan
from simulators.transport import (
    DEFAULT_HDLC_PARAMETERS,
    DEFAULT_IDLE_TIMEOUT,
    serve_hdlc,
    serve_wrapper,
    stop_server,
)

__all__ = ["Interface", "PointToPointMeter", "PointToPointStateError"]

Interface = Literal["wrapper", "hdlc"]


class PointToPointStateError(RuntimeError):
    """``start``/``port`` used in the wrong order (a local mistake, not a field fault)."""


class PointToPointMeter:
    """One meter (any ``LogicalDevice``, normally a ``SimulatedMeter``) served directly over TCP.

    Wrapper: the meter answers at destination wPort ``server_sap`` (1, the management logical
    device). HDLC: at logical address ``server_sap`` and physical address ``physical_address``
    (any physical address when None, as a meter alone on its line does). ``faults`` is the
    meter's own ``FaultPlan``; change its fields while running.
    """

    def __init__(
        self,
        device: LogicalDevice,
        *,
        interface: Interface = "wrapper",
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        server_sap: int = 1,
        physical_address: int | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        hdlc_parameters: HdlcParameters = DEFAULT_HDLC_PARAMETERS,
    ) -> None:
        if interface not in ("wrapper", "hdlc"):
            raise ValueError(f"interface must be 'wrapper' or 'hdlc', not {interface!r}")
        self.device = device
        self.interface: Interface = interface
        self.host = host
        self.faults = faults if faults is not None else FaultPlan()
        self.server_sap = server_sap
        self.physical_address = physical_address
        self._requested_port = port
        self._idle_timeout = idle_timeout
        self._hdlc_parameters = hdlc_parameters
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (after ``start``)."""
        if self._server is None or not self._server.sockets:
            raise PointToPointStateError("the point-to-point meter is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def running(self) -> bool:
        return self._server is not None

    def _wrapper_device(self, wport: int) -> LogicalDevice | None:
        return self.device if wport == self.server_sap else None

    def _hdlc_device(self, upper: int, lower: int | None) -> LogicalDevice | None:
        if upper != self.server_sap:
            return None
        if self.physical_address is not None and lower != self.physical_address:
            return None
        return self.device

    async def start(self) -> None:
        if self._server is not None:
            raise PointToPointStateError("the point-to-point meter is already started")
        if self.interface == "wrapper":
            self._server = await serve_wrapper(self._wrapper_device, self.host, self._requested_port, self.faults,
                                               idle_timeout=self._idle_timeout)
        else:
            self._server = await serve_hdlc(self._hdlc_device, self.host, self._requested_port, self.faults,
                                            idle_timeout=self._idle_timeout, parameters=self._hdlc_parameters)

    async def stop(self) -> None:
        """Stop listening and drop every open connection (their sessions are closed)."""
        server, self._server = self._server, None
        if server is None:
            return
        await stop_server(server)

    async def __aenter__(self) -> PointToPointMeter:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
