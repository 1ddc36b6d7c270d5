"""The simulated concentrator over TCP: meter table, concentrated reads, gateway tunnel, WAN outage."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.acse import MechanismName
from protocols.association import CipheringMode, ClientConfig, GatewayAddress, SecurityPolicy
from protocols.axdr import Data
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ConnectionLost, ReadTimeout, ServiceError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import CaptureObjectDefinition, EntryDescriptor, RangeDescriptor
from simulators.clock import FieldClock
from simulators.concentrator import (
    DC_EVENT_LOG,
    LOAD_PROFILE,
    MANAGEMENT_WPORT,
    METER_TABLE,
    METER_WPORT_BASE,
    REGISTERS,
    DcEvent,
    SecurityConfig,
)
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import EPOCH
from tests.simulators.netclient import NetClient

HES_TITLE = b"HES00001"
CLOCK_COLUMN = CaptureObjectDefinition(8, ObisCode(0, 0, 1, 0, 0, 255), 2)
DISCONNECT_CONTROL = ObisCode(0, 0, 96, 3, 10, 255)
_COUNTERS = itertools.count(1)


def client_config(security: SecurityConfig, gateway: GatewayAddress | None = None) -> ClientConfig:
    if security.policy == "none":
        policy = SecurityPolicy()
    elif security.policy == "lls":
        policy = SecurityPolicy(mechanism=MechanismName.LLS, password=security.password)
    else:
        policy = SecurityPolicy(mechanism=MechanismName.HLS_GMAC, ciphering=CipheringMode.SERVICE_SPECIFIC,
                                system_title=HES_TITLE, encryption_key=security.ek,
                                authentication_key=security.ak)
    challenge = b"HES-CtoS-test-01" if security.policy == "hls-gmac" else None
    # A fresh invocation counter per association: the DC and the meters keep the last one and refuse replays.
    return ClientConfig(policy=policy, client_challenge=challenge, invocation_counter=next(_COUNTERS) * 100,
                        gateway=gateway)


def run(body: Callable[[Fleet], Awaitable[None]], **options: object) -> None:
    """Build a frozen-clock fleet (no link latency, no loss), start it, run ``body``, stop it; bounded."""
    settings: dict[str, object] = {"concentrators": 1, "meters_per_dc": 4, "seed": 11, "plc_latency": 0.0,
                                   "loss": 0.0, "schedule": False, "epoch": EPOCH}
    settings.update(options)
    fleet = Fleet(FleetOptions(**settings), clock=FieldClock(EPOCH, 0.0))  # type: ignore[arg-type]

    async def main() -> None:
        async with asyncio.timeout(20):
            async with fleet:
                await body(fleet)

    asyncio.run(main())


def day_range(end: datetime) -> RangeDescriptor:
    return RangeDescriptor(
        CLOCK_COLUMN,
        Data.octet_string(CosemDateTime.from_datetime(end - timedelta(days=1)).encode()),
        Data.octet_string(CosemDateTime.from_datetime(end).encode()),
    )


def row_times(buffer: Data) -> list[datetime]:
    times = []
    for row in buffer.value:
        moment = CosemDateTime.decode(row.value[0].value).to_datetime()
        assert moment is not None
        times.append(moment)
    return times


async def concentrated(fleet: Fleet, index: int, dc: str = "DC0001") -> NetClient:
    manifest = fleet.manifest()
    entry = next(c for c in manifest.concentrators if c.id == dc)
    client = await NetClient.open_wrapper(entry.host, entry.port, client_config(entry.security),
                                          client_sap=1, server_sap=METER_WPORT_BASE + index, timeout=5.0)
    await client.associate()
    return client


async def tunnelled(fleet: Fleet, index: int, *, timeout: float = 5.0) -> NetClient:
    manifest = fleet.manifest()
    entry = manifest.concentrators[0]
    meter = entry.meters[index]
    config = client_config(meter.security, GatewayAddress(entry.network_id, meter.physical_address))
    client = await NetClient.open_wrapper(entry.host, entry.port, config, client_sap=meter.client_sap,
                                          server_sap=MANAGEMENT_WPORT, timeout=timeout)
    await client.associate()
    return client


def test_concentrated_profile_equals_the_profile_read_through_the_gateway() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        fleet.clock.jump(timedelta(hours=3))
        assert await dc.read_cycle() == 4
        mark = dc.meters[1].last_read
        assert mark is not None
        selection = day_range(mark).to_access_selection()
        async with await concentrated(fleet, 1) as client:
            cached = await client.get_data(7, LOAD_PROFILE, 2, selection)
            serial = await client.get_data(1, ObisCode(0, 0, 96, 1, 0, 255), 2)
            a_plus = await client.get_data(3, REGISTERS[0], 2)
            await client.release()
        async with await tunnelled(fleet, 1) as client:
            direct = await client.get_data(7, LOAD_PROFILE, 2, selection)
            await client.release()
        assert serial.value == "SIM000100001"
        assert len(cached.value) >= 96
        assert cached == direct
        # The DC's last registers are the meter's values at the DC's last read.
        meter = fleet.meter("SIM000100001")
        assert a_plus.value == meter.registers_at(mark).a_plus

    run(body)


def test_meter_the_dc_could_not_reach_returns_only_older_intervals() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        before = dc.meters[2].last_read
        assert before is not None
        fleet.set_unreachable("SIM000100002", fleet.clock.now(), timedelta(hours=6))
        fleet.clock.jump(timedelta(hours=2))
        assert await dc.read_cycle() == 3
        now = fleet.clock.now()
        newer = RangeDescriptor(
            CLOCK_COLUMN,
            Data.octet_string(CosemDateTime.from_datetime(before + timedelta(minutes=1)).encode()),
            Data.octet_string(CosemDateTime.from_datetime(now).encode()),
        ).to_access_selection()
        async with await concentrated(fleet, 2) as client:
            stale = await client.get_data(7, LOAD_PROFILE, 2, newer)
            older = await client.get_data(7, LOAD_PROFILE, 2, day_range(now).to_access_selection())
        async with await concentrated(fleet, 3) as client:
            fresh = await client.get_data(7, LOAD_PROFILE, 2, newer)
            with pytest.raises(ServiceError):
                await client.get_data(7, METER_TABLE, 2)  # the meter table lives on wPort 1 only
        # Not reached: nothing newer than the last read; reached: the 8 intervals of the 2 hours.
        assert stale.value == ()
        assert max(row_times(older)) <= before
        assert len(fresh.value) == 8
        assert max(row_times(fresh)) <= now

        manifest = fleet.manifest().concentrators[0]
        client = await NetClient.open_wrapper(manifest.host, manifest.port, client_config(manifest.security),
                                              client_sap=1, server_sap=MANAGEMENT_WPORT)
        async with client:
            await client.associate()
            table = await client.get_data(7, METER_TABLE, 2)
            page = await client.get_data(7, METER_TABLE, 2, EntryDescriptor(3, 3).to_access_selection())
            events = await client.get_data(7, DC_EVENT_LOG, 2)
            await client.release()
        rows = [[cell.value for cell in row.value] for row in table.value]
        assert [r[0] for r in rows] == [f"SIM00010000{i}" for i in range(4)]
        assert [r[1] for r in rows] == [bytes([0, 0x10 + i]) for i in range(4)]
        assert [r[4] for r in rows] == [True, True, False, True]
        assert [cell.value for cell in page.value[0].value] == rows[2]
        codes = [row.value[1].value for row in events.value]
        assert codes == [DcEvent.POWER_UP, DcEvent.METER_UNREACHABLE]

        # Once reachable again the DC catches up: no data was lost in the meter.
        fleet.link("SIM000100002").clear_unreachable()
        await dc.read_cycle()
        async with await concentrated(fleet, 2) as client:
            caught_up = await client.get_data(7, LOAD_PROFILE, 2, newer)
        assert len(caught_up.value) == 8
        assert dc.meters[2].reachable
        assert dc.events[-1][1] is DcEvent.METER_REACHABLE

    run(body)


def test_gateway_disconnects_the_meter_end_to_end_with_its_own_security() -> None:
    async def body(fleet: Fleet) -> None:
        meter = fleet.meter("SIM000100000")
        async with await tunnelled(fleet, 0) as client:
            result = await client.action(70, DISCONNECT_CONTROL, 1, bytes([0x0F, 0x00]))
            state = await client.get_data(70, DISCONNECT_CONTROL, 2)
            await client.release()
        assert int(result.result) == 0
        assert state.value is False
        assert meter.relay.output_state is False

    run(body)


def test_tunnel_crosses_the_link_with_its_latency_and_loss() -> None:
    async def body(fleet: Fleet) -> None:
        link = fleet.link("SIM000100001")
        fleet.clock.set_scale(1.0)
        link.latency, link.jitter, link.bytes_per_second = 0.2, 0.0, None
        started = asyncio.get_running_loop().time()
        async with await tunnelled(fleet, 1) as client:
            await client.get_data(1, ObisCode(0, 0, 96, 1, 0, 255), 2)
        # AARQ/AARE (and HLS reply if any) plus one GET: at least two round trips of 2 x 0.2 s.
        assert asyncio.get_running_loop().time() - started >= 0.8
        assert link.stats.carried == 0 or link.stats.field_seconds > 0
        link.loss = 1.0
        with pytest.raises(ReadTimeout):
            await tunnelled(fleet, 1, timeout=0.5)
        assert link.stats.lost >= 1

    run(body)


def test_dc_wan_outage_refuses_connections() -> None:
    async def body(fleet: Fleet) -> None:
        fleet.set_outage("DC0001")
        with pytest.raises(ConnectionLost):
            await concentrated(fleet, 0)
        assert fleet.faults("DC0001").applied["refuse_connections"] >= 1
        fleet.set_outage("DC0001", on=False)
        async with await concentrated(fleet, 0) as client:
            await client.release()

    run(body)


def test_outage_given_at_start_and_unknown_wport() -> None:
    async def body(fleet: Fleet) -> None:
        with pytest.raises(ConnectionLost):
            await concentrated(fleet, 0, dc="DC0002")
        with pytest.raises(ReadTimeout):
            # wPort of a meter the DC does not have: the APDU is ignored, no answer.
            manifest = fleet.manifest().concentrators[0]
            client = await NetClient.open_wrapper(manifest.host, manifest.port, client_config(manifest.security),
                                                  client_sap=1, server_sap=METER_WPORT_BASE + 99, timeout=0.3)
            async with client:
                await client.associate()
        async with await concentrated(fleet, 0) as client:
            await client.release()

    run(body, concentrators=2, dc_outages=("DC0002",))


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=64), gateway=st.booleans(),
       wport=st.sampled_from([MANAGEMENT_WPORT, METER_WPORT_BASE]))
def test_any_bytes_from_a_client_get_an_answer_or_none_never_an_exception(
    payload: bytes, gateway: bool, wport: int
) -> None:
    fleet = Fleet(FleetOptions(concentrators=1, meters_per_dc=1, seed=2, plc_latency=0.0, loss=0.0, schedule=False,
                               epoch=EPOCH),
                  clock=FieldClock(EPOCH, 0.0))
    device = fleet.concentrators["DC0001"].logical_device(wport)
    assert device is not None
    session = device.open_session(0x10)
    assert session is not None
    apdu = (b"\xe6\x00\x02\x00\x10" if gateway else b"") + payload

    async def main() -> list[bytes]:
        async with asyncio.timeout(5):
            return await session.handle(apdu)

    answers = asyncio.run(main())
    assert all(isinstance(answer, bytes) for answer in answers)
    session.close()
