"""A concentrator's own clock: seeded drift, configured offset, read on every logical device, set by its manager."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from protocols.axdr import Data
from protocols.cosem_datetime import CosemDateTime
from protocols.obis import ObisCode
from protocols.xdlms.common import DataAccessResult
from simulators.clock import FieldClock
from simulators.concentrator import (
    CLOCK,
    DC_EVENT_LOG,
    DEVIATION,
    MANAGEMENT_WPORT,
    METER_TABLE,
    METER_WPORT_BASE,
    SERIAL,
    ConcentratorConfig,
    ConcentratorError,
    DcEvent,
    SecurityConfig,
)
from simulators.fleet import DEFAULT_EPOCH, Fleet, FleetError, FleetOptions, dc_clock_drift
from tests.simulators.netclient import NetClient
from tests.simulators.test_concentrator import client_config, concentrated, run, tunnelled


def shown(moment: datetime) -> datetime:
    """``moment`` as a COSEM date-time carries it: to the hundredth of a second."""
    return moment.replace(microsecond=moment.microsecond // 10_000 * 10_000)


def stamp(moment: datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(moment, deviation=DEVIATION).encode())


def when(data: Data) -> datetime:
    moment = CosemDateTime.decode(data.value).to_datetime()
    assert moment is not None
    return moment


async def management(fleet: Fleet, *, public: bool = False) -> NetClient:
    entry = fleet.manifest().concentrators[0]
    security = SecurityConfig() if public else entry.security
    client = await NetClient.open_wrapper(entry.host, entry.port, client_config(security),
                                          client_sap=0x10 if public else entry.client_sap,
                                          server_sap=MANAGEMENT_WPORT, timeout=5.0)
    await client.associate()
    return client


def frozen_fleet(**options: object) -> Fleet:
    settings: dict[str, object] = {"concentrators": 3, "meters_per_dc": 1, "seed": 11, "schedule": False}
    settings.update(options)
    return Fleet(FleetOptions(**settings), clock=FieldClock(DEFAULT_EPOCH, 0.0))  # type: ignore[arg-type]


def test_each_dc_drifts_at_its_own_seeded_rate_from_the_configured_offset() -> None:
    fleet = frozen_fleet(dc_clock_drift=20.0, dc_clock_offset=-45.0)
    drifts = {ident: dc_clock_drift(11, ident, 20.0) for ident in fleet.concentrators}
    assert all(-20.0 <= d <= 20.0 for d in drifts.values()) and len(set(drifts.values())) == 3
    for ident, dc in fleet.concentrators.items():
        assert dc.dc_clock.drift == drifts[ident]
        assert dc.clock_offset() == -45.0
        assert dc.now() == fleet.clock.now() - timedelta(seconds=45)
    fleet.clock.jump(timedelta(days=2))
    for ident, dc in fleet.concentrators.items():
        assert dc.clock_offset() == pytest.approx(-45.0 + 2 * drifts[ident])
        assert dc.now() == fleet.clock.now() + timedelta(seconds=dc.clock_offset())
    # Same seed, same drifts; another seed, other drifts; no option, no offset at all.
    assert [dc.dc_clock.drift for dc in frozen_fleet(dc_clock_drift=20.0).concentrators.values()] == \
        list(drifts.values())
    assert [dc.dc_clock.drift for dc in frozen_fleet(dc_clock_drift=20.0, seed=12).concentrators.values()] != \
        list(drifts.values())
    plain = frozen_fleet()
    plain.clock.jump(timedelta(days=9))
    assert all(dc.now() == plain.clock.now() and dc.clock_offset() == 0.0 for dc in plain.concentrators.values())


def test_the_offset_can_be_read_and_set_at_run_time() -> None:
    fleet = frozen_fleet(concentrators=1, dc_clock_drift=30.0)
    dc = fleet.concentrators["DC0001"]
    fleet.clock.jump(timedelta(hours=12))
    assert dc.clock_offset() == pytest.approx(dc.dc_clock.drift / 2)
    dc.set_clock_offset(300.0)
    assert dc.clock_offset() == 300.0 and dc.now() == fleet.clock.now() + timedelta(seconds=300)
    fleet.clock.jump(timedelta(days=1))
    # Drift goes on from the new offset.
    assert dc.clock_offset() == pytest.approx(300.0 + dc.dc_clock.drift)
    assert all(code is not DcEvent.CLOCK_ADJUSTED for _, code in dc.events)  # a knob, not an event
    with pytest.raises(ConcentratorError, match="clock offset"):
        dc.set_clock_offset(math.inf)


def test_dc_time_is_what_every_logical_device_of_the_dc_shows() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        fleet.clock.jump(timedelta(days=1, hours=2))
        expected = shown(dc.now())
        assert expected != shown(fleet.clock.now())
        async with await management(fleet) as client:
            assert when(await client.get_data(8, CLOCK, 2)) == expected
            await client.release()
        async with await concentrated(fleet, 0) as client:
            assert when(await client.get_data(8, CLOCK, 2)) == expected
            await client.release()
        # The meter itself keeps field time: only the DC's clock is off.
        async with await tunnelled(fleet, 0) as client:
            assert when(await client.get_data(8, CLOCK, 2)) == shown(fleet.clock.now())
            await client.release()

    run(body, dc_clock_offset=90.0, dc_clock_drift=5.0)


def test_the_management_client_sets_the_dc_clock_and_the_event_log_says_so() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        fleet.clock.jump(timedelta(hours=5))
        target = fleet.clock.now() + timedelta(minutes=7, seconds=3)
        async with await management(fleet) as client:
            assert await client.set(8, CLOCK, 2, stamp(target)) == DataAccessResult.SUCCESS
            assert when(await client.get_data(8, CLOCK, 2)) == target
            log = await client.get_data(7, DC_EVENT_LOG, 2)
            # Everything else on the DC stays read-only, to its manager too.
            for class_id, obis, attribute, value in (
                (8, CLOCK, 3, Data.long(0)),
                (1, SERIAL, 2, Data.visible_string("DC9999")),
                (7, METER_TABLE, 4, Data.double_long_unsigned(60)),
            ):
                assert await client.set(class_id, obis, attribute, value) == DataAccessResult.READ_WRITE_DENIED
            assert await client.set(8, CLOCK, 2, Data.double_long_unsigned(7)) == DataAccessResult.TYPE_UNMATCHED
            assert await client.set(8, CLOCK, 2, Data.octet_string(b"\xff" * 12)) == DataAccessResult.OTHER_REASON
            await client.release()
        assert dc.now() == target
        assert dc.events[-1] == (target, DcEvent.CLOCK_ADJUSTED)
        last = log.value[-1].value
        assert (when(last[0]), last[1].value) == (target, 5)
        fleet.clock.jump(timedelta(days=1))
        assert dc.now() == pytest.approx(target + timedelta(days=1, seconds=dc.dc_clock.drift),
                                         abs=timedelta(microseconds=1))
        before = dc.now()
        async with await management(fleet, public=True) as client:
            assert await client.set(8, CLOCK, 2, stamp(DEFAULT_EPOCH)) == DataAccessResult.READ_WRITE_DENIED
            await client.release()
        entry = fleet.manifest().concentrators[0]
        device = await NetClient.open_wrapper(entry.host, entry.port, client_config(entry.security), client_sap=1,
                                              server_sap=METER_WPORT_BASE, timeout=5.0)
        async with device:
            await device.associate()
            assert await device.set(8, CLOCK, 2, stamp(DEFAULT_EPOCH)) == DataAccessResult.READ_WRITE_DENIED
            await device.release()
        assert dc.now() == before
        assert [code for _, code in dc.events].count(DcEvent.CLOCK_ADJUSTED) == 1

    run(body, dc_clock_drift=10.0)


def test_the_dc_stamps_its_table_and_its_log_with_dc_time() -> None:
    async def body(fleet: Fleet) -> None:
        dc = fleet.concentrators["DC0001"]
        assert dc.meters[0].last_read_shown == dc.meters[0].last_read - timedelta(seconds=120)  # type: ignore[operator]
        fleet.set_unreachable("SIM000100001", fleet.clock.now(), timedelta(hours=6))
        fleet.clock.jump(timedelta(hours=1))
        await dc.read_cycle()
        field_now = fleet.clock.now()
        reached = dc.meters[0]
        assert reached.last_read == field_now  # the mark the DC serves data up to stays field time
        assert reached.last_read_shown == field_now - timedelta(seconds=120)
        assert dc.events[-1] == (field_now - timedelta(seconds=120), DcEvent.METER_UNREACHABLE)
        async with await management(fleet) as client:
            table = await client.get_data(7, METER_TABLE, 2)
            await client.release()
        assert when(table.value[0].value[3]) == field_now - timedelta(seconds=120)

    run(body, dc_clock_offset=-120.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dc_clock_drift": -1.0}, "DC clock drift"),
        ({"dc_clock_drift": math.nan}, "DC clock drift"),
        ({"dc_clock_offset": 1e12}, "DC clock offset"),
        ({"dc_clock_offset": math.inf}, "DC clock offset"),
    ],
)
def test_bad_clock_options_are_refused_in_one_line(options: dict[str, float], message: str) -> None:
    with pytest.raises(FleetError, match=message) as refused:
        FleetOptions(**options).validate()  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
    with pytest.raises(ConcentratorError, match="clock drift"):
        ConcentratorConfig("DC0001", 1, SecurityConfig(), clock_drift=math.nan)


def test_serial_of_the_dc_is_unchanged_by_its_clock() -> None:
    async def body(fleet: Fleet) -> None:
        async with await management(fleet) as client:
            assert (await client.get_data(1, ObisCode(0, 0, 96, 1, 0, 255), 2)).value == "DC0001"
            await client.release()

    run(body, dc_clock_offset=3600.0)
