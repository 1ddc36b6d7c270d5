"""A data concentrator's clock as the head-end judges it: deviation, tolerance, when to check again.

The DC stamps what it collects (meter table, its event log, the capture times of concentrated
data it fills) with its own clock, and drives its meters' clocks on many networks: a DC clock that
drifts is an operator's concern. The head-end reads the DC's clock when it contacts the DC and the
last check is older than ``every`` (``ClockState.due``); a deviation beyond the tolerance is an
observation (WARN) with the figure; ``hes concentrator clock sync`` sets the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_CHECK_EVERY", "DEFAULT_POLICY", "DEFAULT_TOLERANCE", "ClockCheck", "ClockError", "ClockPolicy",
           "ClockState"]

#: Seconds a DC's clock may be off before the head-end says so (IDIS asks +/- 10 s of meters; DCs
#: that synchronise their meters need the same order).
DEFAULT_TOLERANCE = 10.0
#: The DC's clock is read again at a contact when the last reading is older than this.
DEFAULT_CHECK_EVERY = timedelta(hours=1)


class ClockError(ValueError):
    """A tolerance below zero, or a time without a zone."""


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """How closely the head-end watches DC clocks: the tolerance (seconds) and how often a contact reads
    the clock (``every``; zero: at every contact; None: never at a contact, only when the DC's meter
    table is synchronised or its clock set)."""

    tolerance: float = DEFAULT_TOLERANCE
    every: timedelta | None = DEFAULT_CHECK_EVERY

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < float("inf"):
            raise ClockError(f"clock tolerance {self.tolerance} s must be 0 or more")
        if self.every is not None and self.every < timedelta(0):
            raise ClockError(f"clock check interval {self.every.total_seconds():g} s cannot be negative")


DEFAULT_POLICY = ClockPolicy()


def _aware(moment: datetime, what: str) -> datetime:
    if moment.utcoffset() is None:
        raise ClockError(f"{what} {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ClockCheck:
    """One reading of the DC's clock against the head-end's: deviation in seconds (DC minus head-end)."""

    concentrator_id: str
    concentrator_time: datetime
    head_end_time: datetime
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ClockError(f"clock tolerance {self.tolerance} s cannot be negative")
        object.__setattr__(self, "concentrator_time", _aware(self.concentrator_time, "the DC's time"))
        object.__setattr__(self, "head_end_time", _aware(self.head_end_time, "the head-end's time"))

    @property
    def deviation(self) -> float:
        return round((self.concentrator_time - self.head_end_time).total_seconds(), 3)

    @property
    def within(self) -> bool:
        return abs(self.deviation) <= self.tolerance

    def observation(self) -> str | None:
        """The WARN's text when the clock is beyond the tolerance, else None."""
        if self.within:
            return None
        return (f"concentrator {self.concentrator_id} clock off by {self.deviation:+.0f} s "
                f"(tolerance {self.tolerance:g} s): hes concentrator clock sync {self.concentrator_id}")


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the head-end last learned of a DC's clock (None: never read)."""

    checked_at: datetime | None = None
    deviation: float | None = None

    def due(self, now: datetime, every: timedelta | None = DEFAULT_CHECK_EVERY) -> bool:
        """Whether a contact at ``now`` should read the DC's clock (``every`` None: never)."""
        if every is None:
            return False
        return self.checked_at is None or now - self.checked_at >= every

    def after(self, check: ClockCheck) -> ClockState:
        return ClockState(check.head_end_time, check.deviation)
