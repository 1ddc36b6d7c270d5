"""Deterministic energy of simulated meters: any interval, register or voltage from (seed, serial, time).

Conventions a test can rely on:

- Field epoch ``FIELD_EPOCH`` = 2024-01-01T00:00Z. Interval ``index`` n covers
  [epoch + 15 min x n, epoch + 15 min x (n + 1)); the profile row of interval n is stamped with
  its end. Meters were installed at the epoch: no energy before it, registers start from a seeded
  initial reading.
- Local time is UTC+1 all year (no daylight saving), COSEM deviation ``LOCAL_DEVIATION`` = -60.
  Tariff T1 (day) runs 07:00-23:00 local (06:00-22:00Z), T2 (night) the rest; an interval lies
  wholly in one tariff.
- ``interval_energy`` is what the household drew (A+) and fed in (A-) in an interval: night low,
  evening peak, weekends higher, winter higher; about a third of meters have solar panels and
  export around midday. ``measured_interval`` is what the meter records: 0 for an interval that a
  power cut (seeded, ``simulators.events``) or an open relay (the meter's ``windows``) overlaps,
  even partly.
- Registers advance at interval ends: ``registers_at(when)`` is the initial reading plus every
  measured interval that ended at or before ``when``, so a profile row and the registers at its
  time agree exactly. T1 + T2 = A+ always.
- Voltage L1 is in decivolts (scaler -1): about 230 V with noise, a dip at the evening peak, 0
  during a power cut (the relay does not matter: voltage is measured on the supply side).

Speed: the day's total is drawn first and spread over the 96 slots by a shape with a telescoping
jitter, so a day's totals (and its T1 share) cost O(1); prefix sums are cached every
``_CHECKPOINT_DAYS`` days, so a register read costs at most that many day totals. Per-meter
parameters come from ``random.Random(f"{seed}:{serial}:energy")``; per-day and per-slot noise from a
64-bit mixing function keyed by a number drawn from it (a fresh ``Random`` per interval would cost
10 us each).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from enum import IntEnum
from functools import lru_cache
from typing import NamedTuple

from protocols.cosem_datetime import offset_timezone
from simulators.events import BLOCK_DAYS, FIELD_EPOCH, outages_in_block, relay_openings_in_block

__all__ = [
    "FIELD_EPOCH",
    "INTERVAL",
    "INTERVALS_PER_DAY",
    "INTERVAL_SECONDS",
    "LOCAL_DEVIATION",
    "LOCAL_TZ",
    "ProfileInterval",
    "Registers",
    "Seed",
    "Tariff",
    "Window",
    "completed_intervals",
    "dead_intervals",
    "interval_end",
    "interval_energy",
    "interval_index",
    "interval_start",
    "measured_interval",
    "profile_intervals",
    "profile_status",
    "registers_after",
    "registers_at",
    "tariff_of",
    "voltage_at",
]

Seed = int | str
#: A relay-open period (disconnected at, reconnected at; None while still open), aware datetimes.
Window = tuple[datetime, datetime | None]

INTERVAL_SECONDS = 900
INTERVAL = timedelta(seconds=INTERVAL_SECONDS)
INTERVALS_PER_DAY = 96
LOCAL_DEVIATION = -60
LOCAL_TZ = offset_timezone(LOCAL_DEVIATION)
#: Profile status bit 7: a power failure happened in the interval (the IDIS/DSMR AMR status word).
STATUS_POWER_DOWN = 0x80

_T1_FIRST = 24  # slot of 06:00Z = 07:00 local
_T1_END = 88  # slot of 22:00Z = 23:00 local
_CHECKPOINT_DAYS = 32
_BLOCK_INTERVALS = BLOCK_DAYS * INTERVALS_PER_DAY
_M64 = (1 << 64) - 1
_NEVER = 1 << 40  # an interval index far beyond any simulation


class Tariff(IntEnum):
    T1 = 1  # day, 07:00-23:00 local
    T2 = 2  # night


class Registers(NamedTuple):
    """Cumulative energy registers in Wh (scaler 0)."""

    a_plus: int
    a_plus_t1: int
    a_plus_t2: int
    a_minus: int


class ProfileInterval(NamedTuple):
    """One load-profile row: interval index, status, cumulative A+ and A- at the interval's end."""

    interval: int
    status: int
    a_plus: int
    a_minus: int


