"""bench.collect on a tiny fleet: the JSON it prints has the keys, positive figures, and what was stored is right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_collect_benchmark_prints_its_figures_and_stores_what_it_read() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.collect", "--concentrators", "2", "--meters-per-dc", "3", "--gurux-meters", "2",
         "--concurrency", "4", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for key in ("meters", "hes_cpu_ms_per_meter_day", "hes_meters_per_s", "gurux_cpu_ms_per_meter_day"):
        assert isinstance(data[key], int | float) and data[key] > 0, key
    assert data["meters"] == 6 and data["gurux_meters"] == 2
    stored = data["hes_stored"]
    assert stored["ok"] and stored["stored_intervals"] == 6 * 96 * 2 and stored["stored_daily_values"] == 6 * 4
    assert stored["sample_meters_checked"] == 5 and stored["sample_mismatches"] == 0
    assert data["hes_states"].get("FAIL", 0) == 0 and data["hes_fail_reasons"] == []
    # The baseline read the same day for its meters and stored it with the same storage code.
    assert data["gurux_stored_intervals"] == 2 * 96 * 2 and data["gurux_stored_daily_values"] == 2 * 4


def test_collect_benchmark_through_the_plan_engine() -> None:
    """``--engine``: the day pass as a plan run; every item of the run EXE (the summary's counts), all stored."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.collect", "--concentrators", "1", "--meters-per-dc", "4", "--gurux-meters", "0",
         "--concurrency", "4", "--engine", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["day_pass"].startswith("plan engine") and data["hes_cpu_ms_per_meter_day"] > 0
    assert data["hes_states"] == {"EXE": 8}  # 4 meters x (profile, daily), recorded by the engine
    assert data["hes_stored"]["ok"] and data["hes_stored"]["stored_intervals"] == 4 * 96 * 2
