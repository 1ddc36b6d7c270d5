"""Make B, the second simulated make: its own object layout and event codes over the same seeded values."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from protocols.axdr import Data, DataTag
from protocols.cosem import ObjectListElement
from protocols.cosem_datetime import CosemDateTime
from protocols.obis import ObisCode
from protocols.xdlms.common import ActionResult as ActionResultCode
from protocols.xdlms.common import DataAccessResult
from protocols.xdlms.selective_access import CaptureObjectDefinition, EntryDescriptor
from simulators import energy
from simulators.counters import MemoryCounterStore
from simulators.events import EventCode, EventLog, events_between
from simulators.makes import MAKE_A, MAKE_B, MAKE_B_EVENT_CODES, DeviceType, event_code, event_of
from simulators.meter import (
    A_MINUS,
    A_PLUS,
    A_PLUS_T1,
    A_PLUS_T2,
    ASSOCIATION,
    CLOCK,
    DAILY_BILLING,
    DAILY_VALUES_B,
    DISCONNECT_CONTROL,
    LOAD_PROFILE,
    LOAD_PROFILE_B,
    PROFILE_STATUS,
    SECURITY_SETUP,
    SERIAL_NUMBER,
    STATUS_WORD_B,
    VOLTAGE_L1,
    MeterConfigError,
    SimulatedMeter,
    objects_of,
)
from tests.fieldtime import utc_midnight
from tests.simulators.test_meter import NOW, SEED, config, connected, frozen, time_range, when_of

SERIAL = "SIM00000042"
#: Every object make B serves (class id, logical name), as docs/SIMULATORS.md lists them.
MAKE_B_OBJECTS = {
    (15, ASSOCIATION), (64, SECURITY_SETUP), (8, CLOCK), (1, SERIAL_NUMBER),
    (3, A_PLUS), (3, A_MINUS), (3, VOLTAGE_L1), (1, STATUS_WORD_B),
    (7, LOAD_PROFILE_B), (7, DAILY_VALUES_B),
    *((7, log.obis) for log in EventLog), *((1, log.code_obis) for log in EventLog),
    (70, DISCONNECT_CONTROL),
}


def make_b(policy: str = "none", at: datetime = NOW) -> SimulatedMeter:
    return SimulatedMeter(config(policy, device_type=MAKE_B), frozen(at), MemoryCounterStore())


def test_identity_of_the_two_makes() -> None:
    assert (MAKE_A.name, MAKE_A.identification) == ("hes-sim-a", "HES-SIM SIM-A 1.0")
    assert (MAKE_B.name, MAKE_B.identification) == ("hes-sim-b", "HES-SIM SIM-B 2.1")
    assert SimulatedMeter(config(), frozen(), MemoryCounterStore()).device_type is MAKE_A  # the default
    assert make_b().device_type is MAKE_B
    with pytest.raises(MeterConfigError, match="device type"):
        replace(config(), device_type=DeviceType("hes-sim-c", "X", "Y", "1"))


def test_event_code_table_covers_every_event_once() -> None:
    assert set(MAKE_B_EVENT_CODES) == set(EventCode)
    assert len(set(MAKE_B_EVENT_CODES.values())) == len(EventCode)
    for code in EventCode:
        assert event_code(MAKE_A, code) == int(code)
        assert event_of(MAKE_A, int(code)) is code
        assert event_of(MAKE_B, event_code(MAKE_B, code)) is code
        assert event_code(MAKE_B, code) != int(code)
    assert event_code(MAKE_B, EventCode.POWER_DOWN) == 1001
    assert event_of(MAKE_B, 1) is None and event_of(MAKE_A, 1001) is None


def test_object_list_lists_exactly_its_own_objects() -> None:
    for sap_policy in ("none", "hls-gmac"):
        reader = connected(make_b(sap_policy), sap_policy)
        elements = [ObjectListElement.from_data(e) for e in reader.get(15, ASSOCIATION, 2).value]
        listed = [(e.class_id, e.logical_name) for e in elements]
        assert len(listed) == len(set(listed))
        assert set(listed) == MAKE_B_OBJECTS
    assert set(objects_of(MAKE_B)) == MAKE_B_OBJECTS
    # Make A's objects are not there.
    reader = connected(make_b())
    for class_id, obis in ((7, LOAD_PROFILE), (7, DAILY_BILLING), (3, A_PLUS_T1), (3, A_PLUS_T2),
                           (1, PROFILE_STATUS)):
        assert reader.get_raw(class_id, obis, 2) == DataAccessResult.OBJECT_UNDEFINED
    assert make_b().register_objects == (A_PLUS, A_MINUS, VOLTAGE_L1)


def test_registers_are_the_same_functions_single_rate() -> None:
    reader = connected(make_b())
    expected = energy.registers_at(SEED, SERIAL, NOW)
    assert reader.get(3, A_PLUS, 2).value == expected.a_plus
    assert reader.get(3, A_MINUS, 2).value == expected.a_minus
    assert reader.get(3, VOLTAGE_L1, 2).value == energy.voltage_at(SEED, SERIAL, NOW)
    assert when_of(reader.get(8, CLOCK, 2)) == NOW
    assert reader.get(1, SERIAL_NUMBER, 2).value == SERIAL


def test_load_profile_layout_and_rows() -> None:
    reader = connected(make_b("hls-gmac"), "hls-gmac")
    columns = [CaptureObjectDefinition.from_data(c) for c in reader.get(7, LOAD_PROFILE_B, 3).value]
    assert [(c.class_id, c.logical_name, c.attribute_index) for c in columns] == [
        (8, CLOCK, 2), (3, A_MINUS, 2), (3, A_PLUS, 2), (1, STATUS_WORD_B, 2),
    ]
    assert reader.get(7, LOAD_PROFILE_B, 4).value == 900
    day = utc_midnight(NOW) - timedelta(days=5)  # 2024-06-10 by default
    rows = reader.get(7, LOAD_PROFILE_B, 2, time_range(day + timedelta(minutes=15), day + timedelta(days=1))).value
    first = energy.interval_index(day)
    expected = list(energy.profile_intervals(SEED, SERIAL, first, first + 95))
    assert len(rows) == 96
    assert [(when_of(r.value[0]), r.value[1].value, r.value[2].value, r.value[3].value) for r in rows] == [
        (energy.interval_end(e.interval), e.a_minus, e.a_plus, e.status) for e in expected
    ]
    assert [c.tag for c in rows[0].value] == [
        DataTag.OCTET_STRING, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.LONG_UNSIGNED,
    ]
    last = reader.get(7, LOAD_PROFILE_B, 2, EntryDescriptor(9600, 0).to_access_selection()).value
    assert when_of(last[0].value[0]) == energy.interval_end(energy.completed_intervals(NOW) - 1)
    status = reader.get(1, STATUS_WORD_B, 2)
    assert status.tag == DataTag.LONG_UNSIGNED
    assert status.value == energy.profile_status(SEED, SERIAL, energy.completed_intervals(NOW) - 1)


def test_daily_values_layout_and_rows() -> None:
    reader = connected(make_b())
    columns = [CaptureObjectDefinition.from_data(c) for c in reader.get(7, DAILY_VALUES_B, 3).value]
    assert [c.logical_name for c in columns] == [CLOCK, A_PLUS, A_MINUS]
    assert reader.get(7, DAILY_VALUES_B, 4).value == 86400
    since = utc_midnight(NOW) - timedelta(days=5)
    rows = reader.get(7, DAILY_VALUES_B, 2, time_range(since, since + timedelta(days=3))).value
    assert len(rows) == 3
    for row in rows:
        at = when_of(row.value[0])
        registers = energy.registers_at(SEED, SERIAL, at)
        assert [c.value for c in row.value[1:]] == [registers.a_plus, registers.a_minus]


@pytest.mark.parametrize("log", list(EventLog))
def test_event_logs_carry_the_vendor_codes(log: EventLog) -> None:
    reader = connected(make_b())
    rows = reader.get(7, log.obis, 2).value
    expected = events_between(SEED, SERIAL, log, NOW - timedelta(days=100), NOW)
    assert [(when_of(r.value[0]), r.value[1].value) for r in rows] == [
        (e.when, event_code(MAKE_B, e.code)) for e in expected
    ]
    assert all(r.value[1].tag == DataTag.LONG_UNSIGNED for r in rows)
    latest = reader.get(1, log.code_obis, 2)
    assert latest.tag == DataTag.LONG_UNSIGNED
    assert latest.value == (event_code(MAKE_B, expected[-1].code) if expected else 0)


def test_relay_and_clock_set_are_logged_with_vendor_codes() -> None:
    meter = make_b("hls-gmac")
    reader = connected(meter, "hls-gmac")
    assert reader.action(70, DISCONNECT_CONTROL, 1) == ActionResultCode.SUCCESS
    meter.clock.jump(timedelta(hours=1))
    assert reader.action(70, DISCONNECT_CONTROL, 2) == ActionResultCode.SUCCESS
    target = meter.clock.now() - timedelta(minutes=2)  # back: both entries are already in the log
    assert reader.set(8, CLOCK, 2, Data.octet_string(CosemDateTime.from_datetime(target, deviation=-60).encode())) \
        == DataAccessResult.SUCCESS
    relay = [r.value[1].value for r in reader.get(7, EventLog.DISCONNECTOR.obis, 2).value][-2:]
    assert relay == [1403, 1404]
    standard = [r.value[1].value for r in reader.get(7, EventLog.STANDARD.obis, 2).value][-2:]
    # the new time (2 minutes back) sorts before the old one
    assert standard == [event_code(MAKE_B, EventCode.CLOCK_ADJUSTED_NEW_TIME),
                        event_code(MAKE_B, EventCode.CLOCK_ADJUSTED_OLD_TIME)]
    # What the meter keeps are the physical events; only their numbers on the wire are the make's.
    assert meter.log_entries(EventLog.DISCONNECTOR)[-1].code is EventCode.REMOTE_CONNECTION
    assert meter.event_code_value(EventCode.POWER_UP) == Data.long_unsigned(1002)
    assert SimulatedMeter(config(), frozen(), MemoryCounterStore()).event_code_value(EventCode.POWER_UP) \
        == Data.unsigned(2)


def test_make_a_object_model_is_unchanged() -> None:
    assert [obis for _, obis in objects_of(MAKE_A)] == [
        ASSOCIATION, SECURITY_SETUP, CLOCK, SERIAL_NUMBER, A_PLUS, A_PLUS_T1, A_PLUS_T2, A_MINUS, VOLTAGE_L1,
        PROFILE_STATUS, LOAD_PROFILE, DAILY_BILLING, *(log.obis for log in EventLog),
        *(log.code_obis for log in EventLog), DISCONNECT_CONTROL,
    ]
    assert ObisCode(1, 0, 99, 2, 0, 255) == LOAD_PROFILE_B and ObisCode(0, 0, 98, 1, 0, 255) == DAILY_VALUES_B
