"""The plan engine with executors of the tests' own: claims, retries, DC outages, leases, support check, windows.

Every test runs on SQLite and PostgreSQL. The executors here record each call, so a test can say
exactly which (meter, command) ran how often; the field-facing tests are in ``test_field.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session

from hes.db.engine import create_engine_for
from hes.db.models import Meter, Order
from hes.db.orders import create_order
from hes.devicetypes import SHIPPED
from hes.registry import Registry
from scheduler.capabilities import record_meter_objects
from scheduler.contract import COMMANDS, READ_COMMANDS, ExecutionContext, ItemOutcome, WorkItem
from scheduler.engine import EngineOptions, Worker
from scheduler.models import PlanItem
from scheduler.plans import DEFAULT_DAILY, N2PLOAD, PlanError, Plans, PlanSpec, next_opening, window_open
from simulators.manifest import Manifest

DC = "DC0001"


class Recorder:
    """An executor that records its calls and answers what ``decide`` says (EXE by default)."""

    def __init__(self, decide: Callable[[WorkItem], ItemOutcome] | None = None, delay: float = 0.0) -> None:
        self.calls: list[WorkItem] = []
        self.decide = decide or (lambda item: ItemOutcome("EXE", stored=1))
        self.delay = delay
        self.lock = threading.Lock()

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        with self.lock:
            self.calls.append(item)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.decide(item)

    def count(self) -> Counter[tuple[str, str]]:
        return Counter((item.serial, item.command) for item in self.calls)


def worker(registry: Registry, executor: Recorder, worker_id: str = "w1", engine: Engine | None = None,
           **options: float) -> Worker:
    context = ExecutionContext(registry=registry, engine=engine or registry.engine, now=lambda: datetime.now(UTC))
    return Worker(context, dict.fromkeys(COMMANDS, executor),
                  EngineOptions(worker_id=worker_id, poll=0.05, **options))  # type: ignore[arg-type]


def work(w: Worker, run_id: int, limit: float = 30.0, **kwargs: object) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await w.work(run_id=run_id, **kwargs)  # type: ignore[arg-type]

    asyncio.run(main())


def work_in_threads(workers: list[Worker], engines: list[Engine], run_ids: list[int]) -> None:
    """Each worker in a thread of its own (its own event loop and engine) works the runs in turn; then the
    engines are disposed of and any worker's error fails the test."""
    errors: list[BaseException] = []

    def thread_body(w: Worker) -> None:
        try:
            for run_id in run_ids:
                work(w, run_id, limit=60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_body, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for e in engines:
        e.dispose()
    assert not errors, errors


@pytest.fixture
def fleet(registry: Registry, fleet_manifest: tuple[Path, Manifest]) -> list[str]:
    """The registered fleet: 1 DC with 4 meters, 3 point-to-point meters (serials)."""
    registry.import_manifest(fleet_manifest[0])
    return [m.serial for m in registry.list_meters()]


def items(engine: Engine, run_id: int) -> list[PlanItem]:
    with Session(engine) as session:
        return list(session.scalars(select(PlanItem).where(PlanItem.run_id == run_id).order_by(PlanItem.id)))


def test_every_item_runs_once_and_the_run_is_summarised(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("all-three", "all", None, ("daily", "events", "clock")))
    run = plans.start_run("all-three")
    assert run.total == 3 * len(fleet) and run.counts == {"PENDING": 3 * len(fleet)} and run.state == "running"
    executor = Recorder()
    work(worker(registry, executor), run.id)
    assert executor.count() == Counter({(s, c): 1 for s in fleet for c in ("daily", "events", "clock")})
    # a meter's commands in order, and concentrators interleaved with point-to-point meters
    order = [(i.serial, i.command) for i in executor.calls]
    for serial in fleet:
        assert [c for s, c in order if s == serial] == ["daily", "events", "clock"]
    assert all(i.correlation_id == f"run:{run.id}" and i.plan == "all-three" and i.attempt == 1
               for i in executor.calls)
    done = plans.run_info(run.id)
    assert done.state == "done" and done.finished_at is not None
    assert done.counts == {"EXE": 3 * len(fleet)} and done.meters == len(fleet) and done.stored == 3 * len(fleet)
    assert all(i.lease_owner is None and i.finished_at is not None for i in items(registry.engine, run.id))


def test_retries_follow_the_plan(registry: Registry, fleet: list[str]) -> None:
    flaky, broken, hopeless = fleet[0], fleet[1], fleet[2]
    tries: Counter[str] = Counter()

    def decide(item: WorkItem) -> ItemOutcome:
        tries[item.serial] += 1
        if item.serial == flaky and tries[flaky] < 3:
            return ItemOutcome("FAIL", reason="meter did not answer", retryable=True)
        if item.serial == broken:
            return ItemOutcome("FAIL", reason="meter not commissioned in the field", retryable=False)
        if item.serial == hopeless:
            return ItemOutcome("FAIL", reason="meter did not answer", retryable=True)
        return ItemOutcome("WARN", observations=("gap", "clock deviation"))

    plans = Plans(registry.engine)
    plans.create(PlanSpec("retrying", "all", None, ("registers",), retries=2, retry_delay_s=0.2))
    run = plans.start_run("retrying")
    executor = Recorder(decide)
    work(worker(registry, executor), run.id)
    assert tries[flaky] == 3 and tries[broken] == 1 and tries[hopeless] == 3
    assert all(tries[s] == 1 for s in fleet[3:])
    by_serial = {i.serial: i for i in items(registry.engine, run.id)}
    assert (by_serial[flaky].state, by_serial[flaky].attempts) == ("WARN", 3)
    assert by_serial[flaky].observations == "gap; clock deviation"
    assert (by_serial[broken].state, by_serial[broken].attempts, by_serial[broken].retryable) == ("FAIL", 1, False)
    assert (by_serial[hopeless].state, by_serial[hopeless].attempts) == ("FAIL", 3)
    assert by_serial[hopeless].reason == "meter did not answer"
    assert [i.attempt for i in executor.calls if i.serial == flaky] == [1, 2, 3]
    assert plans.run_info(run.id).counts == {"WARN": len(fleet) - 2, "FAIL": 2}


def test_an_unreachable_concentrator_fails_its_meters_fast_and_is_retried(registry: Registry,
                                                                       fleet: list[str]) -> None:
    dc_meters = [m.serial for m in registry.list_meters(concentrator=DC)]
    assert len(dc_meters) == 4
    reason = f"concentrator {DC} is unreachable: connection refused (a retry can help)"

    def decide(item: WorkItem) -> ItemOutcome:
        if item.concentrator_id == DC:
            return ItemOutcome("FAIL", reason=reason, retryable=True, concentrator_unreachable=True)
        return ItemOutcome("EXE")

    plans = Plans(registry.engine)
    plans.create(PlanSpec("dc-down", "all", None, ("profile", "daily"), retries=2, retry_delay_s=0.2))
    run = plans.start_run("dc-down")
    executor = Recorder(decide)
    # one item in flight per DC: the first failure is known before any other DC item starts
    work(worker(registry, executor, per_concentrator=1), run.id)
    dc_calls = [i for i in executor.calls if i.concentrator_id == DC]
    assert len(dc_calls) == 3  # one try per attempt wave, not one per meter and command
    assert [i.attempt for i in dc_calls] == [1, 2, 3]
    for item in items(registry.engine, run.id):
        if item.concentrator_id == DC:
            assert (item.state, item.attempts, item.reason, item.retryable) == ("FAIL", 3, reason, True)
        else:
            assert item.state == "EXE"
    summary = plans.run_info(run.id)
    assert summary.state == "done" and summary.counts["FAIL"] == 2 * len(dc_meters)


def test_a_dead_workers_items_are_taken_over_and_its_orders_closed(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("takeover", "all", None, ("clock",)))
    run = plans.start_run("takeover")
    dead = worker(registry, Recorder(), "dead", lease=0.3)
    claimed = dead.claim(3, run.id)  # ... and the worker dies holding them
    assert len(claimed) == 3
    with Session(registry.engine) as session, session.begin():
        order = create_order(session, claimed[0].serial, "read clock", {}, f"scheduler run:{run.id}",
                             when=datetime.now(UTC))
        number = order.order_number
    rest = Recorder()
    alive = worker(registry, rest, "alive", lease=5.0)
    assert alive.claim(10, run.id)  # claims the others, not the leased ones
    with Session(registry.engine) as session:
        owners = Counter(session.scalars(select(PlanItem.lease_owner).where(PlanItem.run_id == run.id)))
    assert owners == Counter({"dead": 3, "alive": len(fleet) - 3})
    asyncio.run(asyncio.sleep(0.4))  # the dead worker's leases expire
    second = worker(registry, rest, "alive2", lease=5.0)
    alive._release([])  # nothing to give back
    # "alive" stops too: its items return at once; "alive2" takes over both sets
    with registry.engine.begin() as connection:
        connection.execute(update(PlanItem).where(PlanItem.lease_owner == "alive")
                           .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    work(second, run.id)
    assert rest.count() == Counter({(s, "clock"): 1 for s in fleet})
    assert second.stats.taken_over == len(fleet)
    assert all(i.attempt == 1 for i in rest.calls)  # an interrupted attempt does not count
    with Session(registry.engine) as session:
        closed = session.scalar(select(Order).where(Order.order_number == number))
    assert closed is not None and closed.state == "FAIL" and closed.reason is not None
    assert closed.reason.startswith("interrupted")
    assert plans.run_info(run.id).counts == {"EXE": len(fleet)}


def test_a_late_outcome_after_a_takeover_is_not_recorded(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("late", "list", fleet[:1], ("clock",)))
    run = plans.start_run("late")
    slow = worker(registry, Recorder(), "slow", lease=0.2)
    [item] = slow.claim(1, run.id)
    asyncio.run(asyncio.sleep(0.3))
    fast = Recorder(lambda item: ItemOutcome("WARN", observations=("taken over",)))
    work(worker(registry, fast, "fast"), run.id)
    slow.record(item, ItemOutcome("EXE"))
    slow.flush()
    assert slow.stats.lost_leases == 1
    [row] = items(registry.engine, run.id)
    assert (row.state, row.observations) == ("WARN", "taken over")


def test_two_workers_share_a_run_without_running_an_item_twice(
    registry: Registry, fleet: list[str], database_url: str
) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("shared", "all", None, READ_COMMANDS))
    runs = [plans.start_run("shared") for _ in range(4)]
    executor = Recorder(delay=0.01)
    engines = [create_engine_for(database_url) for _ in range(2)]
    workers = [worker(registry, executor, f"w{n}", engine=e, batch=3, concurrency=2)
               for n, e in enumerate(engines)]
    work_in_threads(workers, engines, [r.id for r in runs])
    assert len(executor.calls) == 4 * len(fleet) * len(READ_COMMANDS)
    assert Counter(i.item_id for i in executor.calls).most_common(1)[0][1] == 1  # no item twice
    assert all(w.stats.executed > 0 for w in workers)  # both did a share
    assert all(plans.run_info(r.id).counts == {"EXE": len(fleet) * len(READ_COMMANDS)} for r in runs)


def test_a_claim_skips_a_meter_another_worker_is_working_on(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("one-at-a-time", "all", None, ("clock", "registers")))
    run = plans.start_run("one-at-a-time")
    first, second = worker(registry, Recorder(), "first"), worker(registry, Recorder(), "second")
    [taken] = first.claim(1, run.id)
    others = second.claim(100, run.id)
    # Every item of every other meter, none of the meter "first" holds (its other command waits).
    assert sorted((i.serial, i.command) for i in others) == sorted(
        (s, c) for s in fleet if s != taken.serial for c in ("clock", "registers"))
    assert second.claim(100, run.id) == []
    # Its own running item does not hold "first" back: its units of one meter run in turn (``Gate.meters``).
    [rest] = first.claim(100, run.id)
    assert (rest.serial, rest.command) == (taken.serial, {"clock", "registers"}.difference({taken.command}).pop())


def test_two_workers_finishing_a_runs_last_items_at_once_close_it(
    registry: Registry, fleet: list[str], database_url: str
) -> None:
    """Each worker's check for open items of the run waits until the other's has come too: checked inside the
    transactions that write the outcomes, each would see the other's item still RUNNING, and no one would close
    the run (seen on PostgreSQL: a run that stayed "running" for ever)."""
    plans = Plans(registry.engine)
    plans.create(PlanSpec("last-two", "list", fleet[:2], ("clock",)))
    run = plans.start_run("last-two")
    engines = [create_engine_for(database_url) for _ in range(2)]
    both_checking = threading.Barrier(2)

    def meet(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "GROUP BY plan_items.run_id" in statement:
            with contextlib.suppress(threading.BrokenBarrierError):  # SQLite: the other waits for our commit
                both_checking.wait(timeout=3)

    for e in engines:
        event.listen(e, "before_cursor_execute", meet)
    workers = [worker(registry, Recorder(), f"w{n}", engine=e) for n, e in enumerate(engines)]
    for w in workers:
        [item] = w.claim(1, run.id)
        w.record(item, ItemOutcome("EXE"))
    threads = [threading.Thread(target=w.flush) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for e in engines:
        e.dispose()
    info = plans.run_info(run.id)
    assert (info.state, info.counts) == ("done", {"EXE": 2})


class OneSessionPerMeter(Recorder):
    """A Recorder that notes when two calls (of one worker or of two) are on the same meter at once."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.busy: Counter[str] = Counter()
        self.clashes: list[tuple[str, str]] = []

    async def __call__(self, context: ExecutionContext, item: WorkItem) -> ItemOutcome:
        with self.lock:
            if self.busy[item.serial]:
                self.clashes.append((item.serial, item.command))
            self.busy[item.serial] += 1
        try:
            return await super().__call__(context, item)
        finally:
            with self.lock:
                self.busy[item.serial] -= 1


def test_a_workers_items_of_one_meter_run_one_after_the_other(registry: Registry, fleet: list[str]) -> None:
    """Counters are reserved as an item prepares: two at once on a meter could reach it in the other order."""
    plans = Plans(registry.engine)
    plans.create(PlanSpec("in-turn", "list", fleet[:1], READ_COMMANDS))
    run = plans.start_run("in-turn")
    executor = OneSessionPerMeter(delay=0.02)
    w = worker(registry, executor, batch=len(READ_COMMANDS), concurrency=len(READ_COMMANDS))
    work(w, run.id)
    assert executor.count() == Counter({(fleet[0], c): 1 for c in READ_COMMANDS})
    assert executor.clashes == []


def test_two_workers_never_work_on_one_meter_at_once(
    registry: Registry, fleet: list[str], database_url: str
) -> None:
    """A meter serves one association at a time: two workers' sessions would interleave its counters."""
    plans = Plans(registry.engine)
    plans.create(PlanSpec("per-meter", "all", None, READ_COMMANDS))
    run = plans.start_run("per-meter")
    executor = OneSessionPerMeter(delay=0.02)
    engines = [create_engine_for(database_url) for _ in range(2)]
    workers = [worker(registry, executor, f"w{n}", engine=e, batch=2, concurrency=2, flush_every=0.01)
               for n, e in enumerate(engines)]
    work_in_threads(workers, engines, [run.id])
    assert executor.count() == Counter({(s, c): 1 for s in fleet for c in READ_COMMANDS})
    assert executor.clashes == []
    assert all(w.stats.executed > 0 for w in workers)  # both did a share
    assert plans.run_info(run.id).counts == {"EXE": len(fleet) * len(READ_COMMANDS)}


def test_an_unsupported_command_is_reported_and_not_run(registry: Registry, fleet: list[str],
                                                        tmp_path: Path) -> None:
    without_daily, discovered = fleet[0], fleet[1]
    # A device type added as a file: a make and model without daily values.
    document = json.loads((SHIPPED / "idis-default.json").read_text())
    document.update(name="acme-am100", match={"make": "Acme", "model": "AM-100"})
    del document["objects"]["daily_values"]
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(document))
    registry.add_device_type(path, who="tester")
    with Session(registry.engine) as session, session.begin():
        # Found by make and model (no type named for it).
        session.execute(update(Meter).where(Meter.serial == without_daily).values(make="Acme", model="AM-100",
                                                                                  device_type=None))
        discovered_id = session.scalar(select(Meter.id).where(Meter.serial == discovered))
    assert discovered_id is not None
    # the meter's own object list counts too: this one has no event log and no profile
    record_meter_objects(registry.engine, discovered_id, ["8/0.0.1.0.0.255", "7/1.0.98.1.0.255"], "test")
    plans = Plans(registry.engine)
    plans.create(PlanSpec("checked", "all", None, ("profile", "daily", "events")))
    run = plans.start_run("checked")
    executor = Recorder()
    work(worker(registry, executor), run.id)
    ran = executor.count()
    assert (without_daily, "daily") not in ran and ran[(without_daily, "profile")] == 1
    assert (discovered, "profile") not in ran and (discovered, "events") not in ran
    assert ran[(discovered, "daily")] == 1
    assert len(ran) == 3 * len(fleet) - 3
    rows = {(i.serial, i.command): i for i in items(registry.engine, run.id)}
    daily = rows[(without_daily, "daily")]
    assert daily.state == "UNSUPPORTED" and daily.attempts == 0 and daily.reason is not None
    assert "daily objects in device type acme-am100" in daily.reason
    assert rows[(discovered, "events")].state == "UNSUPPORTED"
    assert "read from the meter" in (rows[(discovered, "events")].reason or "")
    assert plans.run_info(run.id).counts["UNSUPPORTED"] == 3


def test_a_closed_window_holds_the_items_until_it_opens(registry: Registry, fleet: list[str]) -> None:
    now = datetime.now(UTC)
    start = (now + timedelta(hours=2)).strftime("%H:%M")
    end = (now + timedelta(hours=3)).strftime("%H:%M")
    plans = Plans(registry.engine)
    plans.create(PlanSpec("night", "all", None, ("clock",), window=(start, end)))
    run = plans.start_run("night")
    executor = Recorder()
    work(worker(registry, executor), run.id, wait_retries=False)
    assert executor.calls == []
    opening = next_opening((start, end), now)
    assert timedelta(hours=1) < opening - now <= timedelta(hours=2)
    assert all(i.state == "PENDING" and abs(i.next_attempt_at - opening) < timedelta(minutes=1)
               for i in items(registry.engine, run.id))
    assert window_open(("22:00", "02:00"), datetime(2024, 1, 1, 1, 0, tzinfo=UTC))
    assert not window_open(("22:00", "02:00"), datetime(2024, 1, 1, 3, 0, tzinfo=UTC))


def test_a_newly_registered_meter_is_in_the_next_default_daily_run(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    before = plans.start_run(DEFAULT_DAILY)
    assert before.total == len(fleet) and before.commands == ("daily",)
    registry.add_meter("NEW0001", host="127.0.0.1", port=4999)
    after = plans.start_run(DEFAULT_DAILY, trigger="schedule")
    assert after.total == len(fleet) + 1
    assert [i.command for i in plans.items(after.id) if i.serial == "NEW0001"] == ["daily"]
    registry.decommission("NEW0001")
    assert plans.start_run(DEFAULT_DAILY).total == len(fleet)  # out of service: out of the plan
    n2pload = plans.start_run(N2PLOAD, trigger="n2pload")
    assert {i.serial for i in plans.items(n2pload.id)} == {m.serial for m in registry.list_meters(concentrator=DC)}
    assert {p.name for p in plans.list_plans() if p.builtin} == {DEFAULT_DAILY, N2PLOAD}


def test_plan_definitions_are_checked(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    bad = [
        PlanSpec("x y", "all"),
        PlanSpec("a", "concentrator", "DC9999"),
        PlanSpec("a", "list", []),
        PlanSpec("a", "all", retries=-1),
        PlanSpec("a", "all", range_from="2024-03-02T00:00Z", range_to="2024-03-01T00:00Z"),
        PlanSpec("a", "all", trigger_kind="cron", trigger_value="61 * * * *"),
        PlanSpec("a", "all", trigger_kind="interval", trigger_value="soon"),
        PlanSpec(DEFAULT_DAILY, "all"),
    ]
    for spec in bad:
        with pytest.raises(PlanError):
            plans.create(spec)
    with pytest.raises(PlanError):
        plans.start_run("nope")
    with pytest.raises(PlanError):
        plans.tag("feeder-7", [fleet[0], "NOPE"])
    assert plans.tag("feeder-7", fleet[:2]) == 2
    plans.create(PlanSpec("tagged", "tag", "feeder-7", ("clock",)))
    assert {i.serial for i in plans.items(plans.start_run("tagged").id)} == set(fleet[:2])
    listed = PlanSpec("listed", "list", [fleet[0], "GHOST1"], ("clock",))
    plans.create(listed)
    run = plans.start_run("listed")
    assert run.total == 1 and run.notes is not None and "GHOST1" in run.notes


def test_higher_priority_runs_are_claimed_first(registry: Registry, fleet: list[str]) -> None:
    plans = Plans(registry.engine)
    plans.create(PlanSpec("routine", "all", None, ("clock",), priority=0))
    plans.create(PlanSpec("urgent", "all", None, ("registers",), priority=9))
    routine, urgent = plans.start_run("routine"), plans.start_run("urgent")
    executor = Recorder()
    w = worker(registry, executor, batch=3, concurrency=1)
    claimed = w.claim(len(fleet) + 2)  # the urgent run started later, and is claimed first
    assert [i.run_id for i in claimed] == [urgent.id] * len(fleet) + [routine.id] * 2
    w._release(claimed)

    async def main() -> None:
        # the daemon's way of working: no run id, until stopped (here: once both runs are done)
        stop = asyncio.Event()
        task = asyncio.create_task(w.work(stop=stop))
        async with asyncio.timeout(30):
            while not all(plans.run_info(r.id).state == "done" for r in (routine, urgent)):
                await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(main())
    assert [i.command for i in executor.calls] == ["registers"] * len(fleet) + ["clock"] * len(fleet)


class Together(Recorder):
    """A ``GroupExecutor``: records which items came together in one ``many`` call."""

    together = "pair"

    def __init__(self, decide: Callable[[WorkItem], ItemOutcome] | None = None) -> None:
        super().__init__(decide)
        self.groups: list[list[tuple[str, str]]] = []

    async def many(self, context: ExecutionContext, group: list[WorkItem]) -> list[ItemOutcome]:
        self.groups.append([(item.serial, item.command) for item in group])
        return [await self(context, item) for item in group]


def test_a_meters_items_that_go_together_run_in_one_call(registry: Registry, fleet: list[str]) -> None:
    """Profile and daily (N2PLoad's executors share a ``together`` key) reach the executor as one group per
    meter; other commands still run one by one; outcomes are recorded per item, retries per item."""
    plans = Plans(registry.engine)
    plans.create(PlanSpec("pairs", "all", None, ("profile", "daily", "clock"), retries=1, retry_delay_s=0.0))
    run = plans.start_run("pairs")
    fails: Counter[str] = Counter()

    def decide(item: WorkItem) -> ItemOutcome:
        if item.serial == fleet[0] and item.command == "daily" and not fails[item.serial]:
            fails[item.serial] += 1
            return ItemOutcome("FAIL", reason="daily values did not come", retryable=True)
        return ItemOutcome("EXE", stored=2)

    together, alone = Together(decide), Recorder()
    context = ExecutionContext(registry=registry, engine=registry.engine, now=lambda: datetime.now(UTC))
    executors = {"profile": together, "daily": together, "clock": alone}
    work(Worker(context, executors, EngineOptions(worker_id="w", poll=0.05, batch=1000)), run.id)  # type: ignore[arg-type]
    pairs = [group for group in together.groups if len(group) == 2]
    assert sorted(pairs) == sorted([[(s, "profile"), (s, "daily")] for s in fleet])
    # The failed daily item was retried alone, through the executor's own call.
    assert [group for group in together.groups if len(group) == 1] == []
    assert Counter((i.serial, i.command) for i in together.calls)[(fleet[0], "daily")] == 2
    assert alone.count() == Counter({(s, "clock"): 1 for s in fleet})
    done = plans.run_info(run.id)
    assert done.state == "done" and done.counts == {"EXE": 3 * len(fleet)}


def test_a_worker_works_with_the_collection_heap_settings(registry: Registry, fleet: list[str]) -> None:
    """While it works, the heap alive at its start is frozen and young collections are rarer
    (``hes.heap``); the settings come back when it returns."""
    import gc

    from hes.heap import YOUNG_THRESHOLD

    seen: list[tuple[int, int]] = []

    def decide(item: WorkItem) -> ItemOutcome:
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return ItemOutcome("EXE", stored=1)

    before = gc.get_threshold()
    plans = Plans(registry.engine)
    plans.create(PlanSpec("clocks", "all", None, ("clock",)))
    work(worker(registry, Recorder(decide)), plans.start_run("clocks").id)
    assert len(seen) == len(fleet)
    assert all(threshold >= YOUNG_THRESHOLD and frozen > 0 for threshold, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
