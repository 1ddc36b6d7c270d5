"""The fleet launcher: a deterministic simulated field (DCs, their meters, p2p meters) in one asyncio process.

Everything follows from ``FleetOptions`` and its seed: serials, physical addresses, each meter's
security (a mix of none / LLS / HLS-GMAC drawn per meter), keys and system titles, each meter's
make, each DC's clock drift, which meters start unreachable, which meters leave and join the DC
tables over field time. Names are fixed patterns so a test can predict them: DC ``DC0001``..., the
i-th meter of DC d ``SIM{d:04d}{i:05d}`` (physical address 0x10 + i, wPort 0x100 + i), the k-th
point-to-point meter ``P2P{k:09d}`` (wrapper for even k, HDLC for odd k). ``Fleet`` is also the
runtime control object: its links, fault plans, meters, meter tables and concentrators can be
changed while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from simulators.clock import FieldClock
from simulators.concentrator import (
    MANAGEMENT_SAP,
    MANAGEMENT_WPORT,
    NETWORK_ID,
    ConcentratorConfig,
    ConcentratorError,
    DcMeter,
    PolicyName,
    SecurityConfig,
    SimulatedConcentrator,
)
from simulators.counters import CounterStore, FileCounterStore, MemoryCounterStore
from simulators.events import MeterEvent
from simulators.faults import FaultPlan
from simulators.links import LinkModel
from simulators.makes import MAKE_A, MAKE_B, DeviceType
from simulators.manifest import (
    Manifest,
    ManifestConcentrator,
    ManifestDcMeter,
    ManifestP2p,
    write_manifest,
)
from simulators.meter import MeterConfig, SimulatedMeter
from simulators.p2p import PointToPointMeter

__all__ = [
    "DEFAULT_EPOCH",
    "Fleet",
    "FleetError",
    "FleetOptions",
    "TableChange",
    "dc_clock_drift",
    "dc_id",
    "dc_meter_serial",
    "p2p_serial",
]

logger = logging.getLogger(__name__)

#: Field time when a fleet starts unless told otherwise: 60 days after the meters' data epoch,
#: so every meter already holds two months of history.
DEFAULT_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)
#: Physical address of a DC's first meter (the next ones follow); below 0x10 is reserved in HDLC.
FIRST_PHYSICAL_ADDRESS = 0x10
_MAX_PHYSICAL = 0x3FFF  # what a 4-byte HDLC address can carry
_MAX_INDEX = 99999  # the serial pattern has five digits for a DC meter's index
#: Bounds on the DC clock options: a year of offset, a day of drift per day.
_MAX_DC_OFFSET = 365 * 86400.0
_MAX_DC_DRIFT = 86400.0
#: Most meters leaving (and joining) one DC per read period that churn may ask for.
_MAX_CHURN_PER_PERIOD = 100.0
_TABLE_CHANGES_KEPT = 10_000
_COUNTER_FLUSH_SECONDS = 5.0
# Share of meters per security policy, drawn per meter from the seed: none, LLS, HLS-GMAC.
_POLICY_SHARES: tuple[tuple[PolicyName, float], ...] = (("none", 0.25), ("lls", 0.25), ("hls-gmac", 0.5))


class FleetError(ValueError):
    """Fleet options that cannot work (one line says which and why)."""


def dc_id(number: int) -> str:
    """The id of the ``number``-th DC (1-based)."""
    return f"DC{number:04d}"


def dc_meter_serial(dc_number: int, index: int) -> str:
    return f"SIM{dc_number:04d}{index:05d}"


def p2p_serial(index: int) -> str:
    return f"P2P{index:09d}"


def dc_clock_drift(seed: int | str, ident: str, largest: float) -> float:
    """The drift (seconds per field day) DC ``ident`` draws in [-largest, largest] from the seed."""
    if not largest:
        return 0.0
    return random.Random(f"{seed}:fleet:dc-clock:{ident}").uniform(-largest, largest)


@dataclass(frozen=True, slots=True)
class TableChange:
    """What changed in a DC's meter table: a meter ``joined``, ``left`` or was ``readdressed``.

    ``physical_address`` is the meter's address after the change (for ``left``: the one it had);
    ``previous_address`` is set for ``readdressed`` only. ``at`` is field time.
    """

    kind: Literal["joined", "left", "readdressed"]
    concentrator: str
    serial: str
    wport: int
    physical_address: int
    previous_address: int | None
    device_type: DeviceType
    at: datetime


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """What to build. Latency (field seconds) and loss override the link preset when given."""

    concentrators: int = 1
    meters_per_dc: int = 10
    p2p: int = 0
    seed: int | str = 0
    host: str = "127.0.0.1"
    #: First TCP port: DC n listens on base_port + n - 1, p2p k on base_port + concentrators + k. None: free ports.
    base_port: int | None = None
    time_scale: float = 1.0
    epoch: datetime = DEFAULT_EPOCH
    link: Literal["plc", "rf"] = "plc"
    plc_latency: float | None = None
    loss: float | None = None
    #: Link-layer retransmissions of a lost APDU (None: the preset's, 3).
    link_retries: int | None = None
    #: Share of DC meters (drawn per meter from the seed) unreachable from the start for ``unreachable_for``.
    unreachable_share: float = 0.0
    unreachable_for: timedelta = timedelta(days=1)
    #: DCs whose WAN is down from the start (connections refused).
    dc_outages: tuple[str, ...] = ()
    read_period: float = 900.0
    #: JSON file for the meters' invocation counters (kept across runs); None keeps them in memory.
    counters: Path | None = None
    #: Read the meters at start-up (and every period). Off in tests that drive ``read_cycle`` themselves.
    schedule: bool = True
    #: Largest DC clock drift, s per field day: each DC draws its own in [-x, x] (``dc_clock_drift``).
    dc_clock_drift: float = 0.0
    #: Every DC clock's offset from field time at start, s (DC time = field time + offset).
    dc_clock_offset: float = 0.0
    #: Meters per DC per field day that leave its table, and as many new ones that join (seeded, at read cycles).
    table_churn: float = 0.0
    #: Share of meters (DC and p2p alike, drawn per meter from the seed) of make B.
    make_b_share: float = 0.0
    #: Serials that are make B whatever the share draws (meters of the fleet as built).
    make_b: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.concentrators < 0 or self.meters_per_dc < 0 or self.p2p < 0:
            raise FleetError("the numbers of concentrators, meters per DC and p2p meters cannot be negative")
        if self.concentrators > 9999:
            raise FleetError(f"{self.concentrators} concentrators: at most 9999")
        most = _MAX_PHYSICAL - FIRST_PHYSICAL_ADDRESS + 1
        if self.meters_per_dc > most:
            raise FleetError(f"{self.meters_per_dc} meters per DC: at most {most}")
        if self.p2p > most:
            raise FleetError(f"{self.p2p} point-to-point meters: at most {most}")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise FleetError(f"host {self.host!r}: the simulated field listens on loopback only")
        if self.base_port is not None:
            last = self.base_port + self.concentrators + self.p2p - 1
            if self.base_port < 1 or last > 65535:
                raise FleetError(f"base port {self.base_port}: ports {self.base_port}-{last} do not fit 1-65535")
        if self.time_scale < 0:
            raise FleetError(f"time scale {self.time_scale} cannot be negative")
        if self.epoch.tzinfo is None:
            raise FleetError("the field epoch must carry a time zone")
        if self.plc_latency is not None and self.plc_latency < 0:
            raise FleetError(f"latency {self.plc_latency} s cannot be negative")
        if self.loss is not None and not 0.0 <= self.loss <= 1.0:
            raise FleetError(f"loss {self.loss} is not a probability between 0 and 1")
        if self.link_retries is not None and not 0 <= self.link_retries <= 15:
            raise FleetError(f"link retries {self.link_retries}: from 0 to 15")
        if not 0.0 <= self.unreachable_share <= 1.0:
            raise FleetError(f"unreachable share {self.unreachable_share} is not between 0 and 1")
        if self.read_period <= 0:
            raise FleetError(f"read period {self.read_period} s must be positive")
        known = {dc_id(n) for n in range(1, self.concentrators + 1)}
        for outage in self.dc_outages:
            if outage not in known:
                raise FleetError(f"--dc-outage {outage}: no such concentrator (DC0001..{dc_id(self.concentrators)})")
        if not math.isfinite(self.dc_clock_drift) or not 0.0 <= self.dc_clock_drift <= _MAX_DC_DRIFT:
            raise FleetError(f"DC clock drift {self.dc_clock_drift} s/day must be between 0 and {_MAX_DC_DRIFT:.0f}")
        if not math.isfinite(self.dc_clock_offset) or abs(self.dc_clock_offset) > _MAX_DC_OFFSET:
            raise FleetError(f"DC clock offset {self.dc_clock_offset} s is outside +-{_MAX_DC_OFFSET:.0f} s")
        if not math.isfinite(self.table_churn) or self.table_churn < 0:
            raise FleetError(f"table churn {self.table_churn} meters per DC per day must be zero or more")
        if self.table_churn * self.read_period / 86400 > _MAX_CHURN_PER_PERIOD:
            raise FleetError(f"table churn {self.table_churn} per day is more than {_MAX_CHURN_PER_PERIOD:.0f} "
                             f"meters per read period")
        if not 0.0 <= self.make_b_share <= 1.0:
            raise FleetError(f"make B share {self.make_b_share} is not between 0 and 1")
        for serial in self.make_b:
            if not self._built(serial):
                raise FleetError(f"--make-b {serial}: no such meter in this fleet")

    def _built(self, serial: str) -> bool:
        """Whether ``serial`` is one of the meters the fleet is built with."""
        if serial.startswith("P2P") and serial[3:].isdigit() and len(serial) == 12:
            return int(serial[3:]) < self.p2p
        if serial.startswith("SIM") and serial[3:].isdigit() and len(serial) == 12:
            return 1 <= int(serial[3:7]) <= self.concentrators and int(serial[7:]) < self.meters_per_dc
        return False


def _meter_security(seed: int | str, serial: str, number: int) -> SecurityConfig:
    rng = random.Random(f"{seed}:fleet:security:{serial}")
    draw = rng.random()
    policy: PolicyName = "hls-gmac"
    for name, share in _POLICY_SHARES:
        if draw < share:
            policy = name
            break
        draw -= share
    title = b"SIM" + number.to_bytes(5, "big")
    password = f"{rng.randrange(10**8):08d}".encode()
    ek, ak = rng.randbytes(16), rng.randbytes(16)
    if policy == "none":
        return SecurityConfig("none", None, title)
    if policy == "lls":
        return SecurityConfig("lls", password, title)
    return SecurityConfig("hls-gmac", None, title, ek, ak)


def _dc_security(seed: int | str, ident: str, number: int) -> SecurityConfig:
    rng = random.Random(f"{seed}:fleet:dc-security:{ident}")
    return SecurityConfig("hls-gmac", None, b"SDC" + number.to_bytes(5, "big"), rng.randbytes(16), rng.randbytes(16))


@dataclass(slots=True, eq=False)
class _P2p:
    meter: SimulatedMeter
    server: PointToPointMeter
    security: SecurityConfig


@dataclass(slots=True, eq=False)
class _Meter:
    meter: SimulatedMeter
    security: SecurityConfig
    dc: SimulatedConcentrator


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth): fine for the small means of table churn (bounded per period)."""
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class Fleet:
    """The built field: ``await start()``, then ``manifest()``, ``run_until_signal()`` or ``stop()``.

    Runtime control (tests change these while the field runs): ``clock``, ``concentrators`` by id
    (each with ``faults``, its meter table and its clock), ``link(serial)``, ``meter(serial)``,
    ``faults(dc_id_or_p2p_serial)``, ``set_unreachable(serial, start, end)``, ``set_outage(dc_id, on)``,
    ``add_meter(dc_id)``, ``remove_meter(serial)``, ``readdress_meter(serial, address)``.
    """

    def __init__(self, options: FleetOptions, clock: FieldClock | None = None) -> None:
        options.validate()
        self.options = options
        self.clock = clock if clock is not None else FieldClock(options.epoch, options.time_scale)
        self.counter_store: CounterStore = (
            FileCounterStore(options.counters, autosave=False) if options.counters is not None
            else MemoryCounterStore()
        )
        self.concentrators: dict[str, SimulatedConcentrator] = {}
        self._meters: dict[str, _Meter] = {}
        self._p2p: dict[str, _P2p] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._started = False
        self._make_b = frozenset(options.make_b)
        #: Meters numbered so far (system titles ``SIM`` + number); joined meters continue the count.
        self._number = 0
        #: Per DC: the next index of its serial pattern, and the last read period its churn was applied for.
        self._next_index: dict[str, int] = {}
        self._churned: dict[str, int] = {}
        #: Every change of a meter table so far (the last ``_TABLE_CHANGES_KEPT``), oldest first.
        self.table_changes: list[TableChange] = []
        #: Set on every meter, joined ones too (``simulators.push`` pushes from it).
        self.meter_event_hook: Callable[[SimulatedMeter, MeterEvent], None] | None = None
        self._build()

    # --- building ------------------------------------------------------------------------------------

    def _link(self, serial: str) -> LinkModel:
        o = self.options
        link = LinkModel.plc(seed=o.seed, name=serial) if o.link == "plc" else LinkModel.rf(seed=o.seed, name=serial)
        if o.plc_latency is not None:
            link.latency = o.plc_latency
            link.jitter = min(link.jitter, o.plc_latency)
        if o.loss is not None:
            link.loss = o.loss
        if o.link_retries is not None:
            link.retries = o.link_retries
        return link

    def _build(self) -> None:
        o = self.options
        now = self.clock.now()
        # What a DC had collected before the simulation began: everything up to the last period boundary.
        period = o.read_period
        collected = datetime.fromtimestamp(now.timestamp() // period * period, UTC)
        for d in range(1, o.concentrators + 1):
            ident = dc_id(d)
            faults = FaultPlan(seed=o.seed, name=ident, refuse_connections=ident in o.dc_outages)
            dc = SimulatedConcentrator(
                ConcentratorConfig(ident, o.seed, _dc_security(o.seed, ident, d), read_period=period,
                                   clock_offset=o.dc_clock_offset,
                                   clock_drift=dc_clock_drift(o.seed, ident, o.dc_clock_drift)),
                self.clock, self.counter_store, faults,
            )
            self.concentrators[ident] = dc
            self._next_index[ident] = o.meters_per_dc
            if o.table_churn:
                self._churned[ident] = int(now.timestamp() // period)
                dc.before_cycle = self._churn
            for i in range(o.meters_per_dc):
                self._number += 1
                serial = dc_meter_serial(d, i)
                security = _meter_security(o.seed, serial, self._number)
                address = FIRST_PHYSICAL_ADDRESS + i
                meter = SimulatedMeter(self._meter_config(serial, address, security), self.clock, self.counter_store)
                link = self._link(serial)
                last_read: datetime | None = collected
                if o.unreachable_share and random.Random(f"{o.seed}:fleet:unreachable:{serial}").random() \
                        < o.unreachable_share:
                    link.add_unreachable(o.epoch, o.unreachable_for)
                    last_read = collected - timedelta(seconds=period)
                dc_meter = dc.add_meter(serial, address, meter, link, public_sap=meter.config.public_sap,
                                        last_read=last_read)
                if last_read is not collected:
                    dc_meter.reachable = False
                self._meters[serial] = _Meter(meter, security, dc)
        for k in range(o.p2p):
            self._number += 1
            serial = p2p_serial(k)
            security = _meter_security(o.seed, serial, self._number)
            address = FIRST_PHYSICAL_ADDRESS + k
            meter = SimulatedMeter(self._meter_config(serial, address, security), self.clock, self.counter_store)
            interface: Literal["wrapper", "hdlc"] = "wrapper" if k % 2 == 0 else "hdlc"
            server = PointToPointMeter(
                meter, interface=interface, host=o.host, port=self._port(o.concentrators + k),
                faults=FaultPlan(seed=o.seed, name=serial), server_sap=1,
                physical_address=address if interface == "hdlc" else None,
            )
            self._p2p[serial] = _P2p(meter, server, security)

    def _meter_config(self, serial: str, address: int, security: SecurityConfig,
                      kind: DeviceType | None = None) -> MeterConfig:
        return MeterConfig(
            serial=serial, seed=self.options.seed, physical_address=address, policy=security.policy,
            password=security.password, system_title=security.system_title, ek=security.ek, ak=security.ak,
            device_type=self._device_type(serial) if kind is None else kind,
        )

    def _device_type(self, serial: str) -> DeviceType:
        o = self.options
        if serial in self._make_b:
            return MAKE_B
        if o.make_b_share and random.Random(f"{o.seed}:fleet:make:{serial}").random() < o.make_b_share:
            return MAKE_B
        return MAKE_A

    def _port(self, offset: int) -> int:
        base = self.options.base_port
        return 0 if base is None else base + offset

    # --- running -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen everywhere (DCs first, then p2p meters); on a failure, stop what started and raise."""
        if self._started:
            raise FleetError("the fleet is already started")
        self._started = True
        try:
            for n, dc in enumerate(self.concentrators.values()):
                await dc.start(self.options.host, self._port(n), schedule=self.options.schedule)
            for p in self._p2p.values():
                await p.server.start()
        except OSError as exc:
            await self.stop()
            raise FleetError(f"cannot listen on {self.options.host}: {exc.strerror or exc}") from None
        if isinstance(self.counter_store, FileCounterStore):
            self._flusher = asyncio.create_task(self._flush_counters(), name="fleet-counter-flush")

    async def _flush_counters(self) -> None:
        store = self.counter_store
        assert isinstance(store, FileCounterStore)
        while True:
            await asyncio.sleep(_COUNTER_FLUSH_SECONDS)
            store.flush()

    async def stop(self) -> None:
        """Close every server and connection, stop the schedules, flush the counters."""
        task, self._flusher = self._flusher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for dc in self.concentrators.values():
            await dc.stop()
        for p in self._p2p.values():
            await p.server.stop()
        if isinstance(self.counter_store, FileCounterStore):
            self.counter_store.flush()
        self._started = False

    async def run_until_signal(
        self, stopping: asyncio.Event | None = None, ready: Callable[[], None] | None = None
    ) -> None:
        """Serve until SIGINT or SIGTERM (or ``stopping`` is set), then stop cleanly.

        ``ready`` runs once the signal handlers are in place: a launcher announces itself there, so
        a supervisor that signals as soon as it reads the announcement never kills it uncleanly.
        """
        stopping = stopping if stopping is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stopping.set)
                installed.append(sig)
        try:
            if ready is not None:
                ready()
            await stopping.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- the manifest ----------------------------------------------------------------------------------

    def manifest(self) -> Manifest:
        """What a head-end needs to reach every device (ports are the bound ones: call after ``start``)."""
        o = self.options
        dcs = []
        for ident, dc in self.concentrators.items():
            meters = []
            for m in dc.meters:
                entry = self._meters[m.serial]
                kind = entry.meter.device_type
                meters.append(ManifestDcMeter(m.serial, m.wport, m.gateway_address, MANAGEMENT_SAP, entry.security,
                                              kind.make, kind.model, kind.firmware, kind.name))
            dcs.append(ManifestConcentrator(ident, o.host, dc.port, MANAGEMENT_WPORT, MANAGEMENT_SAP, NETWORK_ID,
                                            dc.config.security, tuple(meters), o.link))
        p2ps = []
        for serial, p in self._p2p.items():
            kind = p.meter.device_type
            p2ps.append(ManifestP2p(serial, o.host, p.server.port, p.server.interface, MANAGEMENT_SAP,
                                    p.server.server_sap, p.server.physical_address, p.security,
                                    kind.make, kind.model, kind.firmware, kind.name))
        return Manifest(o.seed, o.epoch, o.time_scale, tuple(dcs), tuple(p2ps))

    def write_manifest(self, path: str | Path) -> None:
        write_manifest(path, self.manifest())

    # --- runtime control -------------------------------------------------------------------------------

    def meter(self, serial: str) -> SimulatedMeter:
        if serial in self._meters:
            return self._meters[serial].meter
        if serial in self._p2p:
            return self._p2p[serial].meter
        raise FleetError(f"no meter {serial} in this fleet")

    def security(self, serial: str) -> SecurityConfig:
        """A meter's own security (what the manifest says about it)."""
        if serial in self._meters:
            return self._meters[serial].security
        if serial in self._p2p:
            return self._p2p[serial].security
        raise FleetError(f"no meter {serial} in this fleet")

    def meters(self) -> Iterator[str]:
        yield from self._meters
        yield from self._p2p

    def device_type(self, serial: str) -> DeviceType:
        """A meter's make, model, firmware and device type name."""
        return self.meter(serial).device_type

    def link(self, serial: str) -> LinkModel:
        """The PLC/RF link between a DC meter and its DC (change latency, loss, windows while running)."""
        entry = self._meters.get(serial)
        if entry is None:
            raise FleetError(f"no DC meter {serial} in this fleet")
        return entry.dc.by_serial[serial].link

    def concentrator_of(self, serial: str) -> SimulatedConcentrator:
        entry = self._meters.get(serial)
        if entry is None:
            raise FleetError(f"no DC meter {serial} in this fleet")
        return entry.dc

    def faults(self, ident: str) -> FaultPlan:
        """The WAN fault plan of a DC (by id) or of a point-to-point meter (by serial)."""
        if ident in self.concentrators:
            return self.concentrators[ident].faults
        if ident in self._p2p:
            return self._p2p[ident].server.faults
        raise FleetError(f"no concentrator or point-to-point meter {ident} in this fleet")

    def p2p(self, serial: str) -> PointToPointMeter:
        if serial not in self._p2p:
            raise FleetError(f"no point-to-point meter {serial} in this fleet")
        return self._p2p[serial].server

    def set_outage(self, ident: str, on: bool = True) -> None:
        """A DC's WAN down (connections refused, open ones dropped on their next bytes) or back up."""
        self.faults(ident).refuse_connections = on

    def set_unreachable(self, serial: str, start: datetime, end: datetime | timedelta) -> None:
        self.link(serial).add_unreachable(start, end)

    # --- meter tables ----------------------------------------------------------------------------------

    def add_meter(self, ident: str, *, device_type: DeviceType | None = None) -> TableChange:
        """A new meter joins DC ``ident``'s table.

        Its serial is the DC's pattern with the next index never used there, its physical address
        the lowest free one from 0x10, its wPort one the DC never gave; security (and, unless
        ``device_type`` says, its make) are drawn from the seed as for every meter.
        """
        dc = self.concentrators.get(ident)
        if dc is None:
            raise FleetError(f"no concentrator {ident} in this fleet")
        index = self._next_index[ident]
        if index > _MAX_INDEX:
            raise FleetError(f"DC {ident}: no serial left (index {index} beyond {_MAX_INDEX})")
        serial = dc_meter_serial(int(ident[2:]), index)
        try:
            address = dc.free_address(FIRST_PHYSICAL_ADDRESS, _MAX_PHYSICAL)
        except ConcentratorError as exc:
            raise FleetError(str(exc)) from None
        number = self._number + 1
        security = _meter_security(self.options.seed, serial, number)
        meter = SimulatedMeter(self._meter_config(serial, address, security, device_type), self.clock,
                               self.counter_store)
        meter.on_event = self.meter_event_hook
        try:
            row = dc.add_meter(serial, address, meter, self._link(serial), public_sap=meter.config.public_sap,
                               announce=True)
        except ConcentratorError as exc:
            raise FleetError(str(exc)) from None
        self._number = number
        self._next_index[ident] = index + 1
        self._meters[serial] = _Meter(meter, security, dc)
        return self._changed("joined", dc, row, None)

    def remove_meter(self, serial: str) -> TableChange:
        """A meter leaves its DC's table: the DC stops answering for it (wPort and gateway address gone)."""
        entry = self._meters.get(serial)
        if entry is None:
            raise FleetError(f"no DC meter {serial} in this fleet")
        row = entry.dc.remove_meter(serial)
        del self._meters[serial]
        return self._changed("left", entry.dc, row, None)

    def readdress_meter(self, serial: str, address: int | None = None) -> TableChange:
        """A meter registers again under another physical address (``address``, or the lowest free one)."""
        entry = self._meters.get(serial)
        if entry is None:
            raise FleetError(f"no DC meter {serial} in this fleet")
        dc = entry.dc
        try:
            if address is None:
                address = dc.free_address(FIRST_PHYSICAL_ADDRESS, _MAX_PHYSICAL)
            elif not FIRST_PHYSICAL_ADDRESS <= address <= _MAX_PHYSICAL:
                raise FleetError(f"physical address {address:#x} outside {FIRST_PHYSICAL_ADDRESS:#x}-"
                                 f"{_MAX_PHYSICAL:#x}")
            old = dc.readdress_meter(serial, address)
        except ConcentratorError as exc:
            raise FleetError(str(exc)) from None
        return self._changed("readdressed", dc, dc.by_serial[serial], old)

    def _changed(self, kind: Literal["joined", "left", "readdressed"], dc: SimulatedConcentrator, row: DcMeter,
                 previous: int | None) -> TableChange:
        device = row.device
        change = TableChange(kind, dc.config.id, row.serial, row.wport, row.physical_address, previous,
                             device.device_type if isinstance(device, SimulatedMeter) else MAKE_A, self.clock.now())
        self.table_changes.append(change)
        if len(self.table_changes) > _TABLE_CHANGES_KEPT:
            del self.table_changes[: len(self.table_changes) - _TABLE_CHANGES_KEPT]
        return change

    def _churn(self, dc: SimulatedConcentrator, now: datetime) -> None:
        """Before a read cycle: the meters that left and joined since the last one, one seeded draw per period.

        Each read period of field time has its own draw, so the table at a given field time is
        the same however often, or late, the cycles ran.
        """
        o = self.options
        ident = dc.config.id
        period = o.read_period
        current = int(now.timestamp() // period)
        mean = o.table_churn * period / 86400
        for k in range(self._churned[ident] + 1, current + 1):
            rng = random.Random(f"{o.seed}:fleet:churn:{ident}:{k}")
            count = _poisson(rng, mean)
            leaving = rng.sample(dc.meters, min(count, len(dc.meters))) if count else []
            for row in leaving:
                self.remove_meter(row.serial)
            for _ in range(count):
                try:
                    self.add_meter(ident)
                except FleetError as exc:
                    # A full DC (no address or serial left) stays full: churn is not worth stopping the field.
                    logger.warning("DC %s: table churn cannot add a meter: %s", ident, exc)
                    break
        self._churned[ident] = max(self._churned[ident], current)

