"""`hes report completeness`: through typer's runner and as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from cli.report import parse_day
from hes.db.readings import IntervalRow, store_intervals
from hes.keys import MasterKey
from hes.registry import Registry
from scheduler.reports import ReportError
from tests.hes.conftest import database_url, engine, master_key, registry

__all__ = ["database_url", "engine", "master_key", "registry"]  # the database fixtures, on both databases

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2024, 2, 29)
START = datetime(2024, 2, 29, tzinfo=UTC)


@pytest.fixture
def hes_env(database_url: str, master_key: MasterKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[
        str, str]:
    env = {"HES_DATABASE_URL": database_url, "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
           "HES_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def fill(registry: Registry) -> None:
    """Three meters in service since January: 96, 90 and 0 intervals stored for DAY; one added on DAY."""
    early = Registry(registry.engine, registry.master_key, clock=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    ids = {serial: early.add_meter(serial, host="127.0.0.1", port=4059).id for serial in ("M1", "M2", "M3")}
    late = Registry(registry.engine, registry.master_key, clock=lambda: START + timedelta(hours=9))
    late.add_meter("M4", host="127.0.0.1", port=4059)
    rows = [IntervalRow(ids["M1"], "1.0.1.8.0.255", 2, START + timedelta(minutes=15 * k), 100 + k)
            for k in range(1, 97)]
    rows += [IntervalRow(ids["M2"], obis, 2, START + timedelta(minutes=15 * k), k)
             for k in range(1, 91) for obis in ("1.0.1.8.0.255", "1.0.2.8.0.255")]
    rows.append(IntervalRow(ids["M3"], "1.0.1.8.0.255", 2, START, 1))  # the day before's last interval
    with Session(registry.engine) as session, session.begin():
        store_intervals(session, rows)


def test_completeness_json_and_plain(hes_env: dict[str, str], registry: Registry) -> None:
    fill(registry)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "completeness", "--day", "2024-02-29", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["day"] == "2024-02-29" and data["meters"] == 3 and data["meters_complete"] == 1
    assert data["meters_complete_share"] == round(1 / 3, 6)
    assert data["intervals_expected"] == 288 and data["intervals_stored"] == 186
    assert data["intervals_share"] == round(186 / 288, 6)
    assert data["below_threshold"] == ["M2", "M3"]
    assert data["excluded"] == [{"serial": "M4", "reason": "commissioned during the day"}]
    for key in ("meters_complete_share", "intervals_share"):
        assert 0 <= data[key] <= 1

    loose = json.loads(runner.invoke(app, ["report", "completeness", "--day", "2024-02-29", "--json",
                                           "--threshold", "90"]).stdout)
    assert loose["below_threshold"] == ["M3"]

    plain = runner.invoke(app, ["report", "completeness", "--day", "2024-02-29"])
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("completeness of 2024-02-29 (UTC day, as of ")
    assert lines[0].endswith("3 meters, 1 complete (33.3 %); 186 of 288 intervals stored (64.6 %)")
    assert lines[1] == "below 98 %: 2 meter(s)"
    assert lines[2].split() == ["M2", "90/96", "93.8", "%"] and lines[3].split() == ["M3", "0/96", "0.0", "%"]
    assert lines[4] == "not judged: M4 (commissioned during the day)"


@pytest.mark.parametrize(("args", "message"), [
    (["--day", "29/02/2024"], "--day '29/02/2024' is not a day"),
    (["--day", "2024-02-30"], "--day '2024-02-30' is not a day"),
    (["--day", "2024-02-29", "--threshold", "120"], "threshold 120.0 % is not between 0 and 100"),
])
def test_bad_arguments_exit_2_with_one_line(hes_env: dict[str, str], args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["report", "completeness", *args])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("hes report: ") and message in line


def test_parse_day() -> None:
    assert parse_day("today", date(2024, 3, 1)) == date(2024, 3, 1)
    assert parse_day("Yesterday", date(2024, 3, 1)) == DAY
    with pytest.raises(ReportError):
        parse_day("")


def test_completeness_as_a_subprocess(hes_env: dict[str, str], registry: Registry) -> None:
    fill(registry)
    env = {**os.environ, **hes_env}
    done = subprocess.run([str(Path(sys.executable).parent / "hes"), "report", "completeness", "--day", "2024-02-29",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["below_threshold"] == ["M2", "M3"] and data["intervals_stored"] == 186
    bad = subprocess.run([str(Path(sys.executable).parent / "hes"), "report", "completeness", "--day", "soon"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
