"""`hes run` daemons on one fleet: one killed with SIGKILL mid-run and started again, two sharing a run.

The daemon (``hes run --only scheduler``, a real subprocess) works on an N2PLoad run over a
simulated field served by the test process. ``HES_CRASH_AT=plan-item-before-record`` makes it kill
itself once the first meter's intervals are stored and before that item's outcome is recorded,
with other meters in flight. A second daemon takes the dead one's items over when their lease
expires and finishes the run: every interval the DC holds is then stored exactly once and equals
the simulator's value, and every item is final.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hes.crash import CRASH_ENV
from hes.db.models import IntervalValue, Meter
from hes.registry import Registry
from scheduler.models import PlanItem
from scheduler.plans import Plans, PlanSpec
from simulators.energy import interval_end, interval_index, profile_intervals
from simulators.fleet import FleetOptions
from tests.fieldtime import interval_floor, profile_state
from tests.hes.test_commands import FieldThread

REPO = Path(__file__).resolve().parents[2]
SEED = 5
PERIOD = timedelta(minutes=15)


def daemon(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", "run", "--only", "scheduler", "--worker-id", "crash-test"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def states(engine: Engine, run_id: int) -> list[tuple[str, str, int]]:
    with Session(engine) as session:
        return [(i.serial, i.state, i.attempts) for i in
                session.scalars(select(PlanItem).where(PlanItem.run_id == run_id).order_by(PlanItem.id))]


def unfinished(engine: Engine, run_id: int) -> str:
    """What keeps a run open, in a line short enough to be printed whole: its state and its items not final."""
    rows = states(engine, run_id)
    open_items = [row for row in rows if row[1] in ("PENDING", "RUNNING")]
    run_state = Plans(engine).run_info(run_id).state
    return f"run {run_id} {run_state}; {len(open_items)} of {len(rows)} items open: {open_items}"


def stored(engine: Engine, serial: str) -> dict[tuple[datetime, str], float]:
    with Session(engine) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
        rows = session.execute(select(IntervalValue.interval_end, IntervalValue.obis, IntervalValue.value)
                               .where(IntervalValue.meter_id == meter_id)).all()
    out = {(end, obis): value for end, obis, value in rows}
    assert len(out) == len(rows)
    return out


def test_a_daemon_killed_mid_run_and_started_again_stores_every_interval_exactly_once(
    registry: Registry, database_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    options = FleetOptions(concentrators=2, meters_per_dc=6, p2p=0, seed=SEED, schedule=False, loss=0.0, epoch=now)
    env = {**os.environ, "HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_SCHEDULER_LEASE": "3",
           "HES_SCHEDULER_POLL": "0.2", "HES_SCHEDULER_PER_DC": "2"}
    # What each DC holds: everything up to the last 15-minute boundary before the field started.
    mark = interval_floor(now)
    with FieldThread(options, now=now) as field:
        registry.import_manifest(field.write_manifest(tmp_path / "fleet.json"))
        serials = [m.serial for m in registry.list_meters()]
        plans = Plans(registry.engine)
        # From a fixed instant: a first pass otherwise looks back a day from whenever it runs.
        start = (mark - timedelta(days=1)).isoformat()
        plans.create(PlanSpec("crash", "concentrators", None, ("profile",), range_from=start))
        run = plans.start_run("crash")

        killed = daemon({**env, CRASH_ENV: "plan-item-before-record"})
        _, err = killed.communicate(timeout=60)
        assert killed.returncode == -signal.SIGKILL, err
        after_kill = states(registry.engine, run.id)
        assert any(state == "RUNNING" for _, state, _ in after_kill)  # the dead worker's leases
        assert any(stored(registry.engine, s) for s in serials), err  # it had stored data
        assert plans.run_info(run.id).state == "running"

        restarted = daemon(env)
        try:
            deadline = time.monotonic() + 60
            while plans.run_info(run.id).state != "done":
                assert restarted.poll() is None, restarted.communicate()[1]
                assert time.monotonic() < deadline, unfinished(registry.engine, run.id)
                time.sleep(0.2)
        finally:
            restarted.send_signal(signal.SIGTERM)
            _, err = restarted.communicate(timeout=30)
        assert restarted.returncode == 0, err

    final = states(registry.engine, run.id)
    assert len(final) == len(serials) == 12
    assert all(state in ("EXE", "WARN") and attempts == 1 for _, state, attempts in final), final
    for serial in serials:
        got = stored(registry.engine, serial)
        ends = sorted({end for end, _ in got})
        # contiguous, up to what the DC holds, from the plan's start, both channels
        assert ends[-1] == mark and len(ends) == 96, (serial, ends[:2], ends[-2:])
        assert ends == [ends[0] + n * PERIOD for n in range(len(ends))]
        expected: dict[tuple[datetime, str], float] = {}
        for row in profile_intervals(SEED, serial, interval_index(ends[0] - PERIOD), interval_index(mark) - 1):
            expected[interval_end(row.interval), "1.0.1.8.0.255"] = row.a_plus
            expected[interval_end(row.interval), "1.0.2.8.0.255"] = row.a_minus
        assert got == expected


def test_two_daemons_share_a_run_and_read_no_meter_twice(registry: Registry, database_url: str,
                                                         tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    options = FleetOptions(concentrators=3, meters_per_dc=8, p2p=0, seed=SEED, schedule=False, loss=0.0, epoch=now)
    env = {**os.environ, "HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_SCHEDULER_POLL": "0.1",
           "HES_SCHEDULER_PER_DC": "1", "HES_SCHEDULER_CONCURRENCY": "2"}
    mark = interval_floor(now)
    with FieldThread(options, now=now) as field:
        registry.import_manifest(field.write_manifest(tmp_path / "fleet.json"))
        for dc in field.fleet.concentrators:
            field.fleet.faults(dc).answer_delay = 0.1  # a DC's answers take a while, as over a cellular link
        plans = Plans(registry.engine)
        plans.create(PlanSpec("shared", "concentrators", None, ("profile",),
                              range_from=(mark - timedelta(days=1)).isoformat()))
        workers = [subprocess.Popen([sys.executable, "-m", "cli", "run", "--only", "scheduler", "--worker-id", name],
                                    env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for name in ("daemon-a", "daemon-b")]
        try:
            time.sleep(2)  # both started and polling before there is work
            run = plans.start_run("shared")
            deadline = time.monotonic() + 60
            while plans.run_info(run.id).state != "done":
                assert all(w.poll() is None for w in workers), [w.communicate()[1] for w in workers]
                assert time.monotonic() < deadline, unfinished(registry.engine, run.id)
                time.sleep(0.2)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            errors = [w.communicate(timeout=30)[1] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], errors
    items = plans.items(run.id)
    assert len(items) == 24
    # each item claimed once (a second claim would count a second attempt), and both daemons did a share
    assert all(i.attempts == 1 for i in items), items
    # the day from the plan's start to the mark: WARN where the simulator flags a power cut in it
    first = interval_index(mark - timedelta(days=1))
    assert {(i.serial, i.state) for i in items} == {(i.serial, profile_state(SEED, i.serial, first, first + 95))
                                                    for i in items}
    assert {i.worked_by for i in items} == {"daemon-a", "daemon-b"}, errors
    for item in items:
        got = stored(registry.engine, item.serial)
        assert len(got) == 2 * 96 and max(end for end, _ in got) == mark
