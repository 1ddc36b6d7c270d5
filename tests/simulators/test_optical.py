"""The optical port on a pty: mode E sign-on with 7E1 parity, the switch to HDLC, reads, failures and recovery.

The probe (``tests.simulators.test_optical_probe.OpticalProbe``) is blocking, as a field tool on a
USB head is; it runs in a worker thread while the port and the simulated meter run in the event
loop, every test bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.acse import MechanismName
from protocols.association import CipheringMode, ClientConfig, SecurityPolicy
from protocols.axdr import Data, DataTag
from protocols.cosem import ProfileColumn, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.iec62056_21 import IdentificationMessage
from protocols.xdlms.common import SelectiveAccessDescriptor
from protocols.xdlms.selective_access import CaptureObjectDefinition, EntryDescriptor, RangeDescriptor
from simulators.clock import FieldClock
from simulators.concentrator import CLOCK as DC_CLOCK
from simulators.concentrator import (
    MANAGEMENT_WPORT,
    METER_TABLE,
    PUBLIC_SAP,
    ConcentratorConfig,
    SecurityConfig,
    SimulatedConcentrator,
)
from simulators.counters import MemoryCounterStore
from simulators.energy import FIELD_EPOCH, INTERVAL, profile_intervals
from simulators.links import LinkModel
from simulators.meter import A_MINUS, A_PLUS, CLOCK, LOAD_PROFILE, PROFILE_STATUS, MeterConfig, SimulatedMeter
from simulators.optical import (
    SIGN_ON_BAUD_RATE,
    OpticalPort,
    OpticalPortStateError,
    PortPhase,
    check_even_parity,
    with_even_parity,
)
from tests.fieldtime import EPOCH, utc_midnight
from tests.simulators.test_optical_probe import OpticalProbe, OpticalProbeError

SEED = "optical-tests"
SERIAL = "OPT00000001"
NOW = EPOCH + timedelta(days=19, hours=10, minutes=7, seconds=30)  # 2024-03-20T10:07:30Z by default
DAY = utc_midnight(NOW) - timedelta(days=2)
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
PROBE_TITLE = bytes.fromhex("5052420000000001")
IDENTIFICATION = IdentificationMessage("HES", "6", "SIM" + SERIAL[-8:])
COLUMNS = [ProfileColumn.of(c) for c in (CaptureObjectDefinition(8, CLOCK, 2),
                                         CaptureObjectDefinition(1, PROFILE_STATUS, 2),
                                         CaptureObjectDefinition(3, A_PLUS, 2),
                                         CaptureObjectDefinition(3, A_MINUS, 2))]


def run(body: Callable[[], Awaitable[None]], seconds: float = 20.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(seconds):
            await body()

    asyncio.run(bounded())


def make_meter(clock: FieldClock, policy: str = "none") -> SimulatedMeter:
    if policy == "hls-gmac":
        config = MeterConfig(SERIAL, SEED, 0x11, policy="hls-gmac", system_title=METER_TITLE, ek=EK, ak=AK)
    else:
        config = MeterConfig(SERIAL, SEED, 0x11)
    return SimulatedMeter(config, clock, MemoryCounterStore())


def day_selection(day: datetime) -> SelectiveAccessDescriptor:
    """Rows stamped (day 00:15Z .. next day 00:00Z]: 96 of them."""
    return RangeDescriptor(
        CaptureObjectDefinition(8, CLOCK, 2),
        Data.octet_string(CosemDateTime.from_datetime(day + INTERVAL, deviation=0).encode()),
        Data.octet_string(CosemDateTime.from_datetime(day + timedelta(days=1), deviation=0).encode()),
    ).to_access_selection()


def expected_day(day: datetime) -> list[tuple[datetime, int, int, int]]:
    first = (day - FIELD_EPOCH) // INTERVAL
    return [(FIELD_EPOCH + (row.interval + 1) * INTERVAL, row.status, row.a_plus, row.a_minus)
            for row in profile_intervals(SEED, SERIAL, first, first + 95)]


def read_clock_and_day(probe: OpticalProbe) -> tuple[datetime, list[tuple[datetime, int, int, int]]]:
    clock = probe.get(8, CLOCK, 2)
    assert clock.tag is DataTag.OCTET_STRING
    shown = CosemDateTime.decode(clock.value).to_datetime()
    assert shown is not None
    rows = parse_profile_buffer(probe.get_raw(7, LOAD_PROFILE, 2, day_selection(DAY)), COLUMNS, 900)
    return shown, [(row.time, *row.values[1:]) for row in rows]


def secure_config(counter: int) -> ClientConfig:
    policy = SecurityPolicy(mechanism=MechanismName.HLS_GMAC, ciphering=CipheringMode.SERVICE_SPECIFIC,
                            system_title=PROBE_TITLE, encryption_key=EK, authentication_key=AK)
    return ClientConfig(policy=policy, client_challenge=b"PROBE-CtoS-0001", invocation_counter=counter,
                        max_receive_pdu_size=512)


async def wait_for(condition: Callable[[], bool], what: str, seconds: float = 3.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# --------------------------------------------------------------------------------------- parity


@given(st.binary(max_size=64).map(lambda b: bytes(x & 0x7F for x in b)))
def test_even_parity_round_trips_and_every_byte_has_an_even_bit_count(chars: bytes) -> None:
    line = with_even_parity(chars)
    assert all(bin(b).count("1") % 2 == 0 for b in line)
    assert check_even_parity(line) == (chars, None)


@given(st.binary(min_size=1, max_size=32).map(lambda b: bytes(x & 0x7F for x in b)), st.data())
def test_one_flipped_bit_is_found_at_its_byte(chars: bytes, data: st.DataObject) -> None:
    line = bytearray(with_even_parity(chars))
    index = data.draw(st.integers(0, len(line) - 1))
    line[index] ^= 1 << data.draw(st.integers(0, 7))
    assert check_even_parity(bytes(line)) == (chars[:index], index)


def test_parity_needs_seven_bit_characters() -> None:
    with pytest.raises(ValueError, match="7-bit"):
        with_even_parity(b"\x80")
    assert with_even_parity(b"/?!\r\n") == bytes((0xAF, 0x3F, 0x21, 0x8D, 0x0A))


# --------------------------------------------------------------------------------------- a meter


def test_sign_on_switch_and_read_clock_and_a_day_of_profile_then_sign_on_again() -> None:
    clock = FieldClock(NOW, scale=60.0)
    meter = make_meter(clock)

    async def body() -> None:
        async with OpticalPort(meter, IDENTIFICATION, clock) as port:
            def session() -> tuple[IdentificationMessage, datetime, datetime, datetime, list[object]]:
                with OpticalProbe(port.client_path) as probe:
                    ident = probe.sign_on()
                    assert probe.baud_rate == 19200
                    probe.connect(ClientConfig(max_receive_pdu_size=512))
                    probe.associate()
                    before = meter.meter_time()
                    shown, rows = read_clock_and_day(probe)
                    after = meter.meter_time()
                    probe.release()
                    probe.disconnect()
                    return ident, before, shown, after, list(rows)

            ident, before, shown, after, rows = await asyncio.to_thread(session)
            assert ident == IDENTIFICATION
            assert before.replace(microsecond=0) <= shown <= after
            assert rows == expected_day(DAY)
            assert len(rows) == 96
            await wait_for(lambda: port.phase is PortPhase.SIGN_ON, "the port back at sign-on after DISC")
            assert port.baud_rate == SIGN_ON_BAUD_RATE
            # The head is put back on: a second sign-on at 300 Bd, a lower speed this time.
            second = await asyncio.to_thread(_sign_on_and_read_day, port.client_path, 9600)
            assert second == expected_day(DAY)
            assert port.sign_ons == 2
            assert port.failures == []

    run(body)


def _sign_on_and_read_day(path: str, max_baud_rate: int = 19200,
                          config: ClientConfig | None = None, client_sap: int = 16) -> list[object]:
    with OpticalProbe(path) as probe:
        probe.sign_on(max_baud_rate=max_baud_rate)
        assert probe.baud_rate == max_baud_rate
        probe.connect(config or ClientConfig(max_receive_pdu_size=512), client_sap=client_sap)
        probe.associate()
        _, rows = read_clock_and_day(probe)
        probe.release()
        probe.disconnect()
        return list(rows)


def test_hls_gmac_association_over_the_optical_port() -> None:
    clock = FieldClock(NOW, scale=0)
    meter = make_meter(clock, "hls-gmac")

    async def body() -> None:
        async with OpticalPort(meter, IDENTIFICATION, clock) as port:
            rows = await asyncio.to_thread(_sign_on_and_read_day, port.client_path, 19200, secure_config(1), 1)
            assert rows == expected_day(DAY)

    run(body)


def test_wrong_parity_fails_that_sign_on_and_the_port_answers_the_next() -> None:
    clock = FieldClock(NOW, scale=0)

    async def body() -> None:
        async with OpticalPort(make_meter(clock), IDENTIFICATION, clock) as port:
            def plain_then_proper() -> tuple[str, IdentificationMessage]:
                with OpticalProbe(port.client_path, timeout=0.5) as probe:
                    with pytest.raises(OpticalProbeError) as failed:
                        probe.sign_on(parity=False)  # a probe left at 8N1
                    return str(failed.value), probe.sign_on()

            message, ident = await asyncio.to_thread(plain_then_proper)
            assert message == "no answer to the sign-on within 0.5 s"
            assert ident == IDENTIFICATION
            assert port.failures == [
                "parity error in sign-on phase: byte 0x2f has odd parity; message dropped"]
            await wait_for(lambda: port.phase is PortPhase.HDLC, "the switch after the proper sign-on")

    run(body)


@pytest.mark.parametrize(("garbled", "reason"), [
    (b"/?x?!\r\n", "sign-on failed: bad device address in sign-on request"),
    (b"/?!\r\n\x06050\r\n", "sign-on failed: option select V=0 Y=0 is not mode E"),
    (b"/?!\r\n\x06292\r\n", "sign-on failed: unknown baud rate character '9'"),
])
def test_garbled_sign_on_is_refused_and_the_port_recovers(garbled: bytes, reason: str) -> None:
    clock = FieldClock(NOW, scale=0)

    async def body() -> None:
        async with OpticalPort(make_meter(clock), IDENTIFICATION, clock) as port:
            def garble() -> None:
                with OpticalProbe(port.client_path, timeout=1.0) as probe:
                    probe.send_raw(with_even_parity(garbled))

            await asyncio.to_thread(garble)
            await wait_for(lambda: bool(port.failures), "the failure to be recorded")
            assert port.failures[0].startswith(reason)
            assert port.phase is PortPhase.SIGN_ON
            rows = await asyncio.to_thread(_sign_on_and_read_day, port.client_path)
            assert rows == expected_day(DAY)

    run(body)


def test_a_sign_on_for_another_address_is_not_answered() -> None:
    clock = FieldClock(NOW, scale=0)

    async def body() -> None:
        async with OpticalPort(make_meter(clock), IDENTIFICATION, clock, device_address=SERIAL) as port:
            def other_then_own() -> IdentificationMessage:
                with OpticalProbe(port.client_path, timeout=0.4) as probe:
                    with pytest.raises(OpticalProbeError, match="no answer to the sign-on"):
                        probe.sign_on("OTHER0001")
                    return probe.sign_on(SERIAL)

            assert await asyncio.to_thread(other_then_own) == IDENTIFICATION
            assert port.failures == []

    run(body)


def test_inactivity_in_hdlc_and_a_stalled_sign_on_fall_back_to_sign_on() -> None:
    clock = FieldClock(NOW, scale=1000.0)

    async def body() -> None:
        port = OpticalPort(make_meter(clock), IDENTIFICATION, clock, inactivity_timeout=120.0,
                           handshake_timeout=1.5, min_wall_timeout=0.1)
        async with port:
            def sign_on_and_walk_away() -> None:
                with OpticalProbe(port.client_path) as probe:
                    probe.sign_on()

            await asyncio.to_thread(sign_on_and_walk_away)
            assert port.phase is PortPhase.HDLC
            await wait_for(lambda: port.phase is PortPhase.SIGN_ON, "the inactivity timeout")
            assert port.failures == []

            def half_a_sign_on() -> None:
                with OpticalProbe(port.client_path) as probe:
                    probe.send_raw(with_even_parity(b"/?"))

            await asyncio.to_thread(half_a_sign_on)
            await wait_for(lambda: bool(port.failures), "the handshake timeout")
            assert port.failures == ["sign-on not completed within 1.5 field s"]
            rows = await asyncio.to_thread(_sign_on_and_read_day, port.client_path)
            assert rows == expected_day(DAY)

    run(body)


def test_hdlc_garbage_after_the_switch_returns_to_sign_on() -> None:
    clock = FieldClock(NOW, scale=0)

    async def body() -> None:
        async with OpticalPort(make_meter(clock), IDENTIFICATION, clock) as port:
            def switch_then_garbage() -> None:
                with OpticalProbe(port.client_path) as probe:
                    probe.sign_on()
                    probe.send_raw(bytes(range(256)) * 40)

            await asyncio.to_thread(switch_then_garbage)
            await wait_for(lambda: port.phase is PortPhase.SIGN_ON, "the port to give up on the garbage")
            # Garbage still in the line after the port gave up is then refused by the sign-on phase
            # (parity errors), so the give-up is among the failures, not necessarily the last one.
            assert any(f.endswith("without an HDLC frame for this device; back to sign-on") for f in port.failures)
            rows = await asyncio.to_thread(_sign_on_and_read_day, port.client_path)
            assert rows == expected_day(DAY)

    run(body)


def test_port_life_cycle_errors_are_typed() -> None:
    clock = FieldClock(NOW, scale=0)
    port = OpticalPort(make_meter(clock), IDENTIFICATION, clock)
    with pytest.raises(OpticalPortStateError, match="not started"):
        _ = port.client_path
    with pytest.raises(ValueError, match="mode E"):
        OpticalPort(make_meter(clock), IdentificationMessage("HES", "5", "X", ()), clock)

    async def body() -> None:
        await port.start()
        with pytest.raises(OpticalPortStateError, match="already started"):
            await port.start()
        await port.stop()
        await port.stop()  # twice is harmless
        assert not port.running

    run(body)


# --------------------------------------------------------------------------------------- a concentrator


def test_a_concentrators_management_device_over_the_optical_port() -> None:
    clock = FieldClock(NOW, scale=0)
    dc = SimulatedConcentrator(ConcentratorConfig("DC-OPT-1", SEED, SecurityConfig()), clock)
    last_reads = (NOW - timedelta(hours=1), None, NOW - timedelta(days=2))
    for index, last_read in enumerate(last_reads):
        serial = f"OPTDC{index:06d}"
        meter = SimulatedMeter(MeterConfig(serial, SEED, 0x20 + index), clock, MemoryCounterStore())
        dc.add_meter(serial, 0x20 + index, meter, LinkModel(latency=0.0), last_read=last_read)
    device = dc.logical_device(MANAGEMENT_WPORT)
    assert device is not None
    entries = EntryDescriptor(2, 3, 1, 0).to_access_selection()

    async def body() -> None:
        async with OpticalPort(device, IdentificationMessage("HES", "5", "DCOPT1"), clock) as port:
            def read() -> tuple[IdentificationMessage, Data, Data]:
                with OpticalProbe(port.client_path) as probe:
                    ident = probe.sign_on()
                    assert probe.baud_rate == 9600  # the DC offers no more
                    probe.connect(ClientConfig(max_receive_pdu_size=512), client_sap=PUBLIC_SAP)
                    probe.associate()
                    shown = probe.get(8, DC_CLOCK, 2)
                    table = probe.get(7, METER_TABLE, 2, entries)
                    probe.release()
                    probe.disconnect()
                    return ident, shown, table

            ident, shown, table = await asyncio.to_thread(read)
            assert ident.identification == "DCOPT1"
            assert CosemDateTime.decode(shown.value).to_datetime() == NOW
            rows = [[cell.value for cell in row.value] for row in table.value]
            assert [row[:3] for row in rows] == [["OPTDC000001", b"\x00\x21", True],
                                                 ["OPTDC000002", b"\x00\x22", True]]
            assert CosemDateTime.decode(rows[1][3]).to_datetime() == NOW - timedelta(days=2)
            assert CosemDateTime.decode(rows[0][3]).to_datetime() is None  # never read: unspecified

    run(body)
