"""Field time for the tests: the one pinned field epoch (``HES_TEST_EPOCH``), instants derived from it, expectations.

Every test that pins the simulated field's time takes it from ``EPOCH`` (or an offset of it), so
``HES_TEST_EPOCH=2028-02-29T22:57:00Z`` moves every pinned instant of the suite at once; unset, the
epoch is ``simulators.fleet.DEFAULT_EPOCH`` (2024-03-01T00:00Z), the instant the assertions were
first written for. ``EPOCH`` may fall anywhere in an interval or a day: what a test needs aligned
it aligns itself (``interval_floor``, ``meter_midnight``, ``utc_midnight``).

Tests where the head-end reads the wall clock (the CLI, ``hes run``) stand the field at "now"
instead, and derive what they expect from the simulator with the helpers below (``profile_state``):
the simulator's seeded power cuts fall on some days and not on others.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from simulators.energy import FIELD_EPOCH, INTERVAL, LOCAL_TZ, interval_index, profile_status
from simulators.fleet import DEFAULT_EPOCH

__all__ = [
    "DEFAULT_EPOCH",
    "EPOCH",
    "EPOCH_ENV",
    "FieldTimeError",
    "format_epoch",
    "interval_floor",
    "meter_midnight",
    "parse_epoch",
    "power_cut_intervals",
    "profile_state",
    "quarter_hour_ahead",
    "utc_midnight",
]

EPOCH_ENV = "HES_TEST_EPOCH"
#: The tests read up to this much of the meters' history before the epoch (and DCs hold 40 days).
_HISTORY = timedelta(days=60)


class FieldTimeError(ValueError):
    """A pinned epoch that cannot be used (one line says why)."""


def parse_epoch(text: str) -> datetime:
    """An ISO 8601 instant with a zone (``2027-03-28T00:57:00Z``, ``...+01:00``) as an aware UTC datetime."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FieldTimeError(f"{text!r} is not an ISO 8601 instant (e.g. 2027-03-28T00:57:00Z)") from None
    if when.tzinfo is None:
        raise FieldTimeError(f"{text!r} has no zone: add Z or an offset such as +01:00")
    when = when.astimezone(UTC)
    if when < FIELD_EPOCH + _HISTORY:
        raise FieldTimeError(f"{text!r} is before {format_epoch(FIELD_EPOCH + _HISTORY)}: the tests read up to "
                             f"{_HISTORY.days} days of the simulated meters' history, which starts "
                             f"{format_epoch(FIELD_EPOCH)}")
    return when


def format_epoch(when: datetime) -> str:
    """``when`` as ``parse_epoch`` takes it: UTC, seconds, ``Z`` (microseconds only when there are some)."""
    text = when.astimezone(UTC).isoformat(timespec="microseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _from_environment() -> datetime:
    text = os.environ.get(EPOCH_ENV, "").strip()
    if not text:
        return DEFAULT_EPOCH
    try:
        return parse_epoch(text)
    except FieldTimeError as exc:
        raise FieldTimeError(f"{EPOCH_ENV}: {exc}") from None


#: The pinned field epoch of the whole suite (aware, UTC).
EPOCH: datetime = _from_environment()


def interval_floor(when: datetime) -> datetime:
    """The start of the 15-minute interval holding ``when``: the last profile row a meter has at ``when``."""
    return FIELD_EPOCH + interval_index(when) * INTERVAL


def meter_midnight(when: datetime) -> datetime:
    """The simulated meters' local midnight (UTC+1 all year) at or before ``when``, in UTC: their daily row."""
    local = when.astimezone(LOCAL_TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def utc_midnight(when: datetime) -> datetime:
    """The UTC midnight at or before ``when``."""
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def power_cut_intervals(seed: int | str, serial: str, first: int, last: int) -> list[int]:
    """The intervals ``first`` .. ``last`` (inclusive) whose profile status says a power cut (bit 7)."""
    return [index for index in range(max(first, 0), last + 1) if profile_status(seed, serial, index)]


def profile_state(seed: int | str, serial: str, first: int, last: int) -> Literal["EXE", "WARN"]:
    """What a head-end that reads intervals ``first`` .. ``last`` of the load profile, all of them, says.

    WARN when a returned row carries a status flag (the simulator sets bit 7 in an interval a power
    cut overlaps), EXE when none does: the state depends on the day, so tests ask the simulator.
    """
    return "WARN" if power_cut_intervals(seed, serial, first, last) else "EXE"


def quarter_hour_ahead(margin: float = 45.0) -> datetime:
    """Now (whole seconds), at least ``margin`` seconds before the next 15-minute boundary (waits past it if closer).

    For a field frozen at now while the head-end reads the wall clock: a first N2PLoad pass looks
    back a day from the moment it runs, in whole intervals, and a field frozen in one interval has
    nothing newer for a pass run in the next, so a command crossing a boundary would collect
    differently from what the test derives from the field's instant. What the tests expect is derived
    from the instant returned (``profile_state``); only the boundary itself is waited out.
    """
    left = INTERVAL.total_seconds() - time.time() % INTERVAL.total_seconds()
    if left < margin:
        time.sleep(left + 0.5)
    return datetime.now(UTC).replace(microsecond=0)
