"""Parts 1 and 2 of ``hes demo``: a protocol session in memory, then a simulated field run through the head-end.

The demonstration is not the core: it lives with the command line, the one layer that may import
the simulators together with the head-end (``tests/test_layers.py``).

Part 1 (``run_session``) is what a head-end does with one meter, on our own stack with no sockets:
HDLC link set-up, an HLS-GMAC association with suite-0 ciphering, reads of the clock, the serial
number, the A+ register and a day of 15-minute load profile, and the release; the meter side is a
small object model served by our server-role stack and every value read is checked against it.

Part 2 (``run_field``) is the head-end itself: a small simulated field (``simulators.fleet``: two
concentrators with three meters each and two point-to-point meters, field time frozen) started in
process on 127.0.0.1, registered from its manifest into an embedded SQLite database in a data
folder, then on-demand reads (``hes.reads.read_meter``), a disconnect and reconnect through a
concentrator's gateway and of a point-to-point meter, and a clock sync of a meter whose clock is
off (``hes.commands``). Every value is checked against the simulator's deterministic functions
(``simulators.energy``) and every relay and clock against the simulated meter itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from protocols.acse import MechanismName
from protocols.association import (
    Associated,
    CipheringMode,
    ClientAssociation,
    ClientConfig,
    Event,
    GetRequested,
    GetResult,
    Released,
    SecurityPolicy,
    ServerAssociation,
    ServerConfig,
)
from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.cosem import ControlState, ProfileColumn, ScalerUnit, Unit, apply_scaler, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime, offset_timezone
from protocols.hdlc import (
    ApduReceived,
    HdlcConnection,
    HdlcFrame,
    HdlcParameters,
    Role,
    client_address,
    server_address,
)
from protocols.obis import ObisCode
from protocols.xdlms.common import CosemAttributeDescriptor, DataAccessResult
from protocols.xdlms.selective_access import CaptureObjectDefinition, RangeDescriptor

__all__ = ["DemoReport", "DemoStep", "FieldReport", "FieldRow", "run_field", "run_session"]

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
SERIAL = ObisCode(0, 0, 96, 1, 0, 255)
A_PLUS = ObisCode(1, 0, 1, 8, 0, 255)
A_MINUS = ObisCode(1, 0, 2, 8, 0, 255)
PROFILE = ObisCode(1, 0, 99, 1, 0, 255)
CAPTURE_PERIOD = 900
DEVIATION = -60  # CET: UTC = local + deviation

# Demonstration keys only (the Green Book's example keys); real keys live in the registry.
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
HES_TITLE = bytes.fromhex("4845530000000001")

_CAPTURE_OBJECTS = (
    CaptureObjectDefinition(8, CLOCK, 2),
    CaptureObjectDefinition(3, A_PLUS, 2),
    CaptureObjectDefinition(3, A_MINUS, 2),
)
_ENERGY_SCALER = ScalerUnit(0, Unit.WATT_HOUR)


def interval_energy(serial: str, index: int) -> tuple[int, int]:
    """Wh imported and exported in interval ``index`` (a pure function, so reads can be checked)."""
    base = sum(serial.encode()) % 97
    imported = 40 + (index * 37 + base) % 91
    exported = (index * 11 + base) % 13 if 40 <= index % 96 <= 64 else 0
    return imported, exported


@dataclass
class DemoMeter:
    """What the demonstration meter holds: a start of history and cumulative registers."""

    serial: str
    start: datetime  # aware, first interval start
    intervals: int
    now: datetime

    def cumulative(self, count: int) -> tuple[int, int]:
        imported = exported = 0
        for i in range(count):
            a, b = interval_energy(self.serial, i)
            imported += a
            exported += b
        return imported, exported

    def rows(self, since: datetime, until: datetime) -> list[tuple[datetime, int, int]]:
        out = []
        imported = exported = 0
        for i in range(self.intervals):
            a, b = interval_energy(self.serial, i)
            imported += a
            exported += b
            end = self.start + timedelta(seconds=CAPTURE_PERIOD * (i + 1))
            if since <= end <= until:
                out.append((end, imported, exported))
        return out

    def attribute(self, request: GetRequested) -> bytes | DataAccessResult:
        d = request.descriptor
        key = (d.class_id, d.instance_id, d.attribute_id)
        if key == (8, CLOCK, 2):
            return encode_data(Data(DataTag.DATE_TIME, CosemDateTime.from_datetime(self.now, deviation=DEVIATION)))
        if key == (1, SERIAL, 2):
            return encode_data(Data.visible_string(self.serial))
        if key in ((3, A_PLUS, 2), (3, A_MINUS, 2)):
            imported, exported = self.cumulative(self.intervals)
            return encode_data(Data.double_long_unsigned(imported if d.instance_id == A_PLUS else exported))
        if key in ((3, A_PLUS, 3), (3, A_MINUS, 3)):
            return encode_data(_ENERGY_SCALER.to_data())
        if key == (7, PROFILE, 3):
            return encode_data(Data.array([c.to_data() for c in _CAPTURE_OBJECTS]))
        if key == (7, PROFILE, 2):
            return self._buffer(request)
        return DataAccessResult.OBJECT_UNDEFINED

    def _buffer(self, request: GetRequested) -> bytes | DataAccessResult:
        since, until = self.start, self.now
        if request.access_selection is not None:
            if request.access_selection.access_selector != 1:
                return DataAccessResult.OBJECT_UNAVAILABLE
            selection = RangeDescriptor.from_data(request.access_selection.parameters())
            since = _instant(selection.from_value)
            until = _instant(selection.to_value)
        return encode_data(
            Data.array(
                Data.structure(
                    [
                        Data.octet_string(CosemDateTime.from_datetime(end, deviation=DEVIATION).encode()),
                        Data.double_long_unsigned(imported),
                        Data.double_long_unsigned(exported),
                    ]
                )
                for end, imported, exported in self.rows(since, until)
            )
        )


def _count_frames(data: bytes) -> int:
    count = pos = 0
    while pos < len(data):
        _, end = HdlcFrame.decode(data, pos)
        count += 1
        pos = end - 1 if end < len(data) and data[end] != 0x7E else end
    return count


def _instant(value: Data) -> datetime:
    moment = CosemDateTime.decode(value.value).to_datetime()
    if moment is None:
        raise ValueError("range bound is not a full date-time")
    return moment


@dataclass
class DemoStep:
    what: str
    result: str
    detail: str
    frames: int = 0
    wire_bytes: int = 0


@dataclass
class DemoReport:
    steps: list[DemoStep] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    invocation_counters_used: list[int] = field(default_factory=list)


class _Link:
    """Client and meter wired back to back through two HDLC connections, counting what crosses."""

    def __init__(self, meter: DemoMeter, counters: list[int]) -> None:
        self.meter = meter
        hdlc = HdlcParameters(max_info_tx=128, max_info_rx=128, window_tx=1, window_rx=1)
        meter_address = server_address(1, 0x11, 4)
        self.client_link = HdlcConnection(
            Role.CLIENT, server_address=meter_address, client_address=client_address(0x01), parameters=hdlc
        )
        self.meter_link = HdlcConnection(Role.SERVER, server_address=meter_address, parameters=hdlc)
        self.client = ClientAssociation(
            ClientConfig(
                policy=SecurityPolicy(
                    mechanism=MechanismName.HLS_GMAC,
                    ciphering=CipheringMode.SERVICE_SPECIFIC,
                    system_title=HES_TITLE,
                    encryption_key=EK,
                    authentication_key=AK,
                ),
                client_challenge=b"HES-CtoS-0001",
                invocation_counter=1,
                max_receive_pdu_size=512,
                counter_used=counters.append,
            )
        )
        self.server = ServerAssociation(
            ServerConfig(
                policy=SecurityPolicy(
                    mechanism=MechanismName.HLS_GMAC,
                    ciphering=CipheringMode.SERVICE_SPECIFIC,
                    system_title=METER_TITLE,
                    encryption_key=EK,
                    authentication_key=AK,
                ),
                server_challenge=b"METER-StoC-01",
                invocation_counter=100,
                max_receive_pdu_size=512,
            )
        )
        self.frames = 0
        self.wire_bytes = 0

    def _carry(self, data: bytes, to: HdlcConnection) -> list[Any]:
        if not data:
            return []
        self.frames += _count_frames(data)
        self.wire_bytes += len(data)
        return to.receive_data(data)

    def pump(self) -> list[Event]:
        """Move bytes until both sides are quiet; the meter answers what it is asked."""
        client_events: list[Event] = []
        for _ in range(10_000):
            for apdu in self.client.data_to_send():
                self.client_link.send_apdu(apdu)
            to_meter = self.client_link.data_to_send()
            for event in self._carry(to_meter, self.meter_link):
                if isinstance(event, ApduReceived):
                    for request in self.server.receive_apdu(event.apdu):
                        if isinstance(request, GetRequested):
                            self.server.respond_get(request.invoke_id, self.meter.attribute(request))
                    for reply in self.server.data_to_send():
                        self.meter_link.send_apdu(reply)
            to_client = self.meter_link.data_to_send()
            for event in self._carry(to_client, self.client_link):
                if isinstance(event, ApduReceived):
                    client_events += self.client.receive_apdu(event.apdu)
            moved = bool(to_meter or to_client)
            if not moved:
                return client_events
        raise RuntimeError("the demonstration link did not settle")


def run_session(serial: str = "DEMO00000001", days: int = 2) -> DemoReport:
    """Run the session and return what happened, every value checked against the meter."""
    started = time.perf_counter()
    report = DemoReport()
    midnight = datetime(2026, 11, 20, tzinfo=offset_timezone(DEVIATION))
    meter = DemoMeter(serial, midnight - timedelta(days=days - 1), days * 96, midnight + timedelta(days=1))
    link = _Link(meter, report.invocation_counters_used)

    def step(what: str, action: Callable[[], list[Event]], describe: Callable[[list[Event]], tuple[str, str]]) -> None:
        frames, wire = link.frames, link.wire_bytes
        result, detail = describe(action())
        report.steps.append(DemoStep(what, result, detail, link.frames - frames, link.wire_bytes - wire))

    def connect() -> list[Event]:
        link.client_link.connect()
        return link.pump()

    def linked(_events: list[Event]) -> tuple[str, str]:
        return "EXE", f"max info field {link.client_link.parameters.max_info_tx}"

    step("HDLC link (SNRM/UA)", connect, linked)

    def associate() -> list[Event]:
        link.client.associate()
        return link.pump()

    def associated(events: list[Event]) -> tuple[str, str]:
        ok = any(isinstance(e, Associated) for e in events)
        return ("EXE", "HLS-GMAC, suite 0 glo-ciphering") if ok else ("FAIL", repr(events))

    step("Association (AARQ/AARE, HLS)", associate, associated)

    def get(obis: ObisCode, class_id: int, attribute: int, selection: Any = None) -> Callable[[], list[Event]]:
        def run() -> list[Event]:
            link.client.get(CosemAttributeDescriptor(class_id, obis, attribute), selection)
            return link.pump()

        return run

    def value_of(events: list[Event]) -> Data | None:
        for event in events:
            if isinstance(event, GetResult) and isinstance(event.data, bytes):
                return decode_data_exact(event.data)
        return None

    def check(what: str, got: Any, expected: Any) -> str:
        report.checked += 1
        if got != expected:
            report.mismatches.append(f"{what}: read {got!r}, meter holds {expected!r}")
            return "WARN"
        return "EXE"

    def clock(events: list[Event]) -> tuple[str, str]:
        data = value_of(events)
        moment = data.value.to_datetime() if data is not None else None
        return check("clock", moment, meter.now), moment.isoformat() if moment else "no value"

    step("Read clock 0.0.1.0.0.255", get(CLOCK, 8, 2), clock)

    def serial_number(events: list[Event]) -> tuple[str, str]:
        data = value_of(events)
        got = data.value if data is not None else None
        return check("serial", got, meter.serial), str(got)

    step("Read serial 0.0.96.1.0.255", get(SERIAL, 1, 2), serial_number)

    def energy(events: list[Event]) -> tuple[str, str]:
        data = value_of(events)
        got = apply_scaler(data.value, _ENERGY_SCALER.scaler) if data is not None else None
        expected = meter.cumulative(meter.intervals)[0]
        return check("A+", got, expected), f"{got} Wh"

    step("Read A+ 1.0.1.8.0.255", get(A_PLUS, 3, 2), energy)

    day_start = midnight
    day_end = midnight + timedelta(days=1)
    selection = RangeDescriptor(
        CaptureObjectDefinition(8, CLOCK, 2),
        Data.octet_string(CosemDateTime.from_datetime(day_start + timedelta(minutes=15)).encode()),
        Data.octet_string(CosemDateTime.from_datetime(day_end).encode()),
    ).to_access_selection()
    columns = [ProfileColumn.of(c) for c in _CAPTURE_OBJECTS]

    def profile(events: list[Event]) -> tuple[str, str]:
        for event in events:
            if isinstance(event, GetResult) and isinstance(event.data, bytes):
                report.rows = parse_profile_buffer(event.data, columns, CAPTURE_PERIOD)
        expected = meter.rows(day_start + timedelta(minutes=15), day_end)
        got = [(r.time, *r.values[1:]) for r in report.rows]
        result = check("profile", got, expected)
        return result, f"{len(report.rows)} intervals of 15 min, {day_start.date()}"

    step("Read load profile 1.0.99.1.0.255", get(PROFILE, 7, 2, selection), profile)

    def release() -> list[Event]:
        link.client.release()
        return link.pump()

    step("Release (RLRQ/RLRE)", release,
         lambda events: ("EXE", "released") if any(isinstance(e, Released) for e in events) else ("FAIL", repr(events)))

    def disconnect() -> list[Event]:
        link.client_link.disconnect()
        return link.pump()

    step("HDLC disconnect (DISC/UA)", disconnect, lambda _e: ("EXE", link.client_link.state.name.lower()))
    report.seconds = time.perf_counter() - started
    return report



# --- part 2: the simulated field through the head-end ---------------------------------------------------

#: Seed of the demonstration's field.
FIELD_SEED = 2026
#: How far the clock of the meter the demonstration synchronises is off (seconds).
CLOCK_OFFSET = 95.0
_TOLERANCE = 10.0
_REGISTER_OBIS = {
    "1.0.1.8.0.255": "a_plus", "1.0.1.8.1.255": "a_plus_t1", "1.0.1.8.2.255": "a_plus_t2", "1.0.2.8.0.255": "a_minus",
}
_PROFILE_A_PLUS = "1.0.1.8.0.255"


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One line of the field table: an order and whether what it did was checked right."""

    order: str
    meter: str
    command: str
    result: str
    detail: str
    ok: bool


