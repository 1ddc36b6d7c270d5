"""Executors of plan commands: events, registers and the clock check read through ``hes.reads.read_meter``.

Each read is a full order of the head-end (checks, order, audit, idempotent storage), so a plan's
reads are traced like an operator's. ``profile`` and ``daily`` are N2PLoad's own executors
(``scheduler.n2pload``: watermarks, selective access from the watermark, gaps); ``default_executors``
wires them all. A FAIL whose reason says the concentrator itself was unreachable (``hes.reads`` says
"concentrator X is unreachable" both when it failed to connect and when it did not contact a DC
known to be down) is flagged ``concentrator_unreachable`` so the engine fails the DC's other items.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from hes.reads import ReadResult, read_meter
from scheduler.contract import ExecutionContext, Executor, ItemOutcome, WorkItem

__all__ = ["DEFAULT_SPAN", "ReadExecutor", "default_executors", "outcome_of"]

logger = logging.getLogger(__name__)

#: The range of a ranged read when the plan gives none: the last day up to now.
DEFAULT_SPAN = timedelta(days=1)


def outcome_of(result: ReadResult, item: WorkItem) -> ItemOutcome:
    """A read's result as an item outcome."""
    dc = item.concentrator_id
    unreachable = (result.state == "FAIL" and dc is not None and result.reason is not None
                   and result.reason.startswith(f"concentrator {dc} is unreachable"))
    return ItemOutcome(result.state, result.observations, result.reason, result.retryable, result.stored,
                       unreachable)


class ReadExecutor:
    """Runs a command as an on-demand read of the meter (``hes.reads.read_meter``), end to end through its DC."""

    def __init__(self, what: Literal["events", "registers", "clock", "profile", "daily"], *,
                 clock_tolerance: timedelta | None = timedelta(seconds=60)) -> None:
        self.what = what
        self.clock_tolerance = clock_tolerance

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        start = end = None
        if self.what not in ("registers", "clock"):
            end = item.end or context.now()
            start = item.start or end - DEFAULT_SPAN
        result = await read_meter(
            context.registry, item.serial, self.what, start=start, end=end, requested_by=context.requested_by,
            clock=context.now, clock_tolerance=self.clock_tolerance, timeouts=context.timeouts,
            limits=context.limits, mode="gateway",
            # A retry is meant to try again: a DC that failed minutes ago is contacted anyway.
            recheck_dc=item.attempt > 1, connect=context.connect,
        )
        return outcome_of(result, item)


def default_executors() -> dict[str, Executor]:
    """The executor of every command: N2PLoad's for profile and daily, reads for the others."""
    from scheduler.n2pload import collect_daily, collect_profile

    return {
        "profile": collect_profile,
        "daily": collect_daily,
        "events": ReadExecutor("events"),
        "registers": ReadExecutor("registers"),
        "clock": ReadExecutor("clock"),
    }
