"""``hes demo``: the session runs, every value is checked, and a wrong value is caught."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.main import app
from hes import demo as demo_module
from protocols.axdr import Data, encode_data

runner = CliRunner()


def test_demo_session_reads_and_checks_everything() -> None:
    report = demo_module.run_session()
    assert [s.result for s in report.steps] == ["EXE"] * 8
    assert report.checked == 4 and report.mismatches == []
    assert len(report.rows) == 96
    # the rows are the meter's own function, interval by interval
    expected = report.rows[0].values[1]
    assert expected == sum(demo_module.interval_energy("DEMO00000001", i)[0] for i in range(97))
    # invocation counters strictly increase and were handed out before use
    used = report.invocation_counters_used
    assert used == sorted(set(used)) and used[0] == 1


def test_demo_command_prints_the_table() -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "Read load profile" in result.stdout
    assert "0 mismatches" in result.stdout


def test_a_wrong_value_from_the_meter_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = demo_module.DemoMeter.attribute

    def lying(self: demo_module.DemoMeter, request: object) -> object:
        value = original(self, request)  # type: ignore[arg-type]
        if getattr(request, "descriptor").instance_id == demo_module.A_PLUS:  # noqa: B009
            return encode_data(Data.double_long_unsigned(1))
        return value

    monkeypatch.setattr(demo_module.DemoMeter, "attribute", lying)
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1
    assert "A+: read 1" in result.stderr


def test_demo_as_a_real_process() -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "demo"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0 mismatches" in done.stdout
