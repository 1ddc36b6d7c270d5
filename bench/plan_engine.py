"""Plan engine overhead: head-end CPU per work item with a no-op executor, on a fresh SQLite database.

``python -m bench.plan_engine --meters 5000 --json`` registers that many meters (a bulk insert,
not timed), creates a plan with ``--commands`` over all of them and measures the process CPU time
(``time.process_time``) of (1) starting a run (selection, support check, bulk insert of the items)
and (2) one worker claiming, "executing" (an executor that returns EXE at once) and recording every
item, including closing the run with its summary. The per-item figure is what the engine adds to
each meter-command on top of the executor's own work; it repeats ``--repeat`` times and reports the
median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from hes.db import create_engine_for, upgrade
from hes.db.models import Meter
from hes.keys import load_master_key
from hes.registry import Registry
from scheduler.contract import COMMANDS, ExecutionContext, ItemOutcome, WorkItem
from scheduler.engine import EngineOptions, Worker
from scheduler.plans import Plans, PlanSpec, parse_commands

__all__ = ["main", "measure"]


async def _noop(context: ExecutionContext, item: WorkItem) -> ItemOutcome:
    return ItemOutcome("EXE")


def measure(meters: int, commands: str, folder: Path, run: int) -> dict[str, float]:
    engine = create_engine_for(f"sqlite:///{folder / f'bench-{run}.db'}")
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(Meter), [
            {"serial": f"BENCH{n:07d}", "state": "commissioned", "host": "127.0.0.1", "port": 4059,
             "interface": "wrapper", "client_sap": 1, "security_policy": "none", "created_at": now,
             "updated_at": now} for n in range(meters)])
    registry = Registry(engine, load_master_key(folder / "master.key"))
    plans = Plans(engine)
    chosen = parse_commands(commands)
    plans.create(PlanSpec("bench", "all", None, chosen))
    cpu = time.process_time()
    started = plans.start_run("bench")
    start_cpu = time.process_time() - cpu
    context = ExecutionContext(registry=registry, engine=engine, now=lambda: datetime.now(UTC))
    worker = Worker(context, dict.fromkeys(COMMANDS, _noop), EngineOptions(worker_id="bench", poll=0.01))
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(worker.work(run_id=started.id))
    work_cpu, work_wall = time.process_time() - cpu, time.perf_counter() - wall
    done = plans.run_info(started.id)
    engine.dispose()
    if done.state != "done" or done.counts.get("EXE") != started.total:
        raise RuntimeError(f"the run did not complete: {done.counts}")
    items = started.total
    return {"items": items, "start_cpu_s": start_cpu, "work_cpu_s": work_cpu, "work_wall_s": work_wall,
            "cpu_us_per_item": (start_cpu + work_cpu) / items * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=5000)
    parser.add_argument("--commands", default="profile")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        runs = [measure(args.meters, args.commands, Path(folder), n) for n in range(args.repeat)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    result = {"meters": args.meters, "commands": args.commands, "repeat": args.repeat, "median": median}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{int(median['items'])} items: {median['cpu_us_per_item']:.0f} us CPU per item "
              f"(start {median['start_cpu_s']:.2f} s, work {median['work_cpu_s']:.2f} s CPU, "
              f"{median['work_wall_s']:.2f} s wall), median of {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
