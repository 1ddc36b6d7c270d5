"""`hes n2pload`: one pass now over a simulated field, through typer's runner and as a subprocess.

The head-end reads the wall clock, so the field stands at now: what a pass must say (EXE, or WARN
where the simulator flags a power cut in the day collected) is asked of the simulator, not assumed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hes.db.models import IntervalValue, Meter
from hes.registry import Registry
from simulators.energy import interval_end, interval_index, profile_intervals
from simulators.fleet import FleetOptions
from tests.cli.test_plan import SEED, field, hes_env, invoke
from tests.fieldtime import interval_floor, profile_state, quarter_hour_ahead
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import FieldThread

__all__ = ["database_url", "engine", "field", "hes_env", "master_key", "registry"]

ROOT = Path(__file__).resolve().parents[2]


def interval_count(registry: Registry) -> int:
    with Session(registry.engine) as session:
        return int(session.scalar(select(func.count()).select_from(IntervalValue)) or 0)


def first_pass_state(serial: str, now: datetime) -> str:
    """A first pass at ``now`` reads the day up to the last boundary: WARN if a power cut is flagged in it."""
    first = interval_index(now - timedelta(days=1))
    return profile_state(SEED, serial, first, first + 95)


def test_a_pass_collects_every_dc_meter_once(hes_env: dict[str, str], registry: Registry, tmp_path: Path) -> None:
    now = quarter_hour_ahead()
    options = FleetOptions(concentrators=2, meters_per_dc=2, p2p=1, seed=SEED, schedule=False, loss=0.0, epoch=now)
    with FieldThread(options, now=now) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        code, out, err = invoke(["n2pload", "--concentrator", "DC0002", "--json"])
        assert code == 0, err
        data = json.loads(out)
        assert data["plan"] == "n2pload" and data["trigger"] == "n2pload" and data["state"] == "done"
        assert data["selection"] == {"kind": "concentrator", "value": "DC0002"}
        assert [(i["serial"], i["command"], i["state"]) for i in data["items"]] == [
            (serial, "profile", first_pass_state(serial, now)) for serial in ("SIM000200000", "SIM000200001")]
        assert data["summary"]["stored"] == 2 * 96 * 2  # a day of two channels, per meter
        assert interval_count(registry) == 2 * 96 * 2

        code, out, err = invoke(["n2pload", "--daily"])
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("run 2 of plan n2pload (n2pload, run:2): done; 8 items, 4 meters:")
        assert len(lines) == 9  # the summary and one line per meter and command; no p2p meter
        # DC0001's meters: a first day of profile; DC0002's: nothing due yet; everyone's daily values.
        want = {(s, "profile", first_pass_state(s, now)) for s in ("SIM000100000", "SIM000100001")}
        want |= {(s, "profile", "EXE") for s in ("SIM000200000", "SIM000200001")}
        want |= {(f"SIM000{d}0000{i}", "daily", "EXE") for d in (1, 2) for i in (0, 1)}
        assert {(s, c, state.rstrip(":")) for s, c, state in (line.split()[:3] for line in lines[1:])} == want, lines
        # the stored intervals: each once, equal to the simulator's
        mark = interval_floor(now)
        with Session(registry.engine) as session:
            rows = session.execute(select(Meter.serial, IntervalValue.interval_end, IntervalValue.value)
                                   .join(Meter, Meter.id == IntervalValue.meter_id)
                                   .where(IntervalValue.obis == "1.0.1.8.0.255")).all()
        # a day for each of the 4 DC meters, once, up to what the DCs hold, equal to the simulator's values
        assert len(rows) == 4 * 96
        first = interval_index(mark - timedelta(days=1))
        for serial in ("SIM000100000", "SIM000100001", "SIM000200000", "SIM000200001"):
            truth = {interval_end(r.interval): r.a_plus for r in profile_intervals(SEED, serial, first, first + 95)}
            assert {end: value for s, end, value in rows if s == serial} == truth

        code, out, err = invoke(["n2pload", "--concentrator", "DC9"])
        assert code == 2 and err.strip() == "hes n2pload: no concentrator 'DC9' in the registry"


def test_an_unreachable_dc_fails_its_meters_and_no_wait_leaves_the_retries(
    hes_env: dict[str, str], field: FieldThread, registry: Registry
) -> None:
    field.fleet.set_outage("DC0001")
    code, out, err = invoke(["n2pload", "--no-wait", "--timeout", "2"])
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("run 1 of plan n2pload (n2pload, run:1): running; 2 items, 2 meters: PENDING 2")
    for line in lines[1:]:
        assert " profile PENDING: retry at " in line and "last: concentrator DC0001 is unreachable" in line
    assert len(err.splitlines()) == 1 and err.startswith("hes n2pload: run 1 of plan n2pload")
    assert interval_count(registry) == 0


def test_n2pload_as_a_subprocess(hes_env: dict[str, str], field: FieldThread) -> None:
    env = {**os.environ, **hes_env}
    done = subprocess.run([sys.executable, "-m", "cli", "n2pload"], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    now = field.fleet.clock.now()
    states = Counter(first_pass_state(serial, now) for serial in ("SIM000100000", "SIM000100001"))
    counts = ", ".join(f"{state} {states[state]}" for state in ("EXE", "WARN") if states[state])
    assert lines[0].startswith(f"run 1 of plan n2pload (n2pload, run:1): done; 2 items, 2 meters: {counts};"), lines
    shown = subprocess.run([sys.executable, "-m", "cli", "plan", "show", "n2pload", "--json"], capture_output=True,
                           text=True, timeout=60, env=env, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)["run"]["summary"]
    assert {state: summary.get(state, 0) for state in ("EXE", "WARN")} == {"EXE": states["EXE"], "WARN": states["WARN"]}
