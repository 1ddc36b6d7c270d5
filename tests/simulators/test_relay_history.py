"""Seeded relay operations: the customer's manual openings are logged, record no energy, show in IC 70."""

from __future__ import annotations

from datetime import datetime, timedelta

from simulators.counters import MemoryCounterStore
from simulators.energy import (
    FIELD_EPOCH,
    INTERVAL,
    STATUS_POWER_DOWN,
    interval_energy,
    interval_index,
    profile_intervals,
    registers_after,
    voltage_at,
)
from simulators.events import BLOCK_DAYS, EventCode, EventLog, events_between, outages, relay_openings
from simulators.meter import DISCONNECT_CONTROL, SimulatedMeter
from tests.simulators.test_meter import SEED, config, connected, frozen

YEAR = (FIELD_EPOCH, FIELD_EPOCH + timedelta(days=365))


def _first_with_an_opening() -> tuple[str, tuple[datetime, datetime]]:
    for n in range(1000):
        found = relay_openings(SEED, f"R{n:05d}", *YEAR)
        if found:
            return f"R{n:05d}", found[0]
    raise AssertionError("no seeded relay opening in 1000 meter-years")


def test_openings_are_rare_paired_and_logged_in_the_disconnector_log() -> None:
    serials = [f"R{n:05d}" for n in range(200)]
    total = 0
    for serial in serials:
        openings = relay_openings(SEED, serial, *YEAR)
        total += len(openings)
        log = events_between(SEED, serial, EventLog.DISCONNECTOR, *YEAR)
        codes = [(e.when, e.code) for e in log]
        expected = [item for opened, closed in openings
                    for item in ((opened, EventCode.MANUAL_DISCONNECTION), (closed, EventCode.MANUAL_CONNECTION))]
        assert codes == expected
        for opened, closed in openings:
            block = (opened - FIELD_EPOCH) // timedelta(days=BLOCK_DAYS)
            assert (closed - FIELD_EPOCH) // timedelta(days=BLOCK_DAYS) == block  # never across a block
            assert timedelta(minutes=10) <= closed - opened <= timedelta(hours=6)
    # about 6 % of meter-months: rare, but a 200-meter year has plenty
    assert 50 <= total <= 300


def test_an_opening_records_no_energy_but_is_no_power_cut() -> None:
    serial, (opened, closed) = _first_with_an_opening()
    first, last = interval_index(opened), interval_index(closed - timedelta(microseconds=1))
    rows = {row.interval: row for row in profile_intervals(SEED, serial, first - 2, last + 2)}
    before = rows[first - 1]
    for i in range(first, last + 1):
        assert (rows[i].a_plus, rows[i].a_minus) == (before.a_plus, before.a_minus)  # cumulative: flat
        if not outages(SEED, serial, FIELD_EPOCH + i * INTERVAL, FIELD_EPOCH + (i + 1) * INTERVAL):
            assert not rows[i].status & STATUS_POWER_DOWN
    assert any(interval_energy(SEED, serial, i)[0] for i in range(first, last + 1))  # it would have used some
    assert rows[last + 2].a_plus >= rows[last].a_plus
    # the registers agree with the profile across the opening
    assert registers_after(SEED, serial, last + 3).a_plus == rows[last + 2].a_plus
    middle = opened + (closed - opened) / 2
    if not outages(SEED, serial, middle, middle + timedelta(seconds=1)):
        assert voltage_at(SEED, serial, middle) > 0  # the supply side stays live


def test_ic70_reads_open_during_a_seeded_opening() -> None:
    serial, (opened, closed) = _first_with_an_opening()
    middle = opened + (closed - opened) / 2
    during = SimulatedMeter(config(serial=serial), frozen(middle), MemoryCounterStore())
    reader = connected(during)
    assert reader.get(70, DISCONNECT_CONTROL, 2).value is False
    assert reader.get(70, DISCONNECT_CONTROL, 3).value == 2  # ready for reconnection
    after = SimulatedMeter(config(serial=serial), frozen(closed + timedelta(minutes=1)), MemoryCounterStore())
    reader = connected(after)
    assert reader.get(70, DISCONNECT_CONTROL, 2).value is True
    assert reader.get(70, DISCONNECT_CONTROL, 3).value == 1
