"""Meters joining, leaving and changing address in a DC's table; the table's columns; a make-B meter behind a DC."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from protocols.association import GatewayAddress
from protocols.axdr import Data
from protocols.errors import ReadTimeout, ServiceError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import CaptureObjectDefinition
from simulators.clock import FieldClock
from simulators.concentrator import (
    DC_EVENT_LOG,
    MANAGEMENT_WPORT,
    METER_TABLE,
    METER_TABLE_COLUMNS,
    METER_WPORT_BASE,
    DcEvent,
)
from simulators.events import EventLog, events_between
from simulators.fleet import DEFAULT_EPOCH, Fleet, FleetError, FleetOptions, TableChange
from simulators.makes import MAKE_A, MAKE_B, event_code
from simulators.meter import A_PLUS, A_PLUS_T1, DAILY_VALUES_B, LOAD_PROFILE, LOAD_PROFILE_B
from tests.simulators.netclient import NetClient
from tests.simulators.test_concentrator import client_config, concentrated, day_range, run

SERIAL_LN = ObisCode(0, 0, 96, 1, 0, 255)


async def via_gateway(fleet: Fleet, serial: str, address: int, *, timeout: float = 5.0) -> NetClient:
    """An end-to-end association with a DC meter through its DC's gateway, at physical ``address``."""
    entry = fleet.manifest().concentrators[0]
    config = client_config(fleet.security(serial), GatewayAddress(entry.network_id, address.to_bytes(2, "big")))
    client = await NetClient.open_wrapper(entry.host, entry.port, config, client_sap=1,
                                          server_sap=MANAGEMENT_WPORT, timeout=timeout)
    await client.associate()
    return client


async def at_wport(fleet: Fleet, wport: int, *, timeout: float = 5.0) -> NetClient:
    entry = fleet.manifest().concentrators[0]
    client = await NetClient.open_wrapper(entry.host, entry.port, client_config(entry.security), client_sap=1,
                                          server_sap=wport, timeout=timeout)
    await client.associate()
    return client


async def table_rows(fleet: Fleet) -> list[list[object]]:
    async with await at_wport(fleet, MANAGEMENT_WPORT) as client:
        columns = await client.get_data(7, METER_TABLE, 3)
        table = await client.get_data(7, METER_TABLE, 2)
        await client.release()
    assert [CaptureObjectDefinition.from_data(c) for c in columns.value] == list(METER_TABLE_COLUMNS)
    return [[cell.value for cell in row.value] for row in table.value]


def test_the_table_has_the_wport_and_identification_columns_after_the_five() -> None:
    async def body(fleet: Fleet) -> None:
        rows = await table_rows(fleet)
        assert [str(c.logical_name) for c in METER_TABLE_COLUMNS[5:]] == ["0.128.96.6.0.255", "0.128.96.7.0.255"]
        assert [r[0] for r in rows] == [f"SIM00010000{i}" for i in range(4)]
        assert [r[1] for r in rows] == [bytes([0, 0x10 + i]) for i in range(4)]
        assert [r[5] for r in rows] == [METER_WPORT_BASE + i for i in range(4)]
        assert [r[6] for r in rows] == ["HES-SIM SIM-A 1.0", "HES-SIM SIM-B 2.1", "HES-SIM SIM-A 1.0",
                                        "HES-SIM SIM-A 1.0"]

    run(body, make_b=("SIM000100001",))


