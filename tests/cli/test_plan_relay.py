"""`hes plan` with relay commands: the technician role, --confirm-disconnect for a bulk disconnect, audit, read-back.

Users are a technician (tess), an operator (olga) and a viewer with tokens, as in ``test_user``; the
simulated field runs in a thread (``FieldThread``); relay states are read from the simulated meters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from hes.db.models import AuditEntry, Order
from hes.registry import Registry
from protocols.cosem import ControlState
from scheduler.models import Plan
from scheduler.plans import Plans
from tests.cli.test_user import users_with_tokens
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import PINNED_FIELD_ENV, FieldThread, small_field

__all__ = ["database_url", "engine", "master_key", "registry"]  # fixtures shared with tests/hes

ROOT = Path(__file__).resolve().parents[2]
FEEDER = [f"SIM0001{i:05d}" for i in range(3)]
runner = CliRunner()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str | None]:
    return {"HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
            "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_TOKEN": None, **PINNED_FIELD_ENV}


@pytest.fixture
def field(tmp_path: Path, registry: Registry) -> Iterator[FieldThread]:
    with FieldThread(small_field()) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


def as_user(env: dict[str, str | None], token: str, args: list[str]) -> tuple[int, str, str]:
    result = runner.invoke(app, args, env={**env, "HES_TOKEN": token})
    return result.exit_code, result.stdout, result.stderr


def relay(field: FieldThread, serial: str) -> ControlState:
    return field.fleet.meter(serial).relay.control_state


def audits(registry: Registry) -> list[AuditEntry]:
    with Session(registry.engine) as db:
        return list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def plan_row(registry: Registry, name: str) -> Plan | None:
    with Session(registry.engine) as db:
        return db.scalar(select(Plan).where(Plan.name == name))


def test_a_bulk_disconnect_plan_needs_a_technician_and_an_explicit_confirmation(
    env: dict[str, str | None], field: FieldThread, registry: Registry
) -> None:
    tokens = users_with_tokens(env)
    tess, olga = tokens["tess"], tokens["olga"]
    assert as_user(env, olga, ["plan", "tag", "feeder-7", *FEEDER])[0] == 0
    create = ["plan", "create", "cut", "--tag", "feeder-7", "--commands", "disconnect"]

    # A technician without --confirm-disconnect: refused, one line, audited, no plan stored.
    code, out, err = as_user(env, tess, create)
    assert (code, out) == (4, "")
    assert err.splitlines() == ["hes plan: refused: this disconnects 3 meters: confirm with --confirm-disconnect"]
    last = audits(registry)[-1]
    assert (last.who, last.what) == ("tess", "bulk-disconnect 3 meters plan cut")
    assert last.result.startswith("REFUSED: this disconnects 3 meters")
    assert plan_row(registry, "cut") is None

    # An operator: refused for the role, even when confirming.
    code, out, err = as_user(env, olga, [*create, "--confirm-disconnect"])
    assert code == 4 and err.splitlines() == [
        "hes plan: refused: user olga (operator) may not disconnect; technician or above is needed"]
    assert audits(registry)[-1].result.startswith("REFUSED: user olga (operator) may not disconnect")
    assert plan_row(registry, "cut") is None

    # Confirmed: stored with who confirmed, when and for how many meters.
    code, out, err = as_user(env, tess, [*create, "--confirm-disconnect"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "plan cut created: tag feeder-7; disconnect; manual"
    assert lines[1].startswith("disconnect of up to 3 meters confirmed by tess at ")
    row = plan_row(registry, "cut")
    assert row is not None and (row.disconnect_confirmed_by, row.disconnect_confirmed_meters) == ("tess", 3)
    assert row.disconnect_confirmed_at is not None

    # Running it: the operator is refused, the technician must confirm again; nothing sent meanwhile.
    code, _, err = as_user(env, olga, ["plan", "run", "cut"])
    assert code == 4 and "may not disconnect" in err
    code, _, err = as_user(env, tess, ["plan", "run", "cut"])
    assert code == 4 and err.splitlines() == [
        "hes plan: refused: this disconnects 3 meters: confirm with --confirm-disconnect"]
    assert all(relay(field, serial) is ControlState.CONNECTED for serial in FEEDER)

    code, out, err = as_user(env, tess, ["plan", "run", "cut", "--confirm-disconnect", "--timeout", "5", "--json"])
    assert code == 0, out + err
    result = json.loads(out)
    assert result["summary"]["EXE"] == 3 and result["state"] == "done"
    assert any("disconnect of 3 meters confirmed by tess" in note for note in result["notes"])
    assert all(relay(field, serial) is ControlState.DISCONNECTED for serial in FEEDER)
    assert relay(field, "P2P000000000") is ControlState.CONNECTED  # not in the plan

    who = f"tess run:{result['run']}"
    with Session(registry.engine) as db:
        cut = list(db.scalars(select(Order).where(Order.command == "disconnect")))
    assert sorted(order.meter_serial for order in cut) == FEEDER
    assert {(order.requested_by, order.state) for order in cut} == {(who, "EXE")}
    audited = [entry for entry in audits(registry) if entry.what.startswith("disconnect SIM")]
    assert sorted(entry.what.split()[1] for entry in audited) == FEEDER
    assert {entry.who for entry in audited} == {who}

    # Reconnecting in bulk needs the role, not a confirmation.
    restore = ["plan", "create", "restore", "--tag", "feeder-7", "--commands", "reconnect"]
    code, _, err = as_user(env, olga, restore)
    assert code == 4 and "may not reconnect" in err
    assert as_user(env, tess, restore)[0] == 0
    code, out, err = as_user(env, tess, ["plan", "run", "restore", "--timeout", "5"])
    assert code == 0, out + err
    assert all(relay(field, serial) is ControlState.CONNECTED for serial in FEEDER)

    # The tag grows; the scheduler's run (as hes run starts it) is refused, and hes plan show says why.
    assert as_user(env, olga, ["plan", "tag", "feeder-7", "P2P000000000"])[0] == 0
    refused = Plans(registry.engine).start_run("cut", trigger="schedule", who="scheduler")
    assert refused.state == "refused"
    code, out, err = as_user(env, olga, ["plan", "show", "cut"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("disconnect of up to 3 meters confirmed by tess at ")
    assert f"run {refused.id} of plan cut (schedule, run:{refused.id}): refused; 0 items, 0 meters" in out
    assert any(line.startswith("note: not run: the selection holds 4 meters to disconnect and the plan's "
                               "confirmation by tess at ") and "covers 3" in line for line in lines)
    assert all(relay(field, serial) is ControlState.CONNECTED for serial in [*FEEDER, "P2P000000000"])


def test_a_one_meter_disconnect_plan_needs_no_confirmation(
    env: dict[str, str | None], field: FieldThread, registry: Registry, tmp_path: Path
) -> None:
    tokens = users_with_tokens(env)
    serials = tmp_path / "one.txt"
    serials.write_text(f"{FEEDER[0]}\n")
    code, out, err = as_user(env, tokens["tess"], ["plan", "create", "single", "--meters", str(serials),
                                                   "--commands", "disconnect"])
    assert code == 0, err
    assert out.splitlines() == ["plan single created: list of 1 meters; disconnect; manual"]
    row = plan_row(registry, "single")
    assert row is not None and row.disconnect_confirmed_by is None
    code, out, err = as_user(env, tokens["tess"], ["plan", "run", "single", "--timeout", "5"])
    assert code == 0, out + err
    assert out.splitlines()[1].startswith(f"{FEEDER[0]} disconnect EXE: order ")
    assert relay(field, FEEDER[0]) is ControlState.DISCONNECTED
    assert relay(field, FEEDER[1]) is ControlState.CONNECTED

    # --confirm-disconnect on a plan that does not disconnect is a bad argument (exit 2), not silently ignored.
    code, _, err = as_user(env, tokens["tess"], ["plan", "create", "reads", "--meters", str(serials),
                                                 "--commands", "registers", "--confirm-disconnect"])
    assert code == 2 and err.splitlines() == ["hes plan: --confirm-disconnect: plan reads does not disconnect"]
    assert plan_row(registry, "reads") is None


def test_as_a_real_subprocess(env: dict[str, str | None], field: FieldThread, registry: Registry,
                              tmp_path: Path) -> None:
    tokens = users_with_tokens(env)
    serials = tmp_path / "feeder.txt"
    serials.write_text("\n".join(FEEDER) + "\n")
    hes = str(Path(sys.executable).with_name("hes"))
    base = {k: v for k, v in os.environ.items() if k != "HES_TOKEN"}
    base.update({k: v for k, v in env.items() if v is not None})
    args = [hes, "plan", "create", "cut", "--meters", str(serials), "--commands", "disconnect", "--cron", "0 3 * * *"]
    refused = subprocess.run(args, env={**base, "HES_TOKEN": tokens["tess"]}, capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
    assert refused.returncode == 4 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "hes plan: refused: this disconnects 3 meters: confirm with --confirm-disconnect"]
    assert plan_row(registry, "cut") is None
    made = subprocess.run([*args, "--confirm-disconnect", "--json"], env={**base, "HES_TOKEN": tokens["tess"]},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    assert shown["disconnect_confirmation"]["by"] == "tess" and shown["disconnect_confirmation"]["meters"] == 3
    assert shown["trigger"] == {"kind": "cron", "value": "0 3 * * *"}

