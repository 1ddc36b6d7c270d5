"""Executors of plan commands: reads through ``hes.reads.read_meter``, relay orders through ``hes.commands``.

Each read is a full order of the head-end (checks, order, audit, idempotent storage), so a plan's
reads are traced like an operator's. ``profile`` and ``daily`` are N2PLoad's own executors
(``scheduler.n2pload``: watermarks, selective access from the watermark, gaps; a meter's two share
one session when the engine claims them together); ``default_executors``
wires them all. A FAIL that found the concentrator itself unreachable (``hes.failures``: no connection
to it) is flagged ``concentrator_unreachable`` so the engine fails the DC's other items.

Every executor runs its orders through the worker's order runner (``ExecutionContext.runner``: its
gate, connection pool and deadlines). ``disconnect`` and ``reconnect`` (``RelayExecutor``) take the
path of ``hes disconnect``: an order
per meter (``hes.commands.Commands``) with the relay's output and control state read back, a WARN
and an alarm when they disagree, and the audit row, all naming the run's user (``requested_by``,
"NAME run:ID" as the engine sets it). A FAIL is retried only when the command's result says a retry
can help. ``hes.commands`` opens its own sockets: a context with a replaced link factory
(``connect``) cannot carry relay orders, and such an item FAILs saying so instead of going elsewhere.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal, cast

from hes.commands import CommandResult, Commands
from hes.reads import ReadResult, read_meter
from scheduler.contract import ExecutionContext, Executor, ItemOutcome, ItemState, WorkItem

__all__ = ["DEFAULT_SPAN", "ReadExecutor", "RelayExecutor", "default_executors", "outcome_of", "relay_outcome"]

logger = logging.getLogger(__name__)

#: The range of a ranged read when the plan gives none: the last day up to now.
DEFAULT_SPAN = timedelta(days=1)


def outcome_of(result: ReadResult, item: WorkItem) -> ItemOutcome:
    """A read's result as an item outcome (a DC found unreachable fails the DC's other queued items)."""
    return ItemOutcome(result.state, result.observations, result.reason, result.retryable, result.stored,
                       result.concentrator_unreachable and item.concentrator_id is not None)


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
            clock=context.now, clock_tolerance=self.clock_tolerance, mode="gateway",
            # A retry is meant to try again: a DC that failed minutes ago is contacted anyway.
            recheck_dc=item.attempt > 1, runner=context.runner(),
        )
        return outcome_of(result, item)


def relay_outcome(result: CommandResult) -> ItemOutcome:
    """A relay order's result as an item outcome: the order number and relay state as observations."""
    observations = [f"order {result.order_number}"]
    summary = result.values.get("summary")
    if summary:
        observations.append(str(summary))
    if result.observations:
        observations.extend(result.observations.split("; "))
    state = cast(ItemState, result.state)
    return ItemOutcome(state, tuple(observations), result.reason,
                       retryable=result.state == "FAIL" and result.retryable)


class RelayExecutor:
    """Runs ``disconnect`` or ``reconnect`` as an order of ``hes.commands.Commands`` (read back, alarmed, audited)."""

    def __init__(self, what: Literal["disconnect", "reconnect"]) -> None:
        self.what = what

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        if context.connect is not None:
            return ItemOutcome("FAIL", reason=f"meter {item.serial}: {self.what} runs over the head-end's own "
                                              "links; this worker replaces them (connect), so it was not sent")
        commands = Commands(context.registry, who=context.requested_by, now=context.now, runner=context.runner(),
                            recheck_dc=item.attempt > 1)
        if self.what == "disconnect":
            result = await commands.disconnect(item.serial)
        else:
            result = await commands.reconnect(item.serial)
        return relay_outcome(result)


def default_executors() -> dict[str, Executor]:
    """The executor of every command: N2PLoad's for profile and daily, reads and relay orders for the others."""
    from scheduler.n2pload import N2PLoadExecutor

    return {
        "profile": N2PLoadExecutor("profile"),
        "daily": N2PLoadExecutor("daily"),
        "events": ReadExecutor("events"),
        "registers": ReadExecutor("registers"),
        "clock": ReadExecutor("clock"),
        "disconnect": RelayExecutor("disconnect"),
        "reconnect": RelayExecutor("reconnect"),
    }