def test_meters_join_leave_and_move_keeping_their_wports() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        now = fleet.clock.now()
        joined = fleet.add_meter("DC0001")
        assert joined == TableChange("joined", "DC0001", "SIM000100004", 0x104, 0x14, None, MAKE_A, now)
        assert fleet.meter("SIM000100004").serial == "SIM000100004"
        assert fleet.security("SIM000100004").system_title == b"SIM" + (5).to_bytes(5, "big")
        left = fleet.remove_meter("SIM000100001")
        assert (left.kind, left.wport, left.physical_address) == ("left", 0x101, 0x11)
        again = fleet.add_meter("DC0001", device_type=MAKE_B)
        # The next serial and a wPort never used; the lowest free address, the one just given up.
        assert (again.serial, again.wport, again.physical_address, again.device_type) == (
            "SIM000100005", 0x105, 0x11, MAKE_B)
        moved = fleet.readdress_meter("SIM000100002")
        assert (moved.kind, moved.wport, moved.physical_address, moved.previous_address) == (
            "readdressed", 0x102, 0x15, 0x12)
        assert [m.wport for m in dc.meters] == [0x100, 0x102, 0x103, 0x104, 0x105]
        assert fleet.table_changes == [joined, left, again, moved]
        with pytest.raises(FleetError, match="taken by meter SIM000100003"):
            fleet.readdress_meter("SIM000100002", 0x13)
        with pytest.raises(FleetError, match="no DC meter SIM000100001"):
            fleet.remove_meter("SIM000100001")
        with pytest.raises(FleetError, match="no meter SIM000100001"):
            fleet.meter("SIM000100001")
        with pytest.raises(FleetError, match="no concentrator DC0009"):
            fleet.add_meter("DC0009")
        assert [code for _, code in dc.events][-4:] == [
            DcEvent.METER_JOINED, DcEvent.METER_LEFT, DcEvent.METER_JOINED, DcEvent.METER_READDRESSED]

        fleet.clock.jump(timedelta(hours=1))
        assert await dc.read_cycle() == 5
        rows = await table_rows(fleet)
        assert [(r[0], r[1], r[5]) for r in rows] == [
            ("SIM000100000", b"\x00\x10", 0x100), ("SIM000100002", b"\x00\x15", 0x102),
            ("SIM000100003", b"\x00\x13", 0x103), ("SIM000100004", b"\x00\x14", 0x104),
            ("SIM000100005", b"\x00\x11", 0x105),
        ]
        async with await at_wport(fleet, 0x102) as client:
            assert (await client.get_data(1, SERIAL_LN, 2)).value == "SIM000100002"
        async with await at_wport(fleet, 0x105) as client:
            assert (await client.get_data(1, SERIAL_LN, 2)).value == "SIM000100005"
            assert (await client.get_data(3, A_PLUS, 2)).value == \
                fleet.meter("SIM000100005").registers_at(fleet.clock.now()).a_plus
        with pytest.raises(ReadTimeout):
            await at_wport(fleet, 0x101, timeout=0.3)  # the meter that left: its LD is gone
        # The gateway answers for the moved meter at its new address only.
        async with await via_gateway(fleet, "SIM000100002", 0x15) as client:
            assert (await client.get_data(1, SERIAL_LN, 2)).value == "SIM000100002"
        with pytest.raises(ReadTimeout):
            await via_gateway(fleet, "SIM000100002", 0x12, timeout=0.3)
        # The joined meter answers at the address the one that left had.
        async with await via_gateway(fleet, "SIM000100005", 0x11) as client:
            assert (await client.get_data(1, SERIAL_LN, 2)).value == "SIM000100005"
        meters = fleet.manifest().concentrators[0].meters
        assert [(m.serial, m.logical_device, m.physical_address, m.device_type) for m in meters] == [
            (r[0], r[5], r[1], "hes-sim-b" if r[0] == "SIM000100005" else "hes-sim-a") for r in rows
        ]

    run(body)


def test_an_open_association_with_a_meter_that_leaves_gets_nothing_more() -> None:
    async def body(fleet: Fleet) -> None:
        async with await concentrated(fleet, 2) as client:
            assert (await client.get_data(1, SERIAL_LN, 2)).value == "SIM000100002"
            fleet.remove_meter("SIM000100002")
            with pytest.raises(ServiceError, match="object_unavailable"):
                await client.get_data(1, SERIAL_LN, 2)

    run(body)


