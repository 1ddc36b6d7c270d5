"""`hes sim fleet`: option checking through typer's runner, and real subprocesses stopped by SIGTERM.

Bad options (field, DC clocks, table churn, make B, link) are refused in one line; good ones reach the field."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from simulators.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concentrators", "-1"], "cannot be negative"),
        (["--loss", "1.5"], "not a probability"),
        (["--dc-outage", "DC0042"], "no such concentrator"),
        (["--unreachable-share", "2"], "unreachable share"),
        (["--base-port", "65535", "--concentrators", "2"], "do not fit"),
        (["--epoch", "yesterday"], "not 'now' nor an ISO 8601 instant"),
        (["--epoch", "2026-01-01T00:00"], "needs a time zone"),
        (["--push-to", "nowhere"], "is not HOST:PORT"),
        (["--push-to", "127.0.0.1:70000"], "is not HOST:PORT"),
        (["--tamper-every", "0"], "must be a positive number"),
        (["--link-retries", "16"], "link retries 16: from 0 to 15"),
        (["--link-retries", "-1"], "link retries -1: from 0 to 15"),
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


def _free_port_block(count: int) -> int:
    """A base port whose next ``count`` ports were free a moment ago (bind port 0, then probe)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    pytest.skip("no block of free ports on loopback")


def test_fleet_subprocess_writes_the_manifest_and_stops_on_sigterm(tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.json"
    counters = tmp_path / "counters.json"
    base = _free_port_block(4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "fleet", "--concentrators", "2", "--meters-per-dc", "3", "--p2p", "2",
         "--seed", "9", "--manifest", str(manifest), "--base-port", str(base), "--counters", str(counters),
         "--dc-outage", "DC0002", "--time-scale", "60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once everything listens and the manifest is written
        assert f"ports {base}-{base + 3}" in line, line
        loaded = read_manifest(manifest)
        assert [dc.port for dc in loaded.concentrators] == [base, base + 1]
        assert [p.port for p in loaded.p2p] == [base + 2, base + 3]
        with socket.create_connection(("127.0.0.1", base), timeout=5):
            pass
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    assert process.returncode == 0, err
    assert "stopped" in out
    assert err.strip() == ""
    raw = json.loads(manifest.read_text())
    assert raw["x-simulation"]["seed"] == 9
    assert len([m for m in raw["meters"] if m["concentrator"] == raw["concentrators"][0]["id"]]) == 3
    # Ports are free again: the servers were closed.
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", base))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


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


def test_epoch_sets_the_field_time_in_the_manifest() -> None:
    from datetime import UTC, datetime

    from cli.sim import _parse_epoch

    assert _parse_epoch("2026-11-22T10:00Z") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    now = _parse_epoch("now")
    assert abs((datetime.now(UTC) - now).total_seconds()) < 5


def test_fleet_subprocess_pushes_tamper_events_to_the_push_destination(tmp_path: Path) -> None:
    """--push-to with --tamper-every: cover openings arrive as wrapper PDUs at the destination."""
    from protocols.wrapper import WrapperFrame

    received: list[bytes] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(20.0)
        port = server.getsockname()[1]
        manifest = tmp_path / "m.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "sim", "fleet", "--concentrators", "1", "--meters-per-dc", "1",
             "--p2p", "1", "--seed", "7", "--manifest", str(manifest), "--push-to", f"127.0.0.1:{port}",
             "--tamper-every", "0.3"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            while len(received) < 2:
                connection, _ = server.accept()
                with connection:
                    connection.settimeout(10.0)
                    data = b""
                    while chunk := connection.recv(4096):
                        data += chunk
                received.append(data)
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    frames = [WrapperFrame.decode(data)[0] for data in received]
    assert all(frame.destination == 1 and frame.apdu for frame in frames)
    assert output.count("logged a meter cover opening") >= 2
