"""`hes read`: through typer's runner and as a subprocess, against a simulated field running in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from hes.db.models import Order
from hes.registry import Registry
from simulators.clock import FieldClock
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
from simulators.fleet import Fleet, FleetOptions
from tests.fieldtime import profile_state, utc_midnight
from tests.hes.conftest import database_url, engine, master_key, registry

__all__ = ["database_url", "engine", "master_key", "registry"]  # the database fixtures, on both databases

ROOT = Path(__file__).resolve().parents[2]
SEED = 7
P2P_WRAPPER = "P2P000000000"
DC_METER = "SIM000100001"


@contextlib.contextmanager
def field_in_thread(tmp_path: Path) -> Iterator[Fleet]:
    """A frozen field at the present instant (so the CLI's clock agrees with the meters') on its own loop."""
    now = datetime.now(UTC).replace(microsecond=0)  # reads name their range: no interval boundary to wait out
    options = FleetOptions(concentrators=1, meters_per_dc=2, p2p=1, seed=SEED, schedule=False, loss=0.0, epoch=now)
    fleet = Fleet(options, clock=FieldClock(now, 0.0))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            async with fleet:
                fleet.write_manifest(tmp_path / "fleet.json")
                ready.set()
                await stop.wait()
        except BaseException as exc:  # handed to the test thread, which raises it
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="fleet", daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the fleet did not start"
        if failure:
            raise failure[0]
        yield fleet
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def hes_env(database_url: str, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the CLI reads: the test database and the registry's master key."""
    env = {"HES_DATABASE_URL": database_url, "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
           "HES_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_read_prints_order_result_and_values(hes_env: dict[str, str], registry: Registry, tmp_path: Path) -> None:
    runner = CliRunner()
    with field_in_thread(tmp_path) as fleet:
        registry.import_manifest(tmp_path / "fleet.json")
        now = fleet.clock.now()
        result = runner.invoke(app, ["read", P2P_WRAPPER, "--what", "registers"])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].startswith("order ORD-") and lines[0].endswith(f"read registers {P2P_WRAPPER}: EXE")
        truth = registers_at(SEED, P2P_WRAPPER, now)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f"{stamp} dev -60 1.0.1.8.0.255 A+ total = {truth.a_plus} Wh" in lines
        assert f"{stamp} dev -60 1.0.2.8.0.255 A- total = {truth.a_minus} Wh" in lines

        day_end = utc_midnight(now) - timedelta(hours=1)  # a local (UTC+1) midnight of the meters, in the past
        day_start = day_end - timedelta(days=1)
        args = ["read", DC_METER, "--what", "profile", "--from", day_start.isoformat(), "--to",
                day_end.strftime("%Y-%m-%dT%H:%M"), "--json"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        first = interval_index(day_start)
        # WARN when the simulator flags a power cut in that day, EXE otherwise
        assert data["state"] == profile_state(SEED, DC_METER, first, first + 95), data["observations"]
        assert data["order"].startswith("ORD-")
        want = {}
        for row in profile_intervals(SEED, DC_METER, first, first + 95):
            end = interval_end(row.interval).strftime("%Y-%m-%dT%H:%M:%SZ")
            want[end, "1.0.1.8.0.255"] = row.a_plus
            want[end, "1.0.2.8.0.255"] = row.a_minus
        assert {(v["time"], v["obis"]): v["value"] for v in data["values"]} == want
        assert data["stored"] == 192
        again = json.loads(runner.invoke(app, args).stdout)
        assert again["stored"] == 0 and again["order"] != data["order"]


def test_fail_and_bad_arguments_exit_non_zero_with_one_line(
    hes_env: dict[str, str], registry: Registry, tmp_path: Path
) -> None:
    runner = CliRunner()
    with field_in_thread(tmp_path):
        registry.import_manifest(tmp_path / "fleet.json")
        registry.decommission(P2P_WRAPPER)
        result = runner.invoke(app, ["read", P2P_WRAPPER, "--what", "clock"])
        assert result.exit_code == 1 and result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith("hes read: order ORD-") and ": FAIL: meter P2P000000000 is decommissioned" in line
        number = line.split()[3]
        with Session(registry.engine) as session:
            order = session.scalar(select(Order).where(Order.order_number == number))
            assert order is not None and order.state == "FAIL"

        result = runner.invoke(app, ["read", "NOPE", "--what", "registers", "--json"])
        assert result.exit_code == 1 and json.loads(result.stdout)["reason"].startswith("meter NOPE is not registered")
        assert len(result.stderr.splitlines()) == 1

    for args, message in [
        (["--what", "voltage"], "--what 'voltage': one of clock"),
        (["--what", "profile", "--from", "yesterday"], "--from 'yesterday' is not an ISO 8601"),
        (["--what", "clock", "--from", "2024-03-01"], "takes no time range"),
        (["--what", "daily", "--from", "2024-03-02", "--to", "2024-03-01"], "the range is empty"),
        (["--what", "clock", "--timeout", "0"], "--timeout 0.0"),
    ]:
        result = runner.invoke(app, ["read", DC_METER, *args])
        assert result.exit_code == 2, (args, result.output)
        (line,) = result.output.strip().splitlines()
        assert line.startswith("hes read: ") and message in line, line


def test_read_as_a_subprocess(hes_env: dict[str, str], registry: Registry, tmp_path: Path) -> None:
    with field_in_thread(tmp_path) as fleet:
        registry.import_manifest(tmp_path / "fleet.json")
        env = {**os.environ, **hes_env, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "cli", "read", DC_METER, "--what", "registers", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        truth = registers_at(SEED, DC_METER, fleet.clock.now())
        got = {v["obis"]: v["value"] for v in data["values"]}
        assert got["1.0.1.8.0.255"] == truth.a_plus and got["1.0.1.8.1.255"] == truth.a_plus_t1
        assert data["state"] == "EXE" and done.stderr == ""


def test_read_v_reads_a_meter_capping_get_with_list_and_says_the_limit_once(
    hes_env: dict[str, str], registry: Registry, tmp_path: Path,
) -> None:
    """A meter answering at most 3 attributes of a list (gurux-dlms's server answers 8 of 11): `hes read -v`
    gets EXE and one INFO line with the limit on stderr; the next read starts with it and learns nothing."""
    with field_in_thread(tmp_path) as fleet:
        registry.import_manifest(tmp_path / "fleet.json")
        meter = fleet.meter(P2P_WRAPPER)
        meter.config = dataclasses.replace(meter.config, get_with_list_limit=3, get_with_list_overflow="short")
        env = {**os.environ, **hes_env, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "cli", "read", P2P_WRAPPER, "--what", "registers", "-v"]
        first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines()[0].endswith(f"read registers {P2P_WRAPPER}: EXE")
        (line,) = [ln for ln in first.stderr.splitlines() if "GET-with-list limit learned" in ln]
        assert f"meter {P2P_WRAPPER}" in line and "at most 3 attributes per request" in line
        before = len(meter.get_with_list_sizes)
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 0 and second.stdout.splitlines()[0].endswith(": EXE"), second.stderr
        assert "limit learned" not in second.stderr
        asked = meter.get_with_list_sizes[before:]
        assert asked and max(asked) <= 3  # lists of the kept limit from the first request
