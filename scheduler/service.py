"""The scheduler component of ``hes run``: APScheduler triggers plans; a worker runs the work items of every run.

Each plan with a trigger (cron, interval, or a one-off date) has a job in APScheduler 3's
``AsyncIOScheduler`` with a persistent ``SQLAlchemyJobStore`` in the HES database (table
``scheduler_jobs``), so next fire times survive restarts and a run missed while the daemon was down
is started once when it comes back (coalesced, within a day). Jobs follow the plans table: they
are synchronised at start and every ``HES_SCHEDULER_SYNC`` seconds, so ``hes plan create`` needs
no restart. When several workers share a database each one's scheduler fires; the plan row
(``last_fired_at``, locked on PostgreSQL) lets one run start per firing. The worker
(``scheduler.engine.Worker``) claims items of every run with leases, so the workers share the
work. Configuration by environment: ``HES_SCHEDULER_CONCURRENCY`` (items in flight, 64),
``HES_SCHEDULER_PER_DC`` (items in flight per concentrator, 4), ``HES_SCHEDULER_LEASE`` (s, 120),
``HES_SCHEDULER_POLL`` (s, 1), ``HES_SCHEDULER_SYNC`` (s, 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from sqlalchemy import Engine, select

from hes.daemon import Component, DaemonContext
from hes.db.engine import session_factory, storage_errors
from hes.db.models import utcnow
from scheduler.contract import ExecutionContext, Executor
from scheduler.engine import EngineOptions, Worker
from scheduler.models import JOBS_TABLE, Plan
from scheduler.plans import PlanError, PlanInfo, Plans, parse_duration

__all__ = ["SchedulerComponent", "SchedulerService", "ServiceOptions", "build_trigger", "component", "fire_plan"]

logger = logging.getLogger(__name__)

#: A run missed while no daemon ran is still started when one comes back within this long.
MISFIRE_GRACE_S = 86400
_JOB_PREFIX = "plan:"


def build_trigger(kind: str, value: str) -> BaseTrigger:
    """The APScheduler trigger of a plan (``PlanError`` when the expression is wrong)."""
    try:
        if kind == "cron":
            return CronTrigger.from_crontab(value, timezone=UTC)
        if kind == "interval":
            seconds = parse_duration(value, "--every")
            if seconds < 1:
                raise PlanError(f"--every {value}: at least one second")
            return IntervalTrigger(seconds=seconds, timezone=UTC)
        if kind == "date":
            moment = datetime.fromisoformat(value)
            return DateTrigger(run_date=moment if moment.tzinfo else moment.replace(tzinfo=UTC), timezone=UTC)
    except PlanError:
        raise
    except ValueError as exc:
        option = {"cron": "--cron", "date": "--at"}.get(kind, kind)
        raise PlanError(f"{option} {value!r}: {exc}") from None
    raise PlanError(f"trigger {kind!r} is not cron, interval or date")


def _min_gap(plan: PlanInfo) -> timedelta:
    """Two firings of one plan closer than this are one firing seen by two workers."""
    if plan.trigger_kind == "interval" and plan.trigger_value is not None:
        return timedelta(seconds=min(30.0, parse_duration(plan.trigger_value) / 2))
    return timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    concurrency: int = 64
    per_concentrator: int = 4
    lease: float = 120.0
    poll: float = 1.0
    sync: float = 30.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceOptions:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            text = env.get(name)
            if text is None or not text.strip():
                return default
            try:
                value = float(text)
            except ValueError:
                raise PlanError(f"{name}={text!r} is not a number") from None
            if value <= 0:
                raise PlanError(f"{name}={text!r} must be positive")
            return value

        return cls(concurrency=int(number("HES_SCHEDULER_CONCURRENCY", 64)),
                   per_concentrator=int(number("HES_SCHEDULER_PER_DC", 4)),
                   lease=number("HES_SCHEDULER_LEASE", 120.0), poll=number("HES_SCHEDULER_POLL", 1.0),
                   sync=number("HES_SCHEDULER_SYNC", 30.0))


#: The service of this process, for the jobs APScheduler runs (they are stored by reference, not pickled).
_current: SchedulerService | None = None


async def fire_plan(name: str) -> None:
    """The job of every scheduled plan: start a run of it (once, whichever worker fires first)."""
    service = _current
    if service is None:
        logger.error("plan %s fired with no scheduler service running in this process", name)
        return
    service.fire(name)


class SchedulerService:
    """APScheduler with the persistent job store, and this process's worker."""

    def __init__(self, context: ExecutionContext, options: ServiceOptions, *, worker_id: str,
                 executors: Mapping[str, Executor] | None = None) -> None:
        self.context = context
        self.engine: Engine = context.engine
        self.options = options
        self.plans = Plans(context.engine)
        if executors is None:
            from scheduler.executors import default_executors

            executors = default_executors()
        self.worker = Worker(context, executors, EngineOptions(
            worker_id=worker_id, concurrency=options.concurrency, per_concentrator=options.per_concentrator,
            lease=options.lease, poll=options.poll))
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=context.engine, tablename=JOBS_TABLE)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S},
            timezone=UTC,
        )
        self.fired: list[int] = []

    def fire(self, name: str) -> int | None:
        """Start a run of ``name`` unless another worker just did (the run id, or None)."""
        now = utcnow()
        plan = self.plans.get(name)
        with storage_errors(self.engine), session_factory(self.engine)() as session, session.begin():
            query = select(Plan).where(Plan.name == name)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = session.scalar(query)
            if row is None or not row.enabled:
                return None
            if row.last_fired_at is not None and now - row.last_fired_at < _min_gap(plan):
                logger.info("plan %s: fired by another worker at %s", name, row.last_fired_at.isoformat())
                return None
            row.last_fired_at = now
        run = self.plans.start_run(name, trigger="schedule", who="scheduler")
        logger.info("plan %s: run %d started (%d items)", name, run.id, run.total)
        self.fired.append(run.id)
        return run.id

    def sync_jobs(self) -> None:
        """Make the job store's jobs match the scheduled plans."""
        wanted: dict[str, PlanInfo] = {}
        for plan in self.plans.scheduled():
            assert plan.trigger_kind is not None and plan.trigger_value is not None
            if plan.trigger_kind == "date":
                with storage_errors(self.engine), session_factory(self.engine)() as session:
                    fired = session.scalar(select(Plan.last_fired_at).where(Plan.name == plan.name))
                at = build_trigger("date", plan.trigger_value).run_date
                if fired is not None and fired >= at:
                    continue  # a one-off that ran: no job again
            wanted[_JOB_PREFIX + plan.name] = plan
        for job in self.scheduler.get_jobs():
            if job.id.startswith(_JOB_PREFIX) and job.id not in wanted:
                job.remove()
        known = {job.id: job for job in self.scheduler.get_jobs()}
        for job_id, plan in wanted.items():
            assert plan.trigger_kind is not None and plan.trigger_value is not None
            signature = f"{plan.trigger_kind} {plan.trigger_value}"
            job = known.get(job_id)
            if job is not None and job.name == signature:
                continue  # unchanged: keep its stored next fire time
            self.scheduler.add_job("scheduler.service:fire_plan", build_trigger(plan.trigger_kind, plan.trigger_value),
                                   args=[plan.name], id=job_id, name=signature, replace_existing=True)
            logger.info("plan %s scheduled: %s", plan.name, signature)

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule and work until ``stop`` is set (or cancelled)."""
        global _current
        self.plans.ensure_builtin()
        _current = self
        self.scheduler.start()
        try:
            self.sync_jobs()

            async def keep_synced() -> None:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.options.sync)
                    if not stop.is_set():
                        self.sync_jobs()

            syncing = asyncio.create_task(keep_synced(), name="scheduler-sync")
            try:
                await self.worker.work(stop=stop)
            finally:
                syncing.cancel()
                await asyncio.gather(syncing, return_exceptions=True)
        finally:
            self.scheduler.shutdown(wait=False)
            if _current is self:
                _current = None


class SchedulerComponent:
    """The ``scheduler`` component of ``hes run``."""

    name = "scheduler"

    async def run(self, context: DaemonContext) -> None:
        execution = ExecutionContext(registry=context.registry, engine=context.engine, now=utcnow, gate=context.gate)
        service = SchedulerService(execution, ServiceOptions.from_environment(),
                                   worker_id=context.worker_id or f"worker:{os.getpid()}")
        await service.run(context.stop)


def component() -> Component:
    """The factory ``cli/run.py`` names."""
    return SchedulerComponent()
