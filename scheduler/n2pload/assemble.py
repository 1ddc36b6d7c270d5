"""What one N2PLoad read means: the rows to store, the gaps in them, where the watermark goes, what to say.

Pure (no database): ``assemble`` takes a meter's plan and what the one profile reader returned.
The watermark moves over the contiguous prefix of what came back: a gap inside the returned data
stops it before the gap, the gap is recorded and the first interval after it carries
``QUALITY_AFTER_GAP``; the next pass asks from the watermark again, so the gap is asked for again.
A gap still missing after ``GAP_GIVE_UP_ATTEMPTS`` passes is declared lost and the watermark moves
over it (WARN says so: the data may still be read locally).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hes.db.readings import IntervalRow, RegisterRow
from hes.profiles import ProfileRead, dated_rows, interval_rows, register_rows
from scheduler.n2pload.plan import DEFAULT_PERIOD, Kind, Plan

__all__ = ["GAP_GIVE_UP_ATTEMPTS", "Assembled", "Gap", "assemble"]

#: Passes that ask for a gap before it is declared lost and the watermark moves over it.
GAP_GIVE_UP_ATTEMPTS = 6


@dataclass(slots=True)
class Gap:
    first: datetime
    last: datetime
    missing: int


@dataclass(slots=True)
class Assembled:
    """One kind's answer made into rows, gaps, a watermark and observations (no database yet)."""

    plan: Plan
    kind: Kind
    read: ProfileRead
    intervals: list[IntervalRow]
    registers: list[RegisterRow]
    observations: list[str]
    found: list[Gap]
    given_up: list[Gap]
    times: list[datetime]
    period: int
    mark: datetime
    channels: list[tuple[str, int]]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _periods(span: timedelta, seconds: int) -> int:
    """How many capture periods ``span`` is, to the nearest whole one."""
    return (int(span.total_seconds()) + seconds // 2) // seconds


def assemble(plan: Plan, kind: Kind, read: ProfileRead) -> Assembled:
    """The rows to store, the gaps, where the watermark goes, and what to say (``DecodeError``: a corrupted answer)."""
    shape = read.shape
    period = shape.period or (DEFAULT_PERIOD if kind.profile else 86400)
    dated = dated_rows(read.rows, plan.start, plan.end)
    times = dated.times

    # The contiguous prefix: the watermark stops before the first gap that is not known lost.
    step = timedelta(seconds=period)
    mark = plan.start
    found: list[Gap] = []
    after_gap: set[datetime] = set()
    given_up: list[Gap] = []
    if times and (plan.first or times[0] - plan.start <= step) and all(
            b - a == step for a, b in itertools.pairwise(times)):
        mark = times[-1]  # the usual case: every interval there, one after the other
    else:
        open_by_first = {g.first: g for g in plan.open_gaps}
        blocked = False
        previous = plan.start
        for at in times:
            # Rounded, not truncated: local midnights are 23 or 25 hours apart when daylight saving changes.
            missing = _periods(at - previous, period) - 1
            if missing > 0 and not (plan.first and previous == plan.start):
                gap = Gap(at - missing * step, at - step, missing)
                found.append(gap)
                after_gap.add(at)
                known = open_by_first.get(gap.first)
                lost = gap.first in plan.lost_gaps or (known is not None
                                                       and known.attempts + 1 >= GAP_GIVE_UP_ATTEMPTS)
                if lost:
                    given_up.append(gap)
                else:
                    blocked = True
            if not blocked:
                mark = at
            previous = at

    observations: list[str] = []
    intervals: list[IntervalRow] = []
    registers: list[RegisterRow] = []
    if kind.profile:
        intervals, flagged, power = interval_rows(plan.meter_id, shape, dated, after_gap=after_gap)
    else:
        registers, flagged, power = register_rows(plan.meter_id, shape, dated, what=kind.name), 0, 0

    where = f"concentrator {plan.dc_id}" if plan.dc_id is not None else f"meter {plan.serial}"
    if not times and plan.end - plan.start >= timedelta(seconds=period):
        if plan.dc_id is not None:
            observations.append(f"concentrator {plan.dc_id} returned nothing newer than {_iso(plan.start)}: "
                                f"it has not reached meter {plan.serial} since (asked again next pass)")
        else:
            observations.append(f"meter {plan.serial} returned nothing newer than {_iso(plan.start)}")
    for gap in found:
        fate = "declared lost" if gap in given_up else "asked again next pass"
        observations.append(f"gap: {gap.missing} {kind.name} missing from {_iso(gap.first)} to "
                            f"{_iso(gap.last)} in what {where} returned ({fate})")
    if dated.undated:
        observations.append(f"partial data: {dated.undated} {kind.name} rows without a capture time skipped")
    if flagged:
        detail = f", {power} with a power failure" if power else ""
        observations.append(f"quality: {flagged} intervals with status flags{detail}")
    channels = [(str(c.capture.logical_name), c.capture.attribute_index) for _, c in shape.channels]
    return Assembled(plan, kind, read, intervals, registers, observations, found, given_up, times, period, mark,
                     channels)
