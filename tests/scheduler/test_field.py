"""The plan engine with its real executors against a simulated field: DC outage and retries, two workers, discovery.

The field is frozen at its epoch; the engine's executors are N2PLoad's (``scheduler.n2pload``) and
the reads (``scheduler.executors``). Every stored interval is compared with the simulator's
deterministic value, and counted: once each, none missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from hes.db.engine import create_engine_for
from hes.db.models import IntervalValue, Meter
from hes.keys import MasterKey
from hes.registry import Registry
from hes.session import Timeouts
from scheduler.capabilities import discover
from scheduler.contract import ExecutionContext, Executor, ItemOutcome, WorkItem
from scheduler.engine import EngineOptions, Worker
from scheduler.executors import default_executors
from scheduler.models import Plan, PlanItem
from scheduler.plans import N2PLOAD, Plans, PlanSpec, RunInfo
from simulators.clock import FieldClock
from simulators.energy import interval_end, interval_index, profile_intervals
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import EPOCH, interval_floor, profile_state

SEED = 11
FAST = Timeouts(connect=1.0, read=1.0, release=0.3, retries=1)
DC = "DC0001"
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"


def run(body: Callable[[], Awaitable[None]], limit: float = 90.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await body()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def field(tmp_path: Path, engine: Engine, master_key: MasterKey, **options: Any) -> AsyncIterator[
        tuple[Fleet, ExecutionContext]]:
    settings: dict[str, Any] = {"concentrators": 1, "meters_per_dc": 4, "p2p": 1, "seed": SEED, "schedule": False,
                                "loss": 0.0, "epoch": EPOCH}
    settings.update(options)
    fleet = Fleet(FleetOptions(**settings), clock=FieldClock(EPOCH, 0.0))
    async with fleet:
        registry = Registry(engine, master_key, clock=fleet.clock.now)
        fleet.write_manifest(tmp_path / "fleet.json")
        registry.import_manifest(tmp_path / "fleet.json")
        yield fleet, ExecutionContext(registry, engine, fleet.clock.now, timeouts=FAST)


def expected_profile(serial: str, start: datetime, end: datetime) -> dict[tuple[datetime, str], float]:
    out: dict[tuple[datetime, str], float] = {}
    for row in profile_intervals(SEED, serial, interval_index(start), interval_index(end) - 1):
        out[interval_end(row.interval), A_PLUS] = row.a_plus
        out[interval_end(row.interval), A_MINUS] = row.a_minus
    return out


def stored_profile(engine: Engine, serial: str) -> dict[tuple[datetime, str], float]:
    with Session(engine) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
        rows = session.execute(select(IntervalValue.interval_end, IntervalValue.obis, IntervalValue.value)
                               .where(IntervalValue.meter_id == meter_id)).all()
    out = {(end, obis): value for end, obis, value in rows}
    assert len(out) == len(rows)
    return out


def items_of(engine: Engine, run_id: int) -> list[PlanItem]:
    with Session(engine) as session:
        return list(session.scalars(select(PlanItem).where(PlanItem.run_id == run_id).order_by(PlanItem.id)))


def test_a_dc_outage_fails_its_meters_with_the_reason_retries_then_backfills_without_a_gap(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, context):
            dc_meters = [f"SIM0001{i:05d}" for i in range(4)]
            plans = Plans(engine)
            plans.create(PlanSpec("outage", "concentrator", DC, ("profile",), retries=2, retry_delay_s=0.2))
            worker = Worker(context, default_executors(),
                            EngineOptions(worker_id="w", poll=0.05, per_concentrator=1))

            # 1. The DC is down for the whole run: one connection per attempt, every meter FAIL with the reason.
            fleet.set_outage(DC)
            down = plans.start_run("outage")
            await worker.work(run_id=down.id)
            refused = fleet.faults(DC).applied.get("refuse_connections", 0)
            assert refused == 3  # three attempts (1 + 2 retries), one connection each: not one per meter
            rows = items_of(engine, down.id)
            assert len(rows) == 4
            for row in rows:
                assert (row.state, row.attempts, row.retryable) == ("FAIL", 3, True)
                assert row.reason is not None and row.reason.startswith(f"concentrator {DC} is unreachable")
            assert all(stored_profile(engine, serial) == {} for serial in dc_meters)

            # 2. Down at first, back before the retry: the retry collects it all.
            second = plans.start_run("outage")
            task = asyncio.create_task(worker.work(run_id=second.id))
            while fleet.faults(DC).applied.get("refuse_connections", 0) == refused:
                await asyncio.sleep(0.01)
            fleet.set_outage(DC, False)
            await task
            rows = items_of(engine, second.id)
            day = interval_index(EPOCH - timedelta(days=1))  # a first pass: the day before the field's now
            assert {(r.serial, r.state) for r in rows} == {
                (s, profile_state(SEED, s, day, day + 95)) for s in dc_meters}, [(r.state, r.reason) for r in rows]
            assert max(row.attempts for row in rows) == 2  # failed once, retried once
            assert plans.run_info(second.id).counts.get("FAIL", 0) == 0

            # Every interval the meters recorded up to what the DC holds: stored once, equal to the simulator.
            for serial in dc_meters:
                assert stored_profile(engine, serial) == expected_profile(serial, EPOCH - timedelta(days=1), EPOCH)

            # 3. The next pass finds nothing newer (the DC has read no more): WARN, nothing stored twice.
            third = plans.start_run("outage")
            await worker.work(run_id=third.id)
            assert plans.run_info(third.id).stored == 0
            for serial in dc_meters:
                assert stored_profile(engine, serial) == expected_profile(serial, EPOCH - timedelta(days=1), EPOCH)

    run(body)


class Counting:
    """Wraps an executor: counts its calls per (run, meter, command), across threads."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.calls: Counter[tuple[int, str, str]] = Counter()
        self.lock = threading.Lock()

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        with self.lock:
            self.calls[(item.run_id, item.serial, item.command)] += 1
        return await self.executor(context, item)