def test_a_readdress_to_a_bad_address_is_refused() -> None:
    fleet = Fleet(FleetOptions(meters_per_dc=2, seed=1, schedule=False), clock=FieldClock(DEFAULT_EPOCH, 0.0))
    with pytest.raises(FleetError, match="outside"):
        fleet.readdress_meter("SIM000100000", 0x4000)
    with pytest.raises(FleetError, match="taken"):
        fleet.readdress_meter("SIM000100000", 0x10)  # its own: nothing would change
    with pytest.raises(FleetError, match="no DC meter"):
        fleet.readdress_meter("P2P000000000")


def churned(seed: int, *, step: timedelta, steps: int) -> Fleet:
    fleet = Fleet(FleetOptions(concentrators=2, meters_per_dc=20, seed=seed, table_churn=24.0, schedule=False),
                  clock=FieldClock(DEFAULT_EPOCH, 0.0))

    async def main() -> None:
        async with asyncio.timeout(20):
            for _ in range(steps):
                fleet.clock.jump(step)
                for dc in fleet.concentrators.values():
                    await dc.read_cycle()

    asyncio.run(main())
    return fleet


def tables(fleet: Fleet) -> dict[str, list[tuple[str, int, int]]]:
    return {ident: [(m.serial, m.physical_address, m.wport) for m in dc.meters]
            for ident, dc in fleet.concentrators.items()}


def test_churn_is_seeded_and_follows_field_time_however_often_the_dc_reads() -> None:
    every_period = churned(5, step=timedelta(minutes=15), steps=96 * 2)
    once_a_day = churned(5, step=timedelta(days=1), steps=2)
    assert tables(every_period) == tables(once_a_day)
    changes = every_period.table_changes
    left = [c for c in changes if c.kind == "left"]
    joined = [c for c in changes if c.kind == "joined"]
    assert left and len(left) == len(joined)
    for ident in every_period.concentrators:  # the same changes per DC (the DCs interleave differently)
        assert [(c.kind, c.serial, c.wport, c.physical_address) for c in changes if c.concentrator == ident] == [
            (c.kind, c.serial, c.wport, c.physical_address) for c in once_a_day.table_changes
            if c.concentrator == ident]
    # 24 per DC per day on average: two DCs over two days, loosely.
    assert 30 <= len(left) <= 170
    for dc in every_period.concentrators.values():
        assert len(dc.meters) == 20
        assert len({m.physical_address for m in dc.meters}) == 20
        wports = [m.wport for m in dc.meters]
        assert wports == sorted(wports) and len(set(wports)) == 20
    assert {c.serial for c in joined} - {c.serial for c in left} <= set(every_period.meters())
    assert not {c.serial for c in left} & set(every_period.meters())
    assert tables(churned(6, step=timedelta(days=1), steps=2)) != tables(once_a_day)
    # Without churn nothing moves.
    quiet = Fleet(FleetOptions(concentrators=1, meters_per_dc=5, seed=5, schedule=False),
                  clock=FieldClock(DEFAULT_EPOCH, 0.0))
    quiet.clock.jump(timedelta(days=3))
    asyncio.run(quiet.concentrators["DC0001"].read_cycle())
    assert quiet.table_changes == [] and len(quiet.concentrators["DC0001"].meters) == 5


