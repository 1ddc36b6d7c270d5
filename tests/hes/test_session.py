"""Meter sessions against the simulated field on loopback: p2p meters, DC meters by gateway and tables, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal

import pytest

from concentrator.budget import SessionBudget
from hes.model import CounterReservation, DirectRoute, MeterSecurity, MeterTarget, ViaConcentrator
from hes.session import (
    AssociationRefused,
    AttributeRef,
    AuthenticationRefused,
    MeterSession,
    ReservationExhausted,
    SessionState,
    TargetError,
    Timeouts,
    open_session,
)
from hes.slots import ConcentratorSlots, Gate
from protocols.axdr import Data
from protocols.cosem import ProfileColumn, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ConnectionLost, DlmsError, ReadTimeout, SecurityError, ServiceError, TransportError
from protocols.xdlms.selective_access import CaptureObjectDefinition, RangeDescriptor
from simulators.clock import FieldClock
from simulators.concentrator import SecurityConfig
from simulators.counters import MemoryCounterStore
from simulators.endpoint import LogicalDevice, Session
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
from simulators.fleet import Fleet, FleetOptions
from simulators.manifest import ManifestConcentrator
from simulators.meter import A_PLUS, CLOCK, DISCONNECT_CONTROL, LOAD_PROFILE, SERIAL_NUMBER, MeterConfig, SimulatedMeter
from simulators.p2p import PointToPointMeter
from tests.fieldtime import EPOCH, interval_floor, meter_midnight

FIELD_NOW = EPOCH + timedelta(days=9, hours=12, minutes=7)  # 2024-03-10T12:07Z by default
#: The meters' local day before FIELD_NOW's (2024-03-08T23:00Z, local midnight of 9 March, by default).
DAY = meter_midnight(FIELD_NOW) - timedelta(days=1)
SERIAL = "P2P000000042"
SEED = 2026
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
PASSWORD = b"12345678"
FAST = Timeouts(connect=2.0, read=0.5, release=0.5, retries=1)
Policy = Literal["none", "lls", "hls-gmac"]


def reservation(start: int = 1, limit: int = 1000, last: int | None = None) -> CounterReservation:
    return CounterReservation(start=start, limit=limit, last_received=last)


def fixed_rng(size: int) -> bytes:
    return bytes(range(1, size + 1))


def meter_security(policy: Policy) -> MeterSecurity:
    return MeterSecurity(policy=policy, password=PASSWORD if policy == "lls" else None,
                         system_title=METER_TITLE if policy == "hls-gmac" else None,
                         ek=EK if policy == "hls-gmac" else None, ak=AK if policy == "hls-gmac" else None)


def make_meter(policy: Policy, *, decommissioned: bool = False) -> SimulatedMeter:
    config = MeterConfig(serial=SERIAL, seed=SEED, physical_address=0x11, policy=policy,
                         password=PASSWORD if policy == "lls" else None, system_title=METER_TITLE,
                         ek=EK if policy == "hls-gmac" else None, ak=AK if policy == "hls-gmac" else None,
                         decommissioned=decommissioned)
    return SimulatedMeter(config, FieldClock(FIELD_NOW, scale=0.0), MemoryCounterStore())


def p2p_target(p2p: PointToPointMeter, security: MeterSecurity) -> MeterTarget:
    route = DirectRoute(host=p2p.host, port=p2p.port, interface=p2p.interface, client_sap=1, server_sap=1,
                        physical_address=p2p.physical_address)
    return MeterTarget(serial=SERIAL, route=route, security=security)


def run(body: Callable[[], Awaitable[None]], limit: float = 20.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await body()

    asyncio.run(main())


def day_range(start: datetime) -> RangeDescriptor:
    """(start, start + 1 day]: 96 fifteen-minute rows."""
    return RangeDescriptor(
        CaptureObjectDefinition(8, CLOCK, 2),
        Data.octet_string(CosemDateTime.from_datetime(start + timedelta(minutes=15), deviation=0).encode()),
        Data.octet_string(CosemDateTime.from_datetime(start + timedelta(days=1), deviation=0).encode()),
    )


async def read_profile_day(session: MeterSession, start: datetime) -> list[tuple[object, ...]]:
    capture = await session.get(7, LOAD_PROFILE, 3)
    columns = [ProfileColumn.of(CaptureObjectDefinition.from_data(item)) for item in capture.value]
    raw = await session.get_raw(7, LOAD_PROFILE, 2, day_range(start))
    return [(row.time, *row.values[1:]) for row in parse_profile_buffer(raw, columns, 900)]


def expected_day(seed: int | str, serial: str, start: datetime) -> list[tuple[object, ...]]:
    first = interval_index(start)
    return [(interval_end(r.interval), r.status, r.a_plus, r.a_minus)
            for r in profile_intervals(seed, serial, first, first + 95)]


# --- point-to-point meters ------------------------------------------------------------------------------


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
@pytest.mark.parametrize("policy", ["none", "lls", "hls-gmac"])
def test_p2p_meter_clock_register_and_a_day_of_profile(interface: Literal["wrapper", "hdlc"], policy: Policy) -> None:
    meter = make_meter(policy)
    day = DAY

    async def body() -> None:
        async with PointToPointMeter(meter, interface=interface, physical_address=0x11) as p2p:
            target = p2p_target(p2p, meter_security(policy))
            async with open_session(target, reservation(), timeouts=FAST, rng=fixed_rng) as s:
                clock = await s.get(8, CLOCK, 2)
                assert CosemDateTime.decode(clock.value).to_datetime() == FIELD_NOW
                register = await s.get(3, A_PLUS, 2)
                assert register.value == registers_at(SEED, SERIAL, FIELD_NOW).a_plus
                rows = await read_profile_day(s, day)
                assert len(rows) == 96
                assert rows == expected_day(SEED, SERIAL, day)
                serial, a_plus = await s.get_many([(1, SERIAL_NUMBER, 2), AttributeRef(3, A_PLUS, 2)])
                assert isinstance(serial, Data) and serial.value == SERIAL
                assert isinstance(a_plus, Data) and a_plus.value == register.value
            if policy == "hls-gmac":
                assert s.counters_used is not None and 1 <= s.counters_used < 1000
                assert s.last_received is not None
            else:
                assert s.counters_used is None

    run(body)


def test_counters_carry_over_between_sessions_and_a_reused_counter_is_refused() -> None:
    meter = make_meter("hls-gmac")

    async def body() -> None:
        async with PointToPointMeter(meter, interface="wrapper") as p2p:
            target = p2p_target(p2p, meter_security("hls-gmac"))
            async with open_session(target, reservation(10, 100), timeouts=FAST) as first:
                await first.get(8, CLOCK, 2)
            assert first.counters_used is not None and first.last_received is not None
            used, received = first.counters_used, first.last_received
            async with open_session(target, reservation(used + 1, used + 100, received), timeouts=FAST) as second:
                await second.get(8, CLOCK, 2)
            assert second.counters_used is not None and second.counters_used > used
            assert second.last_received is not None and second.last_received > received
            # The same counters again: the meter's replay check must refuse the association.
            with pytest.raises(DlmsError) as caught:
                async with open_session(target, reservation(10, 100), timeouts=FAST) as third:
                    await third.get(8, CLOCK, 2)
            assert not isinstance(caught.value, TransportError), caught.value

    run(body)


def test_set_and_action_on_a_p2p_meter() -> None:
    meter = make_meter("hls-gmac")

    async def body() -> None:
        async with PointToPointMeter(meter, interface="hdlc", physical_address=0x11) as p2p:
            target = p2p_target(p2p, meter_security("hls-gmac"))
            async with open_session(target, reservation(), timeouts=FAST) as s:
                new_time = FIELD_NOW + timedelta(minutes=5)
                await s.set(8, CLOCK, 2, Data.octet_string(CosemDateTime.from_datetime(new_time).encode()))
                shown = CosemDateTime.decode((await s.get(8, CLOCK, 2)).value).to_datetime()
                assert shown == new_time
                await s.action(70, DISCONNECT_CONTROL, 1, Data.integer(0))
                assert (await s.get(70, DISCONNECT_CONTROL, 2)).value is False
                await s.action(70, DISCONNECT_CONTROL, 2, Data.integer(0))
                assert (await s.get(70, DISCONNECT_CONTROL, 2)).value is True
                with pytest.raises(ServiceError) as refused:
                    await s.get(3, LOAD_PROFILE.__class__(1, 0, 99, 99, 0, 255), 2)
                assert refused.value.code is not None and not refused.value.retryable

    run(body)


# --- failures of a p2p meter -------------------------------------------------------------------------------


def test_connection_refused_is_connection_lost() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = MeterTarget(SERIAL, DirectRoute("127.0.0.1", port), MeterSecurity())

    async def body() -> None:
        with pytest.raises(ConnectionLost, match="refused") as caught:
            async with open_session(target, reservation(), timeouts=FAST):
                pass
        assert caught.value.retryable

    run(body)


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
def test_silent_modem_gives_read_timeout(interface: Literal["wrapper", "hdlc"]) -> None:
    async def body() -> None:
        async with PointToPointMeter(make_meter("none"), interface=interface, physical_address=0x11) as p2p:
            p2p.faults.silent = True
            with pytest.raises(ReadTimeout) as caught:
                async with open_session(p2p_target(p2p, MeterSecurity()), reservation(), timeouts=FAST):
                    pass
            assert caught.value.retryable

    run(body)


@pytest.mark.parametrize("policy", ["lls", "hls-gmac"])
def test_wrong_key_is_a_security_error(policy: Policy) -> None:
    async def body() -> None:
        async with PointToPointMeter(make_meter(policy), interface="wrapper") as p2p:
            good = meter_security(policy)
            wrong = MeterSecurity(policy, password=b"87654321" if policy == "lls" else None,
                                  system_title=good.system_title, ek=good.ek, ak=bytes(16) if good.ak else None)
            with pytest.raises(SecurityError) as caught:
                async with open_session(p2p_target(p2p, wrong), reservation(), timeouts=FAST):
                    pass
            if policy == "lls":
                assert isinstance(caught.value, AuthenticationRefused)
            assert not caught.value.retryable

    run(body)


def test_corrupted_hdlc_frames_are_recovered() -> None:
    meter = make_meter("hls-gmac")
    day = DAY

    async def body() -> None:
        async with PointToPointMeter(meter, interface="hdlc", physical_address=0x11) as p2p:
            p2p.faults.seed = 5
            p2p.faults.corrupt_fcs = 0.25
            timeouts = Timeouts(connect=2.0, read=0.2, release=0.5, retries=8)
            async with open_session(p2p_target(p2p, meter_security("hls-gmac")), reservation(),
                                    timeouts=timeouts) as s:
                assert await read_profile_day(s, day) == expected_day(SEED, SERIAL, day)
            assert p2p.faults.applied.get("corrupt_fcs", 0) > 0

    run(body)


def test_truncated_wrapper_answers_give_a_transport_error() -> None:
    async def body() -> None:
        async with PointToPointMeter(make_meter("none"), interface="wrapper") as p2p:
            p2p.faults.truncate_frame = 1.0
            with pytest.raises(TransportError):
                async with open_session(p2p_target(p2p, MeterSecurity()), reservation(), timeouts=FAST):
                    pass

    run(body)


def test_exception_response_is_a_service_error() -> None:
    async def body() -> None:
        async with PointToPointMeter(make_meter("none"), interface="wrapper") as p2p, \
                open_session(p2p_target(p2p, MeterSecurity()), reservation(), timeouts=FAST) as s:
            p2p.faults.exception_response = 1.0
            with pytest.raises(ServiceError, match="exception-response") as caught:
                await s.get(8, CLOCK, 2)
            assert caught.value.code == 2 and not caught.value.retryable  # service-not-supported
            p2p.faults.exception_response = 0.0
            # The session stays usable after a refused request.
            assert (await s.get(1, SERIAL_NUMBER, 2)).value == SERIAL

    run(body)


def test_decommissioned_meter_is_refused_with_a_clear_error() -> None:
    async def body() -> None:
        async with PointToPointMeter(make_meter("none", decommissioned=True), interface="wrapper") as p2p:
            with pytest.raises(AssociationRefused, match="decommissioned") as caught:
                async with open_session(p2p_target(p2p, MeterSecurity()), reservation(), timeouts=FAST):
                    pass
            assert caught.value.permanent and not caught.value.retryable

    run(body)


def test_reservation_exhausted_never_uses_the_limit() -> None:
    async def body() -> None:
        async with PointToPointMeter(make_meter("hls-gmac"), interface="wrapper") as p2p:
            target = p2p_target(p2p, meter_security("hls-gmac"))
            # One counter: enough for the AARQ, not for f(StoC).
            with pytest.raises(ReservationExhausted, match="reserve new counters") as caught:
                async with open_session(target, reservation(50, 51), timeouts=FAST):
                    pass
            assert caught.value.retryable
            # Three (the AARQ, f(StoC), the ACTION carrying it): associated, but the first GET needs a fourth.
            async with open_session(target, reservation(60, 63), timeouts=FAST) as s:
                with pytest.raises(ReservationExhausted):
                    await s.get(8, CLOCK, 2)
            assert s.counters_used == 62
            # A meter without ciphering needs no counter at all, even from an empty reservation.
        async with PointToPointMeter(make_meter("none"), interface="wrapper") as p2p:
            async with open_session(p2p_target(p2p, MeterSecurity()), reservation(5, 5), timeouts=FAST) as s:
                assert (await s.get(1, SERIAL_NUMBER, 2)).value == SERIAL
            assert s.counters_used is None

    run(body)


def test_unusable_target_data_is_a_target_error() -> None:
    target = MeterTarget(SERIAL, DirectRoute("127.0.0.1", 1), MeterSecurity("hls-gmac", system_title=METER_TITLE))

    async def body() -> None:
        with pytest.raises(TargetError, match="keys"):
            async with open_session(target, reservation()):
                pass

    run(body)


# --- meters behind a concentrator ---------------------------------------------------------------------------


def security(config: SecurityConfig) -> MeterSecurity:
    return MeterSecurity(config.policy, config.password, config.system_title, config.ek, config.ak)


def dc_target(dc: ManifestConcentrator, index: int, mode: Literal["gateway", "concentrated"]) -> MeterTarget:
    meter = dc.meters[index]
    route = ViaConcentrator(
        concentrator_id=dc.id, host=dc.host, port=dc.port, dc_security=security(dc.security),
        dc_client_sap=dc.client_sap, management_wport=dc.logical_device, logical_device=meter.logical_device,
        network_id=dc.network_id, physical_address=meter.physical_address, mode=mode,
    )
    return MeterTarget(meter.serial, route, security(meter.security), client_sap=meter.client_sap)


def run_fleet(body: Callable[[Fleet], Awaitable[None]], *, prepare: Callable[[Fleet], None] | None = None,
              **options: object) -> None:
    settings: dict[str, object] = {"concentrators": 1, "meters_per_dc": 4, "seed": 11, "plc_latency": 0.0,
                                   "loss": 0.0, "schedule": False, "epoch": EPOCH}
    settings.update(options)
    fleet = Fleet(FleetOptions(**settings), clock=FieldClock(EPOCH, 0.0))  # type: ignore[arg-type]
    if prepare is not None:
        prepare(fleet)

    async def main() -> None:
        async with fleet:
            await body(fleet)

    run(lambda: main())


def index_with(dc: ManifestConcentrator, policy: Policy) -> int:
    found = [i for i, m in enumerate(dc.meters) if m.security.policy == policy]
    assert found, f"the fleet's seed gives no {policy} meter"
    return found[0]


@pytest.mark.parametrize("policy", ["none", "lls", "hls-gmac"])
def test_dc_meter_through_the_gateway(policy: Policy) -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.manifest().concentrators[0]
        index = index_with(dc, policy)
        target = dc_target(dc, index, "gateway")
        now = fleet.clock.now()
        day = interval_floor(now) - timedelta(days=2)
        async with open_session(target, reservation(), timeouts=FAST) as s:
            assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial
            assert (await s.get(3, A_PLUS, 2)).value == registers_at(11, target.serial, now).a_plus
            assert await read_profile_day(s, day) == expected_day(11, target.serial, day)
        assert (s.counters_used is not None) == (policy == "hls-gmac")

    run_fleet(body, meters_per_dc=8)


def test_dc_meter_from_the_concentrated_tables() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.manifest().concentrators[0]
        target = dc_target(dc, 2, "concentrated")
        day = interval_floor(fleet.clock.now()) - timedelta(days=1)  # the DC collected up to the last boundary
        async with open_session(target, reservation(), timeouts=FAST) as s:
            assert await read_profile_day(s, day) == expected_day(11, target.serial, day)
            assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial
        # The DC's own security (HLS-GMAC) was used, so counters were.
        assert s.counters_used is not None and s.last_received is not None

    run_fleet(body)


def test_disconnect_and_reconnect_through_the_gateway() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.manifest().concentrators[0]
        index = index_with(dc, "hls-gmac")
        target = dc_target(dc, index, "gateway")
        relay = fleet.meter(target.serial).relay
        async with open_session(target, reservation(), timeouts=FAST) as s:
            await s.action(70, DISCONNECT_CONTROL, 1, Data.integer(0))
            assert (await s.get(70, DISCONNECT_CONTROL, 2)).value is False
            assert int(relay.control_state) == (await s.get(70, DISCONNECT_CONTROL, 3)).value == 0
            await s.action(70, DISCONNECT_CONTROL, 2, Data.integer(0))
            assert (await s.get(70, DISCONNECT_CONTROL, 2)).value is True
            assert int(relay.control_state) == (await s.get(70, DISCONNECT_CONTROL, 3)).value == 1

    run_fleet(body, meters_per_dc=8)


class _Ticks:
    """Activity windows of the DC's sessions, in a global order of APDUs handled (not wall time)."""

    def __init__(self) -> None:
        self.tick = 0
        self.windows: dict[int, list[int]] = {}

    def peak(self) -> int:
        edges = sorted([(w[0], 1) for w in self.windows.values()] + [(w[1], -1) for w in self.windows.values()])
        live = best = 0
        for _, step in edges:
            live += step
            best = max(best, live)
        return best


