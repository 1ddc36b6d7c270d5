"""The field read: sign on at the optical port, associate with the device's security, read, and build the bundle.

``probe_read(port, keys, request)`` reads the device at the optical port:

- a meter: its own association (the meter's security from the key file), then for each of
  ``what`` (profile, daily, events, registers) one session, parsed by the same reader as remote
  reads (``hes.reads``), so the rows and their identities are the ones a remote read stores;
- a concentrator: its management logical device (the DC's security): its identity, clock,
  meter table and event log; then each of its meters named in the key file (or ``meters``),
  end to end with the meter's own security through the DC's gateway, as the head-end does over
  the WAN. The DC's tables of concentrated data live on other logical devices that its optical
  port does not serve, so the meters are read live over the DC's PLC/RF link.

Every session is the one order runner's session step (``hes.runner``) on the optical line, with
the key file's counters; it first reads the serial number (0.0.96.1.0.255) and refuses a device
that is not the one the operator named: data is never filed under the wrong meter. A probe timeout or a lost
line is retried (sign-on again, new session) up to ``retries`` times; a failure that persists ends
the read, and the bundle holds what was read before it, marked partial with the reason.
``progress`` is called at every step.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import platform
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any, Literal

from hes.db.models import utcnow
from hes.db.readings import EventRow, IntervalRow, RegisterRow
from hes.errors import FAILURES, HesError
from hes.model import DirectRoute, MeterTarget, ViaConcentrator
from hes.probe.keys import DeviceKeys, KeyFile
from hes.probe.serial_link import OpticalLine
from hes.reads import Reader, counter_budget  # the remote read's own parsing: same rows, same identities
from hes.runner import Observations, Prepared, Runner, SessionResult
from hes.session import MeterSession, Timeouts
from hes.transport import HdlcOptions
from hes.transport.hdlc import HdlcLink
from protocols.axdr import Data, DataTag
from protocols.cosem import CaptureObjectDefinition, ProfileColumn, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, DlmsError, ProtocolError, TransportError
from protocols.hdlc import HdlcParameters
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import RangeDescriptor

__all__ = [
    "DC_EVENT_LOG",
    "METER_TABLE",
    "PROBE_HDLC_PARAMETERS",
    "SERIAL_NUMBER",
    "TOOL_NAME",
    "WHATS",
    "Progress",
    "ProbeRequest",
    "ProbeRequestError",
    "WrongDevice",
    "probe_read",
    "tool_version",
]

logger = logging.getLogger(__name__)

ProbeWhat = Literal["profile", "daily", "events", "registers"]
WHATS: tuple[ProbeWhat, ...] = ("profile", "daily", "events", "registers")
TOOL_NAME = "hes probe"
SERIAL_NUMBER = ObisCode(0, 0, 96, 1, 0, 255)
CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
#: The DC's meter table (manufacturer-specific profile generic) and event log on its management device.
METER_TABLE = ObisCode(0, 128, 99, 1, 0, 255)
DC_EVENT_LOG = ObisCode(0, 0, 99, 98, 0, 255)
#: Optical heads are slow and meters' optical HDLC stations small: 128-byte frames, window 1.
PROBE_HDLC_PARAMETERS = HdlcParameters(max_info_tx=128, max_info_rx=128, window_tx=1, window_rx=1)
_DEFAULT_SPAN = timedelta(days=1)


def tool_version() -> str:
    try:
        return metadata.version("hes")
    except metadata.PackageNotFoundError:
        return "unknown"


class ProbeRequestError(HesError):
    """The read was asked for wrongly (unknown what, empty range, device not in the key file): fix the command."""


class WrongDevice(HesError):
    """The device at the port is not the one named: its data must not be filed under another device."""


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """What to read. ``concentrator``: the port is that DC's, ``meters`` its meters to read through it
    (default: all of them in the key file); otherwise the port is a meter's, ``meters`` names it."""

    what: tuple[ProbeWhat, ...]
    start: datetime | None = None
    end: datetime | None = None
    meters: tuple[str, ...] = ()
    concentrator: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of the read, for the operator: ``state`` is start, done, retry or failed."""

    device: str
    step: str
    state: Literal["start", "done", "retry", "failed"]
    number: int
    total: int
    detail: str = ""


ProgressCallback = Callable[[Progress], None]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- rows as the bundle carries them ------------------------------------------------------------------


def _interval_json(row: IntervalRow) -> list[Any]:
    return [row.obis, row.attribute, _iso(row.interval_end), row.value, row.scaler, row.unit, row.status, row.quality]


def _register_json(row: RegisterRow) -> list[Any]:
    return [row.obis, _iso(row.capture_time), row.value, row.scaler, row.unit, row.deviation_minutes]


def _event_json(row: EventRow) -> list[Any]:
    return [row.log_obis, row.event_code, _iso(row.event_time), row.name]


def _cell(data: Data) -> Any:
    """A value of the DC's tables as JSON: date-times as ISO text (None when unspecified), bytes as hex."""
    if data.tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        return [_cell(item) for item in data.value]
    if data.tag == DataTag.OCTET_STRING and len(data.value) == 12:
        with contextlib.suppress(DlmsError):
            return _iso(CosemDateTime.decode(bytes(data.value)).to_datetime())
    if isinstance(data.value, bytes | bytearray):
        return bytes(data.value).hex()
    if isinstance(data.value, CosemDateTime):
        return _iso(data.value.to_datetime())
    if data.value is None or isinstance(data.value, bool | int | str):
        return data.value
    return str(data.value)


