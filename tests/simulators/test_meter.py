"""The simulated meter read in memory by our client: every value checked against the seeded functions."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protocols.acse import MechanismName
from protocols.association import (
    ActionResult,
    Associated,
    AssociationRejected,
    CipheringMode,
    ClientAssociation,
    ClientConfig,
    Event,
    ExceptionReceived,
    GetResult,
    SecurityPolicy,
    SetResult,
)
from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.cosem import ObjectListElement, ProfileColumn, ScalerUnit, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.obis import ObisCode
from protocols.xdlms.common import (
    ActionResult as ActionResultCode,
)
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccessDescriptor,
)
from protocols.xdlms.selective_access import CaptureObjectDefinition, EntryDescriptor, RangeDescriptor
from simulators import energy
from simulators.clock import FieldClock
from simulators.counters import CounterStore, FileCounterStore, MemoryCounterStore
from simulators.events import EventCode, EventLog, events_between
from simulators.meter import (
    A_MINUS,
    A_PLUS,
    A_PLUS_T1,
    A_PLUS_T2,
    CLOCK,
    DAILY_BILLING,
    DISCONNECT_CONTROL,
    LOAD_PROFILE,
    SERIAL_NUMBER,
    VOLTAGE_L1,
    MeterConfig,
    MeterConfigError,
    MeterSession,
    SimulatedMeter,
)
from tests.fieldtime import EPOCH, utc_midnight

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
HES_TITLE = bytes.fromhex("4845530000000001")
NOW = EPOCH + timedelta(days=106, hours=10, minutes=7, seconds=30)  # 2024-06-15T10:07:30Z by default
#: A UTC day of the meter's history, five days before NOW.
DAY = utc_midnight(NOW) - timedelta(days=5)
SEED = 42


def frozen(at: datetime = NOW) -> FieldClock:
    return FieldClock(at, scale=0)


def config(policy: str = "none", **changes: Any) -> MeterConfig:
    base = MeterConfig(
        serial="SIM00000042",
        seed=SEED,
        physical_address=0x1234,
        policy=policy,  # type: ignore[arg-type]
        password=b"12345678" if policy == "lls" else None,
        system_title=METER_TITLE if policy == "hls-gmac" else None,
        ek=EK if policy == "hls-gmac" else None,
        ak=AK if policy == "hls-gmac" else None,
    )
    return replace(base, **changes)


def client_policy(policy: str, password: bytes = b"12345678", ak: bytes = AK) -> SecurityPolicy:
    if policy == "lls":
        return SecurityPolicy(mechanism=MechanismName.LLS, password=password)
    if policy == "hls-gmac":
        return SecurityPolicy(
            mechanism=MechanismName.HLS_GMAC,
            ciphering=CipheringMode.SERVICE_SPECIFIC,
            system_title=HES_TITLE,
            encryption_key=EK,
            authentication_key=ak,
        )
    return SecurityPolicy()


class Reader:
    """Our client association wired straight to a meter session."""

    def __init__(self, meter: SimulatedMeter, sap: int, policy: SecurityPolicy, counter: int = 1) -> None:
        session = meter.open_session(sap)
        assert isinstance(session, MeterSession)
        self.session = session
        self.client = ClientAssociation(
            ClientConfig(
                policy=policy,
                client_challenge=b"HES-CtoS-challenge" if policy.mechanism is MechanismName.HLS_GMAC else None,
                invocation_counter=counter,
                max_receive_pdu_size=512,  # small, so long buffers come in datablocks
            )
        )

    def pump(self) -> list[Event]:
        events: list[Event] = []
        for _ in range(10_000):
            out = self.client.data_to_send()
            if not out:
                return events
            for apdu in out:
                for reply in asyncio.run(self.session.handle(apdu)):
                    events += self.client.receive_apdu(reply)
        raise AssertionError("the link did not settle")

    def associate(self) -> list[Event]:
        self.client.associate()
        return self.pump()

    def get_raw(self, class_id: int, obis: ObisCode, attribute: int, selection: Any = None) -> bytes | DataAccessResult:
        self.client.get(CosemAttributeDescriptor(class_id, obis, attribute), selection)
        results = [e for e in self.pump() if isinstance(e, GetResult)]
        assert len(results) == 1, results
        return results[0].data

    def get(self, class_id: int, obis: ObisCode, attribute: int, selection: Any = None) -> Data:
        raw = self.get_raw(class_id, obis, attribute, selection)
        assert isinstance(raw, bytes), raw
        return decode_data_exact(raw)

    def set(self, class_id: int, obis: ObisCode, attribute: int, value: Data) -> DataAccessResult:
        self.client.set(CosemAttributeDescriptor(class_id, obis, attribute), encode_data(value))
        results = [e for e in self.pump() if isinstance(e, SetResult)]
        assert len(results) == 1
        return results[0].result

    def action(self, class_id: int, obis: ObisCode, method: int) -> ActionResultCode:
        self.client.action(CosemMethodDescriptor(class_id, obis, method), encode_data(Data.integer(0)))
        results = [e for e in self.pump() if isinstance(e, ActionResult)]
        assert len(results) == 1
        return results[0].result


def connected(meter: SimulatedMeter, policy: str = "none", sap: int | None = None, counter: int = 1) -> Reader:
    sap = (0x10 if policy == "none" else 0x01) if sap is None else sap
    reader = Reader(meter, sap, client_policy(policy), counter)
    events = reader.associate()
    assert any(isinstance(e, Associated) for e in events), events
    return reader


def when_of(data: Data) -> datetime:
    moment = CosemDateTime.decode(data.value).to_datetime()
    assert moment is not None
    return moment


def time_range(since: datetime, until: datetime) -> SelectiveAccessDescriptor:
    return RangeDescriptor(
        CaptureObjectDefinition(8, CLOCK, 2),
        Data.octet_string(CosemDateTime.from_datetime(since, deviation=-60).encode()),
        Data.octet_string(CosemDateTime.from_datetime(until, deviation=-60).encode()),
    ).to_access_selection()


# --- reads per security policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["none", "lls", "hls-gmac"])
def test_clock_serial_registers_voltage(policy: str) -> None:
    meter = SimulatedMeter(config(policy), frozen(), MemoryCounterStore())
    reader = connected(meter, policy)
    assert when_of(reader.get(8, CLOCK, 2)) == NOW
    assert reader.get(8, CLOCK, 3) == Data.long(-60)
    assert reader.get(1, SERIAL_NUMBER, 2).value == "SIM00000042"
    expected = energy.registers_at(SEED, "SIM00000042", NOW)
    got = [reader.get(3, obis, 2).value for obis in (A_PLUS, A_PLUS_T1, A_PLUS_T2, A_MINUS)]
    assert got == list(expected)
    assert expected.a_plus == expected.a_plus_t1 + expected.a_plus_t2
    assert ScalerUnit.from_data(reader.get(3, A_PLUS, 3)) == ScalerUnit(0, 30)
    assert ScalerUnit.from_data(reader.get(3, VOLTAGE_L1, 3)) == ScalerUnit(-1, 35)
    assert reader.get(3, VOLTAGE_L1, 2).value == energy.voltage_at(SEED, "SIM00000042", NOW)
    assert reader.get(15, ObisCode(0, 0, 40, 0, 0, 255), 1).value == bytes((0, 0, 40, 0, 0, 255))


def test_profile_day_equals_interval_energy() -> None:
    meter = SimulatedMeter(config("hls-gmac"), frozen(), MemoryCounterStore())
    reader = connected(meter, "hls-gmac")
    day = DAY
    data = reader.get_raw(7, LOAD_PROFILE, 2, time_range(day + timedelta(minutes=15), day + timedelta(days=1)))
    assert isinstance(data, bytes)
    columns = [ProfileColumn.of(CaptureObjectDefinition.from_data(c)) for c in reader.get(7, LOAD_PROFILE, 3).value]
    rows = parse_profile_buffer(data, columns, 900)
    assert len(rows) == 96
    first = energy.interval_index(day)
    before = energy.registers_after(SEED, "SIM00000042", first)
    plus, minus = before.a_plus, before.a_minus
    for offset, row in enumerate(rows):
        index = first + offset
        assert row.time == energy.interval_end(index)
        assert row.status == energy.profile_status(SEED, "SIM00000042", index)
        imported, exported = energy.measured_interval(SEED, "SIM00000042", index)
        if not row.status:
            assert (imported, exported) == energy.interval_energy(SEED, "SIM00000042", index)
        plus, minus = plus + imported, minus + exported
        assert row.values[2:] == (plus, minus)
    assert rows[-1].values[2] == energy.registers_at(SEED, "SIM00000042", day + timedelta(days=1)).a_plus


def test_profile_attributes_and_entry_selection() -> None:
    meter = SimulatedMeter(config(), frozen(), MemoryCounterStore())
    reader = connected(meter)
    assert reader.get(7, LOAD_PROFILE, 4).value == 900
    in_use = reader.get(7, LOAD_PROFILE, 7).value
    assert in_use == 9600  # a hundred days, more than the 60 asked for
    assert reader.get(7, LOAD_PROFILE, 8).value == 9600
    oldest = energy.completed_intervals(NOW) - 9600  # entry 1
    selection = EntryDescriptor(3, 5, 3, 4).to_access_selection()
    rows = reader.get(7, LOAD_PROFILE, 2, selection).value
    assert len(rows) == 3
    for number, row in enumerate(rows, start=3):
        registers = energy.registers_after(SEED, "SIM00000042", oldest + number)
        assert [cell.value for cell in row.value] == [registers.a_plus, registers.a_minus]
    # the last entries, all columns
    last = reader.get(7, LOAD_PROFILE, 2, EntryDescriptor(in_use, 0).to_access_selection()).value
    assert len(last) == 1 and when_of(last[0].value[0]) == energy.interval_end(oldest + in_use - 1)


def test_profile_history_starts_at_installation() -> None:
    early = datetime(2024, 1, 3, tzinfo=UTC)
    meter = SimulatedMeter(config(), frozen(early), MemoryCounterStore())
    reader = connected(meter)
    assert reader.get(7, LOAD_PROFILE, 7).value == 2 * 96
    assert reader.get(7, DAILY_BILLING, 7).value == 2  # midnights of 2 and 3 January, local time


def test_profile_keeps_a_hundred_days() -> None:
    later = NOW + timedelta(days=300)
    meter = SimulatedMeter(config(), frozen(later), MemoryCounterStore())
    reader = connected(meter)
    assert reader.get(7, LOAD_PROFILE, 7).value == 9600
    oldest = reader.get(7, LOAD_PROFILE, 2, EntryDescriptor(1, 1).to_access_selection()).value[0]
    assert when_of(oldest.value[0]) == energy.interval_end(energy.completed_intervals(later) - 9600)
    # a range before the buffer's start gives nothing, not an error
    empty = reader.get(7, LOAD_PROFILE, 2, time_range(NOW - timedelta(days=2), NOW - timedelta(days=1)))
    assert empty.value == ()


def test_daily_billing_values() -> None:
    meter = SimulatedMeter(config(), frozen(), MemoryCounterStore())
    reader = connected(meter)
    since = DAY
    rows = reader.get(7, DAILY_BILLING, 2, time_range(since, since + timedelta(days=3))).value
    assert len(rows) == 3
    for row in rows:
        at = when_of(row.value[0])
        assert at.utcoffset() == timedelta(hours=1) and (at.hour, at.minute) == (0, 0)
        assert [c.value for c in row.value[1:]] == list(energy.registers_at(SEED, "SIM00000042", at))
    assert reader.get(7, DAILY_BILLING, 4).value == 86400


@pytest.mark.parametrize("log", list(EventLog))
def test_event_logs_match_the_seed(log: EventLog) -> None:
    meter = SimulatedMeter(config(), frozen(), MemoryCounterStore())
    reader = connected(meter)
    since = NOW - timedelta(days=100)
    rows = reader.get(7, log.obis, 2).value
    expected = events_between(SEED, "SIM00000042", log, since, NOW)
    assert [(when_of(r.value[0]), r.value[1].value) for r in rows] == [(e.when, int(e.code)) for e in expected]
    columns = [CaptureObjectDefinition.from_data(c) for c in reader.get(7, log.obis, 3).value]
    assert columns[1].logical_name == log.code_obis


def test_standard_log_has_power_and_clock_events_in_range() -> None:
    meter = SimulatedMeter(config(), frozen(), MemoryCounterStore())
    reader = connected(meter)
    rows = reader.get(7, EventLog.STANDARD.obis, 2).value
    codes = {r.value[1].value for r in rows}
    assert {1, 2} <= codes
    middle = when_of(rows[len(rows) // 2].value[0])
    part = reader.get(7, EventLog.STANDARD.obis, 2, time_range(middle, NOW)).value
    assert 0 < len(part) < len(rows) and when_of(part[0].value[0]) == middle


# --- relay ---------------------------------------------------------------------------------------------------


def test_disconnect_then_reconnect_zero_energy_between() -> None:
    clock = frozen()
    meter = SimulatedMeter(config("hls-gmac"), clock, MemoryCounterStore())
    reader = connected(meter, "hls-gmac")
    assert [reader.get(70, DISCONNECT_CONTROL, a).value for a in (2, 3, 4)] == [True, 1, 2]
    assert reader.action(70, DISCONNECT_CONTROL, 1) == ActionResultCode.SUCCESS
    assert [reader.get(70, DISCONNECT_CONTROL, a).value for a in (2, 3)] == [False, 0]
    assert reader.action(70, DISCONNECT_CONTROL, 1) == ActionResultCode.SUCCESS  # already off: no change
    clock.jump(timedelta(hours=3))
    assert reader.action(70, DISCONNECT_CONTROL, 2) == ActionResultCode.SUCCESS
    assert [reader.get(70, DISCONNECT_CONTROL, a).value for a in (2, 3)] == [True, 1]
    clock.jump(timedelta(hours=1))
    windows = meter.windows
    assert windows == ((NOW, NOW + timedelta(hours=3)),)
    rows = reader.get(7, LOAD_PROFILE, 2, time_range(NOW - timedelta(hours=1), clock.now())).value
    inside = 0
    for previous, row in itertools.pairwise(rows):
        index = energy.interval_index(when_of(row.value[0])) - 1
        step = row.value[2].value - previous.value[2].value
        # An interval the open relay overlaps, even partly, records nothing; the others what the household drew.
        assert step == energy.measured_interval(SEED, "SIM00000042", index, windows)[0]
        if energy.interval_start(index) >= NOW and energy.interval_end(index) <= NOW + timedelta(hours=3):
            assert step == 0
            inside += 1
        elif energy.interval_end(index) <= NOW or energy.interval_start(index) >= NOW + timedelta(hours=3):
            assert step == energy.measured_interval(SEED, "SIM00000042", index)[0]
    assert inside >= 11  # three hours of open relay: 11 or 12 whole intervals, as NOW falls
    expected = energy.registers_at(SEED, "SIM00000042", clock.now(), windows)
    assert reader.get(3, A_PLUS, 2).value == expected.a_plus
    assert expected.a_plus < energy.registers_at(SEED, "SIM00000042", clock.now()).a_plus
    log = reader.get(7, EventLog.DISCONNECTOR.obis, 2).value
    assert [(when_of(r.value[0]), r.value[1].value) for r in log][-2:] == [
        (NOW, EventCode.REMOTE_DISCONNECTION),
        (NOW + timedelta(hours=3), EventCode.REMOTE_CONNECTION),
    ]


def test_public_client_reads_but_cannot_write_or_operate() -> None:
    meter = SimulatedMeter(config("hls-gmac"), frozen(), MemoryCounterStore())
    reader = connected(meter, "none", sap=0x10)
    assert reader.get(3, A_PLUS, 2).value == energy.registers_at(SEED, "SIM00000042", NOW).a_plus
    assert reader.action(70, DISCONNECT_CONTROL, 1) == ActionResultCode.READ_WRITE_DENIED
    stamp = Data.octet_string(CosemDateTime.from_datetime(NOW, deviation=-60).encode())
    assert reader.set(8, CLOCK, 2, stamp) == DataAccessResult.READ_WRITE_DENIED
    assert meter.relay.output_state
    elements = [ObjectListElement.from_data(e) for e in reader.get(15, ObisCode(0, 0, 40, 0, 0, 255), 2).value]
    names = {e.logical_name for e in elements}
    for obis in (CLOCK, SERIAL_NUMBER, A_PLUS, A_PLUS_T1, A_PLUS_T2, A_MINUS, VOLTAGE_L1, LOAD_PROFILE):
        assert obis in names
    assert {DAILY_BILLING, DISCONNECT_CONTROL, ObisCode(0, 0, 43, 0, 0, 255)} <= names
    assert all(log.obis in names for log in EventLog)
    clock_entry = next(e for e in elements if e.logical_name == CLOCK)
    assert not clock_entry.attribute(2).writable  # type: ignore[union-attr]


# --- errors like a real meter -----------------------------------------------------------------------------------


def test_unknown_object_wrong_class_and_wrong_types() -> None:
    meter = SimulatedMeter(config("lls"), frozen(), MemoryCounterStore())
    reader = connected(meter, "lls")
    assert reader.get_raw(3, ObisCode(1, 0, 3, 8, 0, 255), 2) == DataAccessResult.OBJECT_UNDEFINED
    assert reader.get_raw(3, CLOCK, 2) == DataAccessResult.OBJECT_CLASS_INCONSISTENT
    assert reader.get_raw(3, A_PLUS, 9) == DataAccessResult.OBJECT_UNDEFINED
    assert reader.set(8, CLOCK, 2, Data.double_long_unsigned(5)) == DataAccessResult.TYPE_UNMATCHED
    assert reader.set(3, A_PLUS, 2, Data.double_long_unsigned(5)) == DataAccessResult.READ_WRITE_DENIED
    assert reader.set(70, DISCONNECT_CONTROL, 4, Data.unsigned(1)) == DataAccessResult.TYPE_UNMATCHED
    bad_range = RangeDescriptor(
        CaptureObjectDefinition(3, A_PLUS, 2), Data.octet_string(b"x" * 12), Data.octet_string(b"y" * 12)
    ).to_access_selection()
    assert reader.get_raw(7, LOAD_PROFILE, 2, bad_range) == DataAccessResult.OBJECT_UNAVAILABLE
    assert (
        reader.get_raw(7, LOAD_PROFILE, 2, SelectiveAccessDescriptor(1, b"\x11\x05")) == DataAccessResult.TYPE_UNMATCHED
    )
    assert (
        reader.get_raw(7, LOAD_PROFILE, 2, SelectiveAccessDescriptor(9, b"\x00")) == DataAccessResult.OBJECT_UNAVAILABLE
    )


def test_wrong_lls_password_rejected() -> None:
    meter = SimulatedMeter(config("lls"), frozen(), MemoryCounterStore())
    reader = Reader(meter, 0x01, client_policy("lls", password=b"wrong"))
    assert any(isinstance(e, AssociationRejected) for e in reader.associate())


def test_unserved_sap_has_no_session() -> None:
    meter = SimulatedMeter(config(), frozen(), MemoryCounterStore())
    assert meter.open_session(0x20) is None


def test_decommissioned_meter_rejects_the_association() -> None:
    meter = SimulatedMeter(config("hls-gmac", decommissioned=True), frozen(), MemoryCounterStore())
    reader = Reader(meter, 0x01, client_policy("hls-gmac"))
    rejected = [e for e in reader.associate() if isinstance(e, AssociationRejected)]
    assert len(rejected) == 1 and rejected[0].diagnostic == 1
    public = Reader(meter, 0x10, client_policy("none"))
    assert any(isinstance(e, AssociationRejected) for e in public.associate())


# --- clock ---------------------------------------------------------------------------------------------------------


def test_clock_drift_and_set_time_logged() -> None:
    clock = FieldClock(NOW, scale=0)
    meter = SimulatedMeter(config("lls", drift_seconds_per_day=12.0), clock, MemoryCounterStore())
    clock.jump(timedelta(days=2))
    reader = connected(meter, "lls")
    shown = when_of(reader.get(8, CLOCK, 2))
    assert shown - clock.now() == timedelta(seconds=24)
    target = clock.now() + timedelta(minutes=5)
    stamp = Data.octet_string(CosemDateTime.from_datetime(target, deviation=-60).encode())
    assert reader.set(8, CLOCK, 2, stamp) == DataAccessResult.SUCCESS
    assert when_of(reader.get(8, CLOCK, 2)) == target
    set_at = clock.now()
    clock.jump(timedelta(days=1))
    assert when_of(reader.get(8, CLOCK, 2)) == target + timedelta(days=1, seconds=12)
    entries = [(when_of(r.value[0]), r.value[1].value) for r in reader.get(7, EventLog.STANDARD.obis, 2).value]
    adjusted = [e for e in entries if e[1] in (4, 5)]
    # logged in field time: the old time at the moment of the set, the new one shifted by the step
    assert adjusted[-2:] == [
        (set_at, EventCode.CLOCK_ADJUSTED_OLD_TIME),
        (set_at + timedelta(minutes=5) - timedelta(seconds=24), EventCode.CLOCK_ADJUSTED_NEW_TIME),
    ]


def test_scaled_clock_moves_registers() -> None:
    clock = FieldClock(NOW, scale=96 * 3600)  # a field day in a wall second: one interval in ~9 ms
    meter = SimulatedMeter(config(), clock, MemoryCounterStore())
    reader = connected(meter)
    before = clock.now()
    first = reader.get(3, A_PLUS, 2).value
    time.sleep(0.05)
    later = reader.get(3, A_PLUS, 2).value
    after = clock.now()
    low = energy.registers_at(SEED, "SIM00000042", before).a_plus
    high = energy.registers_at(SEED, "SIM00000042", after).a_plus
    assert low <= first < later <= high


# --- invocation counters ------------------------------------------------------------------------------------------


def test_replayed_counter_refused_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "counters.json"
    clock = frozen()
    meter = SimulatedMeter(config("hls-gmac"), clock, FileCounterStore(path))
    reader = connected(meter, "hls-gmac", counter=100)
    reader.get(3, A_PLUS, 2)
    reader.get(8, CLOCK, 2)
    server_counter = reader.client.server_invocation_counter
    assert server_counter is not None
    reader.session.close()
    stored = FileCounterStore(path).get("SIM00000042", 0x01)
    assert stored.client_last is not None and stored.client_last >= 102
    assert stored.server_next > server_counter
    # the meter restarts with the same store: the old counter is a replay
    restarted = SimulatedMeter(config("hls-gmac"), clock, FileCounterStore(path))
    replay = Reader(restarted, 0x01, client_policy("hls-gmac"), counter=100)
    assert any(isinstance(e, AssociationRejected) for e in replay.associate())
    fresh = connected(restarted, "hls-gmac", counter=500)
    fresh.get(3, A_PLUS, 2)
    assert fresh.client.server_invocation_counter is not None
    assert fresh.client.server_invocation_counter > server_counter
    codes = [e.code for e in restarted.log_entries(EventLog.FRAUD)]
    assert EventCode.DECRYPTION_OR_AUTHENTICATION_FAILURE in codes or EventCode.REPLAY_ATTACK in codes


def test_replayed_request_inside_a_session_refused() -> None:
    meter = SimulatedMeter(config("hls-gmac"), frozen(), MemoryCounterStore())
    reader = connected(meter, "hls-gmac", counter=10)
    reader.client.get(CosemAttributeDescriptor(3, A_PLUS, 2))
    request = reader.client.data_to_send()[0]
    first = reader.session.answer(request)
    assert first and first[0][0] != 0xD8
    again = reader.session.answer(request)
    assert again and again[0][0] == 0xD8  # ExceptionResponse: invocation counter error
    events = reader.client.receive_apdu(first[0])
    assert any(isinstance(e, GetResult) for e in events)
    assert not any(isinstance(e, ExceptionReceived) for e in events)
    assert EventCode.REPLAY_ATTACK in [e.code for e in meter.log_entries(EventLog.FRAUD)]


def test_counters_are_per_client_sap() -> None:
    store: CounterStore = MemoryCounterStore()
    meter = SimulatedMeter(config("hls-gmac", client_saps=(0x10, 0x01, 0x02)), frozen(), store)
    reader = connected(meter, "hls-gmac", sap=0x01, counter=7)
    reader.get(3, A_PLUS, 2)
    assert store.get("SIM00000042", 0x01).client_last == reader.client.next_invocation_counter - 1 > 7
    assert store.get("SIM00000042", 0x02).client_last is None


# --- configuration and fleet size ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"policy": "lls"},
        {"policy": "hls-gmac", "system_title": b"short"},
        {"policy": "bogus"},
        {"serial": ""},
        {"physical_address": -1},
        {"client_saps": (0,)},
        {"control_mode": 9},
    ],
)
def test_bad_configuration_is_a_typed_error(changes: dict[str, Any]) -> None:
    with pytest.raises(MeterConfigError):
        replace(config(), **changes)


def test_ten_thousand_meters_are_small() -> None:
    """Nothing is precomputed per meter (start-up time is measured in bench/fleet.py)."""
    clock = frozen()
    store = MemoryCounterStore()
    fleet = [
        SimulatedMeter(MeterConfig(f"F{n:08d}", SEED, n + 16, "hls-gmac", None, METER_TITLE, EK, AK), clock, store)
        for n in range(10_000)
    ]
    meter = fleet[-1]
    size = sys.getsizeof(meter) + sys.getsizeof(meter.config) + sys.getsizeof(meter.windows)
    assert size < 600
    assert not hasattr(meter, "__dict__")


def test_profile_buffer_type_tags() -> None:
    meter = SimulatedMeter(config(), frozen(), MemoryCounterStore())
    reader = connected(meter)
    row = reader.get(7, LOAD_PROFILE, 2, EntryDescriptor(1, 1).to_access_selection()).value[0]
    assert [c.tag for c in row.value] == [
        DataTag.OCTET_STRING,
        DataTag.UNSIGNED,
        DataTag.DOUBLE_LONG_UNSIGNED,
        DataTag.DOUBLE_LONG_UNSIGNED,
    ]