@dataclass
class FieldReport:
    rows: list[FieldRow] = field(default_factory=list)
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    concentrators: int = 0
    meters: int = 0
    database: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(row.ok for row in self.rows)


class _Checker:
    def __init__(self, report: FieldReport) -> None:
        self.report = report

    def same(self, what: str, got: object, expected: object) -> bool:
        self.report.checked += 1
        if got != expected:
            self.report.mismatches.append(f"{what}: got {got!r}, the simulator says {expected!r}")
            return False
        return True


async def run_field(
    data_dir: Path,
    *,
    database_url: str | None = None,
    seed: int = FIELD_SEED,
    field_now: datetime | None = None,
    concentrators: int = 2,
    meters_per_dc: int = 3,
    p2p: int = 2,
) -> FieldReport:
    """Start the field, register it, read every meter, operate two relays and a clock; check everything.

    ``data_dir`` holds the manifest, the master key and (unless ``database_url`` names another) the
    SQLite database; running twice on the same folder is fine (imports and readings are idempotent).
    The field's time is frozen at ``field_now`` (default: the moment the demo starts, so the meters'
    clocks agree with the head-end's).
    """
    from concentrator.budget import SessionBudget
    from hes.commands import Commands
    from hes.db import create_engine_for, upgrade
    from hes.keys import load_master_key
    from hes.reads import read_meter
    from hes.registry import Registry
    from hes.runner import OrderRunner
    from hes.session import Timeouts
    from hes.slots import ConcentratorSlots, Gate
    from simulators.clock import FieldClock
    from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
    from simulators.fleet import Fleet, FleetOptions

    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{data_dir / 'hes.db'}"
    engine = create_engine_for(url)
    report = FieldReport(database=url if database_url else str(data_dir / "hes.db"))
    check = _Checker(report)
    try:
        upgrade(engine)
        registry = Registry(engine, load_master_key(data_dir / "master.key"))
        fleet = Fleet(
            FleetOptions(concentrators=concentrators, meters_per_dc=meters_per_dc, p2p=p2p, seed=seed,
                         schedule=False, plc_latency=0.0, loss=0.0,
                         # The meters keep their invocation counters in the folder, as real meters keep
                         # theirs: a second run continues above what the head-end stored as received.
                         counters=data_dir / "field-counters.json"),
            # Field time frozen at the moment the demo starts: every value has one right answer, and
            # the meters' clocks agree with the head-end's, so order times and clock checks are today's.
            clock=FieldClock(field_now or datetime.now(UTC).replace(microsecond=0), 0.0),
        )
        now = fleet.clock.now
        timeouts = Timeouts(connect=5.0, read=5.0, release=2.0)
        runner = OrderRunner(registry, requested_by="demo", gate=Gate(ConcentratorSlots(SessionBudget(2))),
                             timeouts=timeouts, clock=now)
        async with fleet:
            manifest = data_dir / "fleet.json"
            fleet.write_manifest(manifest)
            summary = registry.import_manifest(manifest, who="demo")
            report.concentrators = summary.concentrators_added + summary.concentrators_updated
            report.meters = summary.meters_added + summary.meters_updated
            serials = list(fleet.meters())

            # On-demand reads: every meter's registers, checked against simulators.energy.
            for serial in serials:
                result = await read_meter(registry, serial, "registers", requested_by="demo", runner=runner)
                meter = fleet.meter(serial)
                expected = registers_at(seed, serial, now(), meter.windows)
                values = {v.obis: v.value for v in result.values if v.kind == "register"}
                ok = result.state == "EXE" and all(
                    check.same(f"{serial} register {obis}", values.get(obis), getattr(expected, name))
                    for obis, name in _REGISTER_OBIS.items())
                detail = result.reason or f"A+ {values.get('1.0.1.8.0.255')} Wh, A- {values.get('1.0.2.8.0.255')} Wh"
                report.rows.append(FieldRow(result.order_number, serial, "read registers", result.state, detail, ok))

            # A day of load profile from one DC meter (gateway) and one p2p meter.
            day_end = now().replace(hour=0, minute=0, second=0, microsecond=0)
            day_start = day_end - timedelta(days=1)
            for serial in (serials[0], serials[-1]):
                result = await read_meter(registry, serial, "profile", start=day_start, end=day_end,
                                          requested_by="demo", runner=runner)
                got = [(v.time, v.value) for v in result.values if v.kind == "interval" and v.obis == _PROFILE_A_PLUS]
                first, last = interval_index(day_start), interval_index(day_end) - 1
                want = [(interval_end(row.interval).astimezone(UTC), row.a_plus)
                        for row in profile_intervals(seed, serial, first, last, fleet.meter(serial).windows)]
                ok = result.state in ("EXE", "WARN") and check.same(f"{serial} profile A+", got, want)
                detail = result.reason or f"{len(got)} intervals {day_start.date()}, {result.stored} rows new" + (
                    f"; {'; '.join(result.observations)}" if result.observations else "")
                report.rows.append(FieldRow(result.order_number, serial, "read profile", result.state, detail, ok))

            # Disconnect and reconnect: one DC meter through the gateway, one point-to-point meter.
            commands = Commands(registry, who="demo", now=now, runner=runner)
            for serial in (serials[1], serials[-2]):
                relay = fleet.meter(serial).relay
                for verb, wanted in (("disconnect", ControlState.DISCONNECTED), ("reconnect", ControlState.CONNECTED)):
                    done = await (commands.disconnect(serial) if verb == "disconnect" else commands.reconnect(serial))
                    ok = check.same(f"{serial} {verb} result", done.state, "EXE") and check.same(
                        f"{serial} relay after {verb}", relay.control_state, wanted)
                    report.rows.append(FieldRow(done.order_number, serial, verb, done.state, done.detail, ok))

            # Clock sync of a meter whose clock is off.
            serial = serials[2]
            meter = fleet.meter(serial)
            meter.set_time(now() + timedelta(seconds=CLOCK_OFFSET))
            done = await commands.clock_sync(serial, _TOLERANCE)
            ok = (check.same(f"{serial} clock sync result", done.state, "EXE")
                  and check.same(f"{serial} deviation found", round(float(done.values.get("deviation_seconds", 0))),
                                 round(CLOCK_OFFSET))
                  and check.same(f"{serial} clock after sync", abs((meter.meter_time() - now()).total_seconds()) < 1,
                                 True))
            report.rows.append(FieldRow(done.order_number, serial, "clock sync", done.state, done.detail, ok))
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report

