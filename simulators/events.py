"""Seeded meter events (power down/up, cover opened/closed, clock adjusted) with their IDIS event codes.

Event codes follow the IDIS companion specification's event tables (standard event log
0.0.99.98.0.255 with codes in 0.0.96.11.0.255, fraud detection log .1, disconnector control
log .2). The IDIS tables themselves were not at hand; the values were checked against a meter
firmware that implements them (github.com/justyourself/FTU_LineLoss, ``User/Event.h``):
1 power down, 2 power up, 4 clock adjusted (old date/time), 5 clock adjusted (new date/time),
40/41 terminal cover removed/closed, 44/45 meter cover removed/closed, 49 decryption or
authentication failure, 50 replay attack, 60/61 manual
disconnection/connection, 62/63 remote disconnection/connection, 64/65 local
disconnection/reconnection.

History is generated per block of ``BLOCK_DAYS`` days from ``random.Random(f"{seed}:{serial}:
events:{block}")``, so any window of time is produced without generating what lies before it.
Nothing happens before the field epoch (the meter was installed then). Relay operations are not
seeded: they are what the meter did when a client invoked disconnect control, kept by the meter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import lru_cache
from typing import NamedTuple

from protocols.obis import ObisCode

__all__ = [
    "BLOCK_DAYS",
    "FIELD_EPOCH",
    "EventCode",
    "EventLog",
    "MeterEvent",
    "events_between",
    "outages",
    "outages_in_block",
    "relay_openings",
    "relay_openings_in_block",
]

#: The simulated field's epoch (2024-01-01T00:00Z): meters were installed then, with their
#: initial register readings; interval index 0 starts here (``simulators.energy`` re-exports it).
FIELD_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
BLOCK_DAYS = 30
_BLOCK = timedelta(days=BLOCK_DAYS)


class EventLog(IntEnum):
    """The three IDIS event logs; the value is the E field of 0.0.99.98.E.255."""

    STANDARD = 0
    FRAUD = 1
    DISCONNECTOR = 2

    @property
    def obis(self) -> ObisCode:
        """The event log profile (IC 7)."""
        return ObisCode(0, 0, 99, 98, int(self), 255)

    @property
    def code_obis(self) -> ObisCode:
        """The event code object (IC 1) the log captures."""
        return ObisCode(0, 0, 96, 11, int(self), 255)


class EventCode(IntEnum):
    """IDIS event codes used by the simulated meter (see the module docstring for the source)."""

    POWER_DOWN = 1
    POWER_UP = 2
    CLOCK_ADJUSTED_OLD_TIME = 4
    CLOCK_ADJUSTED_NEW_TIME = 5
    TERMINAL_COVER_REMOVED = 40
    TERMINAL_COVER_CLOSED = 41
    METER_COVER_REMOVED = 44
    METER_COVER_CLOSED = 45
    DECRYPTION_OR_AUTHENTICATION_FAILURE = 49
    REPLAY_ATTACK = 50
    MANUAL_DISCONNECTION = 60
    MANUAL_CONNECTION = 61
    REMOTE_DISCONNECTION = 62
    REMOTE_CONNECTION = 63
    LOCAL_DISCONNECTION = 64
    LOCAL_RECONNECTION = 65

    @property
    def log(self) -> EventLog:
        if self < 40:
            return EventLog.STANDARD
        if self < 60:
            return EventLog.FRAUD
        return EventLog.DISCONNECTOR


class MeterEvent(NamedTuple):
    """One entry of an event log: when (aware UTC, field time) and the code."""

    when: datetime
    code: EventCode

    @property
    def log(self) -> EventLog:
        return self.code.log


class _Block(NamedTuple):
    events: tuple[MeterEvent, ...]  # sorted by time
    outages: tuple[tuple[datetime, datetime], ...]  # power down .. power up, sorted, disjoint
    relay_openings: tuple[tuple[datetime, datetime], ...] = ()  # manual disconnection .. connection


@lru_cache(maxsize=32768)
def _block(seed: int | str, serial: str, block: int) -> _Block:
    if block < 0:
        return _Block((), ())
    rng = random.Random(f"{seed}:{serial}:events:{block}")
    start = FIELD_EPOCH + block * _BLOCK
    span = _BLOCK.total_seconds()
    events: list[MeterEvent] = []
    down: list[tuple[datetime, datetime]] = []
    # Power cuts: most last minutes, some hours (LV faults, works); 0..3 per month.
    for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 2, 3))):
        at = start + timedelta(seconds=rng.randrange(int(span) - 4 * 3600))
        length = rng.randrange(60, 600) if rng.random() < 0.7 else rng.randrange(900, 3 * 3600)
        down.append((at, at + timedelta(seconds=length)))
    down.sort()
    merged: list[tuple[datetime, datetime]] = []
    for begin, end in down:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    for begin, end in merged:
        events.append(MeterEvent(begin, EventCode.POWER_DOWN))
        events.append(MeterEvent(end, EventCode.POWER_UP))
    # Tampering is rare: a terminal cover opened a few times a year, the meter cover rarer still.
    for chance, opened, closed in (
        (0.12, EventCode.TERMINAL_COVER_REMOVED, EventCode.TERMINAL_COVER_CLOSED),
        (0.04, EventCode.METER_COVER_REMOVED, EventCode.METER_COVER_CLOSED),
    ):
        if rng.random() < chance:
            at = start + timedelta(seconds=rng.randrange(int(span) - 3600))
            events.append(MeterEvent(at, opened))
            events.append(MeterEvent(at + timedelta(seconds=rng.randrange(30, 1800)), closed))
    # A clock synchronisation by the head-end: old time logged, then the new time.
    if rng.random() < 0.5:
        at = start + timedelta(seconds=rng.randrange(int(span) - 3600))
        shift = rng.choice((-1, 1)) * rng.randrange(2, 40)
        events.append(MeterEvent(at, EventCode.CLOCK_ADJUSTED_OLD_TIME))
        events.append(MeterEvent(at + timedelta(seconds=shift), EventCode.CLOCK_ADJUSTED_NEW_TIME))
    # Drawn last so that every earlier draw stays what it was: now and then the customer opens the
    # relay with the meter's button (leaving home, works on the installation) and closes it later.
    # The meter records no energy meanwhile; the supply side stays live, so voltage is still measured.
    openings: list[tuple[datetime, datetime]] = []
    if rng.random() < 0.06:
        at = start + timedelta(seconds=rng.randrange(int(span) - 7 * 3600))
        until = at + timedelta(seconds=rng.randrange(600, 6 * 3600))
        openings.append((at, until))
        events.append(MeterEvent(at, EventCode.MANUAL_DISCONNECTION))
        events.append(MeterEvent(until, EventCode.MANUAL_CONNECTION))
    events.sort()
    return _Block(tuple(events), tuple(merged), tuple(openings))


def _blocks(start: datetime, end: datetime) -> range:
    first = max(0, (start - FIELD_EPOCH) // _BLOCK)
    last = (end - FIELD_EPOCH) // _BLOCK
    return range(first, last + 1)


def events_between(seed: int | str, serial: str, log: EventLog, start: datetime, end: datetime) -> list[MeterEvent]:
    """The seeded events of ``log`` with ``start <= when <= end``, in time order."""
    out: list[MeterEvent] = []
    for block in _blocks(start, end):
        out.extend(e for e in _block(seed, serial, block).events if e.log is log and start <= e.when <= end)
    return out


def outages_in_block(seed: int | str, serial: str, block: int) -> tuple[tuple[datetime, datetime], ...]:
    """The power cuts (down, up) of one block, sorted and disjoint; each lies within its block."""
    return _block(seed, serial, block).outages


def relay_openings_in_block(seed: int | str, serial: str, block: int) -> tuple[tuple[datetime, datetime], ...]:
    """The seeded manual relay openings (disconnection, connection) of one block; each lies within it."""
    return _block(seed, serial, block).relay_openings


def relay_openings(seed: int | str, serial: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The seeded manual relay openings that overlap [start, end)."""
    return [
        (opened, closed)
        for block in _blocks(start, end)
        for opened, closed in _block(seed, serial, block).relay_openings
        if opened < end and closed > start
    ]


def outages(seed: int | str, serial: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The power cuts that overlap [start, end)."""
    return [
        (down, up)
        for block in _blocks(start, end)
        for down, up in _block(seed, serial, block).outages
        if down < end and up > start
    ]
