"""Point-to-point meters: our client reads the simulated meter's clock, a register and 96 profile rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocols.axdr import Data
from protocols.cosem import ProfileColumn, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ConnectionLost, ReadTimeout
from protocols.xdlms.selective_access import CaptureObjectDefinition, RangeDescriptor
from simulators.clock import FieldClock
from simulators.counters import MemoryCounterStore
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
from simulators.meter import A_PLUS, LOAD_PROFILE, MeterConfig, SimulatedMeter
from simulators.p2p import Interface, PointToPointMeter, PointToPointStateError
from tests.fieldtime import EPOCH, meter_midnight
from tests.simulators.netclient import HdlcTarget, NetClient
from tests.simulators.test_transport import (
    AK,
    CLOCK,
    EK,
    DoubleMeter,
    client_config,
    expected_rows,
    read_day,
    run,
)

FIELD_NOW = EPOCH + timedelta(days=9, hours=12, minutes=7)  # 2024-03-10T12:07Z by default
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")


def real_meter(secure: bool, *, drift: float = 0.0) -> SimulatedMeter:
    """F1's simulated meter on a frozen field clock, so every value read is known exactly."""
    config = MeterConfig(
        serial="P2P00000042", seed=2026, physical_address=0x11,
        policy="hls-gmac" if secure else "none",
        system_title=METER_TITLE if secure else None, ek=EK if secure else None, ak=AK if secure else None,
        drift_seconds_per_day=drift,
    )
    return SimulatedMeter(config, FieldClock(FIELD_NOW, scale=0.0), MemoryCounterStore())


async def read_real_day(client: NetClient, meter: SimulatedMeter) -> tuple[list[tuple[object, ...]],
                                                                          list[tuple[object, ...]]]:
    """Read the local day before FIELD_NOW's (9 March 2024 by default): (rows read, rows the energy functions say)."""
    seed, serial = meter.config.seed, meter.config.serial
    day = meter_midnight(FIELD_NOW) - timedelta(days=1)  # the meter's local day before FIELD_NOW's
    selection = RangeDescriptor(
        CaptureObjectDefinition(8, CLOCK, 2),
        Data.octet_string(CosemDateTime.from_datetime(day + timedelta(minutes=15), deviation=0).encode()),
        Data.octet_string(CosemDateTime.from_datetime(day + timedelta(days=1), deviation=0).encode()),
    ).to_access_selection()
    first = interval_index(day)
    expected: list[tuple[object, ...]] = [(interval_end(r.interval), r.status, r.a_plus, r.a_minus)
                                          for r in profile_intervals(seed, serial, first, first + 95)]
    capture = await client.get_data(7, LOAD_PROFILE, 3)
    columns = [ProfileColumn.of(CaptureObjectDefinition.from_data(item)) for item in capture.value]
    raw = await client.get(7, LOAD_PROFILE, 2, selection)
    rows: list[tuple[object, ...]] = [(row.time, *row.values[1:]) for row in parse_profile_buffer(raw, columns, 900)]
    return rows, expected


async def open_client(p2p: PointToPointMeter, secure: bool) -> NetClient:
    config = client_config(secure)
    if p2p.interface == "wrapper":
        return await NetClient.open_wrapper(p2p.host, p2p.port, config)
    return await NetClient.open_hdlc(p2p.host, p2p.port, config, target=HdlcTarget(physical=0x11))


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
@pytest.mark.parametrize("secure", [False, True], ids=["no-security", "hls-gmac"])
def test_client_reads_the_simulated_meter(interface: Interface, secure: bool) -> None:
    meter = real_meter(secure)
    seed, serial = meter.config.seed, meter.config.serial
    async def body() -> None:
        async with PointToPointMeter(meter, interface=interface, physical_address=0x11) as p2p:
            client = await open_client(p2p, secure)
            associated = await client.associate()
            if secure:
                assert associated.peer_system_title == METER_TITLE
            clock = await client.get_data(8, CLOCK, 2)
            # Real meters send the clock as an octet-string holding a COSEM date-time.
            assert CosemDateTime.decode(clock.value).to_datetime() == FIELD_NOW
            register = await client.get_data(3, A_PLUS, 2)
            assert register.value == registers_at(seed, serial, FIELD_NOW).a_plus
            rows, expected = await read_real_day(client, meter)
            assert len(rows) == 96
            assert rows == expected
            await client.release()
            await client.close()

    run(body)


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
def test_double_meter_a_day_of_profile(interface: Interface) -> None:
    meter = DoubleMeter()

    async def body() -> None:
        async with PointToPointMeter(meter, interface=interface, physical_address=0x11) as p2p:
            client = await open_client(p2p, False)
            await client.associate()
            rows = await read_day(client)
            day = datetime(2026, 3, 5, tzinfo=UTC)
            assert rows == expected_rows(day + timedelta(minutes=15), day + timedelta(days=1))
            await client.close()

    run(body)


def test_hdlc_p2p_ignores_another_physical_address() -> None:
    async def body() -> None:
        async with PointToPointMeter(DoubleMeter(), interface="hdlc", physical_address=0x11) as p2p:
            with pytest.raises(ReadTimeout, match="no UA after 2 SNRM"):
                await NetClient.open_hdlc(p2p.host, p2p.port, client_config(False),
                                          target=HdlcTarget(physical=0x22), timeout=0.2, retries=1)

    run(body)


def test_start_stop_and_port() -> None:
    async def body() -> None:
        p2p = PointToPointMeter(DoubleMeter())
        with pytest.raises(PointToPointStateError):
            _ = p2p.port
        await p2p.start()
        port = p2p.port
        assert port > 0
        client = await NetClient.open_wrapper(p2p.host, port, client_config(False))
        await client.associate()
        await p2p.stop()
        assert not p2p.running
        with pytest.raises(ConnectionLost):
            await client.get(8, CLOCK, 2)
        await client.close()
        with pytest.raises(ConnectionLost):
            await NetClient.open_wrapper("127.0.0.1", port, client_config(False), timeout=1.0)
        await p2p.stop()  # idempotent

    run(body)


def test_interface_is_checked() -> None:
    with pytest.raises(ValueError, match="interface"):
        PointToPointMeter(DoubleMeter(), interface="serial")  # type: ignore[arg-type]
