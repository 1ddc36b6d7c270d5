"""The scheduler service: APScheduler triggers with the persistent job store, one run per firing, the component."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from cli.run import load_components
from hes.registry import Registry
from scheduler.contract import COMMANDS, ExecutionContext
from scheduler.models import JOBS_TABLE, PlanRun
from scheduler.plans import PlanError, Plans, PlanSpec
from scheduler.service import SchedulerService, ServiceOptions, build_trigger
from simulators.manifest import Manifest
from tests.scheduler.test_engine import Recorder


@pytest.fixture
def fleet(registry: Registry, fleet_manifest: tuple[Path, Manifest]) -> list[str]:
    registry.import_manifest(fleet_manifest[0])
    return [m.serial for m in registry.list_meters()]


def service(registry: Registry, executor: Recorder, worker_id: str = "w1") -> SchedulerService:
    context = ExecutionContext(registry=registry, engine=registry.engine, now=lambda: datetime.now(UTC))
    return SchedulerService(context, ServiceOptions(poll=0.05, sync=0.2), worker_id=worker_id,
                            executors=dict.fromkeys(COMMANDS, executor))


async def run_for(svc: SchedulerService, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    async with asyncio.timeout(20):
        await task


async def run_until(svc: SchedulerService, done: Callable[[], bool], limit: float = 60.0) -> None:
    """Run the service until ``done()`` holds (checked every 0.1 s), then stop it; fail after ``limit`` seconds.

    For what must happen on schedule: a busy machine is slower, never wrong, so no fixed window."""
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        async with asyncio.timeout(limit):
            while not done():
                assert not task.done(), task
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def runs_of(engine: Engine, trigger: str = "schedule") -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(PlanRun).where(PlanRun.trigger == trigger)) or 0)


def test_triggers_are_checked() -> None:
    assert build_trigger("cron", "30 1 * * *") is not None
    assert build_trigger("interval", "15m").interval == timedelta(minutes=15)
    assert build_trigger("date", "2030-01-01T00:00").run_date == datetime(2030, 1, 1, tzinfo=UTC)
    for kind, value in [("cron", "61 * * * *"), ("cron", "* *"), ("interval", "0s"), ("interval", "x"),
                        ("date", "tomorrow"), ("weekly", "x")]:
        with pytest.raises(PlanError):
            build_trigger(kind, value)


def test_an_interval_plan_runs_on_schedule_from_the_persistent_job_store(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("often", "all", None, ("clock",), trigger_kind="interval", trigger_value="1s"))
    executor = Recorder()
    first = service(registry, executor)
    worked: list[int] = []

    def two_runs_worked() -> bool:
        # Runs it started, each worked to the end by the service's own worker.
        worked[:] = [run_id for run_id in first.fired if plans.run_info(run_id).state == "done"]
        return len(worked) >= 2

    asyncio.run(run_until(first, two_runs_worked))
    assert runs_of(registry.engine) >= len(worked) >= 2
    calls = Counter((item.run_id, item.serial) for item in executor.calls if item.run_id in worked)
    assert calls == Counter({(run_id, serial): 1 for run_id in worked for serial in fleet})
    with registry.engine.connect() as connection:
        jobs = {row[0]: row[1] for row in connection.execute(text(f"SELECT id, next_run_time FROM {JOBS_TABLE}"))}
    # jobs for the built-in plans and this one, kept in the database with their next fire time
    assert set(jobs) == {"plan:often", "plan:default-daily", "plan:n2pload"}
    daily = jobs["plan:default-daily"]
    assert daily is not None and daily > datetime.now(UTC).timestamp()

    # A second start keeps the stored jobs (the daily job's next fire time is not recomputed from now).
    second = service(registry, Recorder())
    asyncio.run(run_for(second, 0.5))
    with registry.engine.connect() as connection:
        again: dict[str, float] = dict(connection.execute(text(f"SELECT id, next_run_time FROM {JOBS_TABLE}")).all())
    assert again["plan:default-daily"] == daily


def test_two_workers_firing_one_plan_start_one_run(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("hourly", "all", None, ("clock",), trigger_kind="cron", trigger_value="0 * * * *"))
    a, b = service(registry, Recorder(), "a"), service(registry, Recorder(), "b")
    assert a.fire("hourly") is not None
    assert b.fire("hourly") is None  # the same firing, seen by the second worker
    assert runs_of(registry.engine) == 1


def test_a_one_off_plan_runs_once(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    plans.create(PlanSpec("once", "all", None, ("clock",), trigger_kind="date", trigger_value=at))
    executor = Recorder()
    asyncio.run(run_for(service(registry, executor), 2.5))
    assert runs_of(registry.engine) == 1 and len(executor.calls) == len(fleet)
    asyncio.run(run_for(service(registry, executor), 1.0))  # restarted: not again
    assert runs_of(registry.engine) == 1


def test_the_scheduler_is_a_component_of_hes_run() -> None:
    (component,) = load_components(["scheduler"])
    assert component.name == "scheduler"
