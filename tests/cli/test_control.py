"""`hes disconnect`, `hes reconnect`, `hes clock sync` through CliRunner against the simulated field, both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from hes.registry import Registry
from protocols.cosem import ControlMode, ControlState
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import (
    DC_METER,
    P2P_HDLC,
    P2P_WRAPPER,
    PINNED_FIELD_ENV,
    FieldThread,
    orders_of,
    small_field,
)

__all__ = ["database_url", "engine", "master_key", "registry"]  # fixtures shared with tests/hes

runner = CliRunner()


@pytest.fixture
def field(tmp_path: Path, registry: Registry) -> Iterator[FieldThread]:
    with FieldThread(small_field()) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
            "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), **PINNED_FIELD_ENV}


def test_disconnect_and_reconnect(field: FieldThread, env: dict[str, str], registry: Registry) -> None:
    relay = field.fleet.meter(DC_METER).relay
    off = runner.invoke(app, ["disconnect", DC_METER, "--timeout", "5"], env=env)
    assert off.exit_code == 0, off.output
    assert f"{DC_METER} disconnect EXE: control state disconnected, output off" in off.stdout
    assert relay.control_state is ControlState.DISCONNECTED

    on = runner.invoke(app, ["reconnect", DC_METER, "--json", "--timeout", "5"], env=env)
    assert on.exit_code == 0, on.output
    body = json.loads(on.stdout)
    assert body["result"] == "EXE" and body["meter"] == DC_METER and body["command"] == "reconnect"
    assert body["values"]["control_state"] == "connected" and body["values"]["output_state"] is True
    assert [o.state for o in orders_of(registry, DC_METER)] == ["EXE", "EXE"]
    assert body["order"] == orders_of(registry, DC_METER)[1].order_number


def test_reconnect_needing_manual_action_exits_3(field: FieldThread, env: dict[str, str]) -> None:
    field.fleet.meter(P2P_WRAPPER).relay.control_mode = ControlMode.MODE_3
    assert runner.invoke(app, ["disconnect", P2P_WRAPPER], env=env).exit_code == 0
    result = runner.invoke(app, ["reconnect", P2P_WRAPPER], env=env)
    assert result.exit_code == 0, result.output  # WARN: executed, with observations
    assert "WARN: relay ready for reconnection (control mode 3): manual reconnection" in result.stdout


def test_clock_sync(field: FieldThread, env: dict[str, str]) -> None:
    # The field's time is pinned and frozen, the head-end's is the wall clock: the meter is off by the difference
    # (years behind at the default epoch, days ahead when the epoch is moved to today).
    field_now = field.fleet.clock.now()
    before = datetime.now(UTC)
    result = runner.invoke(app, ["clock", "sync", P2P_HDLC, "--tolerance", "30", "--json"], env=env)
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["result"] == "EXE" and body["values"]["set"] is True
    deviation = body["values"]["deviation_seconds"]
    assert abs((field_now - before).total_seconds()) > 3600  # well beyond the tolerance: the clock must be set
    assert (field_now - after).total_seconds() - 1 <= deviation <= (field_now - before).total_seconds() + 1
    assert abs(body["values"]["residual_seconds"]) <= 30
    meter = field.fleet.meter(P2P_HDLC)
    assert abs((meter.meter_time() - datetime.now(UTC)).total_seconds()) <= 30  # the meter keeps the wall clock now


def test_failures_exit_1_with_one_line(field: FieldThread, env: dict[str, str], registry: Registry) -> None:
    unknown = runner.invoke(app, ["disconnect", "NOPE"], env=env)
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "hes disconnect: NOPE: meter NOPE is not registered (a retry will not help)"
    assert "FAIL" in unknown.stdout

    registry.decommission(P2P_WRAPPER)
    done = runner.invoke(app, ["clock", "sync", P2P_WRAPPER], env=env)
    assert done.exit_code == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "decommissioned" in done.stderr and "Traceback" not in done.output

    field.fleet.set_outage("DC0001", True)
    down = runner.invoke(app, ["reconnect", DC_METER, "--timeout", "2"], env=env)
    assert down.exit_code == 1 and len(down.stderr.strip().splitlines()) == 1
    assert down.stderr.startswith(f"hes reconnect: {DC_METER}: ")


def test_bad_arguments_exit_2(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["clock", "sync", "X", "--tolerance", "-1"], env=env)
    assert result.exit_code == 2
    result = runner.invoke(app, ["disconnect"], env=env)
    assert result.exit_code == 2
