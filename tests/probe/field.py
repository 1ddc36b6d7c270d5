"""A simulated field with optical ports on pty pairs, for the field-tool tests: a meter's port and a DC's port.

The field's clock is frozen at the present instant (so the probe's and the head-end's clocks agree
with the meters'); the field and its optical ports run on their own event loop in a thread, so a
test can drive the probe, the CLI (which runs its own loop) or a subprocess against them, and stop
a port in the middle of a read (``stop_port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from protocols.iec62056_21 import IdentificationMessage
from simulators.clock import FieldClock
from simulators.concentrator import MANAGEMENT_WPORT
from simulators.endpoint import LogicalDevice, Session
from simulators.fleet import Fleet, FleetOptions
from simulators.optical import OpticalPort

__all__ = ["DC", "DC_METERS", "METER", "SEED", "OpticalField", "StopAfter", "optical_field"]

T = TypeVar("T")

SEED = 7
#: A point-to-point meter with HLS-GMAC and ciphering (seed 7), read at its own optical port.
METER = "P2P000000001"
DC = "DC0001"
#: The DC's meters (seed 7: none, HLS-GMAC, HLS-GMAC), read through the DC's optical port.
DC_METERS = ("SIM000100000", "SIM000100001", "SIM000100002")


class StopAfter:
    """A logical device that passes APDUs to ``device`` and, at the ``after``-th one, stops the optical port:
    the probe is left without an answer in the middle of a read, as when the head falls off."""

    def __init__(self, device: LogicalDevice, after: int) -> None:
        self.device = device
        self.after = after
        self.seen = 0
        self.port: OpticalPort | None = None
        self.stopped = asyncio.Event()

    def open_session(self, client_sap: int) -> Session | None:
        inner = self.device.open_session(client_sap)
        return None if inner is None else _StopSession(self, inner)


class _StopSession:
    def __init__(self, owner: StopAfter, inner: Session) -> None:
        self.owner = owner
        self.inner = inner

    async def handle(self, apdu: bytes) -> list[bytes]:
        owner = self.owner
        owner.seen += 1
        if owner.seen >= owner.after and owner.port is not None:
            port, owner.port = owner.port, None
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(_stop(port, owner.stopped)))
            return []
        return await self.inner.handle(apdu)

    def close(self) -> None:
        self.inner.close()


async def _stop(port: OpticalPort, done: asyncio.Event) -> None:
    await port.stop()
    done.set()


@dataclass
class OpticalField:
    fleet: Fleet
    meter_port: OpticalPort
    dc_port: OpticalPort
    manifest: Path
    now: datetime
    loop: asyncio.AbstractEventLoop

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run a coroutine on the field's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(_bounded(make(), timeout), self.loop).result(timeout + 5)

    def day(self) -> tuple[datetime, datetime]:
        """A whole past day (UTC midnight to midnight), well inside every meter's history."""
        end = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        return end - timedelta(days=1), end

    def stop_after(self, apdus: int) -> StopAfter:
        """Serve the meter's port through ``StopAfter``: the port stops at the ``apdus``-th APDU."""
        async def swap() -> StopAfter:
            await self.meter_port.stop()
            wrapper = StopAfter(self.fleet.meter(METER), apdus)
            self.meter_port = OpticalPort(wrapper, IdentificationMessage("HES", "6", "SIM" + METER[-8:]),
                                          self.fleet.clock)
            wrapper.port = self.meter_port
            await self.meter_port.start()
            return wrapper

        return self.call(swap)


async def _bounded(work: Awaitable[T], timeout: float) -> T:
    async with asyncio.timeout(timeout):
        return await work


@contextlib.contextmanager
def optical_field(tmp_path: Path) -> Iterator[OpticalField]:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FieldClock(now, 0.0)
    options = FleetOptions(concentrators=1, meters_per_dc=3, p2p=2, seed=SEED, schedule=False, loss=0.0, epoch=now,
                           plc_latency=0.0)
    fleet = Fleet(options, clock=clock)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        try:
            async with fleet:
                fleet.write_manifest(tmp_path / "fleet.json")
                dc = fleet.concentrators[DC]
                device = dc.logical_device(MANAGEMENT_WPORT)
                assert device is not None
                holder["meter_port"] = OpticalPort(fleet.meter(METER),
                                                   IdentificationMessage("HES", "6", "SIM" + METER[-8:]), clock)
                holder["dc_port"] = OpticalPort(device, IdentificationMessage("HES", "5", "DC0001"), clock)
                await holder["meter_port"].start()
                await holder["dc_port"].start()
                ready.set()
                await stop.wait()
                for name in ("meter_port", "dc_port"):
                    await holder[name].stop()
        except BaseException as exc:  # handed to the test thread, which raises it
            holder["failure"] = exc
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="optical-field", daemon=True)
    thread.start()
    field: OpticalField | None = None
    try:
        assert ready.wait(15), "the field did not start"
        if "failure" in holder:
            raise holder["failure"]
        field = OpticalField(fleet, holder["meter_port"], holder["dc_port"], tmp_path / "fleet.json", now, loop)
        yield field
    finally:
        if field is not None:
            holder["meter_port"] = field.meter_port  # the one serving now (stop_after swaps it)
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
