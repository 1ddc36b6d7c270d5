"""What N2PLoad asks one meter for: the range after its watermark, its gaps, the profile's kept shape.

``plan_for`` takes the watermark of one meter and profile (``hes.db.collection.load_watermarks``
reads all of a meter's in one statement), reads the gaps still open when there are some, and decides
the range to ask: from the watermark (or, for a first collection, from the meter's registration,
at least ``DEFAULT_LOOKBACK`` back) to now, at most ``MAX_SPAN``; nothing when less than a capture
period has passed since the last row (an hourly pass reads daily values once a day).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Connection

from hes.checks import Refused
from hes.db.collection import GapRow, Watermark, load_gaps
from hes.devicetypes import DeviceType
from hes.reads import counter_budget
from protocols.obis import ObisCode
from scheduler.contract import WorkItem

__all__ = ["COMMANDS", "DEFAULT_LOOKBACK", "DEFAULT_PERIOD", "MAX_SPAN", "Kind", "Plan", "budget", "kind_of",
           "plan_for"]

#: A meter's first collection (no watermark, no start in the work item) starts at its registration,
#: or this long before now when that is earlier.
DEFAULT_LOOKBACK = timedelta(days=1)
#: The most one read asks for (a backlog longer than this is collected over several passes).
MAX_SPAN = timedelta(days=31)
DEFAULT_PERIOD = 900


#: The commands N2PLoad collects.
COMMANDS = ("profile", "daily")


@dataclass(frozen=True, slots=True)
class Kind:
    """What one N2PLoad command reads on a meter of a given device type: the profile generic, and its status word."""

    obis: ObisCode
    command: Literal["profile", "daily"]
    name: str
    status: ObisCode | None = None

    @property
    def profile(self) -> bool:
        """The load profile (interval values), not the daily values (register readings)."""
        return self.command == "profile"


def kind_of(device_type: DeviceType, command: str) -> Kind:
    """What ``command`` (profile or daily) reads on a meter of ``device_type``; ``Refused`` if it has no such one."""
    if command == "profile":
        spec = device_type.load_profile
        return Kind(spec.obis, "profile", "load profile", spec.status)
    daily = device_type.daily
    if daily is None:
        raise Refused(f"device type {device_type.name} has no daily values: nothing to collect")
    return Kind(daily.obis, "daily", "daily values", daily.status)


@dataclass(slots=True)
class Plan:
    """One meter and profile: what to ask for, and what is known from earlier passes."""

    meter_id: int
    serial: str
    dc_id: str | None
    start: datetime
    end: datetime
    #: No watermark yet: where collection starts is being decided by this read.
    first: bool
    shape_text: str | None
    open_gaps: list[GapRow]
    #: First missing interval of every gap declared lost (its intervals are not asked again).
    lost_gaps: set[datetime]

    @property
    def due(self) -> bool:
        return self.end > self.start


def plan_for(connection: Connection, meter_id: int, serial: str, dc_id: str | None, registered: datetime | None,
             item: WorkItem, kind: Kind, mark: Watermark, now: datetime) -> Plan:
    """What to ask meter ``meter_id`` for, for ``kind`` whose watermark is ``mark`` (see the module docstring)."""
    obis = str(kind.obis)
    open_gaps: list[GapRow] = []
    lost_gaps: set[datetime] = set()
    if mark.gaps:
        for gap in load_gaps(connection, meter_id, obis):
            if gap.state == "open":
                open_gaps.append(gap)
            else:
                lost_gaps.add(gap.first)
    end = (item.end or now).astimezone(UTC)
    if mark.collected_until is not None:
        start, first = mark.collected_until, False
    else:
        # Everything since the meter was registered, and at least the last DEFAULT_LOOKBACK: a first
        # collection that fails (or is never tried, its DC being down) does not let the start slide.
        start = (item.start or min(registered or now, end - DEFAULT_LOOKBACK)).astimezone(UTC)
        first = True
        if kind.profile and item.start is None:
            # Start on an interval boundary, so the first pass sees whole intervals.
            start -= timedelta(seconds=int(start.timestamp()) % DEFAULT_PERIOD, microseconds=start.microsecond)
    end = min(end, start + MAX_SPAN)
    if not first and mark.period and end - start < timedelta(seconds=mark.period):
        # Less than one capture period since the last row: nothing can be new, nothing is asked.
        end = start
    return Plan(meter_id, serial, dc_id, start, end, first, mark.shape, open_gaps, lost_gaps)


def budget(plans: Sequence[Plan], kinds: Sequence[Kind]) -> int:
    """Invocation counters for one session reading every due kind (each kind's own budget, summed)."""
    return sum(counter_budget(kind.command, plan.start, plan.end) for plan, kind in zip(plans, kinds, strict=True)
               if plan.due)
