"""The seeded energy, events and counter store: pure, consistent, realistic enough, fast."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import energy
from simulators.counters import CounterError, Counters, FileCounterStore, MemoryCounterStore
from simulators.energy import FIELD_EPOCH, Registers, Tariff
from simulators.events import EventCode, EventLog, events_between, outages

SERIALS = [f"E{n:06d}" for n in range(40)]
indexes = st.integers(min_value=0, max_value=96 * 900)


def test_epoch_and_intervals() -> None:
    assert datetime(2024, 1, 1, tzinfo=UTC) == FIELD_EPOCH
    assert energy.interval_index(FIELD_EPOCH) == 0
    assert energy.interval_index(FIELD_EPOCH - timedelta(seconds=1)) == -1
    assert energy.interval_end(0) == FIELD_EPOCH + timedelta(minutes=15)
    assert energy.completed_intervals(FIELD_EPOCH + timedelta(minutes=29)) == 1
    assert energy.completed_intervals(FIELD_EPOCH - timedelta(days=3)) == 0


def test_tariffs_follow_local_time() -> None:
    day = 10 * 96
    # 06:00Z is 07:00 local: T1 starts; 22:00Z is 23:00 local: T2 again
    assert energy.tariff_of(day + 23) is Tariff.T2
    assert energy.tariff_of(day + 24) is Tariff.T1
    assert energy.tariff_of(day + 87) is Tariff.T1
    assert energy.tariff_of(day + 88) is Tariff.T2


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SERIALS), indexes)
def test_registers_step_by_measured_interval(serial: str, index: int) -> None:
    before = energy.registers_after(7, serial, index)
    after = energy.registers_after(7, serial, index + 1)
    imported, exported = energy.measured_interval(7, serial, index)
    assert imported >= 0 and exported >= 0
    assert after.a_plus - before.a_plus == imported
    assert after.a_minus - before.a_minus == exported
    t1 = imported if energy.tariff_of(index) is Tariff.T1 else 0
    assert (after.a_plus_t1 - before.a_plus_t1, after.a_plus_t2 - before.a_plus_t2) == (t1, imported - t1)
    assert after.a_plus == after.a_plus_t1 + after.a_plus_t2
    dead = energy.dead_intervals(7, serial, index, index + 1)
    assert (imported, exported) == ((0, 0) if dead else energy.interval_energy(7, serial, index))


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(SERIALS), st.integers(min_value=0, max_value=800))
def test_profile_rows_sum_intervals(serial: str, day: int) -> None:
    first = day * 96
    rows = list(energy.profile_intervals(3, serial, first, first + 95))
    start = energy.registers_after(3, serial, first)
    total = sum(energy.measured_interval(3, serial, i)[0] for i in range(first, first + 96))
    assert rows[-1].a_plus == start.a_plus + total
    assert rows[-1].a_plus == energy.registers_after(3, serial, first + 96).a_plus
    assert [r.interval for r in rows] == list(range(first, first + 96))


def test_pure_functions_of_seed_and_serial() -> None:
    a = [energy.interval_energy(1, "X", i) for i in range(500)]
    assert a == [energy.interval_energy(1, "X", i) for i in range(500)]
    assert a != [energy.interval_energy(2, "X", i) for i in range(500)]
    assert a != [energy.interval_energy(1, "Y", i) for i in range(500)]
    assert energy.interval_energy(1, "X", -5) == (0, 0)
    assert energy.registers_after(1, "X", 0) == energy.registers_after(1, "X", -10)


def test_household_shape() -> None:
    night = evening = 0
    exporters = 0
    for serial in SERIALS:
        for day in range(30, 60):
            base = day * 96
            night += sum(energy.interval_energy(5, serial, base + s)[0] for s in range(8, 16))  # 03:00-05:00 local
            evening += sum(energy.interval_energy(5, serial, base + s)[0] for s in range(68, 76))  # 18:00-20:00
        midday = sum(energy.interval_energy(5, serial, 150 * 96 + s)[1] for s in range(40, 52))
        midnight = sum(energy.interval_energy(5, serial, 150 * 96 + s)[1] for s in range(90, 96))
        exporters += midday > 0
        assert midnight == 0
    assert evening > 2 * night
    assert 5 <= exporters <= 30


def test_relay_window_zeroes_overlapped_intervals() -> None:
    start = FIELD_EPOCH + timedelta(days=40, hours=10, minutes=5)
    window = [(start, start + timedelta(minutes=50))]
    first = energy.interval_index(start)
    assert [energy.measured_interval(9, "R1", i, window) for i in range(first, first + 4)] == [(0, 0)] * 4
    after = first + 4
    if not energy.dead_intervals(9, "R1", after, after + 1):
        assert energy.measured_interval(9, "R1", after, window) == energy.interval_energy(9, "R1", after)
    when = start + timedelta(days=2)
    lost = sum(energy.measured_interval(9, "R1", i)[0] for i in range(first, first + 4))
    assert energy.registers_at(9, "R1", when).a_plus - energy.registers_at(9, "R1", when, window).a_plus == lost
    still_open = [(start, None)]
    assert energy.registers_at(9, "R1", when, still_open) == energy.registers_after(9, "R1", first, still_open)


def test_power_cuts_record_nothing_and_flag_the_interval() -> None:
    cuts = outages(11, "P1", FIELD_EPOCH, FIELD_EPOCH + timedelta(days=300))
    assert cuts
    down, up = cuts[0]
    index = energy.interval_index(down)
    assert energy.measured_interval(11, "P1", index) == (0, 0)
    assert energy.profile_status(11, "P1", index) == energy.STATUS_POWER_DOWN
    assert energy.voltage_at(11, "P1", down) == 0
    assert energy.voltage_at(11, "P1", up) > 2000


def test_voltage_is_near_230() -> None:
    values = [energy.voltage_at(1, "V", FIELD_EPOCH + timedelta(minutes=7 * k)) for k in range(1000)]
    nonzero = [v for v in values if v]
    assert all(2150 <= v <= 2400 for v in nonzero) and len(set(nonzero)) > 20


def test_a_register_read_sums_a_bounded_number_of_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running totals are kept every few weeks, so a read never sums the whole history again."""
    when = datetime(2026, 6, 1, tzinfo=UTC)
    calls = 0
    measured = energy._measured_in_day

    def counting(*args: object) -> object:
        nonlocal calls
        calls += 1
        return measured(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(energy, "_measured_in_day", counting)
    energy.registers_at(1, "BOUNDED", when)
    history_days = (when - FIELD_EPOCH).days
    assert calls >= history_days  # the first read built the running totals...
    calls = 0
    energy.registers_at(1, "BOUNDED", when + timedelta(hours=5))
    assert calls <= energy._CHECKPOINT_DAYS + 1  # ...and a later one starts from the nearest of them


def test_events_follow_the_seed_and_idis_codes() -> None:
    start, end = FIELD_EPOCH, FIELD_EPOCH + timedelta(days=365)
    standard = events_between(4, "EV1", EventLog.STANDARD, start, end)
    assert standard == events_between(4, "EV1", EventLog.STANDARD, start, end)
    assert standard != events_between(5, "EV1", EventLog.STANDARD, start, end)
    powers = [e for e in standard if e.code in (EventCode.POWER_DOWN, EventCode.POWER_UP)]
    assert [e.code for e in powers] == [EventCode.POWER_DOWN, EventCode.POWER_UP] * (len(powers) // 2)
    assert all(a.when <= b.when for a, b in itertools.pairwise(standard))
    fraud = [e for s in range(20) for e in events_between(4, f"F{s}", EventLog.FRAUD, start, end)]
    assert {e.code for e in fraud} <= {40, 41, 44, 45} and fraud
    assert events_between(4, "EV1", EventLog.DISCONNECTOR, start, end) == []
    assert int(EventCode.REMOTE_DISCONNECTION) == 62 and EventCode.REMOTE_CONNECTION.log is EventLog.DISCONNECTOR
    assert events_between(4, "EV1", EventLog.STANDARD, start - timedelta(days=90), start) == []
    middle = standard[len(standard) // 2].when
    assert events_between(4, "EV1", EventLog.STANDARD, middle, end)[0].when == middle


def test_registers_named_fields() -> None:
    r = Registers(10, 6, 4, 2)
    assert (r.a_plus, r.a_plus_t1, r.a_plus_t2, r.a_minus) == (10, 6, 4, 2)


# --- counter stores --------------------------------------------------------------------------------------------


def test_memory_counter_store() -> None:
    store = MemoryCounterStore()
    assert store.get("M", 1) == Counters()
    store.put("M", 1, Counters(40, 7))
    assert store.get("M", 1) == Counters(40, 7) and store.get("M", 2) == Counters()


def test_file_counter_store_survives_and_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "state" / "counters.json"
    store = FileCounterStore(path)
    store.put("M1", 1, Counters(64, 12))
    store.put("M2", 1, Counters(1, None))
    assert FileCounterStore(path).get("M1", 1) == Counters(64, 12)
    assert FileCounterStore(path).get("M2", 1) == Counters(1, None)
    assert [p.name for p in path.parent.iterdir()] == ["counters.json"]
    lazy = FileCounterStore(path, autosave=False)
    lazy.put("M1", 1, Counters(96, 20))
    assert FileCounterStore(path).get("M1", 1) == Counters(64, 12)
    lazy.flush()
    assert FileCounterStore(path).get("M1", 1) == Counters(96, 20)


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"M/1": [1]}), json.dumps({"M/1": ["x", None]})])
def test_bad_counter_file_is_a_typed_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "counters.json"
    path.write_text(content)
    with pytest.raises(CounterError, match="counter file"):
        FileCounterStore(path)