# --- time ------------------------------------------------------------------------------------------


def interval_index(when: datetime) -> int:
    """The index of the interval containing ``when`` (aware datetime)."""
    return (when - FIELD_EPOCH) // INTERVAL


def interval_start(index: int) -> datetime:
    return FIELD_EPOCH + index * INTERVAL


def interval_end(index: int) -> datetime:
    return FIELD_EPOCH + (index + 1) * INTERVAL


def completed_intervals(when: datetime) -> int:
    """How many intervals since the epoch ended at or before ``when`` (0 before the epoch)."""
    return max(0, (when - FIELD_EPOCH) // INTERVAL)


def tariff_of(index: int) -> Tariff:
    return Tariff.T1 if _T1_FIRST <= index % INTERVALS_PER_DAY < _T1_END else Tariff.T2


# --- noise -----------------------------------------------------------------------------------------


def _mix(key: int, a: int, b: int) -> int:
    # splitmix64 finaliser over the key and two coordinates: fast, well spread, stable everywhere.
    z = (key ^ (a * 0x9E3779B97F4A7C15) ^ (b * 0xD1B54A32D192ED03)) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _unit(key: int, a: int, b: int) -> float:
    return _mix(key, a, b) / 18446744073709551616.0


# --- shapes (UTC slots, built from local hours) --------------------------------------------------------

# Relative draw per local hour 0..23 of four household types (x100).
_HOURLY = (
    (35, 30, 30, 30, 30, 35, 60, 110, 110, 70, 65, 65, 70, 65, 60, 65, 80, 150, 190, 200, 180, 150, 100, 60),
    (40, 35, 35, 35, 35, 40, 70, 130, 100, 50, 45, 45, 50, 45, 45, 50, 90, 170, 210, 210, 170, 130, 90, 60),
    (30, 25, 25, 25, 25, 30, 45, 80, 100, 100, 95, 100, 110, 100, 95, 95, 100, 130, 160, 160, 140, 120, 80, 50),
    (50, 45, 45, 45, 45, 50, 80, 120, 90, 60, 60, 60, 60, 60, 60, 70, 110, 160, 180, 170, 150, 120, 90, 70),
)
_SUN = tuple(max(0.0, math.sin(math.pi * (h + 0.5 - 7) / 11)) for h in range(24))  # local 07:00-18:00


def _slot_hour(slot: int) -> int:
    return (slot // 4 + 1) % 24  # UTC slot -> local hour


def _cumulative(weights: Sequence[int]) -> tuple[int, ...]:
    out = [0]
    for w in weights:
        out.append(out[-1] + w)
    return tuple(out)


def _import_shape(kind: int, weekend: bool, solar: bool) -> tuple[int, ...]:
    hourly = list(_HOURLY[kind])
    if weekend:
        # Later mornings, busier days at home.
        hourly = [h * 2 // 3 if 6 <= i <= 7 else h * 5 // 4 if 9 <= i <= 16 else h for i, h in enumerate(hourly)]
    if solar:
        # Panels cover part of the daytime draw behind the meter.
        hourly = [max(5, int(h * (1 - 0.7 * _SUN[i]))) for i, h in enumerate(hourly)]
    return _cumulative([hourly[_slot_hour(s)] for s in range(INTERVALS_PER_DAY)])


_IMPORT_CW = {
    (kind, weekend, solar): _import_shape(kind, weekend, solar)
    for kind in range(len(_HOURLY))
    for weekend in (False, True)
    for solar in (False, True)
}
_EXPORT_CW = _cumulative([int(1000 * _SUN[_slot_hour(s)]) for s in range(INTERVALS_PER_DAY)])


# --- per meter -------------------------------------------------------------------------------------------


class _Meter(NamedTuple):
    key: int
    kind: int
    daily_import: int  # mean Wh per day
    solar_peak: int  # Wh per clear midsummer day, 0 without panels
    initial_t1: int
    initial_t2: int
    initial_export: int
    voltage: int  # decivolts, the meter's nominal level


@lru_cache(maxsize=16384)
def _meter(seed: Seed, serial: str) -> _Meter:
    rng = random.Random(f"{seed}:{serial}:energy")
    solar = rng.random() < 0.33
    initial = rng.randrange(0, 40_000_000)
    return _Meter(
        key=rng.getrandbits(64),
        kind=rng.randrange(len(_HOURLY)),
        daily_import=rng.randrange(4_000, 16_000),
        solar_peak=rng.randrange(8_000, 30_000) if solar else 0,
        initial_t1=initial * 7 // 10,
        initial_t2=initial - initial * 7 // 10,
        initial_export=rng.randrange(0, 10_000_000) if solar else 0,
        voltage=rng.randrange(2260, 2340),
    )


class _Day(NamedTuple):
    import_total: int
    export_total: int
    import_cw: tuple[int, ...]


@lru_cache(maxsize=65536)
def _day(seed: Seed, serial: str, day: int) -> _Day:
    m = _meter(seed, serial)
    if day < 0:
        return _Day(0, 0, _EXPORT_CW)
    weekend = day % 7 >= 5  # the epoch, 2024-01-01, was a Monday
    season = math.cos(2 * math.pi * (day % 365.25) / 365.25)  # +1 midwinter, -1 midsummer
    imported = int(m.daily_import * (1 + 0.25 * season) * (0.75 + 0.5 * _unit(m.key, day, 1)))
    if weekend:
        imported = imported * 11 // 10
    exported = 0
    if m.solar_peak:
        sun = 0.55 - 0.45 * math.cos(2 * math.pi * ((day + 10) % 365.25) / 365.25)
        exported = int(m.solar_peak * sun * (0.15 + 0.85 * _unit(m.key, day, 2)))
    return _Day(imported, exported, _IMPORT_CW[(m.kind, weekend, m.solar_peak > 0)])


def _cum(total: int, cw: tuple[int, ...], key: int, day: int, salt: int, slot: int) -> int:
    """Energy of the day's first ``slot`` intervals: the shape's share plus a jitter that telescopes.

    The jitter at a boundary is at most half the smaller neighbouring interval, so no interval
    can go negative, and it is 0 at both ends of the day, so the day's total is exact.
    """
    if slot <= 0 or total == 0:
        return 0
    if slot >= INTERVALS_PER_DAY:
        return total
    whole = cw[INTERVALS_PER_DAY]
    here = total * cw[slot] // whole
    smaller = min(here - total * cw[slot - 1] // whole, total * cw[slot + 1] // whole - here)
    return here + int(_unit(key, day * 128 + slot, salt) * (smaller // 2 + 1))


class _Natural(NamedTuple):
    a_plus: int
    t1: int
    a_minus: int


def _natural_in_day(seed: Seed, serial: str, day: int, slot: int) -> _Natural:
    """What the household drew and fed in during the day's first ``slot`` intervals."""
    m = _meter(seed, serial)
    d = _day(seed, serial, day)
    key = m.key
    a = _cum(d.import_total, d.import_cw, key, day, 3, slot)
    t1 = 0
    if slot > _T1_FIRST:
        start = _cum(d.import_total, d.import_cw, key, day, 3, _T1_FIRST)
        t1 = (a if slot < _T1_END else _cum(d.import_total, d.import_cw, key, day, 3, _T1_END)) - start
    e = _cum(d.export_total, _EXPORT_CW, key, day, 4, slot) if d.export_total else 0
    return _Natural(a, t1, e)


def interval_energy(seed: Seed, serial: str, index: int) -> tuple[int, int]:
    """Wh (A+, A-) the household drew and fed in during interval ``index`` (0 before the epoch)."""
    if index < 0:
        return 0, 0
    day, slot = divmod(index, INTERVALS_PER_DAY)
    m = _meter(seed, serial)
    d = _day(seed, serial, day)
    a = _cum(d.import_total, d.import_cw, m.key, day, 3, slot + 1) - _cum(
        d.import_total, d.import_cw, m.key, day, 3, slot
    )
    e = 0
    if d.export_total:
        e = _cum(d.export_total, _EXPORT_CW, m.key, day, 4, slot + 1) - _cum(
            d.export_total, _EXPORT_CW, m.key, day, 4, slot
        )
    return a, e


# --- power cuts and relay windows as interval ranges -------------------------------------------------------


def _covering(start: datetime, end: datetime | None) -> tuple[int, int]:
    """The interval indexes [lo, hi) that the period [start, end) overlaps, even partly."""
    lo = interval_index(start)
    if end is None:
        return lo, _NEVER
    hi = -((FIELD_EPOCH - end) // INTERVAL)  # ceiling
    return lo, max(hi, lo + 1) if end > start else lo


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


@lru_cache(maxsize=32768)
def _outage_ranges(seed: Seed, serial: str, block: int) -> tuple[tuple[int, int], ...]:
    return tuple(_merge([_covering(down, up) for down, up in outages_in_block(seed, serial, block)]))


@lru_cache(maxsize=32768)
def _silent_ranges(seed: Seed, serial: str, block: int) -> tuple[tuple[int, int], ...]:
    """Interval ranges of a block recording no energy: power cuts and the seeded relay openings."""
    openings = [_covering(opened, closed) for opened, closed in relay_openings_in_block(seed, serial, block)]
    return tuple(_merge(sorted([*_outage_ranges(seed, serial, block), *openings])))


def _outages_between(seed: Seed, serial: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Merged power-cut interval ranges clipped to [lo, hi)."""
    return _ranges_between(_outage_ranges, seed, serial, lo, hi)


def _silent_between(seed: Seed, serial: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Merged ranges clipped to [lo, hi) where the seeded history records no energy."""
    return _ranges_between(_silent_ranges, seed, serial, lo, hi)


def _ranges_between(
    ranges: Callable[[Seed, str, int], tuple[tuple[int, int], ...]], seed: Seed, serial: str, lo: int, hi: int
) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    if hi <= lo:
        return out
    for block in range(max(0, lo // _BLOCK_INTERVALS), max(0, (hi - 1) // _BLOCK_INTERVALS) + 1):
        for a, b in ranges(seed, serial, block):
            a, b = max(a, lo), min(b, hi)
            if a < b:
                out.append((a, b))
    return _merge(out)


def _relay_ranges(windows: Sequence[Window]) -> list[tuple[int, int]]:
    return _merge([_covering(start, end) for start, end in windows])


def dead_intervals(seed: Seed, serial: str, lo: int, hi: int, windows: Sequence[Window] = ()) -> list[tuple[int, int]]:
    """Merged ranges of intervals in [lo, hi) that record 0 (a power cut or an open relay overlaps)."""
    relay = [(max(a, lo), min(b, hi)) for a, b in _relay_ranges(windows)]
    return _merge(sorted(_silent_between(seed, serial, lo, hi) + [r for r in relay if r[0] < r[1]]))


def measured_interval(seed: Seed, serial: str, index: int, windows: Sequence[Window] = ()) -> tuple[int, int]:
    """Wh (A+, A-) the meter records for interval ``index``: 0 when a power cut or open relay overlaps it."""
    if index < 0 or dead_intervals(seed, serial, index, index + 1, windows):
        return 0, 0
    return interval_energy(seed, serial, index)


def profile_status(seed: Seed, serial: str, index: int) -> int:
    """The profile status word of interval ``index``: bit 7 when a power cut overlaps it."""
    return STATUS_POWER_DOWN if _outages_between(seed, serial, index, index + 1) else 0


# --- cumulative sums --------------------------------------------------------------------------------------------


def _sub(a: _Natural, b: _Natural) -> _Natural:
    return _Natural(a.a_plus - b.a_plus, a.t1 - b.t1, a.a_minus - b.a_minus)


def _add(a: _Natural, b: _Natural) -> _Natural:
    return _Natural(a.a_plus + b.a_plus, a.t1 + b.t1, a.a_minus + b.a_minus)


_ZERO = _Natural(0, 0, 0)


def _measured_in_day(seed: Seed, serial: str, day: int, slot: int) -> _Natural:
    """Energy recorded in the day's first ``slot`` intervals: power cuts and seeded relay openings
    removed (the relay operations of clients, which are not seeded, are applied by the callers)."""
    if day < 0 or slot <= 0:
        return _ZERO
    value = _natural_in_day(seed, serial, day, slot)
    first = day * INTERVALS_PER_DAY
    for lo, hi in _silent_between(seed, serial, first, first + slot):
        value = _sub(
            value,
            _sub(_natural_in_day(seed, serial, day, hi - first), _natural_in_day(seed, serial, day, lo - first)),
        )
    return value


@lru_cache(maxsize=262144)
def _checkpoint(seed: Seed, serial: str, k: int) -> _Natural:
    """Energy recorded (power cuts removed) before day ``k x _CHECKPOINT_DAYS``."""
    if k <= 0:
        return _ZERO
    total = _checkpoint(seed, serial, k - 1)
    for day in range((k - 1) * _CHECKPOINT_DAYS, k * _CHECKPOINT_DAYS):
        total = _add(total, _measured_in_day(seed, serial, day, INTERVALS_PER_DAY))
    return total


def _before(seed: Seed, serial: str, count: int) -> _Natural:
    """Energy recorded (power cuts removed, relay not) in intervals 0 .. count-1."""
    if count <= 0:
        return _ZERO
    day, slot = divmod(count, INTERVALS_PER_DAY)
    k = day // _CHECKPOINT_DAYS
    if k > 200:
        # Fill the cache from the bottom so that a far date never recurses deeply.
        for step in range(0, k, 200):
            _checkpoint(seed, serial, step)
    total = _checkpoint(seed, serial, k)
    for d in range(k * _CHECKPOINT_DAYS, day):
        total = _add(total, _measured_in_day(seed, serial, d, INTERVALS_PER_DAY))
    return _add(total, _measured_in_day(seed, serial, day, slot))


def registers_after(seed: Seed, serial: str, count: int, windows: Sequence[Window] = ()) -> Registers:
    """The registers once intervals 0 .. ``count``-1 have ended (``count`` <= 0: the initial reading)."""
    m = _meter(seed, serial)
    value = _before(seed, serial, count)
    for lo, hi in _relay_ranges(windows):
        lo, hi = max(lo, 0), min(hi, count)
        if lo < hi:
            # What the open relay cost, power cuts inside the window already left out.
            value = _sub(value, _sub(_before(seed, serial, hi), _before(seed, serial, lo)))
    t1 = m.initial_t1 + value.t1
    t2 = m.initial_t2 + value.a_plus - value.t1
    return Registers(t1 + t2, t1, t2, m.initial_export + value.a_minus)


def registers_at(seed: Seed, serial: str, when: datetime, windows: Sequence[Window] = ()) -> Registers:
    """The registers at ``when``: every interval that ended at or before it (see module docstring)."""
    return registers_after(seed, serial, completed_intervals(when), windows)


def profile_intervals(
    seed: Seed, serial: str, first: int, last: int, windows: Sequence[Window] = ()
) -> Iterator[ProfileInterval]:
    """Load-profile rows for intervals ``first`` .. ``last`` inclusive (cumulative at each end)."""
    first = max(first, 0)
    if last < first:
        return
    start = registers_after(seed, serial, first, windows)
    a_plus, a_minus = start.a_plus, start.a_minus
    dead = dead_intervals(seed, serial, first, last + 1, windows)
    outage = _outages_between(seed, serial, first, last + 1)
    d = o = 0
    for index in range(first, last + 1):
        while d < len(dead) and dead[d][1] <= index:
            d += 1
        while o < len(outage) and outage[o][1] <= index:
            o += 1
        status = STATUS_POWER_DOWN if o < len(outage) and outage[o][0] <= index else 0
        if not (d < len(dead) and dead[d][0] <= index):
            imported, exported = interval_energy(seed, serial, index)
            a_plus += imported
            a_minus += exported
        yield ProfileInterval(index, status, a_plus, a_minus)


def voltage_at(seed: Seed, serial: str, when: datetime) -> int:
    """Voltage L1 in decivolts at ``when``: 0 during a power cut."""
    index = interval_index(when)
    if index >= 0 and _outages_between(seed, serial, index, index + 1):
        for down, up in outages_in_block(seed, serial, index // _BLOCK_INTERVALS):
            if down <= when < up:
                return 0
    m = _meter(seed, serial)
    hour = _slot_hour(index % INTERVALS_PER_DAY)
    dip = 40 if 17 <= hour <= 21 else 0  # the evening peak pulls the LV feeder down
    minute = (when - FIELD_EPOCH) // timedelta(minutes=1)
    return m.voltage - dip + int(_unit(m.key, minute, 5) * 60) - 30