def test_the_dc_serves_a_make_b_meter_from_that_meters_own_objects() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        meter = fleet.meter("SIM000100001")
        assert fleet.device_type("SIM000100001") is MAKE_B and meter.device_type is MAKE_B
        fleet.clock.jump(timedelta(hours=3))
        await dc.read_cycle()
        mark = dc.meters[1].last_read
        assert mark is not None
        selection = day_range(mark).to_access_selection()
        async with await concentrated(fleet, 1) as client:
            cached = await client.get_data(7, LOAD_PROFILE_B, 2, selection)
            columns = await client.get_data(7, LOAD_PROFILE_B, 3)
            daily = await client.get_data(7, DAILY_VALUES_B, 2, day_range(mark).to_access_selection())
            a_plus = await client.get_data(3, A_PLUS, 2)
            log = await client.get_data(7, EventLog.STANDARD.obis, 2)
            with pytest.raises(ServiceError, match="object_undefined"):
                await client.get_data(7, LOAD_PROFILE, 2, selection)
            with pytest.raises(ServiceError, match="object_undefined"):
                await client.get_data(3, A_PLUS_T1, 2)
            await client.release()
        async with await via_gateway(fleet, "SIM000100001", 0x11) as client:
            direct = await client.get_data(7, LOAD_PROFILE_B, 2, selection)
            await client.release()
        assert cached == direct and len(cached.value) >= 96
        assert [CaptureObjectDefinition.from_data(c).logical_name for c in columns.value][1:3] == [
            ObisCode(1, 0, 2, 8, 0, 255), ObisCode(1, 0, 1, 8, 0, 255)]
        assert len(daily.value) == 1 and len(daily.value[0].value) == 3
        assert a_plus.value == meter.registers_at(mark).a_plus
        retained = events_between(fleet.options.seed, "SIM000100001", EventLog.STANDARD, mark - timedelta(days=40),
                                  mark)
        assert [row.value[1].value for row in log.value] == [event_code(MAKE_B, e.code) for e in retained]
        # Make A meters of the same DC keep make A's objects.
        async with await concentrated(fleet, 0) as client:
            assert len((await client.get_data(7, LOAD_PROFILE, 2, selection)).value) >= 96
            await client.release()

    run(body, make_b=("SIM000100001",))


def test_make_b_share_is_drawn_per_meter_from_the_seed() -> None:
    def kinds(**options: object) -> dict[str, str]:
        settings: dict[str, object] = {"concentrators": 2, "meters_per_dc": 60, "p2p": 40, "seed": 8,
                                       "schedule": False}
        settings.update(options)
        fleet = Fleet(FleetOptions(**settings), clock=FieldClock(DEFAULT_EPOCH, 0.0))  # type: ignore[arg-type]
        return {serial: fleet.device_type(serial).name for serial in fleet.meters()}

    half = kinds(make_b_share=0.5)
    assert half == kinds(make_b_share=0.5)
    b = [s for s, kind in half.items() if kind == "hes-sim-b"]
    assert 45 <= len(b) <= 115
    assert any(s.startswith("P2P") for s in b) and any(s.startswith("SIM") for s in b)
    assert set(kinds().values()) == {"hes-sim-a"}
    assert set(kinds(make_b_share=1.0).values()) == {"hes-sim-b"}
    listed = kinds(make_b=("SIM000200007", "P2P000000003"))
    assert [s for s, kind in listed.items() if kind == "hes-sim-b"] == ["SIM000200007", "P2P000000003"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table_churn": -1.0}, "table churn"),
        ({"table_churn": 1e7}, "table churn"),
        ({"make_b_share": 1.5}, "make B share"),
        ({"make_b": ("SIM000100010",)}, "no such meter"),
        ({"make_b": ("P2P000000000",)}, "no such meter"),
        ({"make_b": ("nonsense",)}, "no such meter"),
    ],
)
def test_bad_table_and_make_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(FleetError, match=message) as refused:
        FleetOptions(meters_per_dc=10, **options).validate()  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)


def test_dc_event_log_range_read_sees_table_events() -> None:
    async def body(fleet: Fleet) -> None:
        fleet.add_meter("DC0001")
        async with await at_wport(fleet, MANAGEMENT_WPORT) as client:
            log = await client.get_data(7, DC_EVENT_LOG, 2)
            await client.release()
        assert [row.value[1].value for row in log.value] == [DcEvent.POWER_UP, DcEvent.METER_JOINED]
        assert isinstance(log.value[0], Data)

    run(body)