@dataclass(slots=True)
class _MeterRecord:
    serial: str
    via: str
    client_sap: int
    read: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    observations: list[str] = field(default_factory=list)
    intervals: list[list[Any]] = field(default_factory=list)
    registers: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    meter_time: str | None = None
    clock_offset: str | None = None
    last_received: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial, "via": self.via, "client_sap": self.client_sap, "read": self.read,
            "failed": self.failed,
            "observations": self.observations, "meter_time": self.meter_time, "clock_offset": self.clock_offset,
            "last_received": self.last_received, "intervals": self.intervals, "registers": self.registers,
            "events": self.events,
        }


class _ReadStopped(Exception):
    """The line failed for good: the read ends, the bundle holds what came before (internal)."""

    def __init__(self, reason: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record


# --- the line: one HDLC link at a time, shared by consecutive sessions -------------------------------------


class _SharedLink:
    """An open HDLC link lent to one session: the session's close leaves the link to the line."""

    def __init__(self, link: HdlcLink) -> None:
        self._link = link

    @property
    def peer(self) -> str:
        return self._link.peer

    async def send(self, apdus: Sequence[bytes]) -> None:
        await self._link.send(apdus)

    async def receive(self, timeout: float | None) -> bytes:
        return await self._link.receive(timeout)

    async def aclose(self) -> None:
        return None


class _Line:
    """The optical port and its current HDLC link (kept while consecutive sessions use the same addresses)."""

    def __init__(self, line: OpticalLine, timeouts: Timeouts) -> None:
        self.optical = line
        self.timeouts = timeouts
        self._link: HdlcLink | None = None
        self._options: HdlcOptions | None = None

    async def link(self, options: HdlcOptions) -> _SharedLink:
        if self._link is not None and self._options == options:
            return _SharedLink(self._link)
        await self.drop()
        self._link = await self.optical.open_hdlc(options, timeout=self.timeouts.read)
        self._options = options
        return _SharedLink(self._link)

    async def drop(self) -> None:
        """End the current link (DISC, best effort): the device goes back to waiting for a sign-on."""
        link, self._link, self._options = self._link, None, None
        if link is not None:
            with contextlib.suppress(TransportError, TimeoutError):
                await link.aclose()
        await self.optical.aclose()


# --- the procedure -----------------------------------------------------------------------------------------


class _Procedure:
    def __init__(self, line: _Line, keys: KeyFile, request: ProbeRequest, start: datetime, end: datetime, *,
                 retries: int, progress: ProgressCallback, clock: Callable[[], datetime],
                 clock_tolerance: timedelta | None) -> None:
        self.line = line
        # The session step every path runs; the optical line is this tool's alone (no gate to share).
        self.runner = Runner(None, timeouts=line.timeouts, clock=clock)
        self.keys = keys
        self.request = request
        self.start = start
        self.end = end
        self.retries = retries
        self.progress = progress
        self.clock = clock
        self.tolerance = clock_tolerance
        self.failures: list[str] = []
        self.step = 0
        self.total = 0

    def _tell(self, device: str, step: str, state: Literal["start", "done", "retry", "failed"],
              detail: str = "") -> None:
        self.progress(Progress(device, step, state, self.step, self.total, detail))

    def _options(self, device: DeviceKeys, via: DeviceKeys | None) -> HdlcOptions:
        # Through a DC the HDLC link goes to the DC's management device, from the meter's client SAP (the DC
        # tunnels gateway APDUs from any client SAP and opens the meter's association with that SAP).
        server = via if via is not None else device
        return HdlcOptions(client_sap=device.client_sap, server_logical=server.server_sap,
                           server_physical=server.physical_address, parameters=PROBE_HDLC_PARAMETERS,
                           retries=self.line.timeouts.retries, disc_timeout=self.line.timeouts.release)

    def _target(self, device: DeviceKeys, via: DeviceKeys | None) -> MeterTarget:
        title = self.keys.content.client_system_title
        if via is None:
            route: DirectRoute | ViaConcentrator = DirectRoute(
                host="", port=0, interface="serial", client_sap=device.client_sap, server_sap=device.server_sap,
                physical_address=device.physical_address, serial_device=self.line.optical.device)
        else:
            if device.gateway_address is None:
                raise ProbeRequestError(f"the key file has no gateway address for meter {device.ident}")
            route = ViaConcentrator(
                concentrator_id=via.ident, host="", port=0, dc_security=via.security, dc_client_sap=via.client_sap,
                management_wport=via.server_sap, logical_device=0, network_id=device.network_id,
                physical_address=device.gateway_address, mode="gateway")
        return MeterTarget(device.ident, route, device.security, client_sap=device.client_sap,
                           client_system_title=title)

    async def _check_identity(self, session: MeterSession, device: DeviceKeys) -> None:
        shown = (await session.get(1, SERIAL_NUMBER, 2)).value
        if isinstance(shown, bytes | bytearray):
            shown = bytes(shown).decode("latin-1")
        if shown != device.ident:
            raise WrongDevice(f"the device answering is {shown!r}, not {device.ident}: its data is not read")

    async def _session_step(self, device: DeviceKeys, via: DeviceKeys | None, step: str, budget: int,
                            body: Callable[[MeterSession], Any]) -> None:
        """One session for one step, retried on probe timeouts and lost lines; ``_ReadStopped`` when it persists.

        The session is the one order runner's (``hes.runner.Runner.session``: its deadlines, its
        classification of what ended it), on the optical line, with the key file's counters.
        """
        target = self._target(device, via)
        options = self._options(device, via)
        for attempt in range(self.retries + 1):
            reservation = self.keys.reserve(device, budget)
            outcome: SessionResult[None] | None = None
            try:
                shared = await self.line.link(options)

                async def connect(_target: MeterTarget, link: _SharedLink = shared) -> _SharedLink:
                    return link

                async def checked(session: MeterSession, _observations: Observations) -> None:
                    await self._check_identity(session, device)
                    await body(session)

                outcome = await self.runner.session(Prepared(target, reservation, 0), checked, connect=connect,
                                                    hdlc_parameters=PROBE_HDLC_PARAMETERS)
                if outcome.error is not None:
                    raise outcome.error
                return
            except (TransportError, TimeoutError) as exc:
                reason = str(exc) or "no answer in time"
                await self.line.drop()
                if attempt < self.retries:
                    self._tell(device.ident, step, "retry", f"{reason}; signing on again")
                    continue
                raise _ReadStopped(f"{device.ident}: {step}: {reason} (after {attempt + 1} tries)") from None
            except DecodeError as exc:
                # Line noise that slipped through the checksums: the same retry as a timeout.
                await self.line.drop()
                if attempt < self.retries:
                    self._tell(device.ident, step, "retry", f"{exc}; signing on again")
                    continue
                raise _ReadStopped(f"{device.ident}: {step}: {exc} (after {attempt + 1} tries)") from None
            except FAILURES:
                # The device refused (security, service error, wrong device): no retry helps; the link is
                # dropped because the association may be left half-open.
                await self.line.drop()
                raise
            finally:
                self.keys.record_received(device, None if outcome is None else outcome.last_received)

    async def read_meter(self, device: DeviceKeys, via: DeviceKeys | None) -> dict[str, Any]:
        record = _MeterRecord(device.ident, "optical" if via is None else f"concentrator {via.ident}",
                              device.client_sap)
        for what in self.request.what:
            self.step += 1
            self._tell(device.ident, what, "start")
            start, end = (None, None) if what == "registers" else (self.start, self.end)
            budget = 2 * counter_budget(what, start, end) + 4

            async def body(session: MeterSession, what: ProbeWhat = what) -> None:
                reader = Reader(session, 0, self.clock, self.tolerance)
                if what == "registers":
                    await reader.registers()
                else:
                    await getattr(reader, what)(self.start, self.end)
                out = reader.out
                record.intervals += [_interval_json(r) for r in out.intervals]
                record.registers += [_register_json(r) for r in out.registers]
                record.events += [_event_json(r) for r in out.events]
                record.observations += [f"{what}: {o}" for o in reader.observations]
                if out.meter_time is not None:
                    record.meter_time = _iso(out.meter_time)
                    record.clock_offset = None if out.clock_offset is None else str(out.clock_offset)

            try:
                await self._session_step(device, via, what, budget, body)
            except _ReadStopped as stopped:
                record.failed[what] = stopped.reason
                self._tell(device.ident, what, "failed", stopped.reason)
                raise _ReadStopped(stopped.reason, record.to_json()) from None
            except WrongDevice:
                if via is None:
                    raise  # the device at the port is not the one named: nothing it says is kept
                self.failures.append(f"{device.ident}: not read: the gateway address answers for another meter")
                record.failed[what] = "another meter answers at this gateway address"
                break
            except FAILURES as exc:
                reason = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                record.failed[what] = reason
                self.failures.append(f"{device.ident}: {what}: {reason}")
                self._tell(device.ident, what, "failed", reason)
                continue
            record.read.append(what)
            self._tell(device.ident, what, "done",
                       f"{len(record.intervals)} interval values, {len(record.registers)} registers, "
                       f"{len(record.events)} events so far")
        record.last_received = self.keys.content.last_received.get(device.counter_key)
        return record.to_json()

    async def read_concentrator(self, dc: DeviceKeys) -> dict[str, Any]:
        out: dict[str, Any] = {"id": dc.ident}
        self.step += 1
        self._tell(dc.ident, "concentrator", "start")

        async def body(session: MeterSession) -> None:
            clock = await session.get(8, CLOCK, 2)
            out["clock"] = _cell(clock)
            columns = await session.get(7, METER_TABLE, 3)
            table = await session.get(7, METER_TABLE, 2)
            out["meter_table"] = {
                "columns": [str(CaptureObjectDefinition.from_data(c).logical_name) for c in columns.value],
                "rows": _cell(table),
            }
            if "events" in self.request.what:
                out["events"] = await self._dc_events(session)

        await self._session_step(dc, None, "concentrator", 24 + 2 * len(dc.meters), body)
        out["client_sap"] = dc.client_sap
        out["last_received"] = self.keys.content.last_received.get(dc.counter_key)
        self._tell(dc.ident, "concentrator", "done", f"{len(out['meter_table']['rows'])} meters in its table")
        return out

    async def _dc_events(self, session: MeterSession) -> list[list[Any]]:
        capture = await session.get(7, DC_EVENT_LOG, 3)
        definitions = [CaptureObjectDefinition.from_data(item) for item in capture.value]
        clocks = [d for d in definitions if d.class_id == 8 and d.attribute_index == 2]
        if not clocks:
            raise ProtocolError(f"DC event log {DC_EVENT_LOG} captures no clock")
        since = Data.octet_string(CosemDateTime.from_datetime(self.start, deviation=0).encode())
        until = Data.octet_string(CosemDateTime.from_datetime(self.end, deviation=0).encode())
        raw = await session.get_raw(7, DC_EVENT_LOG, 2, RangeDescriptor(clocks[0], since, until))
        rows = parse_profile_buffer(raw, [ProfileColumn.of(d) for d in definitions], None)
        events = []
        for row in rows:
            codes = [v for v in row.values if isinstance(v, int) and not isinstance(v, bool)]
            events.append([_iso(row.time), codes[0] if codes else None])
        return events


async def probe_read(
    port: str | OpticalLine,
    keys: KeyFile,
    request: ProbeRequest,
    *,
    retries: int = 2,
    timeouts: Timeouts | None = None,
    progress: ProgressCallback | None = None,
    clock: Callable[[], datetime] = utcnow,
    clock_tolerance: timedelta | None = timedelta(seconds=60),
    operator: str | None = None,
) -> dict[str, Any]:
    """Read the device at ``port`` as ``request`` says, with the keys of ``keys``; the bundle's payload.

    Raises ``ProbeRequestError`` for a request the key file cannot serve, ``WrongDevice`` when
    another device answers, and the session's error when a concentrator refuses its own
    association (nothing can be read through it then). Every other failure of the line or the
    device is recorded in a partial payload (``partial`` true, ``why``) rather than raised, so what
    was read before it is kept.
    """
    for what in request.what:
        if what not in WHATS:
            raise ProbeRequestError(f"cannot read {what!r}: one of {', '.join(WHATS)}")
    if not request.what:
        raise ProbeRequestError(f"name what to read: one or more of {', '.join(WHATS)}")
    for name, moment in (("from", request.start), ("to", request.end)):
        if moment is not None and moment.utcoffset() is None:
            raise ProbeRequestError(f"--{name} {moment.isoformat()} needs a time zone (e.g. Z)")
    end = (request.end or clock()).astimezone(UTC)
    start = request.start.astimezone(UTC) if request.start is not None else end - _DEFAULT_SPAN
    if start >= end:
        raise ProbeRequestError(f"the range is empty: from {_iso(start)} is not before to {_iso(end)}")
    content = keys.content
    dc: DeviceKeys | None = None
    if request.concentrator is not None:
        dc = content.device(request.concentrator)
        if dc is None or dc.kind != "concentrator":
            raise ProbeRequestError(f"the key file holds no keys for concentrator {request.concentrator}")
        serials = request.meters or dc.meters
        meters = []
        for serial in serials:
            found = content.device(serial)
            if found is None or found.kind != "meter" or found.concentrator != dc.ident:
                raise ProbeRequestError(f"the key file holds no keys for meter {serial} of concentrator {dc.ident}")
            meters.append(found)
        device = dc
    else:
        candidates = [d for d in content.devices if d.kind == "meter"]
        if request.meters:
            if len(request.meters) > 1:
                raise ProbeRequestError("a meter's optical port serves one meter: name one --meter "
                                        "(or --concentrator to read meters through a concentrator)")
            candidates = [d for d in candidates if d.ident == request.meters[0]]
            if not candidates:
                raise ProbeRequestError(f"the key file holds no keys for meter {request.meters[0]}")
        if len(candidates) != 1:
            raise ProbeRequestError(f"the key file holds keys for {len(candidates)} meters: name the one at the "
                                    "port with --meter")
        device = candidates[0]
        meters = [device]
    optical = port if isinstance(port, OpticalLine) else OpticalLine(port)
    line = _Line(optical, timeouts or Timeouts(connect=5.0, read=5.0, release=2.0, retries=3))
    procedure = _Procedure(line, keys, request, start, end, retries=retries, progress=progress or (lambda _p: None),
                           clock=clock, clock_tolerance=clock_tolerance)
    procedure.total = len(meters) * len(request.what) + (1 if dc is not None else 0)
    started = clock()
    records: list[dict[str, Any]] = []
    concentrator: dict[str, Any] | None = None
    stopped: str | None = None
    try:
        if dc is not None:
            concentrator = await procedure.read_concentrator(dc)
            in_table = {row[0] for row in concentrator["meter_table"]["rows"] if isinstance(row, list) and row}
            for meter in meters:
                if meter.ident not in in_table:
                    procedure.failures.append(f"{meter.ident}: not in the meter table of {dc.ident}: not read")
                    continue
                records.append(await procedure.read_meter(meter, dc))
        else:
            records.append(await procedure.read_meter(device, None))
    except _ReadStopped as exc:
        stopped = exc.reason
        if exc.record is not None:
            records.append(exc.record)
    finally:
        await line.drop()
    finished = clock()
    why = [stopped] if stopped is not None else []
    why += procedure.failures
    identification = optical.sign_ons[0].text if optical.sign_ons else None
    return {
        "bundle_id": str(uuid.uuid4()),
        "export_id": content.export_id,
        "tool": {"name": TOOL_NAME, "version": tool_version(), "host": platform.node(),
                 "operator": operator if operator is not None else _operator()},
        "port": optical.device,
        "device": {"kind": device.kind, "id": device.ident, "identification": identification},
        "what": list(request.what),
        "from": _iso(start),
        "to": _iso(end),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "partial": bool(why),
        "why": "; ".join(why) or None,
        "stopped": stopped is not None,
        "concentrator": concentrator,
        "meters": records,
    }


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
