"""The contract between the plan engine and the per-meter executors (N2PLoad profile collection, reads, relay).

The engine (``scheduler.engine``) claims work items from the database, one per (plan run, meter,
command), and hands each to the executor registered for its command; the executor talks to the
field, stores what it read (idempotently, on the identities of DESIGN.md) and returns an
``ItemOutcome``. The engine records the outcome, schedules a retry when the outcome is a retryable
FAIL and attempts remain, and summarises the run. Executors never touch the item rows themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import Engine

from concentrator.links import Deadlines
from hes.registry import Registry
from hes.runner import OrderRunner
from hes.session import LinkFactory, Timeouts
from hes.slots import Gate
from hes.transport.pool import LinkPool

__all__ = [
    "COMMANDS",
    "Command",
    "ExecutionContext",
    "Executor",
    "GroupExecutor",
    "ItemOutcome",
    "ItemState",
    "READ_COMMANDS",
    "RELAY_COMMANDS",
    "WorkItem",
]

Command = Literal["profile", "daily", "events", "registers", "clock", "disconnect", "reconnect"]
#: The commands a plan may name, in the order a meter executes them: the reads first, the relay
#: orders (IC 70, ``hes.commands``) last, so a plan that reads and disconnects reads while supply is on.
COMMANDS: tuple[Command, ...] = ("profile", "daily", "events", "registers", "clock", "disconnect", "reconnect")
#: The commands that switch a meter's supply: they need the ``disconnect`` role (technician or above).
RELAY_COMMANDS: tuple[Command, ...] = ("disconnect", "reconnect")
#: The commands that only read (and store) what the meter holds.
READ_COMMANDS: tuple[Command, ...] = tuple(command for command in COMMANDS if command not in RELAY_COMMANDS)
ItemState = Literal["EXE", "WARN", "FAIL"]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One command for one meter in one plan run, as claimed by a worker."""

    item_id: int
    run_id: int
    plan: str
    meter_id: int
    serial: str
    #: The meter's concentrator, None for a point-to-point meter.
    concentrator_id: str | None
    command: Command
    #: 1 for the first try, 2 for the first retry, ...
    attempt: int
    #: The plan's date range; None lets the executor decide (N2PLoad: from the meter's watermark to now).
    start: datetime | None
    end: datetime | None
    #: Carried on to whatever the data becomes downstream (CIM CorrelationID): the plan run, e.g. "run:42".
    correlation_id: str


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What one executor call did. ``stored``: new rows stored (0 when everything was known already)."""

    state: ItemState
    observations: tuple[str, ...] = ()
    reason: str | None = None
    #: For a FAIL: whether trying again later can help (the plan's retries apply only then).
    retryable: bool = False
    stored: int = 0
    #: The concentrator itself could not be reached: the engine fails the DC's other items of this
    #: pass with the same reason instead of trying each of them against a dead link.
    concentrator_unreachable: bool = False


@dataclass
class ExecutionContext:
    """What every executor call shares within one worker."""

    registry: Registry
    engine: Engine
    #: The worker's clock (aware UTC); tests pass a fixed or field clock.
    now: Callable[[], datetime]
    #: What sessions wait for (the DCs' one session budget, the device locks): one per event loop.
    #: ``Worker.work`` makes one for each call when this is None (with the worker's per-DC budget).
    gate: Gate | None = None
    #: Overrides the per-link response deadlines when given (a command line's ``--timeout``); None: by link.
    timeouts: Timeouts | None = None
    #: Replaces each route's own link (tests, the benchmark's in-process field); None: real sockets.
    connect: LinkFactory | None = None
    #: Who the orders and audit rows name.
    requested_by: str = "scheduler"
    #: Idle DC connections shared by the sessions of one event loop; None: one connection per session.
    #: ``Worker.work`` makes one for each call when this is None (a pool is bound to its loop).
    links: LinkPool | None = None
    #: The response deadlines by link; None: the registry's (``HES_DEADLINE_*``).
    deadlines: Deadlines | None = None
    _runner: OrderRunner | None = field(default=None, init=False, repr=False, compare=False)

    def runner(self) -> OrderRunner:
        """The order runner of this context (its gate, pool, deadlines, clock), made on first use."""
        if self._runner is None:
            self._runner = OrderRunner(self.registry, requested_by=self.requested_by, gate=self.gate,
                                       pool=self.links, deadlines=self.deadlines, timeouts=self.timeouts,
                                       connect=self.connect, clock=self.now)
        return self._runner


class Executor(Protocol):
    """Runs one work item against the field and stores what it read."""

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome: ...


class GroupExecutor(Executor, Protocol):
    """An executor that can also run several commands of one meter together (one session for all of them).

    The engine gives ``many`` the items of one meter in one run whose executors share the same
    ``together`` key (N2PLoad's ``profile`` and ``daily``), and records the outcomes it returns,
    one per item in order; an item claimed alone still goes through ``__call__``.
    """

    together: str

    async def many(self, context: ExecutionContext, items: Sequence[WorkItem]) -> list[ItemOutcome]: ...