_SESSION_KEYS = itertools.count()


class _CountingSession:
    def __init__(self, inner: Session, ticks: _Ticks) -> None:
        self._inner = inner
        self._ticks = ticks
        # Not id(self): a finished session's id can be reused by the next one, merging two windows.
        self._key = next(_SESSION_KEYS)

    async def handle(self, apdu: bytes) -> list[bytes]:
        ticks = self._ticks
        ticks.tick += 1
        window = ticks.windows.setdefault(self._key, [ticks.tick, ticks.tick])
        try:
            return await self._inner.handle(apdu)
        finally:
            ticks.tick += 1
            window[1] = ticks.tick

    def close(self) -> None:
        self._inner.close()


class _CountingDevice:
    def __init__(self, inner: LogicalDevice, ticks: _Ticks) -> None:
        self._inner = inner
        self._ticks = ticks

    def open_session(self, client_sap: int) -> Session | None:
        session = self._inner.open_session(client_sap)
        return None if session is None else _CountingSession(session, self._ticks)


@pytest.mark.parametrize("budget", [2, None])
def test_per_dc_limit_on_concurrent_sessions(budget: int | None) -> None:
    ticks = _Ticks()

    def prepare(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        original = dc.logical_device

        def counting(wport: int) -> LogicalDevice | None:
            device = original(wport)
            return None if device is None else _CountingDevice(device, ticks)

        dc.logical_device = counting  # type: ignore[method-assign]
        # A slow DC: every answer waits, so sessions that may overlap do overlap.
        dc.faults.answer_delay = 0.01

    async def body(fleet: Fleet) -> None:
        dc = fleet.manifest().concentrators[0]
        gate = Gate(ConcentratorSlots(SessionBudget(budget))) if budget is not None else None

        async def one(index: int) -> object:
            async with open_session(dc_target(dc, index, "gateway"), reservation(), gate=gate, timeouts=FAST) as s:
                return (await s.get(1, SERIAL_NUMBER, 2)).value

        serials = await asyncio.gather(*(one(i) for i in range(6)))
        assert serials == [m.serial for m in dc.meters]
        assert len(ticks.windows) == 6
        if gate is not None:
            assert ticks.peak() == budget
            assert gate.slots.peak["DC0001"] == budget and gate.slots.active("DC0001") == 0
        else:
            assert ticks.peak() > 2  # without a limit they do overlap: the count above can fail

    run_fleet(body, prepare=prepare, meters_per_dc=6)


def test_dc_outage_is_connection_lost() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.manifest().concentrators[0]
        fleet.set_outage("DC0001")
        modes: tuple[Literal["gateway", "concentrated"], ...] = ("gateway", "concentrated")
        for mode in modes:
            with pytest.raises(ConnectionLost):
                async with open_session(dc_target(dc, 0, mode), reservation(), timeouts=FAST):
                    pass

    run_fleet(body)


def test_unreachable_meter_behind_the_dc_is_a_read_timeout() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.manifest().concentrators[0]
        target = dc_target(dc, 1, "gateway")
        fleet.set_unreachable(target.serial, fleet.clock.now() - timedelta(hours=1), timedelta(days=1))
        with pytest.raises(ReadTimeout):
            async with open_session(target, reservation(), timeouts=FAST):
                pass
        # The DC itself still answers from its tables.
        async with open_session(dc_target(dc, 1, "concentrated"), reservation(), timeouts=FAST) as s:
            assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial

    run_fleet(body)


@pytest.mark.parametrize("overflow", ["short", "refuse", "exception"])
def test_get_many_learns_a_list_limit_and_a_refused_list_leaves_the_session_ready(
    overflow: Literal["short", "refuse", "exception"],
) -> None:
    """A meter serving at most 2 attributes per list: 5 asked, all 5 read; the limit stays for the session's next
    list; a refusal is an answer, not an error, so the link stays fit for reuse."""
    meter = make_meter("hls-gmac")
    meter.config = dataclasses.replace(meter.config, get_with_list_limit=2, get_with_list_overflow=overflow)
    refs = [(1, SERIAL_NUMBER, 2), (3, A_PLUS, 2), (3, A_PLUS, 3), (8, CLOCK, 2), (1, SERIAL_NUMBER, 2)]

    async def body() -> None:
        async with PointToPointMeter(meter, interface="hdlc", physical_address=0x11) as p2p:
            target = p2p_target(p2p, meter_security("hls-gmac"))
            async with open_session(target, reservation(), timeouts=FAST, rng=fixed_rng) as s:
                single = [await s.get(*ref) for ref in refs]
                assert s.list_limit() is None
                assert await s.get_many(refs) == single
                assert s.learned_list_limit == 2 and s.list_limit() == 2
                assert s.state is SessionState.READY
                # Short: 2 results taught 2 at once; refused: 5 halved to 2.
                assert meter.get_with_list_sizes == [5, 2, 2]
                meter.get_with_list_sizes.clear()
                assert await s.get_many(refs[:4]) == single[:4]
                assert meter.get_with_list_sizes == [2, 2]

    run(body)
