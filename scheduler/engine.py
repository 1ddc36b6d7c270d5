"""The plan engine: workers claim work items from the database with leases and run them with bounded concurrency.

A worker (``Worker.work``) loops: take over expired leases (the items of a dead worker go back to
PENDING and the orders it left open are closed FAIL "interrupted"), claim due items in batches
(PostgreSQL: ``WITH due AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED) UPDATE ... RETURNING``, so
several workers share one fleet and never claim the same item, and claims take turns under an advisory
lock; SQLite: ``UPDATE ... WHERE id IN (SELECT ...)``, which SQLite serialises), never an item of a meter
another worker holds a running item of (a meter serves one association at a time: two workers' sessions
would interleave its invocation counters; one worker's own units of a meter run one after the other,
``hes.slots.Gate.meters``), run each under a per-concentrator budget and an overall one, and record outcomes in
batches. A meter's items of one run whose executors share a ``together`` key (``GroupExecutor``:
N2PLoad's profile and daily values) run as one unit, in one session; each still has its own outcome.
Leases are renewed while items run; an outcome is written only while the worker still
holds the item's lease. A retryable FAIL goes back to PENDING after the run's retry delay while
attempts remain. When an executor says the concentrator itself was unreachable, the DC's other
items of the run that are due are failed at once with the same reason (and retried as the run
says) instead of each trying a dead link. A run is closed, with its summary, when its last item is
final. Times of leases and retries are the wall clock; executors get ``ExecutionContext.now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, and_, bindparam, case, exists, func, select, update
from sqlalchemy.engine import Connection

from concentrator.budget import SessionBudget
from concentrator.reachability import Contact, Reachability
from hes.crash import crash_point
from hes.db.engine import storage_errors
from hes.db.models import Concentrator, Order, utcnow
from hes.db.stored import correlation
from hes.errors import FAILURES
from hes.heap import collection_heap
from hes.slots import ConcentratorSlots, Gate
from hes.transport.pool import LinkPool
from scheduler.contract import ExecutionContext, Executor, GroupExecutor, ItemOutcome, WorkItem
from scheduler.models import Plan, PlanItem, PlanRun
from scheduler.plans import Plans, next_opening, window_open

__all__ = ["EngineOptions", "Worker", "WorkerStats", "session_budget"]

logger = logging.getLogger(__name__)

_ITEMS = cast(Table, PlanItem.__table__)
_ORDERS = cast(Table, Order.__table__)
#: The items a claim checks for a meter already being worked on (by another worker).
_BUSY = _ITEMS.alias("busy")
#: PostgreSQL advisory lock key that makes claims take turns ("hesclaim" in ASCII, a 64-bit key).
_CLAIM_LOCK = int.from_bytes(b"hesclaim", "big") - 2**63


def session_budget(engine: Engine, per_concentrator: int) -> SessionBudget:
    """The DCs' one session budget: ``per_concentrator`` at once per DC, or the DC's own setting (``max_sessions``)."""
    with storage_errors(engine), engine.connect() as connection:
        own = dict(connection.execute(select(Concentrator.id, Concentrator.max_sessions).where(
            Concentrator.max_sessions.is_not(None))).all())
    return SessionBudget(per_concentrator, {ident: int(value) for ident, value in own.items() if value is not None})


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How one worker works. ``lease``: seconds an item stays this worker's without renewal."""

    worker_id: str
    batch: int = 100
    concurrency: int = 64
    per_concentrator: int = 4
    lease: float = 120.0
    poll: float = 1.0
    #: Outcomes wait at most this long (or for ``batch`` of them) before they are written.
    flush_every: float = 0.5
    #: Longest an executor may take for one item before it is a retryable FAIL.
    item_timeout: float = 600.0
    #: On stop, how long items already running may take to finish before they are cancelled and given back.
    grace: float = 10.0

    def __post_init__(self) -> None:
        if not self.worker_id or len(self.worker_id) > 128:
            raise ValueError("a worker id is 1 to 128 characters")
        for name in ("batch", "concurrency", "per_concentrator"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("lease", "poll", "flush_every", "item_timeout", "grace"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass
class WorkerStats:
    """What one worker did (for logs, the CLI and the overhead figure)."""

    claimed: int = 0
    executed: int = 0
    recorded: int = 0
    taken_over: int = 0
    failed_fast: int = 0
    lost_leases: int = 0


@dataclass(frozen=True, slots=True)
class _Run:
    id: int
    plan: str
    start: datetime | None
    end: datetime | None
    window: tuple[str, str] | None
    retries: int
    retry_delay: timedelta


class Worker:
    """One worker of the plan engine (see the module docstring)."""

    def __init__(self, context: ExecutionContext, executors: Mapping[str, Executor], options: EngineOptions,
                 *, clock: Callable[[], datetime] = utcnow) -> None:
        self.context = context
        self.engine: Engine = context.engine
        self.executors = dict(executors)
        self.options = options
        self.clock = clock
        self.plans = Plans(context.engine, clock=clock)
        self.stats = WorkerStats()
        self._pg = context.engine.dialect.name == "postgresql"
        self._runs: dict[int, _Run] = {}
        self._contexts: dict[int, ExecutionContext] = {}
        # The DC connection pool executors get: ``context.links``, or the one ``work`` made for its loop.
        self._links: LinkPool | None = context.links
        # What sessions wait for: ``context.gate``, or the one ``work`` made for its loop. Its DC slots are the
        # DCs' one session budget: a unit of work holds its DC's slot, and the session it opens inside finds the
        # slot its own (re-entrant within the task) instead of taking a second one.
        self._gate: Gate = context.gate or Gate()
        self._overall = asyncio.Semaphore(options.concurrency)
        self._pending: list[dict[str, Any]] = []
        self._first_pending = 0.0
        self._touched_runs: set[int] = set()
        #: (run, DC) -> the DC's reachability as this run found it (monotonic seconds), and the failure's reason:
        #: items claimed before the DC was found unreachable fail fast (``Reachability.fails_fast``).
        self._down: dict[tuple[int, str], tuple[Reachability, str]] = {}
        self._last_heartbeat = 0.0
        self._last_reap = 0.0
        #: Items claimed by this worker object and not yet recorded or given back.
        self._held: set[int] = set()

    # --- the database side -------------------------------------------------------------------------------

    def _run(self, connection: Connection, run_id: int) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            record = connection.execute(
                select(PlanRun.id, PlanRun.range_start, PlanRun.range_end, PlanRun.window_start, PlanRun.window_end,
                       PlanRun.retries, PlanRun.retry_delay_s, Plan.name)
                .join(Plan, Plan.id == PlanRun.plan_id).where(PlanRun.id == run_id)).one()
            window = None if record.window_start is None else (record.window_start, record.window_end)
            run = _Run(record.id, record.name, record.range_start, record.range_end, window, record.retries,
                       timedelta(seconds=record.retry_delay_s))
            self._runs[run_id] = run
        return run

    def _context(self, run_id: int) -> ExecutionContext:
        # Orders carry the run in requested_by: a worker taking over a dead one's items finds them by it.
        context = self._contexts.get(run_id)
        if context is None or context.links is not self._links or context.gate is not self._gate:
            # Also when made in an earlier ``work`` call: its pool and gate were bound to that call's loop.
            context = dataclasses.replace(self.context, requested_by=self._who(run_id), links=self._links,
                                          gate=self._gate)
            self._contexts[run_id] = context
        return context

    def _who(self, run_id: int) -> str:
        return f"{self.context.requested_by} run:{run_id}"[:64]

    def budget(self) -> SessionBudget:
        """The DCs' session budget: ``per_concentrator`` sessions at once per DC, or a DC's own setting."""
        return session_budget(self.engine, self.options.per_concentrator)

    def reap(self) -> int:
        """Take over items whose lease expired: back to PENDING (the interrupted attempt does not count)."""
        now = self.clock()
        with storage_errors(self.engine), self.engine.begin() as connection:
            expired = connection.execute(
                update(_ITEMS).where(_ITEMS.c.state == "RUNNING", _ITEMS.c.lease_expires_at < now)
                .values(state="PENDING", lease_owner=None, lease_expires_at=None, next_attempt_at=now,
                        attempts=case((_ITEMS.c.attempts > 0, _ITEMS.c.attempts - 1), else_=0))
                .returning(_ITEMS.c.id, _ITEMS.c.run_id, _ITEMS.c.serial, _ITEMS.c.started_at)).all()
            for _, run_id, serial, started in expired:
                self._close_orders(connection, run_id, serial, started, now,
                                   "interrupted: the worker running it stopped; its plan item was taken over")
        if expired:
            logger.warning("worker %s took over %d items whose lease expired", self.options.worker_id, len(expired))
        self.stats.taken_over += len(expired)
        return len(expired)

    def _close_orders(self, connection: Connection, run_id: int, serial: str, started: datetime | None,
                      now: datetime, why: str) -> None:
        """Close the orders an interrupted attempt left PENDING for this meter in this run (FAIL, never open)."""
        conditions = [_ORDERS.c.state == "PENDING", _ORDERS.c.meter_serial == serial,
                      _ORDERS.c.requested_by == self._who(run_id)]
        if started is not None:
            conditions.append(_ORDERS.c.created_at >= started)
        connection.execute(update(_ORDERS).where(*conditions).values(
            state="FAIL", finished_at=now, reason=f"{why} (a retry can help)"))

    def heartbeat(self) -> None:
        """Renew the lease of every item this worker is running (by id: a dead namesake's items are not ours)."""
        held = sorted(self._held)
        if not held:
            return
        now = self.clock()
        with storage_errors(self.engine), self.engine.begin() as connection:
            for start in range(0, len(held), 500):
                connection.execute(update(_ITEMS).where(_ITEMS.c.id.in_(held[start:start + 500]),
                                                        _ITEMS.c.lease_owner == self.options.worker_id,
                                                        _ITEMS.c.state == "RUNNING")
                                   .values(lease_expires_at=now + timedelta(seconds=self.options.lease)))

    def claim(self, limit: int, run_id: int | None = None) -> list[WorkItem]:
        """Claim up to ``limit`` due items (of one run, or of any), highest priority first."""
        now = self.clock()
        due = select(_ITEMS.c.id).where(_ITEMS.c.state == "PENDING", _ITEMS.c.next_attempt_at <= now,
                                        ~exists().where(_BUSY.c.meter_id == _ITEMS.c.meter_id,
                                                        _BUSY.c.state == "RUNNING",
                                                        _BUSY.c.lease_owner != self.options.worker_id))
        if run_id is not None:
            due = due.where(_ITEMS.c.run_id == run_id)
        due = due.order_by(_ITEMS.c.priority.desc(), _ITEMS.c.id).limit(limit)
        if self._pg:
            # A materialised CTE, not "id IN (subquery)": PostgreSQL may run such a subquery more than
            # once per statement, and with SKIP LOCKED each run finds other rows, so the LIMIT would not
            # hold (one worker then claims everything). The outer state check re-reads a row whose lock
            # it waited for.
            chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
            claim = update(_ITEMS).where(_ITEMS.c.id == chosen.c.id, _ITEMS.c.state == "PENDING")
        else:
            claim = update(_ITEMS).where(_ITEMS.c.id.in_(due.scalar_subquery()), _ITEMS.c.state == "PENDING")
        claim = (claim
                 .values(state="RUNNING", lease_owner=self.options.worker_id,
                         lease_expires_at=now + timedelta(seconds=self.options.lease),
                         attempts=_ITEMS.c.attempts + 1, started_at=now)
                 .returning(_ITEMS.c.id, _ITEMS.c.run_id, _ITEMS.c.meter_id, _ITEMS.c.serial,
                            _ITEMS.c.concentrator_id, _ITEMS.c.command, _ITEMS.c.attempts, _ITEMS.c.priority))
        items: list[WorkItem] = []
        closed: list[dict[str, Any]] = []
        with storage_errors(self.engine), self.engine.begin() as connection:
            if self._pg:
                # Claims one after another, so each sees the meters the last one took (SQLite's write lock
                # does this there): two claims at once could each take one item of the same meter.
                connection.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK)))
            # RETURNING keeps no order: run them as claimed, highest priority first, then oldest.
            rows = sorted(connection.execute(claim).all(), key=lambda row: (-row.priority, row.id))
            for item_id, item_run, meter_id, serial, dc, command, attempts, _ in rows:
                run = self._run(connection, item_run)
                if not window_open(run.window, now):
                    # Outside the run's daily window: back until it opens (this claim was not an attempt).
                    closed.append({"b_id": item_id, "b_next": next_opening(run.window, now)})
                    continue
                items.append(WorkItem(item_id, item_run, run.plan, meter_id, serial, dc, command, attempts,
                                      run.start, run.end, f"run:{item_run}"))
            if closed:
                connection.execute(
                    update(_ITEMS).where(_ITEMS.c.id == bindparam("b_id"))
                    .values(state="PENDING", lease_owner=None, lease_expires_at=None,
                            attempts=_ITEMS.c.attempts - 1, next_attempt_at=bindparam("b_next")), closed)
        self.stats.claimed += len(items)
        self._held.update(item.item_id for item in items)
        return items

    def _outcome_row(self, item: WorkItem, outcome: ItemOutcome, now: datetime) -> dict[str, Any]:
        run = self._runs[item.run_id]
        retry = outcome.state == "FAIL" and outcome.retryable and item.attempt <= run.retries
        return {
            "b_id": item.item_id, "b_owner": self.options.worker_id,
            "b_state": "PENDING" if retry else outcome.state,
            "b_next": next_opening(run.window, now + run.retry_delay) if retry else now,
            "b_finished": None if retry else now,
            "b_observations": "; ".join(outcome.observations) or None,
            "b_reason": outcome.reason, "b_retryable": outcome.retryable, "b_stored": outcome.stored,
        }

    def record(self, item: WorkItem, outcome: ItemOutcome) -> None:
        """Queue an item's outcome; written with others (``flush``)."""
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append(self._outcome_row(item, outcome, self.clock()))
        self._held.discard(item.item_id)
        self._touched_runs.add(item.run_id)
        if len(self._pending) >= self.options.batch:
            self.flush()

    def flush(self) -> None:
        """Write the queued outcomes (only where this worker still holds the lease), close finished runs."""
        rows, self._pending = self._pending, []
        touched, self._touched_runs = self._touched_runs, set()
        if not rows and not touched:
            return
        statement = (update(_ITEMS).where(_ITEMS.c.id == bindparam("b_id"),
                                          _ITEMS.c.lease_owner == bindparam("b_owner"),
                                          _ITEMS.c.state == "RUNNING")
                     .values(state=bindparam("b_state"), next_attempt_at=bindparam("b_next"),
                             finished_at=bindparam("b_finished"), observations=bindparam("b_observations"),
                             reason=bindparam("b_reason"), retryable=bindparam("b_retryable"),
                             stored=bindparam("b_stored"), worked_by=bindparam("b_owner"), lease_owner=None,
                             lease_expires_at=None))
        written = 0
        if rows:
            with storage_errors(self.engine), self.engine.begin() as connection:
                result = connection.execute(statement, rows)
                written = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(rows)
        # Runs with nothing left open are closed (with their summary) below; one query tells which. It reads
        # after the outcomes are committed: inside that transaction, two workers writing a run's last two
        # items at once would each see the other's item still RUNNING (uncommitted) and neither would close
        # the run, which would then stay "running" for ever (PostgreSQL, READ COMMITTED). After the commits,
        # the later of the two sees both.
        still_open: set[int] = set()
        if touched:
            with storage_errors(self.engine), self.engine.connect() as connection:
                still_open = set(connection.execute(
                    select(_ITEMS.c.run_id).where(_ITEMS.c.run_id.in_(sorted(touched)),
                                                  _ITEMS.c.state.in_(("PENDING", "RUNNING")))
                    .group_by(_ITEMS.c.run_id)).scalars())
        if rows:
            self.stats.recorded += written
            if written < len(rows):
                # Another worker took these over after our lease expired; its outcome will count.
                self.stats.lost_leases += len(rows) - written
                logger.warning("worker %s: %d outcomes not recorded (lease lost)", self.options.worker_id,
                               len(rows) - written)
        finished = touched - still_open
        if finished:
            self.plans.finish_if_done(finished)

    def fail_concentrator(self, item: WorkItem, outcome: ItemOutcome) -> int:
        """Fail the DC's other due items of the run with ``outcome``'s reason (an attempt each, retried as planned)."""
        assert item.concentrator_id is not None
        run = self._runs[item.run_id]
        now = self.clock()
        final = _ITEMS.c.attempts + 1 > run.retries
        statement = (
            update(_ITEMS)
            .where(_ITEMS.c.run_id == item.run_id, _ITEMS.c.concentrator_id == item.concentrator_id,
                   _ITEMS.c.state == "PENDING", _ITEMS.c.next_attempt_at <= now)
            .values(attempts=_ITEMS.c.attempts + 1, reason=outcome.reason, retryable=True, observations=None,
                    worked_by=self.options.worker_id,
                    state=case((final, "FAIL"), else_="PENDING"),
                    finished_at=case((final, now), else_=None),
                    next_attempt_at=case((final, now), else_=next_opening(run.window, now + run.retry_delay)))
        )
        with storage_errors(self.engine), self.engine.begin() as connection:
            count = connection.execute(statement).rowcount or 0
        self.stats.failed_fast += count
        self._touched_runs.add(item.run_id)
        return count

    def pending_count(self, run_id: int) -> tuple[int, datetime | None]:
        """(items of the run not final, when the next PENDING one is due)."""
        with storage_errors(self.engine), self.engine.connect() as connection:
            open_items = connection.execute(
                select(_ITEMS.c.state, _ITEMS.c.next_attempt_at)
                .where(_ITEMS.c.run_id == run_id, _ITEMS.c.state.in_(("PENDING", "RUNNING")))
                .order_by(_ITEMS.c.next_attempt_at).limit(1)).first()
            if open_items is None:
                return 0, None
            count = connection.execute(select(func.count()).where(
                and_(_ITEMS.c.run_id == run_id, _ITEMS.c.state.in_(("PENDING", "RUNNING"))))).scalar_one()
        return int(count), open_items.next_attempt_at

    # --- the asyncio side --------------------------------------------------------------------------------

    def _groups(self, items: list[WorkItem]) -> list[list[WorkItem]]:
        """Claimed items as units of work: a meter's items of one run whose executors go together (one
        session, ``GroupExecutor``) form one unit, every other item is a unit of its own; claim order kept."""
        units: list[list[WorkItem]] = []
        together: dict[tuple[int, int, str], list[WorkItem]] = {}
        for item in items:
            key = getattr(self.executors.get(item.command), "together", None)
            if not isinstance(key, str):
                units.append([item])
                continue
            unit = together.get((item.run_id, item.meter_id, key))
            if unit is None or any(other.command == item.command for other in unit):
                unit = together[(item.run_id, item.meter_id, key)] = []
                units.append(unit)
            unit.append(item)
        return units

    async def _execute(self, items: list[WorkItem], claimed_at: float) -> None:
        first = items[0]
        dc = first.concentrator_id
        async with contextlib.AsyncExitStack() as stack:
            # The meter's other units first (``Gate.meters``: counters are reserved as a unit prepares), then
            # the DC's slot: a unit waiting for its meter holds no slot another meter could use.
            await stack.enter_async_context(self._gate.meters.hold(str(first.meter_id)))
            if dc is not None:
                await stack.enter_async_context(self._gate.slots.hold(dc))
            await stack.enter_async_context(self._overall)
            down = self._down.get((first.run_id, dc)) if dc is not None else None
            if down is not None and down[0].fails_fast(claimed_at):
                outcomes = [ItemOutcome("FAIL", reason=down[1], retryable=True, concentrator_unreachable=True)
                            for _ in items]
                self.stats.failed_fast += len(items)
            else:
                outcomes = [await self._call(first)] if len(items) == 1 else await self._call_many(items)
                self.stats.executed += len(items)
        crash_point("plan-item-before-record")
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.concentrator_unreachable and dc is not None:
                reason = outcome.reason or f"concentrator {dc} is unreachable"
                known = self._down.get((item.run_id, dc))
                if known is None or not known[0].fails_fast(claimed_at):
                    found = (known[0] if known is not None else Reachability()).record(Contact.NO_CONNECTION,
                                                                                       time.monotonic())
                    self._down[(item.run_id, dc)] = (found, reason)
                    self.fail_concentrator(item, outcome)
            self.record(item, outcome)

    async def _call(self, item: WorkItem) -> ItemOutcome:
        executor = self.executors.get(item.command)
        if executor is None:
            return ItemOutcome("FAIL", reason=f"no executor for command {item.command!r} in this worker")
        return (await self._guarded([item], lambda: executor(self._context(item.run_id), item)))[0]

    async def _call_many(self, items: list[WorkItem]) -> list[ItemOutcome]:
        executor = cast(GroupExecutor, self.executors[items[0].command])
        return await self._guarded(items, lambda: executor.many(self._context(items[0].run_id), items))

    async def _guarded(self, items: list[WorkItem], call: Callable[[], Awaitable[Any]]) -> list[ItemOutcome]:
        """Run ``call`` (one item's executor, or several items' group) as the engine runs executors: under the
        run's correlation and the item timeout; an exception fails every item given."""
        what = "+".join(item.command for item in items)

        def failed(reason: str, retryable: bool = False) -> list[ItemOutcome]:
            return [ItemOutcome("FAIL", reason=reason, retryable=retryable) for _ in items]

        try:
            with correlation(items[0].correlation_id):
                async with asyncio.timeout(self.options.item_timeout):
                    result = await call()
        except TimeoutError:
            return failed(f"{what} took longer than {self.options.item_timeout:.0f} s (a retry can help)", True)
        except FAILURES as exc:
            return failed(f"{type(exc).__name__}: {exc}", bool(getattr(exc, "retryable", False)))
        except Exception as exc:  # a bug in an executor fails its items, never the worker
            logger.exception("executor %s failed on %s", what, items[0].serial)
            return failed(f"internal error: {type(exc).__name__}: {exc}")
        outcomes = [result] if isinstance(result, ItemOutcome) else list(result)
        if len(outcomes) != len(items):
            logger.error("executor %s gave %d outcomes for %d items", what, len(outcomes), len(items))
            return failed(f"internal error: {len(outcomes)} outcomes for {len(items)} items")
        return outcomes

    def _maintenance(self, *, reap: bool = False, flush: bool = False) -> None:
        """Take over expired leases now and then, renew ours, write queued outcomes when due."""
        now = time.monotonic()
        if reap or now - self._last_reap >= min(self.options.lease / 4, 30.0):
            self._last_reap = now
            self.reap()
        if now - self._last_heartbeat >= self.options.lease / 3:
            self._last_heartbeat = now
            self.heartbeat()
        if (self._pending or self._touched_runs) and (flush or now - self._first_pending >= self.options.flush_every):
            self.flush()
        # A daemon lives for months: forget old outage marks, and run details (re-read on demand).
        if len(self._down) > 1000:
            self._down = {key: mark for key, mark in self._down.items()
                          if mark[0].last_attempt is not None and now - mark[0].last_attempt < 3600}
        if len(self._runs) > 1000 and not self._held:
            self._runs.clear()
            self._contexts.clear()

    async def work(self, *, run_id: int | None = None, stop: asyncio.Event | None = None,
                   wait_retries: bool = True, on_progress: Callable[[], None] | None = None) -> WorkerStats:
        """Work until ``stop`` is set; with ``run_id``, only that run's items, returning when it is done.

        With ``run_id`` and not ``wait_retries``, return as soon as nothing of the run is due now
        (items waiting for a retry are left to the daemon or the next pass).

        The heap alive on entry is kept out of the garbage collector's scans while it works
        (``hes.heap.collection_heap``). Sessions through a DC share idle connections
        (``ExecutionContext.links``; without one, a pool of this call's, closed when it returns).
        """
        with collection_heap():
            return await self._work(run_id, stop, wait_retries, on_progress)

    async def _work(self, run_id: int | None, stop: asyncio.Event | None, wait_retries: bool,
                    on_progress: Callable[[], None] | None) -> WorkerStats:
        # Bound to this event loop (a worker may work in several loops one after the other).
        self._gate = self.context.gate or Gate(ConcentratorSlots(self.budget()))
        self._overall = asyncio.Semaphore(self.options.concurrency)
        # DC connections shared by this call's sessions, unless the caller gave a pool of its own.
        own_links = LinkPool() if self.context.links is None else None
        self._links = own_links if own_links is not None else self.context.links
        try:
            await self._work_loop(run_id, stop, wait_retries, on_progress)
        finally:
            # After in-flight work ended (``_work_loop`` waits for it): nothing is using the pool any more.
            self._links = self.context.links
            self._gate = self.context.gate or self._gate
            self._contexts.clear()
            if own_links is not None:
                await own_links.aclose()
        return self.stats

    async def _work_loop(self, run_id: int | None, stop: asyncio.Event | None, wait_retries: bool,
                         on_progress: Callable[[], None] | None) -> None:
        inflight: dict[asyncio.Task[None], list[WorkItem]] = {}
        self._maintenance(reap=True, flush=True)
        try:
            while stop is None or not stop.is_set():
                # Claim in batches: when half the slots are free (or nothing runs), not for every free slot.
                room = self.options.concurrency * 2 - len(inflight)
                wanted = room >= self.options.concurrency or not inflight
                claimed = self.claim(min(room, self.options.batch), run_id) if wanted else []
                claimed_at = time.monotonic()
                for unit in self._groups(claimed):
                    task = asyncio.create_task(self._execute(unit, claimed_at), name=f"plan-item:{unit[0].item_id}")
                    inflight[task] = unit
                if inflight:
                    done, _ = await asyncio.wait(inflight, timeout=self.options.poll if not claimed else 0.05,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        inflight.pop(task)
                        task.result()
                    self._maintenance()
                    if on_progress is not None:
                        on_progress()
                    continue
                if claimed:
                    continue
                self._maintenance(flush=True)
                if on_progress is not None:
                    on_progress()
                if run_id is not None:
                    remaining, next_due = self.pending_count(run_id)
                    if remaining == 0:
                        break
                    if not wait_retries and (next_due is None or next_due > self.clock()):
                        break
                if stop is None:
                    await asyncio.sleep(self.options.poll)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.options.poll)
        finally:
            if inflight:
                # Stopping: let what runs finish for a moment, then cancel and give the rest back.
                _, unfinished = await asyncio.wait(inflight, timeout=self.options.grace)
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*inflight, return_exceptions=True)
            self.flush()
            if inflight:
                self._release([item for unit in inflight.values() for item in unit])

    def _release(self, items: list[WorkItem]) -> None:
        """Give back items this worker claimed and did not finish (stopping): due again at once."""
        ids = [item.item_id for item in items]
        self._held.difference_update(ids)
        now = self.clock()
        with storage_errors(self.engine), self.engine.begin() as connection:
            released = connection.execute(
                update(_ITEMS).where(_ITEMS.c.id.in_(ids), _ITEMS.c.lease_owner == self.options.worker_id,
                                     _ITEMS.c.state == "RUNNING")
                .values(state="PENDING", lease_owner=None, lease_expires_at=None,
                        attempts=_ITEMS.c.attempts - 1, next_attempt_at=now)
                .returning(_ITEMS.c.run_id, _ITEMS.c.serial, _ITEMS.c.started_at)).all()
            for run_id, serial, started in released:
                self._close_orders(connection, run_id, serial, started, now,
                                   "interrupted: the worker stopped before it finished")