def test_two_workers_share_a_pass_and_read_no_meter_twice(
    tmp_path: Path, engine: Engine, master_key: MasterKey, database_url: str
) -> None:
    loop_ready = threading.Event()
    stop = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with field(tmp_path, engine, master_key, concentrators=2, meters_per_dc=6, p2p=2) as (fleet, context):
            holder["fleet"], holder["context"] = fleet, context
            loop_ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    field_thread = threading.Thread(target=run, args=(serve, 120.0), daemon=True)
    field_thread.start()
    assert loop_ready.wait(20)
    try:
        context: ExecutionContext = holder["context"]
        plans = Plans(engine)
        plans.create(PlanSpec("shared", "all", None, ("profile", "clock")))
        the_run = plans.start_run("shared")
        executors = {name: Counting(executor) for name, executor in default_executors().items()}
        engines = [create_engine_for(database_url) for _ in range(2)]
        errors: list[BaseException] = []
        workers = [Worker(ExecutionContext(context.registry, e, context.now, timeouts=FAST), dict(executors),
                          EngineOptions(worker_id=f"worker-{n}", poll=0.05, batch=2, concurrency=2))
                   for n, e in enumerate(engines)]

        def work(w: Worker) -> None:
            async def body() -> None:
                await w.work(run_id=the_run.id)

            try:
                run(body, 90.0)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(100)
        for e in engines:
            e.dispose()
        assert not errors, errors
        calls: Counter[tuple[int, str, str]] = Counter()
        for counting in executors.values():
            calls.update(counting.calls)
        meters = [m.serial for m in context.registry.list_meters()]
        assert len(meters) == 14
        assert calls == Counter({(the_run.id, s, c): 1 for s in meters for c in ("profile", "clock")})
        assert all(w.stats.executed > 0 for w in workers), [w.stats for w in workers]
        info = plans.run_info(the_run.id)
        assert info.state == "done" and info.counts.get("FAIL", 0) == 0, [
            (i.serial, i.command, i.state, i.attempts, i.reason, i.worked_by)
            for i in plans.items(the_run.id) if i.state != "EXE"]
        for serial in meters:
            if serial.startswith("SIM"):
                assert stored_profile(engine, serial) == expected_profile(serial, EPOCH - timedelta(days=1), EPOCH)
    finally:
        stop.set()
        field_thread.join(30)


def test_discovery_reads_the_object_list_and_the_check_then_allows_the_commands(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key, meters_per_dc=1) as (_fleet, context):
            for serial in ("SIM000100000", "P2P000000000"):
                objects = await discover(context, serial)
                assert {"7/1.0.99.1.0.255", "7/1.0.98.1.0.255", "8/0.0.1.0.0.255", "3/1.0.1.8.0.255",
                        "7/0.0.99.98.0.255", "15/0.0.40.0.0.255"} <= set(objects)
            plans = Plans(engine)
            plans.create(PlanSpec("checked", "all", None, ("profile", "daily", "events", "registers", "clock")))
            started = plans.start_run("checked")
            assert started.counts == {"PENDING": 10}

    run(body)


def test_n2pload_passes_over_a_lossy_fleet_with_unreachable_meters_and_an_outage_store_everything_once(
    tmp_path: Path, engine: Engine, master_key: MasterKey
) -> None:
    async def body() -> None:
        async with field(tmp_path, engine, master_key, concentrators=2, meters_per_dc=5, p2p=0, loss=0.3,
                         unreachable_share=0.4) as (fleet, context):
            meters = [f"SIM000{d}0000{i}" for d in (1, 2) for i in range(5)]
            unreachable = [s for s in meters if not fleet.link(s).reachable(EPOCH)]
            assert unreachable and len(unreachable) < len(meters)  # the seed gives some of each
            plans = Plans(engine)
            plans.ensure_builtin()
            with Session(engine) as session, session.begin():
                # N2PLoad's own plan, with retries a test can wait for
                session.execute(update(Plan).where(Plan.name == N2PLOAD).values(retry_delay_s=0.05))
            assert plans.get(N2PLOAD).retry_delay_s == 0.05

            worker = Worker(context, default_executors(), EngineOptions(worker_id="w", poll=0.05))

            async def n2pload() -> RunInfo:
                started = plans.start_run(N2PLOAD, trigger="n2pload")
                await worker.work(run_id=started.id)
                return plans.run_info(started.id)

            fleet.set_outage("DC0002")
            first = await n2pload()
            assert first.counts.get("FAIL") == 5  # DC0002's meters, after the plan's 2 retries
            assert all(i.reason is not None and i.reason.startswith("concentrator DC0002 is unreachable")
                       for i in plans.items(first.id) if i.concentrator_id == "DC0002")
            fleet.set_outage("DC0002", False)
            second = await n2pload()
            assert second.counts.get("FAIL", 0) == 0

            # A day later the unreachable meters answer again; the DCs read (with loss), N2PLoad follows.
            fleet.clock.jump(timedelta(days=1))
            end = interval_floor(EPOCH + timedelta(days=1))  # the last interval the meters have ended
            for _ in range(8):
                for dc in fleet.concentrators.values():
                    await dc.read_cycle()
                outcome = await n2pload()
                assert outcome.counts.get("FAIL", 0) == 0
                if all(max((e for e, _ in stored_profile(engine, s)), default=None) == end for s in meters):
                    break
            for serial in meters:
                assert stored_profile(engine, serial) == expected_profile(serial, EPOCH - timedelta(days=1), end)

    run(body, 180.0)
