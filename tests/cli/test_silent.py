"""`hes silent`: meters and concentrators that stopped sending data, through typer's runner and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from cli.silent import parse_since
from hes.db.models import Concentrator, IntervalValue
from hes.db.readings import EventRow, IntervalRow, RegisterRow, store_events, store_intervals, store_registers
from hes.registry import Registry
from scheduler.reports import ReportError
from tests.cli.test_report import hes_env
from tests.hes.conftest import database_url, engine, fleet_manifest, master_key, registry

__all__ = ["database_url", "engine", "fleet_manifest", "hes_env", "master_key", "registry"]

ROOT = Path(__file__).resolve().parents[2]


def fill(registry: Registry, manifest: Path) -> datetime:
    """The fleet manifest's DC (4 meters) and 3 p2p meters; data for some of them, old data for one."""
    registry.import_manifest(manifest)
    now = datetime.now(UTC)
    ids = {m.serial: m.id for m in registry.list_meters()}
    when = now - timedelta(hours=1)
    with Session(registry.engine) as session, session.begin():
        store_intervals(session, [IntervalRow(ids["SIM000100000"], "1.0.1.8.0.255", 2, when, 1)])
        store_registers(session, [RegisterRow(ids["SIM000100001"], "1.0.1.8.0.255", when, 1)])
        store_events(session, [EventRow(ids["P2P000000000"], "0.0.99.98.0.255", 1, when)])
        store_intervals(session, [IntervalRow(ids["SIM000100002"], "1.0.1.8.0.255", 2, when, 1)])
    with Session(registry.engine) as session, session.begin():
        # SIM000100002's data was stored three days ago, as far as the database says.
        session.execute(update(IntervalValue).where(IntervalValue.meter_id == ids["SIM000100002"]).values(
            collected_at=now - timedelta(days=3)))
        session.execute(update(Concentrator).values(last_contact=now - timedelta(days=5), reachable=False))
    return now


def test_silent_json_and_plain(hes_env: dict[str, str], registry: Registry,
                               fleet_manifest: tuple[Path, object]) -> None:
    now = fill(registry, fleet_manifest[0])
    registry.decommission("P2P000000002")  # out of service: not silent, just gone
    runner = CliRunner()
    result = runner.invoke(app, ["silent", "--since", "48h", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    since = datetime.fromisoformat(data["since"].replace("Z", "+00:00"))
    assert abs(since - (now - timedelta(hours=48))) < timedelta(minutes=1)
    meters = {m["serial"]: m for m in data["meters"]}
    assert set(meters) == {"SIM000100002", "SIM000100003", "P2P000000001"}
    assert meters["SIM000100003"]["last_contact"] is None and meters["SIM000100003"]["concentrator"] == "DC0001"
    old = datetime.fromisoformat(meters["SIM000100002"]["last_contact"].replace("Z", "+00:00"))
    assert abs(old - (now - timedelta(days=3))) < timedelta(seconds=1)
    (dc,) = data["concentrators"]
    assert dc["id"] == "DC0001" and dc["reachable"] is False and dc["meters"] == 4
    assert datetime.fromisoformat(dc["last_contact"].replace("Z", "+00:00")) < now - timedelta(days=4)

    recent = json.loads(runner.invoke(app, ["silent", "--since", "6d", "--json"]).stdout)
    assert {m["serial"] for m in recent["meters"]} == {"SIM000100003", "P2P000000001"}
    assert recent["concentrators"] == []

    plain = runner.invoke(app, ["silent"])
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("silent since ") and lines[0].endswith(": 3 meter(s), 1 concentrator(s)")
    assert lines[1].startswith("concentrator DC0001") and "unreachable  4 meter(s)" in lines[1]
    assert any(line.split()[:4] == ["meter", "SIM000100003", "DC0001", "last"] and line.endswith("never")
               for line in lines)


def test_bad_since_exits_2(hes_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["silent", "--since", "a while"])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line == "hes silent: --since 'a while' is neither a duration (48h, 2d, 90m) nor an ISO 8601 instant"


def test_parse_since() -> None:
    now = datetime(2024, 3, 1, tzinfo=UTC)
    assert parse_since("48h", now) == now - timedelta(hours=48)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("1w", now) == now - timedelta(days=7)
    assert parse_since("2024-02-01T00:00", now) == datetime(2024, 2, 1, tzinfo=UTC)
    with pytest.raises(ReportError):
        parse_since("-3h", now)


def test_silent_as_a_subprocess(hes_env: dict[str, str], registry: Registry,
                                fleet_manifest: tuple[Path, object]) -> None:
    fill(registry, fleet_manifest[0])
    env = {**os.environ, **hes_env}
    done = subprocess.run([str(Path(sys.executable).parent / "hes"), "silent", "--since", "48h", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {m["serial"] for m in data["meters"]} == {"SIM000100002", "SIM000100003", "P2P000000001",
                                                      "P2P000000002"}
