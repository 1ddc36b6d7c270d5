"""A second make read end to end after adding only its device type file: on-demand reads, N2PLoad, the event bus.

Make B of the simulated field keeps its load profile at 1.0.99.2.0.255 (columns in another order,
its status word at 0.0.96.5.0.255), its daily values at 0.0.98.1.0.255, only three registers, and
numbers its events from its own vendor table. The head-end has no code for it: its type file,
``docs/devicetypes/hes-sim-b.json``, is all it is given. Everything expected comes from the
simulator's own functions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.db.models import IntervalValue, Meter, RegisterReading
from hes.devicetypes import DeviceTypeError, read_device_type
from hes.reads import read_meter
from hes.registry import Registry
from scheduler.contract import ExecutionContext, WorkItem
from scheduler.n2pload import collect_meter
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at, voltage_at
from simulators.events import EventLog, events_between
from simulators.makes import MAKE_B, event_code
from tests.hes.test_commands import FAST, FieldThread, small_field

ROOT = Path(__file__).resolve().parents[2]
TYPE_FILE = ROOT / "docs" / "devicetypes" / "hes-sim-b.json"
DC_B, P2P_B = "SIM000100001", "P2P000000001"


def read(registry: Registry, field: FieldThread, serial: str, what: str, **kwargs: object) -> object:
    async def main() -> object:
        async with asyncio.timeout(60):
            return await read_meter(registry, serial, what, requested_by="tester", clock=field.fleet.clock.now,
                                    timeouts=FAST, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(main())


@pytest.fixture
def field(registry: Registry, tmp_path: Path) -> Iterator[FieldThread]:
    with FieldThread(small_field(make_b=(DC_B, P2P_B))) as running:
        # Registered at the field's instant (not the machine's): commissioning dates and watermarks follow it.
        on_field_time = Registry(registry.engine, registry.master_key, clock=running.fleet.clock.now)
        on_field_time.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


def test_the_type_file_is_valid_and_describes_make_b() -> None:
    kind, _ = read_device_type(TYPE_FILE)
    assert (kind.name, kind.make, kind.model) == (MAKE_B.name, MAKE_B.make, MAKE_B.model)
    assert kind.matches(MAKE_B.make, MAKE_B.model, MAKE_B.firmware)
    assert str(kind.load_profile.obis) == "1.0.99.2.0.255" and kind.daily is not None


def test_a_second_make_is_read_after_adding_only_its_type_file(registry: Registry, field: FieldThread) -> None:
    fleet = field.fleet
    assert fleet.device_type(DC_B) == MAKE_B and fleet.device_type(P2P_B) == MAKE_B
    now = fleet.clock.now()
    # The registry knows the meters' type by name, but not the type: a clear FAIL, nothing guessed.
    before = read(registry, field, P2P_B, "registers")
    assert before.state == "FAIL" and "device type 'hes-sim-b' is not known: hes devicetype add FILE" in before.reason

    kind, replaced = registry.add_device_type(TYPE_FILE, who="tester")
    assert kind.name == "hes-sim-b" and not replaced

    for serial in (DC_B, P2P_B):
        registers = read(registry, field, serial, "registers")
        assert registers.state == "EXE", registers.reason
        truth = registers_at(fleet.options.seed, serial, now, fleet.meter(serial).windows)
        got = {v.obis: v.value for v in registers.values}
        assert got["1.0.1.8.0.255"] == truth.a_plus and got["1.0.2.8.0.255"] == truth.a_minus
        assert "1.0.1.8.1.255" not in got  # a single-rate meter: the type names three registers only
        assert got["1.0.32.7.0.255"] * 10 == voltage_at(fleet.options.seed, serial, now)

        day_end = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        profile = read(registry, field, serial, "profile", start=day_end - timedelta(days=1), end=day_end)
        assert profile.state in ("EXE", "WARN"), profile.reason
        first, last = interval_index(day_end - timedelta(days=1)), interval_index(day_end) - 1
        rows = list(profile_intervals(fleet.options.seed, serial, first, last, fleet.meter(serial).windows))
        values = {(v.time, v.obis): v.value for v in profile.values}
        assert len(rows) == 96 and values == {**{(interval_end(r.interval), "1.0.1.8.0.255"): r.a_plus for r in rows},
                          **{(interval_end(r.interval), "1.0.2.8.0.255"): r.a_minus for r in rows}}
        # The status word is the status, not a channel: power cuts flag their intervals.
        assert {v.time for v in profile.values if v.status} == {interval_end(r.interval) for r in rows if r.status}
        assert all(not o.startswith("load profile") for o in profile.observations)  # the expected capture objects

        daily = read(registry, field, serial, "daily", start=now - timedelta(days=3), end=now)
        assert daily.state in ("EXE", "WARN"), daily.reason
        assert {v.obis for v in daily.values} == {"1.0.1.8.0.255", "1.0.2.8.0.255"}
        for v in daily.values:
            at = registers_at(fleet.options.seed, serial, v.time, fleet.meter(serial).windows)
            assert v.value == (at.a_plus if v.obis == "1.0.1.8.0.255" else at.a_minus)

        # The simulator's seeded events fall on some days and not others: widen the window until it has some.
        for days in (30, 60, 90):
            since = now - timedelta(days=days)
            expected = sorted((e.when, event_code(MAKE_B, e.code)) for log in EventLog
                              for e in events_between(fleet.options.seed, serial, log, since, now))
            if expected:
                break
        events = read(registry, field, serial, "events", start=since, end=now)
        assert events.state in ("EXE", "WARN"), events.reason
        assert expected and sorted((v.time, v.value) for v in events.values) == expected
        names = {v.value: v.name.split(": ", 1)[1] for v in events.values}
        assert names.get(1001, "power down") == "power down" and not any(n.startswith("event ") for n in names.values())


def test_n2pload_collects_a_second_make_through_its_concentrator(registry: Registry, field: FieldThread) -> None:
    registry.add_device_type(TYPE_FILE, who="tester")
    fleet = field.fleet
    context = ExecutionContext(registry, registry.engine, fleet.clock.now, timeouts=FAST)
    with Session(registry.engine) as session:
        meter = session.scalars(select(Meter).where(Meter.serial == DC_B)).one()
    items = [WorkItem(n, 1, "n2pload", meter.id, DC_B, meter.concentrator_id, command, 1, None, None, "run:1")
             for n, command in enumerate(("profile", "daily"))]  # type: ignore[arg-type]
    field.call(fleet.concentrators["DC0001"].read_cycle())  # the DC collects its meters' data now

    async def main() -> list[object]:
        async with asyncio.timeout(60):
            return list(await collect_meter(context, items))

    profile, daily = asyncio.run(main())
    assert profile.state in ("EXE", "WARN") and profile.stored > 0, profile
    assert daily.state in ("EXE", "WARN") and daily.stored > 0, daily
    with Session(registry.engine) as session:
        channels = set(session.scalars(select(IntervalValue.obis).where(IntervalValue.meter_id == meter.id)))
        daily_obis = set(session.scalars(select(RegisterReading.obis).where(RegisterReading.meter_id == meter.id)))
    assert channels == {"1.0.1.8.0.255", "1.0.2.8.0.255"} and daily_obis == {"1.0.1.8.0.255", "1.0.2.8.0.255"}


def test_a_bad_type_name_of_a_meter_is_refused_with_its_name(registry: Registry) -> None:
    with pytest.raises(DeviceTypeError, match="device type 'nope' is not known"):
        registry.device_types().for_meter("nope", None, None, None)
    assert json.loads(TYPE_FILE.read_text())["format"] == "hes-devicetype/1"


def test_the_event_bus_names_and_grades_a_meters_events_by_its_type(registry: Registry, field: FieldThread) -> None:
    from hes.db.readings import EventRow
    from hes.events.catalog import Criticality
    from hes.events.outbox import event_messages

    registry.add_device_type(TYPE_FILE, who="tester")
    now = field.fleet.clock.now()
    ids = {serial: registry.meter_id(serial) for serial in (DC_B, "SIM000100000")}
    rows = [EventRow(ids[DC_B], "0.0.99.98.1.255", 1203, now, None),  # make B: meter cover removed
            EventRow(ids["SIM000100000"], "0.0.99.98.1.255", 44, now, None)]  # make A (IDIS): the same event
    with registry.engine.begin() as connection:
        messages = event_messages(connection, rows, source="test", threshold=Criticality.ALARM)
    assert [(m.payload["meter"], m.payload["name"], m.payload["criticality"]) for m in messages] == [
        (DC_B, "meter cover removed", "critical"), ("SIM000100000", "meter cover removed", "critical")]
