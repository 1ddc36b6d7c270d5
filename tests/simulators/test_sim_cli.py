"""`hes sim fleet`'s options for DC clocks, table churn and make B: refused in one line, or passed to the field."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from simulators.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dc-clock-drift", "-3"], "DC clock drift"),
        (["--dc-clock-drift", "nan"], "DC clock drift"),
        (["--dc-clock-offset", "1e12"], "DC clock offset"),
        (["--table-churn", "-1"], "table churn"),
        (["--make-b-share", "1.5"], "make B share"),
        (["--make-b", "SIM000900000"], "--make-b SIM000900000: no such meter"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "fleet", "--manifest", str(tmp_path / "m.json"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hes sim: ") and message in lines[0]
    assert not (tmp_path / "m.json").exists()


def test_options_reach_the_field_and_a_csv_manifest_is_written(tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "fleet", "--concentrators", "1", "--meters-per-dc", "3", "--p2p", "1",
         "--seed", "4", "--time-scale", "0", "--manifest", str(manifest), "--make-b-share", "1",
         "--dc-clock-drift", "5", "--dc-clock-offset", "60", "--table-churn", "2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # once everything listens and the manifest is written
        assert "manifest" in line, line
        loaded = read_manifest(manifest)
        assert loaded.seed is None  # CSV carries no x-simulation
        devices = [*loaded.concentrators[0].meters, *loaded.p2p]
        assert len(devices) == 4 and {d.device_type for d in devices} == {"hes-sim-b"}
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    assert process.returncode == 0, err
    assert err.strip() == "" and "stopped" in out
